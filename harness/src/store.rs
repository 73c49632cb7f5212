//! Complete-or-absent entries: the one rule shared by the image cache, the saved machine
//! states and the whole-lab states.
//!
//! A [`Store`] is a folder of entries, each named by its key:
//!
//! ```text
//! <dir>/<name>/        a complete entry
//! <dir>/.tmp/<name>/   its build in progress (or a killed build's leftovers)
//! <dir>/.lock-<name>   held while building that entry, so two builds never write it at once;
//!                      different entries build in parallel
//! ```
//!
//! Architecture invariant: an entry folder exists only when complete. A build holds the
//! entry's [`Lock`], works under `.tmp/<name>/` ([`Lock::work`]), and [`Work::publish`]
//! syncs every file it made and renames the folder into place as the last step. A build that
//! fails or is killed leaves at most its work folder, which the next build of the entry (or
//! [`Store::sweep_stale`]) removes, detaching any mounts inside it first.
//!
//! Forgetting follows the same rule backwards: [`Store::remove`] takes the entry's lock
//! without waiting (a user holds it shared through [`Hold`], a build exclusively: either way
//! the entry is busy and stays), renames the entry out of place into its work folder as the
//! first step, and only then deletes it; killed halfway, what is left is a work folder, which
//! never looks complete. The lock files themselves stay: removing one while a process waits
//! on it would let two processes hold "the" lock at once.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A folder of complete-or-absent entries.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry `name` is once complete (the path may not exist).
    pub fn entry(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn work_dir(&self, name: &str) -> PathBuf {
        self.dir.join(".tmp").join(name)
    }

    /// Wait for the entry's lock: a second builder waits for the first and then finds its
    /// entry complete.
    pub fn lock(&self, name: &str) -> io::Result<Lock> {
        self.take(name, true)
            .map(|l| l.expect("a blocking lock is always taken"))
    }

    /// The entry's lock if nobody holds it, without waiting.
    pub fn try_lock(&self, name: &str) -> io::Result<Option<Lock>> {
        self.take(name, false)
    }

    fn take(&self, name: &str, wait: bool) -> io::Result<Option<Lock>> {
        use std::os::fd::AsRawFd;
        let file = self.lock_file(name)?;
        let op = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(Lock {
            _file: file,
            work: self.work_dir(name),
            entry: self.entry(name),
        }))
    }

    /// The names of the complete entries, sorted.
    pub fn entries(&self) -> io::Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in rd {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.file_type()?.is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Say the entry is in use for as long as the returned [`Hold`] lives: its lock held
    /// shared (so [`Store::remove`] skips it), and its folder's modification time set to now
    /// (the entry's "last used"). `None` if the entry is not there (or is being removed).
    pub fn hold(&self, name: &str) -> io::Result<Option<Hold>> {
        use std::os::fd::AsRawFd;
        let file = self.lock_file(name)?;
        // Shared locks only wait for an exclusive holder: a remover (which never waits) or a
        // build of an entry that is not complete yet. Neither is worth waiting for here.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let entry = self.entry(name);
        if !entry.is_dir() {
            return Ok(None);
        }
        let _ = File::open(&entry).and_then(|d| d.set_modified(std::time::SystemTime::now()));
        Ok(Some(Hold { _file: file }))
    }

    /// Remove the complete entry `name` if nobody uses or builds it: its lock taken without
    /// waiting, the folder renamed out of place first, then deleted.
    pub fn remove(&self, name: &str) -> io::Result<Removal> {
        let Some(lock) = self.try_lock(name)? else {
            return Ok(Removal::Busy);
        };
        if !lock.entry.is_dir() {
            return Ok(Removal::Absent);
        }
        remove_work_dir(&lock.work)?;
        std::fs::create_dir_all(self.dir.join(".tmp"))?;
        std::fs::rename(&lock.entry, &lock.work)?;
        remove_work_dir(&lock.work)?;
        Ok(Removal::Removed)
    }

    fn lock_file(&self, name: &str) -> io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(format!(".lock-{name}")))
    }

    /// Remove the work folders of builds that were killed: those whose entry lock nobody
    /// holds.
    pub fn sweep_stale(&self) {
        let Ok(rd) = std::fs::read_dir(self.dir.join(".tmp")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(Some(_lock)) = self.try_lock(&name) {
                let _ = remove_work_dir(&e.path());
            }
        }
    }
}

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Someone uses or builds it: left as it is.
    Busy,
    /// There was no such complete entry.
    Absent,
}

