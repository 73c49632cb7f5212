//! The bodies of `faultline`'s subcommands: the binary parses the command line and calls one
//! of these with a [`Console`], then turns what it returns into an exit code.
//!
//! - `bisect.rs` — `bisect`: the first image of a list on which an arm's verdict changes.
//! - `cache.rs` — `cache list | prune`: the image cache's entries, and forgetting them.
//! - `cases.rs` — `list` and `run` (through [`crate::suite`]).
//! - `images.rs` — `images build | check | list`.
//! - `lab.rs` — `lab` and `bench`: the two images, a lab from saved state.
//! - `shell.rs` — `shell`: the client of a kept lab's `shell.sock`.
//! - `merge.rs` — `merge`: the run folders of shards or reruns made one run folder.
//! - `report` (here) — `report.html` and `junit.xml` of a run folder made again.
//! - `vendor.rs` — `report --vendor`: one arm of a run as a bundle for its vendor.
//!
//! Architecture invariant: a command returns the [`Exit`] it ended with or the
//! [`CommandError`] it stopped at, and writes lines only to its [`Console`] (a shell's guest
//! output only to the writers it is given).

mod bisect;
mod cache;
mod cases;
mod images;
mod lab;
mod merge;
mod shell;
mod vendor;

use std::path::{Path, PathBuf};

use crate::accel::Accel;
use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;

pub use bisect::{bisect, BisectOptions};
pub use cache::{list_cache, prune_cache, PruneOptions};
pub use cases::{list, run, RunOptions};
pub use images::{build_images, check_images, list_images};
pub use lab::{bench, lab, LabOptions};
pub use merge::{merge, MergeOptions};
pub use shell::{shell, ShellOptions};
pub use vendor::vendor_report;

/// Where images come from and which accelerator runs them: shared by every command.
#[derive(Debug, Clone)]
pub struct Common {
    /// Folder with the image recipes.
    pub recipes: PathBuf,
    /// The cache folder.
    pub cache: PathBuf,
    /// The accelerator asked for (`None`: decided by a probe boot).
    pub accel: Option<Accel>,
}

/// `faultline report`: `report.html` and `junit.xml` of a run folder written again from its
/// `run.json`.
pub fn report(run_dir: &Path, console: &dyn Console) -> Result<Exit, CommandError> {
    let record = crate::results::RunRecord::load(run_dir)
        .map_err(|e| CommandError::Input(format!("{}: {e}", run_dir.join("run.json").display())))?;
    record
        .write(run_dir)
        .map_err(|e| CommandError::Broken(format!("writing into {}: {e}", run_dir.display())))?;
    console.out(&run_dir.join("report.html").display().to_string());
    Ok(Exit::Ok)
}
