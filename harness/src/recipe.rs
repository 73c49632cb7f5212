//! Image recipes: a TOML file per guest image in `images/`, parsed and validated into a
//! [`Recipe`] that the builder turns into mmdebstrap's arguments.
//!
//! Pure apart from reading the recipe files themselves and checking that the host files they
//! name exist: no process is started here.
//!
//! A recipe may `include` others (paths relative to itself). Included files are applied first;
//! the including file then adds packages, files, units and commands, and its scalars (and each
//! `[kernel]` key) win. The same package pinned to two versions, or the same guest path given
//! two sources, is an error rather than a silent override.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::span::PosError;

/// Why a recipe could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error(transparent)]
    At(#[from] PosError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl RecipeError {
    /// A rejected recipe is input (README.md: exit 2, nothing built).
    pub const EXIT_CODE: u8 = crate::exit::Exit::Input.code();
}

/// A validated image recipe, with every host path absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipe {
    pub name: String,
    pub role: String,
    pub suite: String,
    /// apt source lines without the `deb ` prefix: `URI SUITE COMPONENT...`.
    pub mirrors: Vec<String>,
    pub disk_size_bytes: u64,
    pub kernel: Kernel,
    /// Package name → exact Debian version.
    pub packages: BTreeMap<String, String>,
    /// Guest path → host file whose bytes and mode it gets.
    pub files: BTreeMap<String, PathBuf>,
    pub units: Units,
    /// Shell commands run in the finished tree (chroot), in order.
    pub run: Vec<String>,
    /// Local .deb files installed after the pinned packages (e.g. a patched Dovecot).
    pub extra_debs: Vec<PathBuf>,
    /// Binary packages built from a Debian source package (with patches) and installed
    /// like `extra_debs`; they replace the pins of the same names in `packages`.
    pub source: Option<SourceSpec>,
    /// systemd units `images check` expects active in a booted guest.
    pub check_services: Vec<String>,
    /// Every recipe file read, the top one first.
    pub sources: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kernel {
    /// A Debian kernel package from `packages`; its version string is the package name
    /// without `linux-image-`.
    Debian { package: String, cmdline: String },
    /// A kernel the user built: its image, its build configuration, the directory holding
    /// `lib/modules/<version>`'s contents, and that version. The image's initrd is built for
    /// it inside the guest tree; initramfs-tools reads the configuration (as
    /// `/boot/config-<version>`) to pick a compression the kernel can unpack, and refuses to
    /// build without it.
    Custom {
        vmlinuz: PathBuf,
        config: PathBuf,
        modules: PathBuf,
        version: String,
        cmdline: String,
    },
}

impl Kernel {
    /// The kernel release `uname -r` prints in the guest.
    pub fn release(&self) -> &str {
        match self {
            Kernel::Debian { package, .. } => package.strip_prefix("linux-image-").unwrap_or(package),
            Kernel::Custom { version, .. } => version,
        }
    }

    pub fn cmdline(&self) -> &str {
        match self {
            Kernel::Debian { cmdline, .. } | Kernel::Custom { cmdline, .. } => cmdline,
        }
    }
}

/// A Debian source package the image's builder builds (see `images::source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceSpec {
    /// The source package's name, e.g. `dovecot`.
    pub package: String,
    /// Its exact version, as the `deb-src` mirror has it.
    pub version: String,
    /// The `deb-src` line without its prefix: `URI SUITE COMPONENT...`.
    pub mirror: String,
    /// Patch files (`patch -p1` from the unpacked source's top), applied in this order.
    pub patches: Vec<PathBuf>,
    /// The binary packages of the build that the image installs.
    pub install: Vec<String>,
    /// Build options: each is set in the environment and given to `debian/rules` as a make
    /// variable (which wins over the rules file's own assignment, e.g. of
    /// `DEB_BUILD_MAINT_OPTIONS`).
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Units {
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    pub mask: Vec<String>,
}

