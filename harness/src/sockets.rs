//! Where unix sockets live: a private folder with a short path.
//!
//! A unix socket's path must fit `sun_path` (108 bytes with its NUL). Results folders are deep
//! (`<checkout>/results/<run>/<case>/<arm>/guests/<guest>/…`), so a socket there breaks as soon
//! as a checkout, a case or an arm has a longer name; sockets go here instead, and the results
//! keep only what a reader needs (`qemu.argv` names them).
//!
//! Architecture invariant: the sweep of folders left by killed harnesses never touches a
//! socket. A live folder is one whose lock file is locked (`flock`, held by its owner for the
//! folder's whole life and released by the kernel when the owner dies); connecting to a socket
//! to see whether it answers would be taken by a switch port for its guest's new connection.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest socket name a caller puts in the folder ("client-agent.sock" and the like).
const NAME_ROOM: usize = 40;
/// Socket folders are named this and nothing else is: the sweep removes only these (the
/// harness's and its tests' scratch folders are `faultline-…` too, and must be left alone).
const PREFIX: &str = "faultline-sock-";
/// What `sun_path` holds, without its NUL.
const SUN_PATH_MAX: usize = 107;
/// The file in every socket folder whose `flock` its owner holds while the folder lives.
const LOCK: &str = ".lock";

/// A private socket folder, locked for its whole life; removed when dropped.
#[derive(Debug)]
pub struct SocketDir {
    // Declared first, so dropped first: the folder is gone before its lock is let go, and a
    // sweep never sees it unlocked while it exists.
    dir: tempfile::TempDir,
    _lock: File,
}

impl SocketDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A new folder only this user can enter (0700), removed when dropped; in `$TMPDIR` when that
/// is short enough for the sockets, else in `/tmp`.
pub fn private_dir() -> io::Result<SocketDir> {
    let tmp = std::env::temp_dir();
    let base = if fits(&tmp) { tmp } else { PathBuf::from("/tmp") };
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(&base, std::time::Duration::from_secs(60)));
    let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(base)?;
    // tempfile leaves the mode to the umask; nothing is in the folder yet.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    let lock = try_lock(&dir.path().join(LOCK))?
        .ok_or_else(|| io::Error::other("a new socket folder's lock is already held"))?;
    Ok(SocketDir { dir, _lock: lock })
}

/// The exclusive `flock` on `path` (made if missing) if nobody holds it, without waiting.
fn try_lock(path: &Path) -> io::Result<Option<File>> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(file))
}

/// Remove the socket folders of harnesses that died without cleaning up (SIGKILL leaves them:
/// no destructor runs). A folder is stale when it is older than `min_age` (a harness takes its
/// folder's lock right after making it; the age covers that moment) and its lock can be
/// taken: its owner is gone. No socket is ever connected to: a switch port would take such a
/// probe for its guest's new connection.
fn sweep(base: &Path, min_age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let ours = e.file_name().to_string_lossy().starts_with(PREFIX);
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_dir() && m.uid() == nix::unistd::getuid().as_raw())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if !ours || !old {
            continue;
        }
        // Held while removing, so the folder's owner cannot be mistaken for gone midway.
        if let Ok(Some(_held)) = try_lock(&path.join(LOCK)) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Whether sockets with names up to [`NAME_ROOM`] fit under `dir` (plus tempfile's folder name).
fn fits(dir: &Path) -> bool {
    dir.as_os_str().len() + "/".len() + PREFIX.len() + "XXXXXX/".len() + NAME_ROOM <= SUN_PATH_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_private_short_and_removed() {
        let d = private_dir().unwrap();
        let mode = std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(d.path().join("x".repeat(NAME_ROOM)).as_os_str().len() <= SUN_PATH_MAX);
        let path = d.path().to_path_buf();
        drop(d);
        assert!(!path.exists());
    }

    #[test]
    fn folders_of_dead_harnesses_are_swept_live_ones_kept_and_no_socket_is_touched() {
        let base = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let d = base.path().join(name);
            std::fs::create_dir(&d).unwrap();
            d
        };
        // Killed: its lock file is there, nobody holds it; its socket file is left behind.
        let dead = make("faultline-sock-dead");
        drop(try_lock(&dead.join(LOCK)).unwrap());
        drop(std::os::unix::net::UnixListener::bind(dead.join("qmp.sock")).unwrap());
        // Alive: its owner holds the lock, and a switch port listens in it.
        let live = make("faultline-sock-live");
        let _held = try_lock(&live.join(LOCK)).unwrap().unwrap();
        let port = std::os::unix::net::UnixListener::bind(live.join("lan-filer.sock")).unwrap();
        port.set_nonblocking(true).unwrap();
        let empty = make("faultline-sock-empty");
        let other = make("faultline-vmtest-scratch");
        drop(std::os::unix::net::UnixListener::bind(other.join("x.sock")).unwrap());
        // Too young to judge: nothing goes.
        sweep(base.path(), std::time::Duration::from_secs(3600));
        assert!(dead.exists() && empty.exists());
        sweep(base.path(), std::time::Duration::ZERO);
        assert!(!dead.exists(), "a folder whose lock nobody holds is removed");
        assert!(!empty.exists(), "an old folder without a lock is removed");
        assert!(live.exists(), "a folder whose lock is held stays");
        assert!(
            matches!(port.accept(), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "the sweep connected to a live port: a switch takes that for its guest's connection"
        );
        assert!(
            other.exists(),
            "only socket folders are touched, not scratch folders"
        );
    }

    #[test]
    fn a_folder_is_locked_while_it_lives() {
        let d = private_dir().unwrap();
        assert!(try_lock(&d.path().join(LOCK)).unwrap().is_none());
    }

    #[test]
    fn a_long_tmpdir_is_not_used() {
        assert!(fits(Path::new("/tmp")));
        assert!(!fits(&Path::new("/").join("d".repeat(80))));
    }
}
