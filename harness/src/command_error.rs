//! The error a command stops with, and the exit code it carries (a row of
//! [`crate::exit::Exit`]'s table, asked of the error it wraps).

use crate::case::CaseError;
use crate::exit::Exit;
use crate::hosttools::Missing;
use crate::images::BuildError;
use crate::qemu::VmError;
use crate::recipe::RecipeError;

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