// ---- raw shape of one file -------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    suite: Option<Spanned<String>>,
    mirrors: Option<Spanned<Vec<Spanned<String>>>>,
    disk_size: Option<Spanned<String>>,
    #[serde(default)]
    run: Vec<Spanned<String>>,
    #[serde(default)]
    extra_debs: Vec<Spanned<String>>,
    source: Option<RawSource>,
    kernel: Option<RawKernel>,
    #[serde(default)]
    packages: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    files: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    units: RawUnits,
    #[serde(default)]
    check: RawCheck,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    package: Option<Spanned<String>>,
    cmdline: Option<Spanned<String>>,
    vmlinuz: Option<Spanned<String>>,
    config: Option<Spanned<String>>,
    modules: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSource {
    package: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    mirror: Option<Spanned<String>>,
    #[serde(default)]
    patches: Vec<Spanned<String>>,
    install: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    options: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUnits {
    #[serde(default)]
    enable: Vec<Spanned<String>>,
    #[serde(default)]
    disable: Vec<Spanned<String>>,
    #[serde(default)]
    mask: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(default)]
    services: Vec<Spanned<String>>,
}

// ---- values that remember where they came from -------------------------------------------

#[derive(Clone)]
struct Src {
    path: Arc<Path>,
    text: Arc<str>,
}

#[derive(Clone)]
struct At<T> {
    value: T,
    src: Src,
    span: Range<usize>,
}

impl<T> At<T> {
    fn err(&self, message: impl Into<String>) -> PosError {
        PosError::new(&self.src.path, &self.src.text, self.span.start, message)
    }
}

impl Src {
    fn at<T>(&self, s: Spanned<T>) -> At<T> {
        let span = s.span();
        At {
            value: s.into_inner(),
            src: self.clone(),
            span,
        }
    }

    /// A host path written in this file (relative to its folder), with where it was written.
    fn path_at(&self, s: Spanned<String>) -> At<PathBuf> {
        let at = self.at(s);
        At {
            value: self.host_path(&at.value),
            src: at.src,
            span: at.span,
        }
    }

    /// A path written in this file, relative to the file's folder.
    fn host_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// Everything gathered from a file and its includes, before validation.
#[derive(Default)]
struct Merged {
    name: Option<At<String>>,
    role: Option<At<String>>,
    suite: Option<At<String>>,
    mirrors: Option<At<Vec<At<String>>>>,
    disk_size: Option<At<String>>,
    kernel_package: Option<At<String>>,
    kernel_cmdline: Option<At<String>>,
    kernel_vmlinuz: Option<At<PathBuf>>,
    kernel_config: Option<At<PathBuf>>,
    kernel_modules: Option<At<PathBuf>>,
    kernel_version: Option<At<String>>,
    packages: BTreeMap<String, At<String>>,
    files: BTreeMap<String, At<PathBuf>>,
    enable: Vec<At<String>>,
    disable: Vec<At<String>>,
    mask: Vec<At<String>>,
    run: Vec<At<String>>,
    extra_debs: Vec<At<PathBuf>>,
    /// Where a `[source]` table was given (the last one), for errors about it as a whole.
    source_at: Option<At<()>>,
    source_package: Option<At<String>>,
    source_version: Option<At<String>>,
    source_mirror: Option<At<String>>,
    source_patches: Vec<At<PathBuf>>,
    source_install: Option<At<Vec<At<String>>>>,
    source_options: BTreeMap<String, At<String>>,
    services: Vec<At<String>>,
    sources: Vec<PathBuf>,
}

/// Load and validate the recipe at `path`, following its includes.
pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
    let mut merged = Merged::default();
    let mut stack = Vec::new();
    merge_file(path, None, &mut merged, &mut stack)?;
    validate(merged)
}

