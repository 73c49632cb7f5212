//! How a lab guest's NIC reaches the harness's switch on this host's QEMU: `-netdev stream`
//! to a unix socket (QEMU 7.2 and newer), or `-netdev socket,connect=` to a TCP loopback port
//! (older QEMU, e.g. Ubuntu 22.04's 6.2, which has no `stream` netdev). Both carry the same
//! framing — a 4-byte big-endian length, then the frame — so the switch reads both alike.
//!
//! Architecture invariant: the choice is a pure function of QEMU's version line and the
//! `FAULTLINE_NIC` setting ([`choose`]); only [`host`] looks at the environment and QEMU.

use crate::qemu::saved;

/// The variable that forces a link kind (`stream` or `socket`); unset or empty: QEMU's
/// version decides.
pub const ENV: &str = "FAULTLINE_NIC";

/// The first QEMU release with `-netdev stream`.
pub const STREAM_SINCE: (u32, u32) = (7, 2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `-netdev stream` to a unix socket in the lab's private (0700) socket folder.
    Stream,
    /// `-netdev socket,connect=127.0.0.1:PORT` to a TCP loopback port of the switch.
    Socket,
}

impl Link {
    pub fn name(self) -> &'static str {
        match self {
            Link::Stream => "stream",
            Link::Socket => "socket",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ENV}={0:?} is not a NIC link: use \"stream\" or \"socket\", or leave it unset to let QEMU's version decide")]
pub struct BadLink(pub String);

/// `(major, minor)` from QEMU's `--version` line ("QEMU emulator version 6.2.0 (Debian …)").
pub fn release(version_line: &str) -> Option<(u32, u32)> {
    let rest = version_line.split("version ").nth(1)?;
    let number = rest.split_whitespace().next()?;
    let mut parts = number.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The link QEMU of `version_line` can make. A line that does not parse gets `stream`: the
/// QEMU this project is developed on, and a missing QEMU fails to start either way.
pub fn for_qemu(version_line: &str) -> Link {
    match release(version_line) {
        Some(r) if r < STREAM_SINCE => Link::Socket,
        _ => Link::Stream,
    }
}

/// The link to use: the forced one if `forced` names one, else what QEMU can make.
pub fn choose(version_line: &str, forced: Option<&str>) -> Result<Link, BadLink> {
    match forced.map(str::trim) {
        None | Some("") => Ok(for_qemu(version_line)),
        Some("stream") => Ok(Link::Stream),
        Some("socket") => Ok(Link::Socket),
        Some(other) => Err(BadLink(other.to_string())),
    }
}

/// The link for labs on this host: `FAULTLINE_NIC`, else the installed QEMU's version.
pub fn host() -> Result<Link, BadLink> {
    choose(&saved::qemu_version(), std::env::var(ENV).ok().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBUNTU_2204: &str = "QEMU emulator version 6.2.0 (Debian 1:6.2+dfsg-2ubuntu6.22)";
    const DEBIAN_12: &str = "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)";
    const DEBIAN_13: &str = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1)";

    #[test]
    fn releases_parse_from_version_lines() {
        assert_eq!(release(UBUNTU_2204), Some((6, 2)));
        assert_eq!(release(DEBIAN_12), Some((7, 2)));
        assert_eq!(release(DEBIAN_13), Some((10, 0)));
        assert_eq!(release("QEMU emulator version 7.1.0"), Some((7, 1)));
        assert_eq!(release(""), None);
        assert_eq!(release("qemu-system-x86_64: not found"), None);
    }

    #[test]
    fn qemu_before_7_2_gets_the_tcp_socket_link() {
        assert_eq!(for_qemu(UBUNTU_2204), Link::Socket);
        assert_eq!(for_qemu("QEMU emulator version 7.1.0"), Link::Socket);
        assert_eq!(for_qemu(DEBIAN_12), Link::Stream);
        assert_eq!(for_qemu("QEMU emulator version 7.2.0"), Link::Stream);
        // 10.0 is newer than 7.2 (numbers, not strings, are compared).
        assert_eq!(for_qemu(DEBIAN_13), Link::Stream);
        assert_eq!(for_qemu(""), Link::Stream);
    }

    #[test]
    fn the_setting_forces_either_link_and_rejects_anything_else() {
        assert_eq!(choose(DEBIAN_13, Some("socket")), Ok(Link::Socket));
        assert_eq!(choose(UBUNTU_2204, Some("stream")), Ok(Link::Stream));
        assert_eq!(choose(UBUNTU_2204, Some("")), Ok(Link::Socket));
        assert_eq!(choose(DEBIAN_13, None), Ok(Link::Stream));
        let err = choose(DEBIAN_13, Some("tcp")).unwrap_err();
        assert_eq!(err, BadLink("tcp".into()));
        assert!(err
            .to_string()
            .starts_with("FAULTLINE_NIC=\"tcp\" is not a NIC link"));
    }
}