/// A shared lock on one complete entry, held while it is in use (a lab's guests run on it).
/// Released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub struct Hold {
    _file: File,
}

/// An exclusive lock on one entry, held while building it. Released on drop (and by the
/// kernel if the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    work: PathBuf,
    entry: PathBuf,
}

impl Lock {
    /// A fresh, empty work folder for the locked entry. Holding the lock, nobody else is
    /// building it: whatever is there was left by a build that failed or was killed, and goes.
    pub fn work(&self) -> io::Result<Work<'_>> {
        remove_work_dir(&self.work)?;
        std::fs::create_dir_all(&self.work)?;
        Ok(Work { lock: self })
    }
}

/// The work folder of one build, valid while its entry's lock is held. Dropping it without
/// [`Work::publish`] leaves the folder for the next build of the entry to remove (a person
/// may want to read what a failed build left).
#[derive(Debug)]
pub struct Work<'l> {
    lock: &'l Lock,
}

impl Work<'_> {
    pub fn path(&self) -> &Path {
        &self.lock.work
    }

    /// Make `built` (a folder inside the work folder) the entry: every file in it synced,
    /// renamed into place as the last step, then the rest of the work folder removed.
    /// Returns the entry's path.
    pub fn publish(self, built: &str) -> io::Result<PathBuf> {
        let built = self.path().join(built);
        sync_files(&built)?;
        std::fs::rename(&built, &self.lock.entry)?;
        let _ = std::fs::remove_dir_all(self.path());
        Ok(self.lock.entry.clone())
    }

    /// Remove the work folder now (a failed build whose leftovers nobody needs).
    pub fn discard(self) -> io::Result<()> {
        remove_work_dir(self.path())
    }
}

/// Sync every regular file below `dir`, so that an entry renamed into place is on disk whole.
fn sync_files(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let kind = e.file_type()?;
        if kind.is_dir() {
            sync_files(&e.path())?;
        } else if kind.is_file() {
            File::open(e.path())?.sync_all()?;
        }
    }
    Ok(())
}

/// Remove a build's work folder. An image build killed in root mode leaves mmdebstrap's
/// /proc, /sys, /dev/pts and /dev/shm mounts inside it: those are detached first, deepest
/// first, so that removing the folder never reaches into a mounted file system.
pub fn remove_work_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let dir = dir.canonicalize()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut under: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(&dir))
        .collect();
    under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in &under {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
    std::fs::remove_dir_all(&dir)
}

