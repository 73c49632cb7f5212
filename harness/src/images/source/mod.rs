//! Debian source packages built into .deb files for recipes with a `[source]` table: the
//! package's own source fetched with `apt-get source`, the recipe's patches applied, the
//! binary packages built in a clean build root (mmdebstrap, never the host's root) and
//! installed into the image as `extra_debs` are.
//!
//! Layout under the cache root: `sources/` is a [`Store`] with two kinds of entries —
//! `base-<package>-<key>/` (the build root with the unpatched source compiled at
//! [`plan::TREE`]) and `debs-<package>-<key>/` (one variant's .deb files, its build log and
//! `source.json`). See [`plan`] for what decides each key.
//!
//! Architecture invariants: an entry exists only when complete (the store's rule), so a
//! failed or killed build is never published; the patches are applied to a fresh unpack
//! of the source before anything is compiled, so a patch that does not apply costs seconds
//! and is one error naming the patch and the hunk; every mount a variant makes lives in a
//! private mount namespace and dies with it.

pub mod plan;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hosttools;
use crate::images::{io_err, io_err_in, run_tool, BuildError};
use crate::procs;
use crate::recipe::{Recipe, SourceSpec};
use crate::store::{Hold, Store};

/// What a variant is, as written to `source.json` and copied into the image's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub package: String,
    pub version: String,
    /// The patches in the order applied: staged name and SHA-256 of the bytes.
    pub patches: Vec<PatchRecord>,
    /// Binary package → what was built.
    pub debs: BTreeMap<String, DebRecord>,
    pub base_key: String,
    pub variant_key: String,
    /// Seconds this variant's own stage took (patch, recompile, package).
    pub build_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchRecord {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebRecord {
    pub file: String,
    pub version: String,
    pub sha256: String,
    /// SHA-256 of the package's `md5sums` control member: the same bytes dpkg keeps as
    /// `/var/lib/dpkg/info/<package>.md5sums` once it is installed, so `images check` can
    /// tell the built package from any other of the same version.
    pub md5sums_sha256: String,
}

/// A variant's .deb files in the cache.
#[derive(Debug, Clone)]
pub struct BuiltDebs {
    pub dir: PathBuf,
    pub record: SourceRecord,
    pub cache_hit: bool,
}

impl BuiltDebs {
    /// The .deb files the image installs, in the recipe's `install` order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.record
            .debs
            .values()
            .map(|d| self.dir.join(&d.file))
            .collect()
    }
}

fn store(cache_root: &Path) -> Store {
    Store::new(cache_root.join("sources"))
}

fn base_entry(spec: &SourceSpec, key: &str) -> String {
    format!("base-{}-{key}", spec.package)
}

fn debs_entry(spec: &SourceSpec, key: &str) -> String {
    format!("debs-{}-{key}", spec.package)
}

/// The `sources/` entries `recipe`'s `[source]` builds from and into: its base and its
/// variant, by folder name. Reads the patches (for the variant's key); builds nothing.
pub fn entries_of(recipe: &Recipe, spec: &SourceSpec) -> io::Result<[String; 2]> {
    Ok([
        base_entry(spec, &plan::base_key(recipe, spec)),
        debs_entry(spec, &plan::variant_key(recipe, spec)?),
    ])
}

/// The cached variant for `recipe`'s `[source]`, if built. Reads the patches (for the key)
/// and one small file: well under a second.
pub fn lookup(
    recipe: &Recipe,
    spec: &SourceSpec,
    cache_root: &Path,
) -> Result<Option<BuiltDebs>, BuildError> {
    let key = plan::variant_key(recipe, spec).map_err(|e| io_err(recipe, "hashing the patches", e))?;
    let dir = store(cache_root).entry(&debs_entry(spec, &key));
    let Ok(text) = std::fs::read_to_string(dir.join("source.json")) else {
        return Ok(None);
    };
    let record = serde_json::from_str(&text)
        .map_err(|e| io_err(recipe, "reading source.json", io::Error::other(e)))?;
    Ok(Some(BuiltDebs {
        dir,
        record,
        cache_hit: true,
    }))
}

