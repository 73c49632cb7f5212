//! Guest images: recipe → cached artifacts (kernel, initrd, root qcow2, manifest).
//!
//! [`plan`] says what a build runs (pure), [`cache`] what results are keyed by, and this
//! module runs the build and publishes the entry into a [`Store`]. [`check`] boots a built
//! image and compares it with its manifest.
//!
//! Floors: images sits above `qemu` (an [`Image`] is a [`qemu::Bootable`], and the check
//! drives a [`qemu::Machine`]); nothing in `qemu` knows about images.

pub mod cache;
pub mod check;
pub mod plan;
pub mod source;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::hosttools::{self, Missing};
use crate::procs;
use crate::qemu;
use crate::recipe::{self, Kernel, Recipe, RecipeError};
use crate::store::Store;

/// What a built image is, as written to `manifest.json` next to its artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub role: String,
    /// The cache key: a hash of the resolved recipe and every file it names.
    pub recipe_hash: String,
    pub kernel_release: String,
    pub cmdline: String,
    /// The versions the recipe pinned.
    pub pinned: BTreeMap<String, String>,
    /// Every package installed in the image, with its version.
    pub packages: BTreeMap<String, String>,
    pub check_services: Vec<String>,
    /// Artifact file name → size in bytes on the host.
    pub sizes: BTreeMap<String, u64>,
    pub disk_size_bytes: u64,
    pub build_seconds: f64,
    pub built_at: String,
    pub faultline_version: String,
    /// For a recipe with `[source]`: the source version, the patches' hashes and the
    /// packages built from them (which `images check` finds installed in the guest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<source::SourceRecord>,
}

/// A finished image in the cache.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Image {
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.join("root.qcow2")
    }

    fn open(dir: &Path) -> io::Result<Image> {
        let text = std::fs::read_to_string(dir.join("manifest.json"))?;
        let manifest = serde_json::from_str(&text).map_err(io::Error::other)?;
        Ok(Image {
            dir: dir.to_path_buf(),
            manifest,
        })
    }
}

/// What QEMU boots of an image: its files, its kernel command line, and its recipe hash as
/// the identity saved states are keyed by.
impl qemu::Bootable for Image {
    fn name(&self) -> &str {
        &self.manifest.name
    }
    fn hash(&self) -> &str {
        &self.manifest.recipe_hash
    }
    fn kernel(&self) -> PathBuf {
        Image::kernel(self)
    }
    fn initrd(&self) -> PathBuf {
        Image::initrd(self)
    }
    fn root(&self) -> PathBuf {
        Image::root(self)
    }
    fn cmdline(&self) -> &str {
        &self.manifest.cmdline
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Missing(#[from] Missing),
    #[error("image {name}: {context}: {source}")]
    Io {
        name: String,
        context: String,
        source: io::Error,
    },
    #[error("image {name}: {tool} failed ({status}); log: {}\n{tail}", log.display())]
    Tool {
        name: String,
        tool: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("image {name}: {package} is {got} in the image, but the recipe pins {want}")]
    PinMismatch {
        name: String,
        package: String,
        want: String,
        got: String,
    },
    #[error("image {name} is not built (recipe hash {key}); run `faultline images build` or `make images`")]
    NotBuilt { name: String, key: String },
    #[error("image {name}: {what} needs root")]
    NeedsRoot { name: String, what: String },
    #[error("image {name}: patch {patch} does not apply to {against}: {failure} (nothing was built)")]
    Patch {
        name: String,
        patch: String,
        against: String,
        failure: String,
    },
}

impl BuildError {
    /// A bad recipe is input (exit 2); anything else broke (exit 3).
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildError::Recipe(_) | BuildError::Patch { .. } => RecipeError::EXIT_CODE,
            _ => crate::exit::Exit::Broken.code(),
        }
    }

    /// The same error, pointing at the log where it was kept after its build folder went.
    pub(crate) fn with_log(self, kept: &Path) -> BuildError {
        match self {
            BuildError::Tool {
                name,
                tool,
                status,
                tail,
                ..
            } => BuildError::Tool {
                name,
                tool,
                status,
                log: kept.to_path_buf(),
                tail,
            },
            other => other,
        }
    }
}

