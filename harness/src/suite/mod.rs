//! A run of several arms: which cases and arms (selection, partitions), the run folder, the
//! versions and re-run commands, `run.json` rewritten after every arm, and the runner that
//! takes the arms one after another. Shared by `faultline run` and the `cases` test binary.
//!
//! - `select.rs` — case files from names and folders, `--arm` and `--partition K/N`.
//! - `run_dir.rs` — the run folder (`RunDir`), the versions that ran, re-run commands.
//! - `runner.rs` — `Runner`: one arm at a time into one run folder, interrupted by a signal
//!   or not, counted for the exit code; a kept lab served to `faultline shell`.
//!
//! Architecture invariant: nothing here prints. Progress and results go to a
//! [`crate::console::Console`] or a `say` callback the caller chose.

mod run_dir;
mod runner;
mod select;

pub use run_dir::{rerun_command, rerun_selection, versions, RunDir};
pub use runner::{
    decide_accel, runtime, serve_kept, stop_signal, vms_required, vms_required_here, Interrupted, Runner,
};
pub use select::{case_files, load_cases, select, Partition, CASES_DIR};
