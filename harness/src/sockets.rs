//! Where unix sockets live: a private folder with a short path.
//!
//! A unix socket's path must fit `sun_path` (108 bytes with its NUL). Results folders are deep
//! (`<checkout>/results/<run>/<case>/<arm>/guests/<guest>/…`), so a socket there breaks as soon
//! as a checkout, a case or an arm has a longer name; sockets go here instead, and the results
//! keep only what a reader needs (`qemu.argv` names them).

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest socket name a caller puts in the folder ("client-agent.sock" and the like).
const NAME_ROOM: usize = 40;
/// Socket folders are named this and nothing else is: the sweep removes only these (the
/// harness's and its tests' scratch folders are `faultline-…` too, and must be left alone).
const PREFIX: &str = "faultline-sock-";
/// What `sun_path` holds, without its NUL.
const SUN_PATH_MAX: usize = 107;

/// A new folder only this user can enter (0700), removed when dropped; in `$TMPDIR` when that
/// is short enough for the sockets, else in `/tmp`.
pub fn private_dir() -> io::Result<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    let base = if fits(&tmp) { tmp } else { PathBuf::from("/tmp") };
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(&base, std::time::Duration::from_secs(60)));
    let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(base)?;
    // tempfile leaves the mode to the umask; nothing is in the folder yet.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Remove the socket folders of harnesses that died without cleaning up (SIGKILL leaves them:
/// no destructor runs). A folder is stale when it is older than `min_age` (a live harness may
/// not have made its sockets yet) and its socket refuses connections: every socket in one
/// folder belongs to one process, so one answer tells.
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
        let socket = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|f| f.path())
            .find(|p| p.extension().is_some_and(|x| x == "sock"));
        let dead = match socket {
            None => true,
            Some(s) => matches!(
                std::os::unix::net::UnixStream::connect(&s),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
            ),
        };
        if dead {
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
    fn folders_of_dead_harnesses_are_swept_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let d = base.path().join(name);
            std::fs::create_dir(&d).unwrap();
            d
        };
        let dead = make("faultline-sock-dead");
        drop(std::os::unix::net::UnixListener::bind(dead.join("qmp.sock")).unwrap());
        let live = make("faultline-sock-live");
        let _listener = std::os::unix::net::UnixListener::bind(live.join("lan-filer.sock")).unwrap();
        let empty = make("faultline-sock-empty");
        let other = make("faultline-vmtest-scratch");
        drop(std::os::unix::net::UnixListener::bind(other.join("x.sock")).unwrap());
        // Too young to judge: nothing goes.
        sweep(base.path(), std::time::Duration::from_secs(3600));
        assert!(dead.exists() && empty.exists());
        sweep(base.path(), std::time::Duration::ZERO);
        assert!(!dead.exists(), "a folder whose socket refuses is removed");
        assert!(!empty.exists(), "an old empty folder is removed");
        assert!(live.exists(), "a folder whose socket answers stays");
        assert!(
            other.exists(),
            "only socket folders are touched, not scratch folders"
        );
    }

    #[test]
    fn a_long_tmpdir_is_not_used() {
        assert!(fits(Path::new("/tmp")));
        assert!(!fits(&Path::new("/").join("d".repeat(80))));
    }
}