/// The recipes in `dir` that describe images (fragments such as common.toml are skipped),
/// sorted by file name.
pub fn find_recipes(dir: &Path) -> Result<Vec<PathBuf>, RecipeError> {
    let rd = std::fs::read_dir(dir).map_err(|source| RecipeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        if recipe::is_image(&p)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Load every image recipe in `dir`, or only those named in `names`.
pub fn load_recipes(dir: &Path, names: &[String]) -> Result<Vec<Recipe>, RecipeError> {
    let mut all = Vec::new();
    for p in find_recipes(dir)? {
        all.push(recipe::load(&p)?);
    }
    for n in names {
        if !all.iter().any(|r| &r.name == n) {
            let known: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
            return Err(RecipeError::Io {
                path: dir.join(format!("{n}.toml")),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no image named {n:?} (known: {})", known.join(", ")),
                ),
            });
        }
    }
    if !names.is_empty() {
        all.retain(|r| names.contains(&r.name));
    }
    Ok(all)
}

/// The cached image for `recipe`, if it has been built.
pub fn lookup(recipe: &Recipe, cache_root: &Path) -> Result<Image, BuildError> {
    let key = cache::key(recipe).map_err(|e| io_err(recipe, "hashing the recipe's files", e))?;
    let dir = store(cache_root).entry(&entry_name(recipe, &key));
    if dir.join("manifest.json").is_file() {
        Image::open(&dir).map_err(|e| io_err(recipe, "reading its manifest", e))
    } else {
        Err(BuildError::NotBuilt {
            name: recipe.name.clone(),
            key,
        })
    }
}

/// Where built images live under the cache root.
fn store(cache_root: &Path) -> Store {
    Store::new(cache_root.join("images"))
}

fn entry_name(recipe: &Recipe, key: &str) -> String {
    format!("{}-{key}", recipe.name)
}

/// `io_err` with its context given now and its error later (for `map_err`).
pub(crate) fn io_err_in<'r>(recipe: &'r Recipe, context: &str) -> impl Fn(io::Error) -> BuildError + 'r {
    let context = context.to_string();
    move |e| io_err(recipe, &context, e)
}

pub(crate) fn io_err(recipe: &Recipe, context: &str, source: io::Error) -> BuildError {
    BuildError::Io {
        name: recipe.name.clone(),
        context: context.to_string(),
        source,
    }
}

/// Build every recipe at once (each build is mostly one busy process, so they share the
/// machine well), returning results in the recipes' order.
pub fn build_all(
    recipes: &[Recipe],
    cache_root: &Path,
    say: &(dyn Fn(&str) + Sync),
) -> Vec<Result<Built, BuildError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = recipes
            .iter()
            .map(|r| s.spawn(move || build(r, cache_root, &mut |l| say(l))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a build thread panicked"))
            .collect()
    })
}

/// How a build ended.
#[derive(Debug)]
pub struct Built {
    pub image: Image,
    pub cache_hit: bool,
}

/// The longest a build may take before it is killed (the cold build is about a minute here).
const BUILD_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// Build `recipe` into the cache unless an entry for it exists. `say` receives progress lines.
pub fn build(recipe: &Recipe, cache_root: &Path, say: &mut dyn FnMut(&str)) -> Result<Built, BuildError> {
    if let Ok(image) = lookup(recipe, cache_root) {
        return Ok(Built {
            image,
            cache_hit: true,
        });
    }
    hosttools::require(&[hosttools::MMDEBSTRAP, hosttools::MKFS_EXT4, hosttools::QEMU_IMG])?;
    // The packages built from source first: they are the image's input, cached apart.
    let built = match &recipe.source {
        Some(spec) => Some(source::build(recipe, spec, cache_root, say)?),
        None => None,
    };
    let key = cache::key(recipe).map_err(|e| io_err(recipe, "hashing the recipe's files", e))?;
    let store = store(cache_root);
    store.sweep_stale();
    let entry = entry_name(recipe, &key);
    let lock = store
        .lock(&entry)
        .map_err(|e| io_err(recipe, "locking the cache entry", e))?;
    // Another build may have finished it while we waited for the lock.
    if let Ok(image) = lookup(recipe, cache_root) {
        return Ok(Built {
            image,
            cache_hit: true,
        });
    }
    let work = lock
        .work()
        .map_err(|e| io_err(recipe, "removing a killed build's work folder", e))?;
    match build_in(recipe, &key, built.as_ref(), work.path(), say) {
        Ok(manifest) => {
            let dest = work
                .publish("out")
                .map_err(|e| io_err(recipe, "publishing the entry", e))?;
            Ok(Built {
                image: Image { dir: dest, manifest },
                cache_hit: false,
            })
        }
        Err(e) => {
            // Keep the log where the user can read it, outside the half-made entry.
            let log = work.path().join("out").join("build.log");
            let kept = store.dir().join(format!("{}-failed-build.log", recipe.name));
            let _ = std::fs::rename(&log, &kept);
            let _ = work.discard();
            Err(e.with_log(&kept))
        }
    }
}

