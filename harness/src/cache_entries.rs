//! The cache folder read as entries for `faultline cache list | prune`: every complete entry
//! of `images/`, `states/`, `labs/` and `sources/` with its size, when it was last used, what
//! it is built on (read from its qcow2 disks' backing files), and whether the current recipes
//! need it; and the removal of a plan's entries through the stores' own rule.
//!
//! Needed: an image whose key is a current recipe's; a saved state whose key is that of a
//! current image under either accelerator with this QEMU (so a new QEMU makes old states
//! stale); a lab state whose every guest disk is built on a needed saved state; a source
//! build whose key a current recipe's `[source]` has: both its variant's .debs and the base
//! they are made from. The base is needed only to build new variants (an edited patch), but it
//! is the whole compile every variant starts from, so it stays as long as a recipe builds
//! from it; `--max-size` can still take it, least recently used first. Keys are computed from
//! the recipes and the patches' bytes, nothing is built. `<cache>/kernels/` is not a store and
//! is not read here.
//!
//! Sizes are counted without following symbolic links or leaving the entry's file system
//! (a base is a whole Debian root, with device nodes and links to /proc), each hard-linked
//! file once; a folder that cannot be read is left out and the size marked partial rather
//! than failing the listing.
//!
//! Architecture invariant: removal goes only through [`Store::remove`] (an entry in use or
//! being built is skipped, and a removal cut short never leaves a folder that looks
//! complete), dependents first, and an entry something kept is built on is never removed.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::accel::Accel;
use crate::images;
use crate::prune::{Entry, Kind};
use crate::qemu::saved;
use crate::recipe::Recipe;
use crate::store::{Removal, Store};

/// The folder names the current recipes need, per kind (labs follow from states).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needed {
    pub images: BTreeSet<String>,
    pub states: BTreeSet<String>,
    /// `base-<package>-<key>` and `debs-<package>-<key>` of every recipe with `[source]`.
    pub sources: BTreeSet<String>,
}

/// What `recipes` need in the cache under `cache_root`: their images, those images' saved
/// states under either accelerator with the QEMU installed now, and the source builds (base
/// and variant) of those with `[source]`.
pub fn needed_by(recipes: &[Recipe], cache_root: &Path) -> io::Result<Needed> {
    let mut needed = Needed::default();
    for r in recipes {
        let key = images::cache::key(r)?;
        needed.images.insert(format!("{}-{key}", r.name));
        if let Some(spec) = &r.source {
            needed.sources.extend(images::source::entries_of(r, spec)?);
        }
        if let Ok(image) = images::lookup(r, cache_root) {
            for accel in [Accel::Kvm, Accel::Tcg] {
                needed.states.insert(saved::entry(&image, accel));
            }
        }
    }
    Ok(needed)
}

fn store(cache_root: &Path, kind: Kind) -> Store {
    Store::new(cache_root.join(match kind {
        Kind::Source => "sources",
        Kind::Image => "images",
        Kind::State => "states",
        Kind::Lab => "labs",
    }))
}

/// Every complete entry under `cache_root`: source builds, images, states, then labs.
pub fn scan(cache_root: &Path, needed: &Needed, now: SystemTime) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for kind in [Kind::Source, Kind::Image, Kind::State, Kind::Lab] {
        let store = store(cache_root, kind);
        for folder in store.entries()? {
            let dir = store.entry(&folder);
            let (name, key) = match folder.rsplit_once('-') {
                Some((n, k)) => (n.to_string(), k.to_string()),
                None => (folder.clone(), String::new()),
            };
            let built_on = built_on(kind, &dir);
            let is_needed = match kind {
                Kind::Source => needed.sources.contains(&folder),
                Kind::Image => needed.images.contains(&folder),
                Kind::State => needed.states.contains(&folder),
                Kind::Lab => !built_on.is_empty() && built_on.iter().all(|(_, s)| needed.states.contains(s)),
            };
            // Gone since the store was listed (removed by another prune): not an entry.
            let used = match std::fs::metadata(&dir) {
                Ok(m) => m.modified()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let size = disk_bytes(&dir);
            out.push(Entry {
                kind,
                name,
                key,
                bytes: size.bytes,
                bytes_partial: size.unread > 0,
                idle_s: now.duration_since(used).map(|d| d.as_secs()).unwrap_or(0),
                needed: is_needed,
                built_on,
            });
        }
    }
    Ok(out)
}