/// /proc/self/mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_path(s: &str) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b/c"), PathBuf::from("/a b/c"));
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape_mount_path("/end\\04"), PathBuf::from("/end\\04"));
    }

    #[test]
    fn an_entry_appears_only_when_published() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("things"));
        let lock = store.lock("a-1").unwrap();
        let work = lock.work().unwrap();
        std::fs::create_dir_all(work.path().join("out/sub")).unwrap();
        std::fs::write(work.path().join("out/data"), "x").unwrap();
        std::fs::write(work.path().join("out/sub/more"), "y").unwrap();
        std::fs::write(work.path().join("scratch"), "z").unwrap();
        assert!(!store.entry("a-1").exists(), "visible before it was published");
        let entry = work.publish("out").unwrap();
        assert_eq!(entry, store.entry("a-1"));
        assert_eq!(names(&entry), ["data", "sub"]);
        assert_eq!(std::fs::read_to_string(entry.join("sub/more")).unwrap(), "y");
        // Only the lock file and the (empty) work area are left beside the entry.
        assert_eq!(names(store.dir()), [".lock-a-1", ".tmp", "a-1"]);
        assert!(names(&store.dir().join(".tmp")).is_empty());
    }

    #[test]
    fn a_failed_or_abandoned_build_leaves_no_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        {
            // Abandoned: the work is dropped (as when a build fails or the harness dies).
            let lock = store.lock("a-1").unwrap();
            let work = lock.work().unwrap();
            std::fs::create_dir_all(work.path().join("out")).unwrap();
            std::fs::write(work.path().join("out/half"), "x").unwrap();
        }
        assert!(!store.entry("a-1").exists());
        // The next build of the entry starts from an empty work folder.
        let lock = store.lock("a-1").unwrap();
        let work = lock.work().unwrap();
        assert!(names(work.path()).is_empty(), "a killed build's files were kept");
        // Failed: the work is discarded.
        std::fs::write(work.path().join("half"), "x").unwrap();
        work.discard().unwrap();
        assert!(!store.entry("a-1").exists());
        assert!(!store.dir().join(".tmp/a-1").exists());
        // Publishing a folder the build never made fails and publishes nothing.
        let work = lock.work().unwrap();
        assert!(work.publish("out").is_err());
        assert!(!store.entry("a-1").exists());
    }

    #[test]
    fn a_second_locker_waits_for_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let first = store.lock("a-1").unwrap();
        assert!(
            store.try_lock("a-1").unwrap().is_none(),
            "two holders of one entry"
        );
        assert!(store.try_lock("b-2").unwrap().is_some(), "other entries are free");
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || {
                let lock = store.lock("a-1").unwrap();
                tx.send(()).unwrap();
                drop(lock);
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "the second locker did not wait"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the second locker got the lock once the first let go");
        waiter.join().unwrap();
        assert!(store.try_lock("a-1").unwrap().is_some());
    }

    #[test]
    fn sweeping_removes_only_unlocked_work() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let held = store.lock("busy-1").unwrap();
        let busy = held.work().unwrap();
        std::fs::write(busy.path().join("f"), "x").unwrap();
        {
            let lock = store.lock("killed-2").unwrap();
            let work = lock.work().unwrap();
            std::fs::write(work.path().join("f"), "x").unwrap();
        }
        store.sweep_stale();
        assert_eq!(names(&store.dir().join(".tmp")), ["busy-1"]);
        assert_eq!(names(busy.path()), ["f"]);
    }

    fn publish(store: &Store, name: &str) {
        let lock = store.lock(name).unwrap();
        let work = lock.work().unwrap();
        std::fs::create_dir_all(work.path().join("out")).unwrap();
        std::fs::write(work.path().join("out/data"), "x").unwrap();
        work.publish("out").unwrap();
    }

    #[test]
    fn an_entry_in_use_or_being_built_is_never_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        for name in ["used-1", "built-2", "free-3"] {
            publish(&store, name);
        }
        let hold = store
            .hold("used-1")
            .unwrap()
            .expect("a complete entry can be held");
        let build = store.lock("built-2").unwrap();
        assert_eq!(store.remove("used-1").unwrap(), Removal::Busy);
        assert_eq!(store.remove("built-2").unwrap(), Removal::Busy);
        assert_eq!(store.remove("free-3").unwrap(), Removal::Removed);
        assert_eq!(store.remove("free-3").unwrap(), Removal::Absent);
        assert_eq!(store.entries().unwrap(), ["built-2", "used-1"]);
        // Nothing of the removed entry is left but its lock file.
        assert!(names(&store.dir().join(".tmp")).is_empty());
        drop((hold, build));
        assert_eq!(store.remove("used-1").unwrap(), Removal::Removed);
        // A removed entry cannot be held.
        assert!(store.hold("used-1").unwrap().is_none());
    }

    #[test]
    fn holding_an_entry_marks_it_used_now() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        publish(&store, "a-1");
        let long_ago = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::open(store.entry("a-1"))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let _hold = store.hold("a-1").unwrap().unwrap();
        let used = std::fs::metadata(store.entry("a-1")).unwrap().modified().unwrap();
        assert!(used > long_ago + Duration::from_secs(86_400 * 365));
    }
}