fn build_in(
    recipe: &Recipe,
    key: &str,
    built: Option<&source::BuiltDebs>,
    work: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<Manifest, BuildError> {
    let started = Instant::now();
    let ioe = |context: &str| io_err_in(recipe, context);
    let out = work.join("out");
    let stage = work.join("stage");
    let chroot_tmp = work.join("chroot");
    for d in [&out, &stage, &chroot_tmp] {
        std::fs::create_dir_all(d).map_err(ioe("creating the build folder"))?;
    }
    let mode = plan::Mode::for_current_user();
    if mode == plan::Mode::Unshare {
        // The user namespace's root must be able to reach the staged files and write OUT.
        use std::os::unix::fs::PermissionsExt;
        for d in [work, &out, &stage, &chroot_tmp] {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777));
        }
    }

    // Stage the recipe's files and (for a custom kernel) its modules.
    let staged = plan::staged_files(recipe).map_err(ioe("reading the recipe's files"))?;
    for f in &staged {
        let dst = stage.join(&f.staged);
        std::fs::create_dir_all(dst.parent().expect("staged paths have a parent"))
            .map_err(ioe("staging files"))?;
        std::fs::copy(&f.host, &dst).map_err(ioe(&format!("staging {}", f.host.display())))?;
    }
    if let Kernel::Custom {
        vmlinuz,
        config,
        modules,
        ..
    } = &recipe.kernel
    {
        std::fs::copy(config, stage.join("config")).map_err(ioe("staging the custom kernel's config"))?;
        run_tool(
            recipe,
            "cp",
            Command::new("cp")
                .arg("-a")
                .arg(modules)
                .arg(stage.join("modules")),
            &out.join("build.log"),
        )?;
        std::fs::copy(vmlinuz, out.join("vmlinuz")).map_err(ioe("copying the custom kernel"))?;
    }
    let script = work.join("customize.sh");
    std::fs::write(&script, plan::customize_script(recipe, &staged))
        .map_err(ioe("writing the customize script"))?;

    let paths = plan::BuildPaths {
        script,
        out: out.clone(),
        stage,
    };
    let source_debs = built.map(|b| b.files()).unwrap_or_default();
    let args = plan::mmdebstrap_args(recipe, mode, &paths, &source_debs);
    let log = out.join("build.log");
    say(&format!(
        "image {}: mmdebstrap ({} packages pinned, {} mode)",
        recipe.name,
        recipe.packages.len(),
        match mode {
            plan::Mode::Root => "root",
            plan::Mode::Unshare => "unshare",
        }
    ));
    let mut cmd = procs::tree("mmdebstrap");
    cmd.args(&args).env("TMPDIR", &chroot_tmp);
    run_tool(recipe, "mmdebstrap", &mut cmd, &log)?;

    say(&format!("image {}: root.qcow2", recipe.name));
    let raw = out.join("root.raw");
    let qcow = out.join("root.qcow2");
    run_tool(
        recipe,
        "qemu-img",
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow),
        &log,
    )?;
    std::fs::remove_file(&raw).map_err(ioe("removing the raw image"))?;

    // The package list must agree with the pins: apt was told exact versions, so a
    // difference means something rewrote the tree after it.
    let tsv = std::fs::read_to_string(out.join("packages.tsv")).map_err(ioe("reading the package list"))?;
    let packages: BTreeMap<String, String> = tsv
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| (p.to_string(), v.to_string()))
        .collect();
    let mut pinned = recipe.packages.clone();
    if let Some(b) = built {
        for (p, d) in &b.record.debs {
            pinned.insert(p.clone(), d.version.clone());
        }
    }
    for (p, want) in &pinned {
        let got = packages.get(p).cloned().unwrap_or_else(|| "not installed".into());
        if &got != want {
            return Err(BuildError::PinMismatch {
                name: recipe.name.clone(),
                package: p.clone(),
                want: want.clone(),
                got,
            });
        }
    }
    std::fs::remove_file(out.join("packages.tsv")).map_err(ioe("tidying"))?;

    let mut sizes = BTreeMap::new();
    for f in ["vmlinuz", "initrd.img", "root.qcow2"] {
        let len = std::fs::metadata(out.join(f))
            .map_err(ioe(&format!("reading {f}")))?
            .len();
        sizes.insert(f.to_string(), len);
    }
    let manifest = Manifest {
        name: recipe.name.clone(),
        role: recipe.role.clone(),
        recipe_hash: key.to_string(),
        kernel_release: recipe.kernel.release().to_string(),
        cmdline: recipe.kernel.cmdline().to_string(),
        pinned,
        packages,
        check_services: recipe.check_services.clone(),
        sizes,
        disk_size_bytes: recipe.disk_size_bytes,
        build_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        built_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        faultline_version: env!("CARGO_PKG_VERSION").to_string(),
        source: built.map(|b| b.record.clone()),
    };
    // Synced with the artifacts when the store publishes the entry.
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).expect("manifest serializes"),
    )
    .map_err(ioe("writing the manifest"))?;
    Ok(manifest)
}

