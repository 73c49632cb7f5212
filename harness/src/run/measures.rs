//! The figures a case asks every arm to report (`[measures]`): read from step records, never
//! judged. Pure.

use crate::case::{Case, MeasureSource};
use crate::results::MeasureRecord;
use crate::run::record::{snippet, Observed, StepOutcome};

/// Each of the case's measures, in the case's order.
pub fn take(case: &Case, obs: &Observed) -> Vec<MeasureRecord> {
    case.measures
        .iter()
        .map(|m| {
            let mut rec = MeasureRecord {
                name: m.name.clone(),
                what: m.what.clone(),
                value: None,
                number: None,
                unit: m.unit.clone(),
                source: format!("step `{}`", m.source.step()),
                problem: None,
            };
            let Some(step) = obs.steps.get(m.source.step()) else {
                rec.problem = Some("the step has no record".into());
                return rec;
            };
            rec.source = step.describe();
            match &step.outcome {
                StepOutcome::Skipped => {
                    rec.problem = Some("the step was skipped in this arm".into());
                    return rec;
                }
                StepOutcome::Error(why) => {
                    rec.problem = Some(format!("the step could not be run: {}", snippet(why, 160)));
                    return rec;
                }
                StepOutcome::Failed(why) => {
                    rec.problem = Some(format!("the step failed: {}", snippet(why, 160)));
                }
                StepOutcome::TimedOut(why) => {
                    rec.problem = Some(format!("the step timed out: {}", snippet(why, 160)));
                }
                StepOutcome::Ok => {}
            }
            match &m.source {
                MeasureSource::StepOutput { .. } => {
                    let last = step.output.lines().rev().map(str::trim).find(|l| !l.is_empty());
                    if let Some(l) = last {
                        rec.number = first_number(l);
                        rec.value = Some(snippet(l, 160));
                    } else if rec.problem.is_none() {
                        rec.problem = Some("the step printed nothing".into());
                    }
                }
                MeasureSource::Duration { .. } => {
                    if let Some(d) = step.duration_s {
                        rec.number = Some(d);
                        rec.value = Some(format!("{d:.3}"));
                        rec.unit.get_or_insert_with(|| "s".into());
                    } else if rec.problem.is_none() {
                        rec.problem = Some("the step has no duration".into());
                    }
                }
            }
            rec
        })
        .collect()
}

/// The first number written in `text` ("the next login opened 980 messages" → 980).
fn first_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = if i > 0 && bytes[i - 1] == b'-' { i - 1 } else { i };
            let mut end = i;
            while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
                end += 1;
            }
            let run = text[start..end].trim_end_matches('.');
            if let Some(n) = run.parse::<f64>().ok().filter(|n| n.is_finite()) {
                return Some(n);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::run::record::StepRecord;

    const CASE: &str = r#"name = "t"
summary = "s"
[guests.imap1]
image = "frontend"
[[steps]]
name = "count"
guest = "imap1"
exec = { command = "echo 3" }
[[steps]]
name = "login"
guest = "imap1"
pop3 = { user = "u", password = "p", commands = ["STAT"] }
[[steps]]
name = "gone"
guest = "imap1"
exec = { command = "true" }
[checks.ok]
step_ok = { step = "count" }
[measures.opened]
what = "messages opened"
step_output = "count"
unit = "messages"
[measures.stat]
what = "STAT latency"
duration = "login"
[measures.skipped]
what = "a skipped step"
step_output = "gone"
[arms.base]
expect = "pass"
"#;

    #[test]
    fn the_first_number_of_a_sentence() {
        assert_eq!(first_number("2000"), Some(2000.0));
        assert_eq!(
            first_number("the next login opened 980 messages (the rebuild 1020)"),
            Some(980.0)
        );
        assert_eq!(first_number("took 0.31 s."), Some(0.31));
        assert_eq!(first_number("-3 left"), Some(-3.0));
        assert_eq!(first_number("version 1.2.3"), None);
        assert_eq!(first_number("none"), None);
        assert_eq!(first_number(""), None);
    }

    #[test]
    fn measures_read_outputs_and_durations() {
        let case = crate::case::parse(Path::new("t.toml"), CASE).unwrap();
        let mut obs = Observed::default();
        let mut count = StepRecord::new("count", Some("imap1"));
        count.outcome = StepOutcome::Ok;
        count.output = "the first login opened\n2000\n".into();
        let mut login = StepRecord::new("login", Some("imap1"));
        login.outcome = StepOutcome::Failed("the session exited 1".into());
        login.duration_s = Some(25.82);
        let mut gone = StepRecord::new("gone", Some("imap1"));
        gone.outcome = StepOutcome::Skipped;
        for r in [count, login, gone] {
            obs.steps.insert(r.name.clone(), r);
        }
        let got = take(&case, &obs);
        let by = |n: &str| got.iter().find(|m| m.name == n).unwrap();
        assert_eq!(by("opened").value.as_deref(), Some("2000"));
        assert_eq!(by("opened").number, Some(2000.0));
        assert_eq!(by("opened").unit.as_deref(), Some("messages"));
        assert_eq!(by("stat").value.as_deref(), Some("25.820"));
        assert_eq!(by("stat").unit.as_deref(), Some("s"));
        assert!(by("stat").problem.as_deref().unwrap().contains("failed"));
        assert_eq!(by("skipped").value, None);
        assert!(by("skipped").problem.as_deref().unwrap().contains("skipped"));
    }
}
