//! What the workload left behind, as checks read it: step records and evidence texts.

use std::collections::BTreeMap;

use serde::Serialize;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "why", rename_all = "kebab-case")]
pub enum StepOutcome {
    Ok,
    /// It ran and did not succeed (the reason in one line).
    Failed(String),
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
}

/// Everything checks are judged on, apart from the traces.
#[derive(Debug, Default)]
pub struct Observed {
    pub steps: BTreeMap<String, StepRecord>,
    pub evidence: BTreeMap<String, EvidenceRecord>,
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