/// Run a build tool (a command from [`procs::tree`]) with its output appended to `log`,
/// within the build deadline.
pub(crate) fn run_tool(recipe: &Recipe, tool: &str, cmd: &mut Command, log: &Path) -> Result<(), BuildError> {
    let ioe = |e: io::Error| io_err(recipe, &format!("running {tool}"), e);
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(ioe)?;
    cmd.stdin(Stdio::null())
        .stdout(logf.try_clone().map_err(ioe)?)
        .stderr(logf);
    let mut child = procs::spawn_tree(cmd).map_err(ioe)?;
    let status = match child.wait_for(BUILD_DEADLINE).map_err(ioe)? {
        Ok(s) => s,
        Err(t) => {
            child.terminate(Duration::from_secs(5));
            return Err(BuildError::Tool {
                name: recipe.name.clone(),
                tool: tool.to_string(),
                status: format!("killed: {t}"),
                log: log.to_path_buf(),
                tail: procs::tail(log, 20),
            });
        }
    };
    if !status.success() {
        return Err(BuildError::Tool {
            name: recipe.name.clone(),
            tool: tool.to_string(),
            status: status.to_string(),
            log: log.to_path_buf(),
            tail: explain_apt(&procs::tail(log, 20)),
        });
    }
    Ok(())
}

/// apt's way of saying a pin is gone from the mirror, turned into what to do about it.
fn explain_apt(tail: &str) -> String {
    let mut out = tail.to_string();
    for l in tail.lines() {
        if let Some(rest) = l.strip_prefix("E: Can not find version '") {
            if let Some((ver, pkg)) = rest.split_once("' of package '") {
                let pkg = pkg.trim_end_matches('\'');
                out.push_str(&format!(
                    "\nhint: the mirror has no source {pkg} {ver}; `apt-cache showsrc {pkg}` (with a deb-src line) lists what it has: update [source] version in images/"
                ));
            }
        }
        if let Some(rest) = l.strip_prefix("E: Version '") {
            if let Some((ver, pkg)) = rest.split_once("' for '") {
                let pkg = pkg.trim_end_matches("' was not found");
                out.push_str(&format!(
                    "\nhint: the mirror no longer has {pkg} {ver}; `apt-cache policy {pkg}` shows what it has: update the pin in images/"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_version_the_mirror_lacks_gets_a_hint() {
        let t = "E: Can not find version '1:2.3.19.1+dfsg1-2.1+deb12u99' of package 'dovecot'\nE: Unable to find a source package";
        assert!(
            explain_apt(t).contains("hint: the mirror has no source dovecot 1:2.3.19.1+dfsg1-2.1+deb12u99")
        );
    }

    #[test]
    fn a_vanished_pin_gets_a_hint() {
        let t = "E: Version '1.0-1' for 'curl' was not found\nE: apt-get failed";
        assert!(explain_apt(t).contains("hint: the mirror no longer has curl 1.0-1"));
    }

    #[test]
    fn fragments_are_not_images() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let found = find_recipes(&root.join("images")).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "filer.toml",
                "frontend-2008-imap.toml",
                "frontend-2008.toml",
                "frontend-deb12u6.toml",
                "frontend.toml"
            ]
        );
    }
}