/// What an entry is built on: a state's disk on its image's root disk, each lab guest's disk
/// on its saved state's disk. Named by the folder the backing file is in.
fn built_on(kind: Kind, dir: &Path) -> Vec<(Kind, String)> {
    let disks: Vec<PathBuf> = match kind {
        // A variant's .debs are complete without the base once made; nothing else is read.
        Kind::Source | Kind::Image => return Vec::new(),
        Kind::State => vec![dir.join("disk.qcow2")],
        Kind::Lab => std::fs::read_dir(dir)
            .map(|rd| {
                let mut v: Vec<PathBuf> = rd
                    .flatten()
                    .map(|e| e.path().join("disk.qcow2"))
                    .filter(|p| p.is_file())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default(),
    };
    let base = if kind == Kind::State {
        Kind::Image
    } else {
        Kind::State
    };
    let mut out: Vec<(Kind, String)> = Vec::new();
    for d in disks {
        // A disk whose backing cannot be read is built on nothing we know: it stands alone.
        let Some(folder) = qcow2_backing(&d).ok().flatten().and_then(|b| {
            b.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        }) else {
            continue;
        };
        if !out.iter().any(|(_, f)| *f == folder) {
            out.push((base, folder));
        }
    }
    out
}

/// The backing file a qcow2 image names in its header, if any.
pub fn qcow2_backing(path: &Path) -> io::Result<Option<PathBuf>> {
    let mut f = std::fs::File::open(path)?;
    let mut header = [0u8; 20];
    f.read_exact(&mut header)?;
    if header[..4] != *b"QFI\xfb" {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a qcow2 image"));
    }
    let offset = u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(header[16..20].try_into().expect("4 bytes"));
    if offset == 0 || len == 0 || len > 4096 {
        return Ok(None);
    }
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    let mut name = vec![0u8; len as usize];
    f.read_exact(&mut name)?;
    use std::os::unix::ffi::OsStringExt;
    Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(name))))
}

/// What the files below a folder take on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskSize {
    pub bytes: u64,
    /// Folders (or files) that could not be read and are not counted.
    pub unread: usize,
}

/// Bytes the files below `dir` take on disk (allocated blocks: qcow2 files are sparse), as
/// `du -sx` counts them: symbolic links are not followed, folders on another file system
/// (a mount inside) are not entered, a file with several links is counted once, and
/// special files (device nodes, sockets, FIFOs) count their own blocks (none). What cannot
/// be read is counted in `unread` and skipped. Folders are walked with a stack of their
/// own, so a deep tree is no deep recursion.
pub fn disk_bytes(dir: &Path) -> DiskSize {
    let mut size = DiskSize::default();
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        size.unread += 1;
        return size;
    };
    let dev = top.dev();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            size.unread += 1;
            continue;
        };
        for e in rd {
            // `DirEntry::metadata` does not follow a symbolic link: the link itself is counted.
            let Ok(meta) = e.and_then(|e| e.metadata().map(|m| (e.path(), m))) else {
                size.unread += 1;
                continue;
            };
            let (path, meta) = meta;
            if meta.is_dir() {
                if meta.dev() == dev {
                    todo.push(path);
                }
            } else if meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())) {
                size.bytes += meta.blocks() * 512;
            }
        }
    }
    size
}

/// Remove one entry through its store: [`Removal::Busy`] if it is in use or being built.
pub fn remove(cache_root: &Path, entry: &Entry) -> io::Result<Removal> {
    store(cache_root, entry.kind).remove(&entry.folder())
}

/// Whether the entry is in use or being built right now (its lock is taken), without
/// removing anything.
pub fn busy(cache_root: &Path, entry: &Entry) -> io::Result<bool> {
    Ok(store(cache_root, entry.kind).try_lock(&entry.folder())?.is_none())
}

