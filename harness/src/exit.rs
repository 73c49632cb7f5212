//! The exit codes of `faultline`: README.md's "Exit codes" table as a type.
//!
//! Architecture invariant: the binary decides no exit code itself. A command either ends with
//! an [`Exit`] it worked out (how many arms met their expectation, whether an image check
//! found a difference) or stops early with a `command_error::CommandError`, which
//! carries its own code: every error type a command can stop with says which row of the table
//! it is. This module is on the bottom floor (it imports nothing of the crate), so every error
//! type can name its row without an import running up.

/// README.md's table, row for row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exit {
    /// 0: everything asked for succeeded: every arm met its expectation (every image built,
    /// every check passed).
    Ok = 0,
    /// 1: something ran and did not succeed: an arm did not meet its expectation (a size of a
    /// sweep: its measurement does not stand), an image check found a difference.
    Failed = 1,
    /// 2: usage or input error: a bad recipe or case file (`file:line:column`), an unknown
    /// name; nothing was started.
    Input = 2,
    /// 3: the lab or a tool broke: a build tool failed, a guest did not boot, QEMU exited, the
    /// run was interrupted.
    Broken = 3,
}

impl Exit {
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for Exit {
    type Error = u8;
    /// A code from the table (an error's `exit_code`) as its row.
    fn try_from(code: u8) -> Result<Exit, u8> {
        [Exit::Ok, Exit::Failed, Exit::Input, Exit::Broken]
            .into_iter()
            .find(|e| e.code() == code)
            .ok_or(code)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readmes_table() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("## Exit codes")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has an Exit codes section");
        for (exit, words) in [
            (Exit::Ok, "everything asked for succeeded"),
            (Exit::Failed, "something ran and did not succeed"),
            (Exit::Input, "usage or input error"),
            (Exit::Broken, "the lab or a tool broke"),
        ] {
            let row = format!("| {} | {words}", exit.code());
            assert!(table.contains(&row), "README's table has no row {row:?}");
        }
    }
}