/// Whether the file at `path` describes an image (has a `name`), as opposed to being a
/// fragment other recipes include.
pub fn is_image(path: &Path) -> Result<bool, RecipeError> {
    let (text, src) = read(path)?;
    let raw: RawFile = toml::from_str(&text).map_err(|e| PosError::from_toml(&src.path, &text, &e))?;
    Ok(raw.name.is_some())
}

fn read(path: &Path) -> Result<(Arc<str>, Src), RecipeError> {
    let text: Arc<str> = std::fs::read_to_string(path)
        .map_err(|source| RecipeError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .into();
    let src = Src {
        path: path.into(),
        text: text.clone(),
    };
    Ok((text, src))
}

fn merge_file(
    path: &Path,
    included_by: Option<&At<String>>,
    m: &mut Merged,
    stack: &mut Vec<PathBuf>,
) -> Result<(), RecipeError> {
    let canonical = path.canonicalize().map_err(|source| match included_by {
        Some(at) => RecipeError::At(at.err(format!(
            "cannot read included recipe {}: {source}",
            path.display()
        ))),
        None => RecipeError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if stack.contains(&canonical) {
        let at = included_by.expect("the top file cannot be on the stack already");
        return Err(at
            .err(format!("include cycle: {} includes itself", path.display()))
            .into());
    }
    let (text, src) = read(path)?;
    let raw: RawFile = toml::from_str(&text).map_err(|e| PosError::from_toml(&src.path, &text, &e))?;
    m.sources.push(path.to_path_buf());

    stack.push(canonical);
    for inc in &raw.include {
        let inc = src.at(inc.clone());
        let inc_path = src.host_path(&inc.value);
        merge_file(&inc_path, Some(&inc), m, stack)?;
    }
    stack.pop();

    let set = |slot: &mut Option<At<String>>, v: Option<Spanned<String>>| {
        if let Some(v) = v {
            *slot = Some(src.at(v));
        }
    };
    set(&mut m.name, raw.name);
    set(&mut m.role, raw.role);
    set(&mut m.suite, raw.suite);
    set(&mut m.disk_size, raw.disk_size);
    if let Some(mirrors) = raw.mirrors {
        let at = src.at(mirrors);
        m.mirrors = Some(At {
            value: at.value.into_iter().map(|s| src.at(s)).collect(),
            src: at.src,
            span: at.span,
        });
    }
    if let Some(k) = raw.kernel {
        set(&mut m.kernel_package, k.package);
        set(&mut m.kernel_cmdline, k.cmdline);
        set(&mut m.kernel_version, k.version);
        m.kernel_vmlinuz = k.vmlinuz.map(|v| src.path_at(v)).or(m.kernel_vmlinuz.take());
        m.kernel_config = k.config.map(|v| src.path_at(v)).or(m.kernel_config.take());
        m.kernel_modules = k.modules.map(|v| src.path_at(v)).or(m.kernel_modules.take());
    }
    for (name, version) in raw.packages {
        let version = src.at(version);
        if let Some(prev) = m.packages.get(&name) {
            if prev.value != version.value {
                return Err(version
                    .err(format!(
                        "package {name} is pinned to {} here but to {} at {}",
                        version.value,
                        prev.value,
                        prev.err("").pos
                    ))
                    .into());
            }
        }
        m.packages.insert(name, version);
    }
    for (guest, source) in raw.files {
        let host = src.path_at(source);
        if let Some(prev) = m.files.get(&guest) {
            return Err(host
                .err(format!("{guest} is already given by {}", prev.err("").pos))
                .into());
        }
        m.files.insert(guest, host);
    }
    let all = |v: Vec<Spanned<String>>| v.into_iter().map(|s| src.at(s)).collect::<Vec<_>>();
    m.enable.extend(all(raw.units.enable));
    m.disable.extend(all(raw.units.disable));
    m.mask.extend(all(raw.units.mask));
    m.run.extend(all(raw.run));
    m.services.extend(all(raw.check.services));
    m.extra_debs
        .extend(raw.extra_debs.into_iter().map(|d| src.path_at(d)));
    if let Some(s) = raw.source {
        // Each key of `[source]` is a scalar the including file may set again; patches
        // are joined (an included file's first) and options merged key by key.
        let first = [&s.package, &s.version, &s.mirror]
            .into_iter()
            .flatten()
            .map(|v| v.span())
            .chain(s.install.as_ref().map(|v| v.span()))
            .min_by_key(|r| r.start)
            .unwrap_or(0..0);
        m.source_at = Some(At {
            value: (),
            src: src.clone(),
            span: first,
        });
        set(&mut m.source_package, s.package);
        set(&mut m.source_version, s.version);
        set(&mut m.source_mirror, s.mirror);
        m.source_patches
            .extend(s.patches.into_iter().map(|p| src.path_at(p)));
        if let Some(list) = s.install {
            let at = src.at(list);
            m.source_install = Some(At {
                value: at.value.into_iter().map(|v| src.at(v)).collect(),
                src: at.src,
                span: at.span,
            });
        }
        for (k, v) in s.options {
            m.source_options.insert(k, src.at(v));
        }
    }
    Ok(())
}

fn validate(m: Merged) -> Result<Recipe, RecipeError> {
    let top = m.sources.first().cloned().unwrap_or_default();
    let missing = |what: &str| -> RecipeError {
        let text = std::fs::read_to_string(&top).unwrap_or_default();
        PosError::new(&top, &text, 0, format!("missing `{what}`")).into()
    };

    let name = m.name.clone().ok_or_else(|| missing("name"))?;
    if !is_simple_name(&name.value) {
        return Err(name.err("name must be lower-case letters, digits and '-'").into());
    }
    let role = m.role.clone().ok_or_else(|| missing("role"))?;
    if !is_simple_name(&role.value) {
        return Err(role.err("role must be lower-case letters, digits and '-'").into());
    }
    let suite = m.suite.clone().ok_or_else(|| missing("suite"))?;
    let mirrors = m.mirrors.clone().ok_or_else(|| missing("mirrors"))?;
    if mirrors.value.is_empty() {
        return Err(mirrors.err("mirrors must name at least one apt source").into());
    }
    for line in &mirrors.value {
        check_mirror(line)?;
    }
    let disk = m.disk_size.clone().ok_or_else(|| missing("disk_size"))?;
    let disk_size_bytes = parse_size(&disk.value).ok_or_else(|| {
        disk.err(format!(
            "bad size {:?}: use a number with K, M or G, e.g. \"2G\"",
            disk.value
        ))
    })?;
    if disk_size_bytes < 256 << 20 {
        return Err(disk.err("disk_size must be at least 256M").into());
    }

    for (pkg, version) in &m.packages {
        if !is_package_name(pkg) {
            return Err(version
                .err(format!("{pkg:?} is not a Debian package name"))
                .into());
        }
        if !is_exact_version(&version.value) {
            return Err(version
                .err(format!(
                    "package {pkg} must be pinned to an exact Debian version, not {:?}",
                    version.value
                ))
                .into());
        }
    }

    let cmdline = m
        .kernel_cmdline
        .clone()
        .ok_or_else(|| missing("kernel.cmdline"))?
        .value;
    let kernel = if let Some(vmlinuz) = &m.kernel_vmlinuz {
        let config = m.kernel_config.clone().ok_or_else(|| {
            vmlinuz.err(
                "a custom kernel also needs `config` (the .config it was built with; initramfs-tools reads it)",
            )
        })?;
        let modules = m.kernel_modules.clone().ok_or_else(|| {
            vmlinuz.err("a custom kernel also needs `modules` (a folder with the modules of that version)")
        })?;
        let version = m
            .kernel_version
            .clone()
            .ok_or_else(|| vmlinuz.err("a custom kernel also needs `version` (what `uname -r` prints)"))?;
        if !vmlinuz.value.is_file() {
            return Err(vmlinuz
                .err(format!("no such file: {}", vmlinuz.value.display()))
                .into());
        }
        if !config.value.is_file() {
            return Err(config
                .err(format!("no such file: {}", config.value.display()))
                .into());
        }
        if !modules.value.is_dir() {
            return Err(modules
                .err(format!("no such folder: {}", modules.value.display()))
                .into());
        }
        if version.value.is_empty()
            || version.value.contains('/')
            || version.value.contains(char::is_whitespace)
        {
            return Err(version
                .err("version must be a kernel release string like 6.1.0-custom")
                .into());
        }
        Kernel::Custom {
            vmlinuz: vmlinuz.value.clone(),
            config: config.value,
            modules: modules.value,
            version: version.value,
            cmdline,
        }
    } else {
        let package = m
            .kernel_package
            .clone()
            .ok_or_else(|| missing("kernel.package"))?;
        if !package.value.starts_with("linux-image-") {
            return Err(package
                .err("kernel.package must be a linux-image-<release> package")
                .into());
        }
        if !m.packages.contains_key(&package.value) {
            return Err(package
                .err(format!(
                    "kernel package {} is not pinned in [packages]",
                    package.value
                ))
                .into());
        }
        Kernel::Debian {
            package: package.value,
            cmdline,
        }
    };

    let mut files = BTreeMap::new();
    for (guest, host) in &m.files {
        if !guest.starts_with('/') || guest.split('/').any(|c| c == "..") || guest.ends_with('/') {
            return Err(host
                .err(format!(
                    "guest path {guest:?} must be absolute, name a file, and have no '..'"
                ))
                .into());
        }
        if !host.value.is_file() {
            return Err(host.err(format!("no such file: {}", host.value.display())).into());
        }
        files.insert(guest.clone(), host.value.clone());
    }

    let unit_list = |v: &[At<String>]| -> Result<Vec<String>, RecipeError> {
        let mut out: Vec<String> = Vec::new();
        for u in v {
            if !is_unit_name(&u.value) {
                return Err(u
                    .err(format!(
                        "{:?} is not a systemd unit name (e.g. nfs-server.service)",
                        u.value
                    ))
                    .into());
            }
            if !out.contains(&u.value) {
                out.push(u.value.clone());
            }
        }
        Ok(out)
    };
    let units = Units {
        enable: unit_list(&m.enable)?,
        disable: unit_list(&m.disable)?,
        mask: unit_list(&m.mask)?,
    };
    for u in &m.disable {
        if units.enable.contains(&u.value) {
            return Err(u.err(format!("{} is both enabled and disabled", u.value)).into());
        }
    }
    let check_services = unit_list(&m.services)?;

    let mut run = Vec::new();
    for cmd in &m.run {
        if cmd.value.trim().is_empty() {
            return Err(cmd.err("empty command").into());
        }
        run.push(cmd.value.clone());
    }
    let source = validate_source(&m)?;
    let mut packages: BTreeMap<String, String> = m
        .packages
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    if let Some(s) = &source {
        // The built packages replace the archive's: their pins would ask apt for both.
        for p in &s.install {
            packages.remove(p);
        }
    }
    let mut extra_debs = Vec::new();
    for deb in &m.extra_debs {
        if deb.value.extension().and_then(|e| e.to_str()) != Some("deb") {
            return Err(deb.err("extra_debs entries must be .deb files").into());
        }
        if !deb.value.is_file() {
            return Err(deb.err(format!("no such file: {}", deb.value.display())).into());
        }
        extra_debs.push(deb.value.clone());
    }

    Ok(Recipe {
        name: name.value,
        role: role.value,
        suite: suite.value,
        mirrors: mirrors.value.into_iter().map(|a| a.value).collect(),
        disk_size_bytes,
        kernel,
        packages,
        files,
        units,
        run,
        extra_debs,
        source,
        check_services,
        sources: m.sources,
    })
}

fn validate_source(m: &Merged) -> Result<Option<SourceSpec>, RecipeError> {
    let Some(at) = &m.source_at else {
        return Ok(None);
    };
    let need = |v: &Option<At<String>>, key: &str| -> Result<At<String>, RecipeError> {
        v.clone()
            .ok_or_else(|| at.err(format!("[source] needs `{key}`")).into())
    };
    let package = need(&m.source_package, "package")?;
    if !is_package_name(&package.value) {
        return Err(package
            .err(format!("{:?} is not a Debian source package name", package.value))
            .into());
    }
    let version = need(&m.source_version, "version")?;
    if !is_exact_version(&version.value) {
        return Err(version
            .err(format!(
                "source {} must be pinned to an exact Debian version, not {:?}",
                package.value, version.value
            ))
            .into());
    }
    let mirror = need(&m.source_mirror, "mirror")?;
    check_mirror(&mirror)?;
    let install = m
        .source_install
        .clone()
        .ok_or_else(|| at.err("[source] needs `install` (the built packages the image gets)"))?;
    if install.value.is_empty() {
        return Err(install
            .err("install must name at least one binary package")
            .into());
    }
    let mut names = Vec::new();
    for p in &install.value {
        if !is_package_name(&p.value) {
            return Err(p
                .err(format!("{:?} is not a Debian package name", p.value))
                .into());
        }
        if !names.contains(&p.value) {
            names.push(p.value.clone());
        }
    }
    let mut patches = Vec::new();
    for p in &m.source_patches {
        if !p.value.is_file() {
            return Err(p.err(format!("no such patch file: {}", p.value.display())).into());
        }
        if patches.contains(&p.value) {
            return Err(p.err("this patch is already in the list").into());
        }
        patches.push(p.value.clone());
    }
    let mut options = BTreeMap::new();
    for (k, v) in &m.source_options {
        let good_key = k.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
            && k.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !good_key {
            return Err(v
                .err(format!(
                    "option {k:?}: names are upper-case make/environment variables"
                ))
                .into());
        }
        if v.value.contains(['\n', '\'', '"', '\\', '$', '`']) {
            return Err(v
                .err("an option's value is one line without quotes, '$', '`' or '\\'")
                .into());
        }
        options.insert(k.clone(), v.value.clone());
    }
    Ok(Some(SourceSpec {
        package: package.value,
        version: version.value,
        mirror: mirror.value,
        patches,
        install: names,
        options,
    }))
}

fn check_mirror(line: &At<String>) -> Result<(), RecipeError> {
    let words: Vec<&str> = line.value.split_whitespace().collect();
    if words.len() < 3
        || !(words[0].starts_with("http://")
            || words[0].starts_with("https://")
            || words[0].starts_with("file:/"))
    {
        return Err(line
            .err("a mirror is `URI SUITE COMPONENT...`, e.g. \"http://deb.debian.org/debian bookworm main\"")
            .into());
    }
    Ok(())
}

fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

/// Debian policy 5.6.1: lower-case alphanumerics and + - ., at least two, starting alphanumeric.
fn is_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Debian policy 5.6.12: `[epoch:]upstream[-revision]`, upstream starting with a digit.
/// Anything else (empty, `*`, a range) is not an exact pin.
fn is_exact_version(v: &str) -> bool {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if let Some(e) = epoch {
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    rest.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b))
        && !rest.ends_with('-')
}

fn is_unit_name(s: &str) -> bool {
    const KINDS: [&str; 8] = [
        ".service", ".socket", ".timer", ".target", ".mount", ".path", ".slice", ".device",
    ];
    KINDS.iter().any(|k| s.len() > k.len() && s.ends_with(k))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@_.-:\\".contains(&b))
}

/// "2G", "512M", "1048576" → bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// One of the project's own recipes (`images/<name>.toml`), for tests that need a real one.
#[cfg(test)]
pub(crate) fn project_recipe(name: &str) -> Recipe {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    load(&root.join("images").join(format!("{name}.toml"))).unwrap()
}

#[cfg(test)]
mod tests;