/// What became of one planned removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Removed,
    /// Dry run: it would be removed (nobody holds it now).
    WouldRemove,
    /// In use or being built: left.
    Busy,
    /// Something that stays is built on it (an entry that was busy): left.
    Base(String),
    /// Already gone.
    Absent,
    Failed(String),
}

/// Carry out `plan` (from [`crate::prune::plan`], dependents first) on `entries`: each entry
/// removed unless it is busy or something staying is built on it. `dry_run`: nothing is
/// removed, each entry is only checked for being busy.
pub fn apply(
    cache_root: &Path,
    entries: &[Entry],
    plan: &[(usize, crate::prune::Reason)],
    dry_run: bool,
) -> Vec<Applied> {
    let planned: BTreeSet<usize> = plan.iter().map(|(i, _)| *i).collect();
    // Entries that stay: those not planned, and planned ones that could not go.
    let mut staying: Vec<usize> = (0..entries.len()).filter(|i| !planned.contains(i)).collect();
    let mut out = Vec::new();
    for &(i, _) in plan {
        let e = &entries[i];
        let key = (e.kind, e.folder());
        if let Some(&user) = staying.iter().find(|&&s| entries[s].built_on.contains(&key)) {
            let u = &entries[user];
            out.push(Applied::Base(format!("{} {}", u.kind.as_str(), u.folder())));
            staying.push(i);
            continue;
        }
        let done = if dry_run {
            match busy(cache_root, e) {
                Ok(true) => Applied::Busy,
                Ok(false) => Applied::WouldRemove,
                Err(err) => Applied::Failed(err.to_string()),
            }
        } else {
            match remove(cache_root, e) {
                Ok(Removal::Removed) => Applied::Removed,
                Ok(Removal::Busy) => Applied::Busy,
                Ok(Removal::Absent) => Applied::Absent,
                Err(err) => Applied::Failed(err.to_string()),
            }
        };
        if matches!(done, Applied::Busy | Applied::Failed(_)) {
            staying.push(i);
        }
        out.push(done);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::{plan, Policy};

    /// A cache made through the stores' own build path: an image, a saved state whose disk
    /// is built on it, and a lab whose guest disk is built on the state.
    struct Cache {
        _tmp: tempfile::TempDir,
        root: PathBuf,
    }

    /// A qcow2 header naming `backing` (enough for [`qcow2_backing`]).
    fn qcow2(backing: Option<&Path>) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        if let Some(b) = backing {
            let b = b.to_string_lossy();
            h[8..16].copy_from_slice(&104u64.to_be_bytes());
            h[16..20].copy_from_slice(&(b.len() as u32).to_be_bytes());
            h[104..104 + b.len()].copy_from_slice(b.as_bytes());
        }
        h
    }

    impl Cache {
        fn new() -> Cache {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("cache");
            Cache { _tmp: tmp, root }
        }

        /// Publish `kind`'s entry `folder` with `bytes` of data and its disks built on `on`.
        fn add(&self, kind: Kind, folder: &str, bytes: usize, on: &[&str]) {
            let store = store(&self.root, kind);
            let lock = store.lock(folder).unwrap();
            let work = lock.work().unwrap();
            let out = work.path().join("out");
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("data"), vec![1u8; bytes]).unwrap();
            match kind {
                // A base holds a Debian root: links out of the tree, special files.
                Kind::Source if folder.starts_with("base-") => {
                    let root = out.join("root");
                    std::fs::create_dir_all(root.join("dev")).unwrap();
                    std::os::unix::fs::symlink("/", root.join("host")).unwrap();
                    nix::unistd::mkfifo(&root.join("dev/initctl"), nix::sys::stat::Mode::S_IRWXU).unwrap();
                }
                Kind::Source => std::fs::write(out.join("source.json"), "{}").unwrap(),
                Kind::Image => std::fs::write(out.join("root.qcow2"), qcow2(None)).unwrap(),
                Kind::State => {
                    let base = self.root.join("images").join(on[0]).join("root.qcow2");
                    std::fs::write(out.join("disk.qcow2"), qcow2(Some(&base))).unwrap();
                }
                Kind::Lab => {
                    for (n, state) in on.iter().enumerate() {
                        let g = out.join(format!("guest{n}"));
                        std::fs::create_dir_all(&g).unwrap();
                        let base = self.root.join("states").join(state).join("disk.qcow2");
                        std::fs::write(g.join("disk.qcow2"), qcow2(Some(&base))).unwrap();
                    }
                }
            }
            work.publish("out").unwrap();
        }

        /// Make `folder` look last used `secs` ago.
        fn age(&self, kind: Kind, folder: &str, secs: u64) {
            let dir = store(&self.root, kind).entry(folder);
            let t = SystemTime::now() - std::time::Duration::from_secs(secs);
            std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
        }

        fn folders(&self) -> Vec<String> {
            let mut v = Vec::new();
            for kind in [Kind::Source, Kind::Image, Kind::State, Kind::Lab] {
                for f in store(&self.root, kind).entries().unwrap() {
                    v.push(format!("{}:{f}", kind.as_str()));
                }
            }
            v
        }

        fn scan(&self, needed: &Needed) -> Vec<Entry> {
            scan(&self.root, needed, SystemTime::now()).unwrap()
        }
    }

    /// filer-new (needed) with its state and a lab; filer-old (stale) with its state and lab.
    fn two_generations() -> (Cache, Needed) {
        let c = Cache::new();
        c.add(Kind::Image, "filer-new", 4000, &[]);
        c.add(Kind::Image, "filer-old", 4000, &[]);
        c.add(Kind::State, "filer-snew", 3000, &["filer-new"]);
        c.add(Kind::State, "filer-sold", 3000, &["filer-old"]);
        c.add(Kind::Lab, "lan-lnew", 2000, &["filer-snew"]);
        c.add(Kind::Lab, "lan-lold", 2000, &["filer-sold"]);
        for (kind, f, age) in [
            (Kind::Image, "filer-old", 9000),
            (Kind::State, "filer-sold", 9000),
            (Kind::Lab, "lan-lold", 8000),
            (Kind::Image, "filer-new", 100),
            (Kind::State, "filer-snew", 100),
            (Kind::Lab, "lan-lnew", 50),
        ] {
            c.age(kind, f, age);
        }
        let needed = Needed {
            images: ["filer-new".to_string()].into(),
            states: ["filer-snew".to_string()].into(),
            sources: Default::default(),
        };
        (c, needed)
    }

    fn prune(c: &Cache, needed: &Needed, policy: Policy, dry_run: bool) -> Vec<Applied> {
        let entries = c.scan(needed);
        let p = plan(&entries, policy);
        apply(&c.root, &entries, &p, dry_run)
    }

    #[test]
    fn scanning_reads_kinds_keys_bases_and_what_is_needed() {
        let (c, needed) = two_generations();
        let entries = c.scan(&needed);
        let lab = entries.iter().find(|e| e.folder() == "lan-lnew").unwrap();
        assert_eq!(
            (lab.kind, lab.name.as_str(), lab.key.as_str()),
            (Kind::Lab, "lan", "lnew")
        );
        assert_eq!(lab.built_on, [(Kind::State, "filer-snew".to_string())]);
        assert!(lab.needed);
        assert!(lab.bytes >= 2000);
        assert!((40..200).contains(&lab.idle_s), "{}", lab.idle_s);
        let needed_folders: Vec<String> = entries.iter().filter(|e| e.needed).map(Entry::folder).collect();
        assert_eq!(needed_folders, ["filer-new", "filer-snew", "lan-lnew"]);
    }

    #[test]
    fn pruning_keeps_what_is_needed_and_removes_what_is_stale() {
        let (c, needed) = two_generations();
        let done = prune(&c, &needed, Policy::default(), false);
        assert_eq!(done, [Applied::Removed, Applied::Removed, Applied::Removed]);
        assert_eq!(
            c.folders(),
            ["image:filer-new", "state:filer-snew", "lab:lan-lnew"]
        );
        // Nothing half-removed is left beside the entries.
        for sub in ["sources", "images", "states", "labs"] {
            let tmp = c.root.join(sub).join(".tmp");
            assert!(
                std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0,
                "{sub}"
            );
        }
    }

    #[test]
    fn keep_newest_keeps_older_generations_too() {
        let (c, needed) = two_generations();
        let p = Policy {
            keep_newest: Some(2),
            ..Policy::default()
        };
        assert!(prune(&c, &needed, p, false).is_empty());
        assert_eq!(c.folders().len(), 6);
        let p = Policy {
            keep_newest: Some(1),
            ..Policy::default()
        };
        assert_eq!(prune(&c, &needed, p, false).len(), 3);
        assert_eq!(
            c.folders(),
            ["image:filer-new", "state:filer-snew", "lab:lan-lnew"]
        );
    }

    #[test]
    fn a_size_cap_removes_the_least_recently_used_until_the_rest_fits() {
        let (c, needed) = two_generations();
        let p = Policy {
            keep_newest: Some(5),
            max_bytes: Some(16_000),
        };
        // 18 000 bytes of data (and a little more for headers and blocks): the stale lab and
        // its state, the least recently used, go; the stale image is then not needed to fit.
        prune(&c, &needed, p, false);
        let left = c.folders();
        assert!(!left.contains(&"lab:lan-lold".to_string()), "{left:?}");
        assert!(!left.contains(&"state:filer-sold".to_string()), "{left:?}");
        assert!(left.contains(&"image:filer-new".to_string()), "{left:?}");
        let total: u64 = c.scan(&needed).iter().map(|e| e.bytes).sum();
        assert!(total <= 16_000, "{total}");
    }

    #[test]
    fn an_entry_in_use_is_skipped_and_so_is_what_it_is_built_on() {
        let (c, needed) = two_generations();
        // A lab runs on the stale lab state.
        let hold = Store::new(c.root.join("labs")).hold("lan-lold").unwrap().unwrap();
        let done = prune(&c, &needed, Policy::default(), false);
        assert_eq!(done[0], Applied::Busy);
        assert_eq!(done[1], Applied::Base("lab lan-lold".into()));
        assert_eq!(done[2], Applied::Base("state filer-sold".into()));
        assert_eq!(c.folders().len(), 6);
        drop(hold);
        prune(&c, &needed, Policy::default(), false);
        assert_eq!(c.folders().len(), 3);
    }

    #[test]
    fn a_dry_run_removes_nothing() {
        let (c, needed) = two_generations();
        let before = c.folders();
        let done = prune(&c, &needed, Policy::default(), true);
        assert_eq!(
            done,
            [Applied::WouldRemove, Applied::WouldRemove, Applied::WouldRemove]
        );
        assert_eq!(c.folders(), before);
    }

    /// A source's base and a variant of the current recipe, and those of an older one.
    fn with_sources() -> (Cache, Needed) {
        let (c, mut needed) = two_generations();
        for (f, age) in [
            ("base-dovecot-bnew", 100),
            ("base-dovecot-bold", 9000),
            ("debs-dovecot-vnew", 100),
            ("debs-dovecot-vold", 9000),
        ] {
            c.add(Kind::Source, f, 5000, &[]);
            c.age(Kind::Source, f, age);
        }
        needed.sources = ["base-dovecot-bnew".into(), "debs-dovecot-vnew".into()].into();
        (c, needed)
    }

    #[test]
    fn source_builds_are_listed_and_needed_by_their_keys() {
        let (c, needed) = with_sources();
        let entries = c.scan(&needed);
        let sources: Vec<(String, String, bool)> = entries
            .iter()
            .filter(|e| e.kind == Kind::Source)
            .map(|e| (e.name.clone(), e.key.clone(), e.needed))
            .collect();
        assert_eq!(
            sources,
            [
                ("base-dovecot".into(), "bnew".into(), true),
                ("base-dovecot".into(), "bold".into(), false),
                ("debs-dovecot".into(), "vnew".into(), true),
                ("debs-dovecot".into(), "vold".into(), false),
            ]
        );
        let base = entries
            .iter()
            .find(|e| e.folder() == "base-dovecot-bnew")
            .unwrap();
        // The data, a link to / (not followed) and a FIFO (no blocks): a few blocks, not a host.
        assert!((5000..64 << 10).contains(&base.bytes), "{}", base.bytes);
        assert!(!base.bytes_partial);
        assert!(base.built_on.is_empty());
    }

    #[test]
    fn unneeded_source_builds_go_last_through_the_store_and_a_held_base_stays() {
        let (c, needed) = with_sources();
        // A variant build holds the old base while it copies the compiled tree from it.
        let hold = Store::new(c.root.join("sources"))
            .hold("base-dovecot-bold")
            .unwrap()
            .unwrap();
        let entries = c.scan(&needed);
        let p = plan(&entries, Policy::default());
        let order: Vec<String> = p.iter().map(|&(i, _)| entries[i].folder()).collect();
        assert_eq!(
            order,
            [
                "lan-lold",
                "filer-sold",
                "filer-old",
                "base-dovecot-bold",
                "debs-dovecot-vold"
            ]
        );
        let done = apply(&c.root, &entries, &p, false);
        assert_eq!(done[3], Applied::Busy);
        assert_eq!(done[4], Applied::Removed);
        assert!(c.folders().contains(&"source:base-dovecot-bold".to_string()));
        drop(hold);
        prune(&c, &needed, Policy::default(), false);
        assert_eq!(
            c.folders(),
            [
                "source:base-dovecot-bnew",
                "source:debs-dovecot-vnew",
                "image:filer-new",
                "state:filer-snew",
                "lab:lan-lnew"
            ]
        );
        assert_eq!(std::fs::read_dir(c.root.join("sources/.tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_recipe_with_a_source_needs_its_base_and_its_variant() {
        let tmp = tempfile::tempdir().unwrap();
        let r = crate::recipe::project_recipe("frontend-2008");
        let s = r.source.as_ref().unwrap();
        let needed = needed_by(&[r.clone(), crate::recipe::project_recipe("filer")], tmp.path()).unwrap();
        let base = images::source::plan::base_key(&r, s);
        let variant = images::source::plan::variant_key(&r, s).unwrap();
        assert_eq!(
            needed.sources,
            [format!("base-dovecot-{base}"), format!("debs-dovecot-{variant}")].into()
        );
        assert!(!tmp.path().join("sources").exists(), "nothing is built or made");
    }

    #[test]
    fn sizes_count_each_file_once_and_skip_links_special_files_and_the_unreadable() {
        use std::os::fd::{AsRawFd, FromRawFd};
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("e");
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::write(d.join("etc/a"), vec![1u8; 8192]).unwrap();
        std::fs::hard_link(d.join("etc/a"), d.join("etc/b")).unwrap();
        std::fs::write(tmp.path().join("outside"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), d.join("etc/link")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), d.join("up")).unwrap();
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let counted = disk_bytes(&d);
        assert_eq!(counted.unread, 0);
        assert!((8192..16384).contains(&counted.bytes), "{counted:?}");
        // A folder even root cannot open by path: deeper than PATH_MAX (made with *at calls).
        let mut fd = std::fs::File::open(&d).unwrap();
        let name = std::ffi::CString::new("d".repeat(250)).unwrap();
        for _ in 0..20 {
            unsafe {
                assert_eq!(libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o755), 0);
                let next = libc::openat(fd.as_raw_fd(), name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                assert!(next >= 0);
                fd = std::fs::File::from_raw_fd(next);
            }
        }
        let partial = disk_bytes(&d);
        assert_eq!(partial.unread, 1, "{partial:?}");
        assert!(partial.bytes >= counted.bytes);
        assert_eq!(disk_bytes(&tmp.path().join("absent")).unread, 1);
    }

    #[test]
    fn a_qcow2_without_backing_names_none_and_junk_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("d.qcow2");
        std::fs::write(&p, qcow2(None)).unwrap();
        assert_eq!(qcow2_backing(&p).unwrap(), None);
        std::fs::write(&p, b"not a disk image at all").unwrap();
        assert!(qcow2_backing(&p).is_err());
    }
}
