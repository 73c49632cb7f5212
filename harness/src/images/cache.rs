//! The content-addressed image cache.
//!
//! Layout under the cache root (`$FAULTLINE_CACHE`, else `$XDG_CACHE_HOME/faultline`, else
//! `~/.cache/faultline`): `images/` is a [`Store`] whose entries are `<name>-<key>/`
//! (vmlinuz, initrd.img, root.qcow2, manifest.json, build.log), built under
//! `images/.tmp/<name>-<key>/` while holding `images/.lock-<name>-<key>`; different images
//! build in parallel. Saved states (`states/`) and whole-lab states (`labs/`) are stores too.
//!
//! Architecture invariant: an entry directory exists only once it is complete (the store's
//! rule), and its key does not depend on where the project is checked out.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::images::plan;
use crate::recipe::{Kernel, Recipe};
use crate::store::Store;

/// Bump when the build changes in a way the recipe and the generated script don't show.
const BUILDER_VERSION: &str = "faultline-image-1";

pub fn default_root() -> PathBuf {
    if let Some(p) = std::env::var_os("FAULTLINE_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("faultline");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("faultline")
}

/// The cache key of `recipe`: a hash of everything that decides the image's bytes (the
/// resolved recipe, the contents and modes of every file it names, the generated customize
/// script), but not of where the project is checked out or of comments in the recipe.
pub fn key(recipe: &Recipe) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut field = |name: &str, bytes: &[u8]| {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("builder", BUILDER_VERSION.as_bytes());
    field("name", recipe.name.as_bytes());
    field("role", recipe.role.as_bytes());
    field("suite", recipe.suite.as_bytes());
    for m in &recipe.mirrors {
        field("mirror", m.as_bytes());
    }
    field("disk", &recipe.disk_size_bytes.to_le_bytes());
    field("cmdline", recipe.kernel.cmdline().as_bytes());
    field("release", recipe.kernel.release().as_bytes());
    for (p, v) in &recipe.packages {
        field("package", format!("{p}={v}").as_bytes());
    }
    let staged = plan::staged_files(recipe)?;
    for f in &staged {
        field("file", f.guest.as_bytes());
        field("mode", &f.mode.to_le_bytes());
        field("content", &file_digest(&f.host)?);
    }
    for deb in &recipe.extra_debs {
        field("deb", &file_digest(deb)?);
    }
    if let Kernel::Custom {
        vmlinuz,
        config,
        modules,
        ..
    } = &recipe.kernel
    {
        field("vmlinuz", &file_digest(vmlinuz)?);
        field("config", &file_digest(config)?);
        field("modules", &tree_digest(modules)?);
    }
    if let Some(spec) = &recipe.source {
        // The variant's key covers the source, its version, the patches' bytes and how they
        // are built: the .deb files themselves are not byte-for-byte reproducible.
        field(
            "source",
            crate::images::source::plan::variant_key(recipe, spec)?.as_bytes(),
        );
    }
    for s in &recipe.check_services {
        field("check", s.as_bytes());
    }
    field("script", plan::customize_script(recipe, &staged).as_bytes());
    Ok(hex::encode(&h.finalize()[..8]))
}

fn file_digest(p: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_vec())
}

/// A digest of a folder: every path below it, its mode, and its contents, in sorted order.
fn tree_digest(dir: &Path) -> io::Result<Vec<u8>> {
    let mut entries = Vec::new();
    walk(dir, dir, &mut entries)?;
    entries.sort();
    let mut h = Sha256::new();
    for rel in entries {
        let p = dir.join(&rel);
        let meta = p.symlink_metadata()?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update(meta.permissions().mode().to_le_bytes());
        if meta.is_file() {
            h.update(file_digest(&p)?);
        } else if meta.file_type().is_symlink() {
            h.update(std::fs::read_link(&p)?.to_string_lossy().as_bytes());
        }
    }
    Ok(h.finalize().to_vec())
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        out.push(p.strip_prefix(base).unwrap_or(&p).to_path_buf());
        if e.file_type()?.is_dir() {
            walk(base, &p, out)?;
        }
    }
    Ok(())
}

/// Remove the work folders of image builds that were killed (see [`Store::sweep_stale`]).
pub fn sweep_stale(images_dir: &Path) {
    Store::new(images_dir).sweep_stale();
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::recipe::project_recipe;

    #[test]
    fn keys_are_stable_and_differ_between_images() {
        let f1 = key(&project_recipe("filer")).unwrap();
        let f2 = key(&project_recipe("filer")).unwrap();
        let fe = key(&project_recipe("frontend")).unwrap();
        assert_eq!(f1, f2);
        assert_ne!(f1, fe);
        assert_eq!(f1.len(), 16);
    }

    #[test]
    fn a_changed_file_or_pin_changes_the_key() {
        let mut r = project_recipe("filer");
        let k0 = key(&r).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("exports");
        std::fs::write(&p, "/export *(rw)\n").unwrap();
        r.files.insert("/etc/exports".into(), p.clone());
        let k1 = key(&r).unwrap();
        assert_ne!(k0, k1);
        std::fs::write(&p, "/export *(ro)\n").unwrap();
        assert_ne!(k1, key(&r).unwrap());
        r.packages.insert("curl".into(), "7.88.1-10+deb12u99".into());
        assert_ne!(k1, key(&r).unwrap());
    }

    #[test]
    fn where_the_project_lives_does_not_change_the_key() {
        let r = project_recipe("filer");
        let k0 = key(&r).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut moved = r.clone();
        for host in moved.files.values_mut() {
            let copy = dir
                .path()
                .join(host.file_name().unwrap())
                .with_extension(rand_suffix(host));
            std::fs::copy(&*host, &copy).unwrap();
            *host = copy;
        }
        moved.sources = vec![];
        assert_eq!(k0, key(&moved).unwrap());
    }

    fn rand_suffix(p: &Path) -> String {
        hex::encode(&Sha256::digest(p.to_string_lossy().as_bytes())[..4])
    }
}
