//! `tools/host-deps.sh`, what `make deps` installs, fed the os-release file of each system it
//! knows (`tools/testdata/os-release/`) and of one it does not.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools")
}

/// (stdout, stderr, exit code) of the script for one os-release fixture.
fn host_deps(os: &str) -> (String, String, Option<i32>) {
    let out = Command::new("sh")
        .arg(tools().join("host-deps.sh"))
        .arg(tools().join("testdata/os-release").join(os))
        .output()
        .expect("sh runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

const PACKAGES: &str =
    "qemu-system-x86 qemu-utils mmdebstrap e2fsprogs tshark nbdkit debian-archive-keyring\n";

#[test]
fn each_known_system_gets_its_package_names_including_the_debian_keyring() {
    for os in ["debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04"] {
        let (out, _, code) = host_deps(os);
        assert_eq!(code, Some(0), "{os}");
        assert_eq!(out, PACKAGES, "{os}");
    }
}

#[test]
fn ubuntu_22_04_is_told_its_labs_link_by_tcp_loopback() {
    let (_, err, _) = host_deps("ubuntu-22.04");
    assert!(
        err.contains("QEMU is 6.2") && err.contains("-netdev socket"),
        "{err}"
    );
    for os in ["debian-12", "debian-13", "ubuntu-24.04"] {
        assert_eq!(host_deps(os).1, "", "{os} has nothing to be told");
    }
}

#[test]
fn an_unknown_system_is_exit_2_with_one_line() {
    let (out, err, code) = host_deps("fedora-41");
    assert_eq!(code, Some(2));
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("fedora 41"), "{err}");
    let (_, err, code) = host_deps("no-such-file");
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read"), "{err}");
}
