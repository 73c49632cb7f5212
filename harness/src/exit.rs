//! The exit codes of `faultline` (README.md, "Exit codes") and the error a command stops with.
//!
//! Architecture invariant: the binary decides no exit code itself. A command either ends with
//! an [`Exit`] it worked out (how many arms met their expectation, whether an image check
//! found a difference) or stops early with a [`CommandError`], which carries its own code:
//! every error type a command can stop with says which row of the table it is.

use crate::case::CaseError;
use crate::hosttools::Missing;
use crate::images::BuildError;
use crate::qemu::VmError;
use crate::recipe::RecipeError;

/// README.md's table, row for row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exit {
    /// 0: everything asked for succeeded: every arm met its expectation (every image built,
    /// every check passed).
    Ok = 0,
    /// 1: something ran and did not succeed: an arm did not meet its expectation, an image
    /// check found a difference.
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

/// Why a command stopped before it finished. The binary prints `error: <this>` and exits with
/// [`CommandError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Case(#[from] CaseError),
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Missing(#[from] Missing),
    #[error(transparent)]
    Vm(#[from] VmError),
    /// A guest failed during `images check`; its files are kept for a look.
    #[error("{source}\nguest files kept in {}", kept.display())]
    Check {
        source: VmError,
        kept: std::path::PathBuf,
    },
    /// Input that has no error type of its own: a case file or arm that does not exist, a
    /// run folder without a run.json.
    #[error("{0}")]
    Input(String),
    /// A broken tool or file that has no error type of its own: a run folder that cannot be
    /// written, an arm's image that cannot be built.
    #[error("{0}")]
    Broken(String),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Case(_) => CaseError::EXIT_CODE,
            CommandError::Recipe(_) => RecipeError::EXIT_CODE,
            CommandError::Build(e) => e.exit_code(),
            CommandError::Missing(_) => Missing::EXIT_CODE,
            CommandError::Vm(_) | CommandError::Check { .. } => VmError::EXIT_CODE,
            CommandError::Input(_) => Exit::Input.code(),
            CommandError::Broken(_) => Exit::Broken.code(),
        }
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

    #[test]
    fn errors_carry_their_rows_code() {
        let input = CommandError::Input("no such case file".into());
        let broken = CommandError::Broken("writing the run folder".into());
        let missing = CommandError::from(Missing {
            tool: crate::hosttools::QEMU_IMG,
        });
        let vm = CommandError::from(VmError::new("filer", "QEMU exited"));
        let not_built = CommandError::from(BuildError::NotBuilt {
            name: "filer".into(),
            key: "k".into(),
        });
        assert_eq!(input.exit_code(), 2);
        assert_eq!(broken.exit_code(), 3);
        assert_eq!(missing.exit_code(), 3);
        assert_eq!(vm.exit_code(), 3);
        assert_eq!(not_built.exit_code(), 3);
    }
}
