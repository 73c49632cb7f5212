//! Host programs the harness runs, and the Debian package each comes from, so a missing one
//! is reported as one line naming what to install.

use std::path::{Path, PathBuf};

/// A program on the host and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const MMDEBSTRAP: Tool = Tool {
    program: "mmdebstrap",
    package: "mmdebstrap",
};
pub const MKFS_EXT4: Tool = Tool {
    program: "mkfs.ext4",
    package: "e2fsprogs",
};
pub const QEMU_IMG: Tool = Tool {
    program: "qemu-img",
    package: "qemu-utils",
};
pub const QEMU_SYSTEM: Tool = Tool {
    program: "qemu-system-x86_64",
    package: "qemu-system-x86",
};
pub const NBDKIT: Tool = Tool {
    program: "nbdkit",
    package: "nbdkit",
};
pub const TSHARK: Tool = Tool {
    program: "tshark",
    package: "tshark",
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("missing host tool `{}`: install it with `apt-get install {}`", tool.program, tool.package)]
pub struct Missing {
    pub tool: Tool,
}

impl Missing {
    /// A missing tool is a broken host (README.md: exit 3).
    pub const EXIT_CODE: u8 = crate::exit::Exit::Broken.code();
}

/// Where `tool` is, looking in PATH and then in the sbin folders a non-root PATH lacks.
pub fn find(tool: Tool) -> Result<PathBuf, Missing> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool.program))
        .find(|p| is_executable(p))
        .ok_or(Missing { tool })
}

/// The first of `tools` that is missing, if any.
pub fn require(tools: &[Tool]) -> Result<(), Missing> {
    tools.iter().try_for_each(|t| find(*t).map(|_| ()))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_package() {
        let t = Tool {
            program: "faultline-no-such-program",
            package: "some-package",
        };
        let e = find(t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing host tool `faultline-no-such-program`: install it with `apt-get install some-package`"
        );
    }

    #[test]
    fn a_present_tool_is_found() {
        let t = Tool {
            program: "sh",
            package: "dash",
        };
        assert!(find(t).unwrap().is_absolute());
    }
}
