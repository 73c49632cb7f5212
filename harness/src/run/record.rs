//! What the workload left behind, as checks and fault proofs read it: step records, evidence
//! texts, and what was gathered about each fault.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::wire::rules::{RuleId, RuleStats};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "why", rename_all = "kebab-case")]
pub enum StepOutcome {
    Ok,
    /// It ran and did not succeed (the reason in one line).
    Failed(String),
    /// It ran out of its time: still running at its limit, killed (the limit in one line).
    /// Not a failure of what the step does: a check on the step cannot tell why it did not
    /// end, so it is never `fail` for it.
    TimedOut(String),
    /// The arm skips it.
    Skipped,
    /// The harness could not run it or could not tell how it ended.
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub name: String,
    pub guest: Option<String>,
    /// Seconds since the workload started.
    pub started_s: Option<f64>,
    pub ready_s: Option<f64>,
    pub ended_s: Option<f64>,
    /// Wall-clock (unix) times of the start and end, taken with them: frames are stamped
    /// with the wall clock, and on a host whose clock is being slewed or stepped the
    /// monotonic `*_s` times drift from it (43 ms in 9 s was seen).
    pub started_unix: Option<f64>,
    pub ended_unix: Option<f64>,
    pub outcome: StepOutcome,
    pub exit_code: Option<i64>,
    /// What checks read: stdout (the transcript for mail sessions, the line for log waits).
    pub output: String,
    pub stderr: String,
    /// The step's own measure where it has one (a lock probe: asking to having), else
    /// `ended_s - started_s`.
    pub duration_s: Option<f64>,
    /// Files a capture step copied out of its guest, relative to the arm's folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// The guest agent cut the output or stderr short (qemu-ga's `out-truncated` /
    /// `err-truncated`): what checks would read is partial.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl StepRecord {
    pub fn new(name: &str, guest: Option<&str>) -> StepRecord {
        StepRecord {
            name: name.to_string(),
            guest: guest.map(str::to_string),
            started_s: None,
            ready_s: None,
            ended_s: None,
            started_unix: None,
            ended_unix: None,
            outcome: StepOutcome::Error("never started".into()),
            exit_code: None,
            output: String::new(),
            stderr: String::new(),
            duration_s: None,
            files: Vec::new(),
            truncated: false,
        }
    }

    /// "step `x` on imap1 (t=1.2–3.4 s)" for explanations.
    pub fn describe(&self) -> String {
        let mut s = format!("step `{}`", self.name);
        if let Some(g) = &self.guest {
            s.push_str(&format!(" on {g}"));
        }
        match (self.started_s, self.ended_s) {
            (Some(a), Some(b)) => s.push_str(&format!(" (t={a:.1}–{b:.1} s)")),
            (Some(a), None) => s.push_str(&format!(" (started t={a:.1} s, never ended)")),
            _ => {}
        }
        s
    }
}

/// One captured evidence item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceRecord {
    pub name: String,
    pub guest: String,
    /// `before` or `after`.
    pub phase: &'static str,
    /// Where it was written, relative to the arm's folder.
    pub file: String,
    /// The command's stdout or the file's content; `None` when it could not be captured.
    #[serde(skip)]
    pub text: Option<String>,
    pub exit_code: Option<i64>,
    /// Why it is missing (or what went wrong taking it).
    pub problem: Option<String>,
    /// The guest agent cut the command's output short: the text is partial.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Everything checks are judged on, apart from the traces.
#[derive(Debug, Default)]
pub struct Observed {
    pub steps: BTreeMap<String, StepRecord>,
    pub evidence: BTreeMap<String, EvidenceRecord>,
    /// Series over time: the guests' samplers, the wire, client populations.
    pub metrics: crate::metrics::ArmMetrics,
}

/// What the runner gathered about one fault of the arm: its proof data, which
/// [`crate::run::proof`] judges.
#[derive(Debug, Clone, Default)]
pub struct FaultRun {
    pub name: String,
    pub started_s: Option<f64>,
    pub ended_s: Option<f64>,
    /// Whether the start action provably took effect (a wire rule's proof comes later, from
    /// its frame count).
    pub started_ok: bool,
    /// Sentences of proof, or of why there is none.
    pub evidence: Vec<String>,
    /// A wire fault's switch rule.
    pub wire: Option<WireRun>,
    /// Counted things seen by a guest nft ruleset (packets), when it has counters.
    pub nft_packets: Option<u64>,
    /// A disk fault: QEMU's failed-request count on the device when it started, and how many
    /// more failed while it was on.
    pub disk_base: Option<u64>,
    pub disk_failed: Option<u64>,
    /// A disk fault: QEMU's counters summed over its disks when it started (`None`: some
    /// disk's could not be read), and what they counted while it was on, read once.
    pub disk_before: Option<crate::disks::BlockStats>,
    pub disk_delta: Option<crate::disks::BlockStats>,
    /// A disk pause: requests QEMU saw take at least the pause's threshold (its latency
    /// histograms), read once the pause ended.
    pub disk_held: Option<u64>,
}

/// A wire fault's rule on the switch.
#[derive(Debug, Clone)]
pub struct WireRun {
    pub rule: RuleId,
    /// What the rule's action does to a frame, in the switch's own word ("dropped"), taken
    /// from the rule when it was made.
    pub verb: &'static str,
    /// The switch's count and frame numbers for the rule, read once the lab has stopped;
    /// `None` when the switch did not report the rule.
    pub stats: Option<RuleStats>,
}

/// One line, at most `max` characters, for a sentence.
pub fn snippet(text: &str, max: usize) -> String {
    let one = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        one
    } else {
        let cut: String = one.chars().take(max).collect();
        format!("{cut}…")
    }
}
