//! The results contract: what a run writes under `results/<run-id>/` (README in `results/`).
//!
//! `run.json` ([`RunRecord`]) is what tests outside the project read: keep its field names
//! stable. Each arm's folder holds `history.jsonl` ([`Event`] per line), `wire/`, `guests/`
//! and `evidence/`. `report.html` and `junit.xml` are made from `run.json` and the histories
//! alone, so `faultline report RUN_DIR` can make them again.
//!
//! Architecture invariant: files are written to a temporary name and renamed into place, so a
//! reader never sees half a `run.json`; `run.json` is rewritten after every arm, so a run cut
//! short still leaves the arms it finished.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::case::Verdict;

mod escape;
pub mod html;
pub mod junit;
pub mod merge;
pub mod plots;
pub mod sweep;
pub mod variants;
pub mod warnings;

pub use variants::{ArmVariant, GuestImage, VariantTable};

/// `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// Unix time the run started, in seconds.
    pub started_unix: f64,
    /// The accelerator guests ran under ("kvm" or "tcg").
    pub accel: String,
    pub arms: Vec<ArmRecord>,
    /// Component → version: faultline, qemu, and each image's kernel and key packages.
    pub versions: BTreeMap<String, String>,
    /// The command that runs the same arms again.
    pub rerun: String,
    /// For a run made by `faultline merge`: its sources, duplicates and version mismatches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<merge::MergeRecord>,
    /// `--image NAME=IMAGE[,IMAGE…]` as given (none: the case files' images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Image × arm → verdict and measures, when arms ran on several images (`--image` with a
    /// list, `faultline bisect`): made from the arms by [`variants::table`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<VariantTable>,
    /// Each case's `[sweep]` that ran (`faultline run --sweep`): sizes measured against the
    /// cascade model, made from the sweep arms by [`sweep::build`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweeps: Vec<sweep::SweepRecord>,
}

/// One arm of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmRecord {
    pub case: String,
    pub arm: String,
    /// The case's one-line summary.
    pub summary: String,
    pub expected: Verdict,
    /// For `expected = fail`: the checks that must be the ones failing.
    #[serde(default)]
    pub failing_checks: Vec<String>,
    pub verdict: Verdict,
    pub met: bool,
    /// One sentence: why the verdict is what it is, and why it did (not) meet the expectation.
    pub explanation: String,
    /// The case's account of this arm ("Let … Then … because …"), if it has one.
    #[serde(default)]
    pub story: Option<String>,
    /// A finding written in the case for this arm (stock software behaving badly), if any.
    #[serde(default)]
    pub finding: Option<String>,
    /// Wall time of the whole arm: lab start to results written.
    pub duration_s: f64,
    /// Lab start to every guest ready.
    pub lab_ready_s: f64,
    /// Workload start to workload end (every step finished, faults healed).
    pub workload_s: f64,
    pub checks: Vec<CheckRecord>,
    /// The case's measures as this arm saw them.
    #[serde(default)]
    pub measures: Vec<MeasureRecord>,
    /// Checks the arm does not apply (`skip_checks`): not judged.
    #[serde(default)]
    pub skipped_checks: Vec<String>,
    pub faults: Vec<FaultRecord>,
    /// Each segment's trace against the switch's own counts: whether it is complete enough
    /// to judge `frames` checks on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<TraceRecord>,
    /// The arm's folder, relative to the run folder (`<case>/<arm>`).
    pub dir: String,
    /// The command that runs this arm alone again.
    pub rerun: String,
    /// Guest → the image it ran: recipe name and recipe hash (after the arm's `setup.images`
    /// and any `--image`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, GuestImage>,
    /// For one of several image variants of an arm: the case's arm and the images (`arm` is
    /// then `<arm>@<image>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<ArmVariant>,
    /// The arm's series over time in brief (the series themselves are in the arm folder's
    /// `metrics.json`); `None` for an arm whose workload never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<crate::metrics::summary::MetricsRecord>,
    /// The case's healthy arm (`healthy_arm`), whose series are this arm's normal range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_arm: Option<String>,
    /// The earliest-warning table (`warnings::tables`), made when run.json is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<warnings::WarningTable>,
    /// For one size of a case's sweep (`<arm>@x<scale>`): what it measured. Such an arm is a
    /// measurement: `expected` is the case arm's, shown but not judged; `met` says whether
    /// the measurement stands (no `error`, every fault fired, the size measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<sweep::SweepPoint>,
}

/// A segment's trace as the checks saw it: the switch's count of frames it received and of
/// those it wrote, what was read back, and the write errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    pub segment: String,
    /// The pcapng, relative to the arm's folder.
    pub file: String,
    /// Frames the switch received.
    pub switch_frames: u64,
    /// Frames the switch handed to the pcapng writer whole.
    pub written_frames: u64,
    /// Frames read back, when the trace was read and complete.
    pub read_frames: Option<u64>,
    pub write_errors: u64,
    pub first_write_error: Option<String>,
    /// Why `frames` checks could not be judged on it (unread, or fewer frames than the
    /// switch received); `None` for a complete trace.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub name: String,
    pub verdict: Verdict,
    /// Present for every verdict but pass (and sometimes for pass).
    pub explanation: Option<String>,
    /// False for a check the arm only reports (`report_only`): judged, not in the verdict.
    #[serde(default = "yes")]
    pub counted: bool,
}