/// Build `recipe`'s `[source]` variant unless it is cached: the base first if need be
/// (shared by every variant of the source), then the variant's patches, recompile, package.
pub fn build(
    recipe: &Recipe,
    spec: &SourceSpec,
    cache_root: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<BuiltDebs, BuildError> {
    if let Some(b) = lookup(recipe, spec, cache_root)? {
        return Ok(b);
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(BuildError::NeedsRoot {
            name: recipe.name.clone(),
            what: format!(
                "building {} from source (chroot and mount in its build root)",
                spec.package
            ),
        });
    }
    hosttools::require(&[hosttools::MMDEBSTRAP])?;
    let key = plan::variant_key(recipe, spec).map_err(|e| io_err(recipe, "hashing the patches", e))?;
    let store = store(cache_root);
    store.sweep_stale();
    let entry = debs_entry(spec, &key);
    let lock = store
        .lock(&entry)
        .map_err(|e| io_err(recipe, "locking the source cache entry", e))?;
    if let Some(b) = lookup(recipe, spec, cache_root)? {
        return Ok(b);
    }
    let work = lock
        .work()
        .map_err(|e| io_err(recipe, "removing a killed build's work folder", e))?;
    let w = work.path().to_path_buf();
    match build_variant(recipe, spec, &key, &store, &w, say) {
        Ok(record) => {
            let dir = work
                .publish("out")
                .map_err(|e| io_err(recipe, "publishing the source build", e))?;
            Ok(BuiltDebs {
                dir,
                record,
                cache_hit: false,
            })
        }
        Err(e) => {
            // The log stays readable outside the half-made entry. An error of the base build
            // already points at the base's kept log.
            let own = matches!(&e, BuildError::Tool { log, .. } if log.starts_with(&w));
            let kept = store
                .dir()
                .join(format!("{}-failed-source-build.log", recipe.name));
            let e = if own && std::fs::rename(w.join("out").join("build.log"), &kept).is_ok() {
                e.with_log(&kept)
            } else {
                e
            };
            let _ = work.discard();
            Err(e)
        }
    }
}

fn build_variant(
    recipe: &Recipe,
    spec: &SourceSpec,
    key: &str,
    store: &Store,
    work: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<SourceRecord, BuildError> {
    let ioe = |context: &str| io_err_in(recipe, context);
    let out = work.join("out");
    let build = work.join("build");
    let patches_dir = build.join("patches");
    for d in [&out, &patches_dir] {
        std::fs::create_dir_all(d).map_err(ioe("creating the build folder"))?;
    }
    let log = out.join("build.log");
    let mut patches = Vec::new();
    for (i, p) in spec.patches.iter().enumerate() {
        let name = plan::staged_patch_name(i, p);
        let bytes = std::fs::read(p).map_err(ioe(&format!("reading {}", p.display())))?;
        std::fs::write(patches_dir.join(&name), &bytes).map_err(ioe("staging the patches"))?;
        patches.push(PatchRecord {
            name,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    std::fs::write(build.join("faultline-check.sh"), plan::check_script())
        .map_err(ioe("writing the check script"))?;
    std::fs::write(build.join("faultline-variant.sh"), plan::variant_script(spec))
        .map_err(ioe("writing the variant script"))?;

    // The patches must apply before anything is compiled (the base's compile included).
    let check = |root: &Path| -> Result<(), BuildError> {
        if spec.patches.is_empty() {
            return Ok(());
        }
        let check_log = work.join("check.log");
        let r = run_tool(
            recipe,
            "patch",
            procs::tree("/bin/sh")
                .arg("-euc")
                .arg(plan::RUN_CHECK)
                .arg("faultline-check")
                .arg(root)
                .arg(&build),
            &check_log,
        );
        let text = std::fs::read_to_string(&check_log).unwrap_or_default();
        let _ = std::fs::remove_dir_all(build.join("check"));
        append(&log, &text);
        match r {
            Ok(()) => Ok(()),
            Err(_) => {
                let applying = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("faultline: applying "))
                    .next_back()
                    .unwrap_or("?")
                    .to_string();
                let index: usize = applying.get(..2).and_then(|n| n.parse().ok()).unwrap_or(0);
                let patch = spec
                    .patches
                    .get(index.wrapping_sub(1))
                    .map(|p| p.display().to_string())
                    .unwrap_or(applying);
                Err(BuildError::Patch {
                    name: recipe.name.clone(),
                    patch,
                    against: format!("{} {}", spec.package, spec.version),
                    failure: plan::patch_failure(&text).unwrap_or_else(|| procs::tail(&log, 5)),
                })
            }
        }
    };
    if !spec.patches.is_empty() {
        say(&format!(
            "image {}: {} patch(es) for {} {}, checked against its pristine source before any compile",
            recipe.name,
            spec.patches.len(),
            spec.package,
            spec.version
        ));
    }
    let (base_dir, _hold) = base(recipe, spec, store, say, &check)?;
    let root = base_dir.join("root");

    let started = Instant::now();
    say(&format!(
        "image {}: {} variant: patches, recompile, package",
        recipe.name, spec.package
    ));
    run_tool(
        recipe,
        "cp",
        Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg(root.join(plan::TREE.trim_start_matches('/')))
            .arg(build.join("src")),
        &log,
    )?;
    run_tool(
        recipe,
        "the variant's build",
        procs::tree("/bin/sh")
            .arg("-euc")
            .arg(plan::RUN_VARIANT)
            .arg("faultline-variant")
            .arg(&root)
            .arg(work)
            .arg(jobs().to_string()),
        &log,
    )?;

    let mut debs = BTreeMap::new();
    let made: Vec<PathBuf> = std::fs::read_dir(&build)
        .map_err(ioe("listing the built packages"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("deb"))
        .collect();
    for pkg in &spec.install {
        let prefix = format!("{pkg}_");
        let Some(deb) = made.iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        }) else {
            return Err(BuildError::Tool {
                name: recipe.name.clone(),
                tool: "the variant's build".into(),
                status: format!("made no package {pkg} (install names a package this source does not build)"),
                log: log.clone(),
                tail: String::new(),
            });
        };
        let file = deb
            .file_name()
            .expect("a listed file has a name")
            .to_string_lossy()
            .into_owned();
        let dest = out.join(&file);
        std::fs::rename(deb, &dest).map_err(ioe("keeping the built package"))?;
        debs.insert(pkg.clone(), deb_record(recipe, &dest, &file)?);
    }
    let record = SourceRecord {
        package: spec.package.clone(),
        version: spec.version.clone(),
        patches,
        debs,
        base_key: plan::base_key(recipe, spec),
        variant_key: key.to_string(),
        build_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    };
    std::fs::write(
        out.join("source.json"),
        serde_json::to_string_pretty(&record).expect("the record serializes"),
    )
    .map_err(ioe("writing source.json"))?;
    // The compiled copy is large and never reused: it goes with the rest of the work folder.
    Ok(record)
}

/// The base entry (build root with the unpatched source compiled), built if missing, and a
/// hold on it while the variant uses it. `check` runs against a root with the pristine
/// source before any compile.
fn base(
    recipe: &Recipe,
    spec: &SourceSpec,
    store: &Store,
    say: &mut dyn FnMut(&str),
    check: &dyn Fn(&Path) -> Result<(), BuildError>,
) -> Result<(PathBuf, Hold), BuildError> {
    let key = plan::base_key(recipe, spec);
    let entry = base_entry(spec, &key);
    let ioe = |context: &str| io_err_in(recipe, context);
    loop {
        if let Some(hold) = store.hold(&entry).map_err(ioe("holding the build root"))? {
            check(&store.entry(&entry).join("root"))?;
            return Ok((store.entry(&entry), hold));
        }
        let lock = store.lock(&entry).map_err(ioe("locking the build root"))?;
        if store.entry(&entry).is_dir() {
            continue; // built while we waited: hold it like any other
        }
        let work = lock
            .work()
            .map_err(ioe("removing a killed build's work folder"))?;
        let w = work.path().to_path_buf();
        let out = w.join("out");
        std::fs::create_dir_all(&out).map_err(ioe("creating the build folder"))?;
        let root = out.join("root");
        let log = out.join("build.log");
        let started = Instant::now();
        say(&format!(
            "image {}: build root for {} {} (mmdebstrap, build-dependencies, apt-get source)",
            recipe.name, spec.package, spec.version
        ));
        let mut cmd = procs::tree("mmdebstrap");
        cmd.args(plan::root_args(recipe, spec, &root));
        let r = run_tool(recipe, "mmdebstrap (build root)", &mut cmd, &log)
            .and_then(|()| check(&root))
            .and_then(|()| {
                std::fs::write(
                    root.join(plan::BASE_SCRIPT.trim_start_matches('/')),
                    plan::base_script(spec),
                )
                .map_err(ioe("writing the base script"))?;
                say(&format!(
                    "image {}: compiling {} {} (once for every variant; minutes)",
                    recipe.name, spec.package, spec.version
                ));
                run_tool(
                    recipe,
                    "the base build",
                    procs::tree("/bin/sh")
                        .arg("-euc")
                        .arg(plan::RUN_BASE)
                        .arg("faultline-base")
                        .arg(&root)
                        .arg(jobs().to_string()),
                    &log,
                )
            });
        if let Err(e) = r {
            let kept = store
                .dir()
                .join(format!("{}-failed-base-build.log", spec.package));
            let _ = std::fs::rename(&log, &kept);
            let _ = work.discard();
            return Err(e.with_log(&kept));
        }
        say(&format!(
            "image {}: {} compiled in {:.0} s",
            recipe.name,
            spec.package,
            started.elapsed().as_secs_f64()
        ));
        work.publish("out").map_err(ioe("publishing the build root"))?;
        drop(lock);
    }
}

fn deb_record(recipe: &Recipe, deb: &Path, file: &str) -> Result<DebRecord, BuildError> {
    let ioe = |e: io::Error| io_err(recipe, &format!("reading {file}"), e);
    let bytes = std::fs::read(deb).map_err(ioe)?;
    // `dpkg-deb ACTION DEB ARG`: stdout, or the tool's own complaint.
    let dpkg_deb = |action: &str, arg: &str| -> Result<Vec<u8>, BuildError> {
        let o = Command::new("dpkg-deb")
            .arg(action)
            .arg(deb)
            .arg(arg)
            .output()
            .map_err(ioe)?;
        if !o.status.success() {
            return Err(ioe(io::Error::other(
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            )));
        }
        Ok(o.stdout)
    };
    // The md5sums member's bytes: what dpkg keeps in /var/lib/dpkg/info once installed.
    let md5sums = dpkg_deb("--info", "md5sums")?;
    let version = String::from_utf8_lossy(&dpkg_deb("--field", "Version")?)
        .trim()
        .to_string();
    Ok(DebRecord {
        file: file.to_string(),
        version,
        sha256: hex::encode(Sha256::digest(&bytes)),
        md5sums_sha256: hex::encode(Sha256::digest(&md5sums)),
    })
}

fn append(log: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Compile jobs: one per core.
fn jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
