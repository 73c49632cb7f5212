//! `faultline report --vendor CASE::ARM`: one arm of a run as a bundle for its vendor
//! (through [`crate::vendor`]).

use std::path::Path;

use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::vendor::{self, VendorError};

/// Writes the bundle of `name` (`case::arm`) of the run in `run_dir` into `out` (default
/// `<run_dir>/vendor/`) and prints the folder and the archive.
pub fn vendor_report(
    run_dir: &Path,
    name: &str,
    out: Option<&Path>,
    console: &dyn Console,
) -> Result<Exit, CommandError> {
    let b = vendor::make(run_dir, name, out).map_err(|e: VendorError| {
        if e.exit_code() == Exit::Input.code() {
            CommandError::Input(e.to_string())
        } else {
            CommandError::Broken(e.to_string())
        }
    })?;
    console.out(&b.dir.display().to_string());
    console.out(&b.archive.display().to_string());
    Ok(Exit::Ok)
}
