//! Where unix sockets live: a private folder with a short path.
//!
//! A unix socket's path must fit `sun_path` (108 bytes with its NUL). Results folders are deep
//! (`<checkout>/results/<run>/<case>/<arm>/guests/<guest>/…`), so a socket there breaks as soon
//! as a checkout, a case or an arm has a longer name; sockets go here instead, and the results
//! keep only what a reader needs (`qemu.argv` names them).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The longest socket name a caller puts in the folder ("client-agent.sock" and the like).
const NAME_ROOM: usize = 40;
/// What `sun_path` holds, without its NUL.
const SUN_PATH_MAX: usize = 107;

/// A new folder only this user can enter (0700), removed when dropped; in `$TMPDIR` when that
/// is short enough for the sockets, else in `/tmp`.
pub fn private_dir() -> io::Result<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    let base = if fits(&tmp) { tmp } else { PathBuf::from("/tmp") };
    let dir = tempfile::Builder::new().prefix("faultline-").tempdir_in(base)?;
    // tempfile leaves the mode to the umask; nothing is in the folder yet.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Whether sockets with names up to [`NAME_ROOM`] fit under `dir` (plus tempfile's folder name).
fn fits(dir: &Path) -> bool {
    dir.as_os_str().len() + "/faultline-XXXXXX/".len() + NAME_ROOM <= SUN_PATH_MAX
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
    fn a_long_tmpdir_is_not_used() {
        assert!(fits(Path::new("/tmp")));
        assert!(!fits(&Path::new("/").join("d".repeat(80))));
    }
}