fn yes() -> bool {
    true
}

/// One figure of an arm (a case's `[measures]`): reported, not judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureRecord {
    pub name: String,
    /// What it is, in words.
    pub what: String,
    /// As read (a step's last output line, or a duration in seconds); `None` when missing.
    pub value: Option<String>,
    /// The value as a number, when it is one.
    pub number: Option<f64>,
    pub unit: Option<String>,
    /// Where it was read: the step and its times.
    pub source: String,
    /// Why it is missing or may not mean what it says (the step failed).
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub name: String,
    pub fired: bool,
    /// The proof it fired (rule counts and pcapng frame numbers, exit status, the log line),
    /// or why there is none.
    pub evidence: String,
    /// Seconds since the workload started; `None` when it never started / never ended.
    pub started_s: Option<f64>,
    pub ended_s: Option<f64>,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the workload started, from a monotonic clock (negative for what happened
    /// before it: the before-evidence).
    pub t: f64,
    /// Unix time, for lining events up with pcapng timestamps and guest logs.
    pub unix: f64,
    pub kind: EventKind,
    /// The step, fault, evidence item or session this is about.
    pub name: String,
    /// The guest it touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    WorkloadStart,
    WorkloadEnd,
    StepStart,
    /// A background step is ready: the next step may start.
    StepReady,
    StepEnd,
    /// One operation inside a step (a mail command and its response, a lock request).
    Op,
    FaultStart,
    FaultEnd,
    Evidence,
}

impl RunRecord {
    /// The arm's history, read back from its folder (empty if missing or unreadable).
    pub fn history(run_dir: &Path, arm: &ArmRecord) -> Vec<Event> {
        read_history(&run_dir.join(&arm.dir).join("history.jsonl"))
    }

    pub fn load(run_dir: &Path) -> io::Result<RunRecord> {
        let text = std::fs::read_to_string(run_dir.join("run.json"))?;
        serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Write `run.json`, `junit.xml` and `report.html` into `run_dir`, each atomically.
    /// The earliest-warning tables are made here, from every arm's series: an arm's normal
    /// range may be another arm's, which may end after it.
    pub fn write(&self, run_dir: &Path) -> io::Result<()> {
        let metrics: Vec<Option<crate::metrics::ArmMetrics>> =
            self.arms.iter().map(|a| Self::metrics(run_dir, a)).collect();
        let mut run = self.clone();
        for (arm, table) in run.arms.iter_mut().zip(warnings::tables(&self.arms, &metrics)) {
            arm.warnings = table;
        }
        let json = serde_json::to_string_pretty(&run).expect("a run record serializes");
        write_atomic(&run_dir.join("run.json"), json.as_bytes())?;
        write_atomic(&run_dir.join("junit.xml"), junit::render(&run).as_bytes())?;
        let histories: Vec<Vec<Event>> = run.arms.iter().map(|a| Self::history(run_dir, a)).collect();
        write_atomic(
            &run_dir.join("report.html"),
            html::render_with_metrics(&run, &histories, &metrics).as_bytes(),
        )
    }

    /// The arm's series, read back from its folder (`None` if it has none or they do not
    /// parse).
    pub fn metrics(run_dir: &Path, arm: &ArmRecord) -> Option<crate::metrics::ArmMetrics> {
        let file = &arm.metrics.as_ref()?.file;
        // The file name comes from run.json: only a plain name inside the arm's folder.
        if file.contains('/') || file.starts_with('.') {
            return None;
        }
        let bytes = std::fs::read(run_dir.join(&arm.dir).join(file)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Parse `history.jsonl`, skipping lines that do not parse.
pub fn read_history(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // Results are for whoever reads the run folder, not private like a temporary file.
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A new run id: UTC time to the second and a short random suffix, so two runs started in
/// the same second do not collide.
pub fn new_run_id(prefix: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (date, time) = utc(now.as_secs());
    let suffix = (now.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{prefix}{date}-{time}-{suffix:04x}")
}

/// `YYYYMMDD`, `HHMMSS` of a Unix time (UTC), civil-from-days.
fn utc(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

/// Point `results/latest` at `run_dir` (a relative link, replaced atomically).
pub fn link_latest(results: &Path, run_dir: &Path) -> io::Result<()> {
    let name = run_dir
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "run folder has no name"))?;
    let tmp = results.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    std::fs::rename(&tmp, results.join("latest"))
}

/// The folder of an arm inside a run.
pub fn arm_dir(run_dir: &Path, case: &str, arm: &str) -> PathBuf {
    run_dir.join(case).join(arm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), ("19700101".into(), "000000".into()));
        // 2026-11-28 19:15:30 UTC
        assert_eq!(utc(1_795_893_330), ("20261128".into(), "191530".into()));
        assert_eq!(utc(951_782_400), ("20000229".into(), "000000".into()));
    }
}
