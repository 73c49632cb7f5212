//! A run of several arms: which cases and arms (selection, partitions), the run folder, the
//! versions and re-run commands, `run.json` rewritten after every arm, and the runner that
//! takes the arms one after another. Shared by `faultline run` and the `cases` test binary.
//!
//! - `select.rs` — case files from names and folders, `--arm` and `--partition K/N` (a sweep's
//!   sizes answer to their own names and to the swept arm's).
//! - `run_dir.rs` — the run folder (`RunDir`, with the sweeps made again after every arm), the
//!   versions that ran, re-run commands.
//! - `runner.rs` — `Runner`: arms into one run folder, one at a time or several at once
//!   (each on a thread of its own with its own lab), interrupted by a signal or not, counted
//!   for the exit code; a kept lab served to `faultline shell`.
//! - `overrides.rs` — `--image NAME=IMAGE[,IMAGE…]`: parsed, checked, expanded into
//!   variants and applied to an arm's guests (pure).
//! - `bisect.rs` — `faultline bisect`'s search over an ordered image list (pure): which
//!   image to run next, the first change, an unknown stops it.
//! - `jobs.rs` — `--jobs N | auto`: how many arms at once, `auto` from cores and memory.
//!
//! Architecture invariant: nothing here prints. Progress and results go to a
//! [`crate::console::Console`] or a `say` callback the caller chose.

pub mod bisect;
mod jobs;
pub mod overrides;
mod run_dir;
mod runner;
mod select;

pub use jobs::Jobs;
pub use overrides::{ImageOverride, Variant};
pub use run_dir::{rerun_command, rerun_selection, versions, RunDir};
pub use runner::{
    decide_accel, runtime, serve_kept, start_order, stop_signal, vms_required, vms_required_here, ArmSlot,
    Interrupted, Runner, Stopped, Turn,
};
pub use select::{arm_matches, case_files, load_cases, select, Partition, CASES_DIR};
