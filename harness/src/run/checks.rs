//! Judging checks against what the arm observed. Pure: records and traces in, verdicts out.
//!
//! Missing evidence is `unknown`, never `pass`; a harness failure is `error`. Every verdict
//! but pass says why in one sentence with a pointer: the step and its times, the evidence
//! file and line, the pcapng and frame numbers.

use std::collections::BTreeMap;

use crate::case::verdict::apply_requires;
use crate::case::{Case, Check, CheckKind, CheckResult, Count, FailureReason, TextExpect, Verdict};
use crate::run::record::{snippet, Observed, StepOutcome, StepRecord};
use crate::run::trace::{self, TraceFrame};
use crate::wire::rpc;
use crate::wire::rules::{Match, RpcKind};

/// A segment's trace, or why it could not be read.
pub type Traces = BTreeMap<String, Result<Vec<TraceFrame>, String>>;

/// Judge every check of the case, in the case's order, `requires` applied.
pub fn judge(case: &Case, obs: &Observed, traces: &Traces) -> Vec<CheckResult> {
    let raw: Vec<CheckResult> = case.checks.iter().map(|c| judge_one(c, obs, traces)).collect();
    // `requires` only names earlier checks, so a chain settles in as many rounds as it is long.
    let requires = case.requires();
    let mut results = raw;
    loop {
        let next = apply_requires(&requires, &results);
        if next == results {
            return results;
        }
        results = next;
    }
}

fn judge_one(check: &Check, obs: &Observed, traces: &Traces) -> CheckResult {
    let result = judge_kind(check, obs, traces);
    match &check.fail_when {
        Some(reason) if result.verdict() == Verdict::Fail => pin_reason(check, reason, obs, result),
        _ => result,
    }
}

/// A failed check whose `fail_when` says what its failure must look like: still `fail` when
/// the step's (or evidence item's) exit status and texts look like that, else `unknown` — a
/// failure for another reason (the command's own timeout, a wrong setup) is not the one the
/// case claims.
fn pin_reason(check: &Check, reason: &FailureReason, obs: &Observed, failed: CheckResult) -> CheckResult {
    let name = check.name.as_str();
    let why = failed.explanation().unwrap_or_default().to_string();
    let (seen, what) = match &check.kind {
        CheckKind::StepOk { step } | CheckKind::StepOutput { step, .. } => match obs.steps.get(step.as_str())
        {
            Some(r) => (
                reason_misses(reason, r.exit_code, &r.output, Some(&r.stderr)),
                r.describe(),
            ),
            None => return CheckResult::unknown(name, "the step has no record"),
        },
        CheckKind::ExecOutput { evidence, .. } => match obs.evidence.get(evidence.as_str()) {
            Some(e) => (
                reason_misses(reason, e.exit_code, e.text.as_deref().unwrap_or_default(), None),
                format!("evidence `{evidence}` ({})", e.file),
            ),
            None => return CheckResult::unknown(name, format!("evidence `{evidence}` was not captured")),
        },
        // The case model allows `fail_when` only on the kinds above.
        _ => return failed,
    };
    match seen {
        None => CheckResult::fail(
            name,
            format!("{why} (the failure the check names: {})", describe_reason(reason)),
        ),
        Some(miss) => CheckResult::unknown(
            name,
            format!(
                "{why}; but not the failure the check names ({}): {what} {miss}",
                describe_reason(reason)
            ),
        ),
    }
}

/// `None` when the exit status and texts are as `reason` says, else the rest of a sentence
/// saying the first thing that is not. `stderr` is `None` where none is kept (evidence items).
fn reason_misses(
    reason: &FailureReason,
    exit: Option<i64>,
    output: &str,
    stderr: Option<&str>,
) -> Option<String> {
    if let Some(want) = reason.exit {
        match exit {
            Some(code) if code == want => {}
            Some(code) => return Some(format!("exited {code}, not {want}")),
            None => return Some(format!("has no exit status, not {want}")),
        }
    }
    if let Some(expect) = &reason.output {
        if let Err(how) = text_meets(output, expect) {
            return Some(format!("(its output) {how}"));
        }
    }
    if let Some(expect) = &reason.stderr {
        match stderr {
            None => return Some("keeps no stderr".into()),
            Some(text) => {
                if let Err(how) = text_meets(text, expect) {
                    return Some(format!("(its stderr) {how}"));
                }
            }
        }
    }
    None
}

/// "exit 3, output containing \"…\"": a failure reason in words.
fn describe_reason(reason: &FailureReason) -> String {
    let text = |which: &str, e: &TextExpect| match e {
        TextExpect::Equals(t) => format!("{which} \"{}\"", snippet(t, 80)),
        TextExpect::Contains(t) => format!("{which} containing \"{}\"", snippet(t, 80)),
        TextExpect::Matches(p) => format!("{which} with a line matching \"{}\"", p.as_str()),
    };
    let mut parts = Vec::new();
    if let Some(e) = reason.exit {
        parts.push(format!("exit {e}"));
    }
    if let Some(o) = &reason.output {
        parts.push(text("output", o));
    }
    if let Some(e) = &reason.stderr {
        parts.push(text("stderr", e));
    }
    if parts.is_empty() {
        "any failure".into()
    } else {
        parts.join(", ")
    }
}

fn judge_kind(check: &Check, obs: &Observed, traces: &Traces) -> CheckResult {
    let name = check.name.as_str();
    let step = |s: &str| obs.steps.get(s);
    match &check.kind {
        CheckKind::SuccessRate {
            population,
            at_least_milli,
            from,
            to,
        } => series::success_rate(
            name,
            obs,
            population,
            *at_least_milli,
            from.as_secs_f64(),
            to.map(|t| t.as_secs_f64()),
        ),
        CheckKind::DrainsWithin {
            population,
            within,
            below_milli,
            window,
        } => series::drains_within(
            name,
            obs,
            population,
            within.as_secs_f64(),
            *below_milli,
            window.as_secs_f64(),
        ),
        CheckKind::SeriesPeak {
            series: s,
            at_most_milli,
            during,
        } => series::series_peak(name, obs, s, *at_most_milli as f64 / 1000.0, during.as_deref()),
        CheckKind::StepOk { step: s } => match ran(name, step(s)) {
            Err(r) => r,
            Ok(rec) => match &rec.outcome {
                StepOutcome::Ok => CheckResult::pass(name),
                StepOutcome::Failed(why) => {
                    CheckResult::fail(name, format!("{} failed: {}", rec.describe(), snippet(why, 240)))
                }
                _ => unreachable!("ran() passes only steps that ran"),
            },
        },
        CheckKind::StepFailed { step: s, reason } => match ran(name, step(s)) {
            Err(r) => r,
            Ok(rec) => match &rec.outcome {
                StepOutcome::Failed(why) => {
                    match reason_misses(reason, rec.exit_code, &rec.output, Some(&rec.stderr)) {
                        None => CheckResult::pass(name),
                        // It failed, but for a reason the check does not claim: neither a pass nor
                        // the opposite of one.
                        Some(miss) => CheckResult::unknown(
                            name,
                            format!(
                                "{} failed ({}), but not as expected ({}): it {miss}",
                                rec.describe(),
                                snippet(why, 160),
                                describe_reason(reason)
                            ),
                        ),
                    }
                }
                _ => CheckResult::fail(
                    name,
                    format!("{} succeeded, and it was expected to fail", rec.describe()),
                ),
            },
        },
        CheckKind::StepOutput { step: s, expect } => match ran(name, step(s)) {
            Err(r) => r,
            // A step that did not succeed may have printed nothing or half: its output is not
            // evidence either way.
            Ok(rec) if rec.outcome != StepOutcome::Ok => CheckResult::unknown(
                name,
                format!(
                    "{} did not succeed ({}), so its output is not judged",
                    rec.describe(),
                    snippet(outcome_why(&rec.outcome), 200)
                ),
            ),
            Ok(rec) if rec.truncated => CheckResult::unknown(
                name,
                format!(
                    "the guest agent cut the output of {} short, so it is not judged",
                    rec.describe()
                ),
            ),
            Ok(rec) => match text_meets(&rec.output, expect) {
                Ok(()) => CheckResult::pass(name),
                Err(why) => CheckResult::fail(name, format!("the output of {} {why}", rec.describe())),
            },
        },
        CheckKind::ExecOutput { evidence, expect } => match evidence_text(name, obs, evidence) {
            Err(r) => r,
            Ok((text, file)) => match partial(obs, evidence) {
                // A failed `cat` reads as "", which must not count as the file saying "".
                Some(why) => CheckResult::unknown(
                    name,
                    format!("{why} behind evidence `{evidence}` ({file}), so its output is not judged"),
                ),
                None => match text_meets(text, expect) {
                    Ok(()) => CheckResult::pass(name),
                    Err(why) => CheckResult::fail(name, format!("evidence `{evidence}` ({file}) {why}")),
                },
            },
        },
        CheckKind::DurationAtMost {
            step: s,
            limit,
            since_end_of,
        } => match ran(name, step(s)) {
            Err(r) => r,
            Ok(rec) => {
                let limit_s = limit.as_secs_f64();
                // From the other step's end when given, else the step's own measure.
                let (took, from, since) = match since_end_of {
                    None => (rec.duration_s, "of starting".to_string(), "took".to_string()),
                    Some(o) => match ran(name, step(o)) {
                        Err(r) => return r,
                        Ok(other) => (
                            rec.ended_s.zip(other.ended_s).map(|(a, b)| a - b),
                            format!("of the end of {}", other.describe()),
                            format!("ended after {} by", other.describe()),
                        ),
                    },
                };
                match (&rec.outcome, took) {
                    // Ended before the step it is timed from: the order the check assumes did
                    // not happen, so its limit says nothing.
                    (StepOutcome::Ok, Some(d)) if d < 0.0 && since_end_of.is_some() => CheckResult::unknown(
                        name,
                        format!(
                            "{} ended {:.2} s before the end of {}: the order was wrong, so the limit says nothing",
                            rec.describe(),
                            -d,
                            since_end_of
                                .as_deref()
                                .and_then(&step)
                                .map(|o| o.describe())
                                .unwrap_or_default()
                        ),
                    ),
                    (StepOutcome::Ok, Some(d)) if d <= limit_s => CheckResult::pass(name),
                    (StepOutcome::Ok, Some(d)) => CheckResult::fail(
                        name,
                        format!(
                            "{} {since} {d:.2} s, more than the {limit_s} s allowed",
                            rec.describe()
                        ),
                    ),
                    (StepOutcome::Ok, None) => {
                        CheckResult::unknown(name, format!("{} has no duration", rec.describe()))
                    }
                    (StepOutcome::Failed(why), _) => CheckResult::fail(
                        name,
                        format!(
                            "{} did not succeed within {limit_s} s {from}: {}",
                            rec.describe(),
                            snippet(why, 200)
                        ),
                    ),
                    _ => unreachable!("ran() passes only steps that ran"),
                }
            }
        },
        CheckKind::Faster {
            step: s,
            than,
            factor_milli,
        } => {
            let factor = *factor_milli as f64 / 1000.0;
            let (fast, slow) = match (ran(name, step(s)), ran(name, step(than))) {
                (Err(r), _) | (_, Err(r)) => return r,
                (Ok(a), Ok(b)) => (a, b),
            };
            // A failed step's duration is how long it took to fail, not to do the work.
            if let Some(bad) = [fast, slow].into_iter().find(|r| r.outcome != StepOutcome::Ok) {
                return CheckResult::unknown(
                    name,
                    format!(
                        "{} did not succeed, so its duration is not the work's: {}",
                        bad.describe(),
                        match &bad.outcome {
                            StepOutcome::Failed(why) => snippet(why, 160),
                            _ => String::new(),
                        }
                    ),
                );
            }
            match (fast.duration_s, slow.duration_s) {
                (Some(f), Some(sl)) if f > 0.0 => {
                    let ratio = sl / f;
                    let said = format!(
                        "{} took {f:.3} s, {} took {sl:.3} s: {ratio:.1} times faster",
                        fast.describe(),
                        slow.describe()
                    );
                    if ratio >= factor {
                        CheckResult::new(name, Verdict::Pass, Some(said)).expect("one line")
                    } else {
                        CheckResult::fail(name, format!("{said}, not the {factor} times required"))
                    }
                }
                _ => CheckResult::unknown(
                    name,
                    format!("{} or {} has no duration", fast.describe(), slow.describe()),
                ),
            }
        }
        CheckKind::LogAbsent {
            evidence,
            pattern,
            control,
        } => match evidence_text(name, obs, evidence) {
            Err(r) => r,
            Ok((text, file)) => {
                let hits: Vec<(usize, &str)> = text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| pattern.matches_line(l))
                    .collect();
                // A matching line is a finding whatever else is wrong with the text. No
                // matching line proves an absence only in a whole text: not the output of a
                // command that failed or was cut short, nor one missing its control line
                // (`journalctl … | grep … || true` prints nothing, and exits 0, when
                // journalctl itself failed).
                let control_missing = control
                    .as_ref()
                    .filter(|c| !text.lines().any(|l| c.matches_line(l)));
                match (hits.first(), partial(obs, evidence), control_missing) {
                    (Some((i, line)), _, _) => CheckResult::fail(
                        name,
                        format!(
                            "{} line(s) of {file} match \"{}\", the first at line {}: {}",
                            hits.len(),
                            pattern.as_str(),
                            i + 1,
                            snippet(line, 200)
                        ),
                    ),
                    (None, Some(why), _) => CheckResult::unknown(
                        name,
                        format!(
                            "{why} behind {file}, so its output cannot show \"{}\" is absent",
                            pattern.as_str()
                        ),
                    ),
                    (None, None, Some(c)) => CheckResult::unknown(
                        name,
                        format!(
                            "{file} has no line matching its control \"{}\", so it is not the whole text and cannot show \"{}\" is absent",
                            c.as_str(),
                            pattern.as_str()
                        ),
                    ),
                    (None, None, None) => CheckResult::pass(name),
                }
            }
        },
        CheckKind::Frames {
            segment,
            matcher,
            count,
            during,
            delivered,
        } => match traces.get(segment) {
            None => CheckResult::unknown(name, format!("no trace of segment {segment} was taken")),
            Some(Err(why)) => CheckResult::unknown(
                name,
                format!(
                    "the trace of segment {segment} is not evidence: {}",
                    snippet(why, 240)
                ),
            ),
            Some(Ok(frames)) => {
                // Only the frames seen while the step ran, when the check says so.
                let (window, while_) = match during {
                    None => (None, String::new()),
                    Some(s) => {
                        let rec = match ran(name, step(s)) {
                            Err(r) => return r,
                            Ok(rec) => rec,
                        };
                        let (Some(from), Some(to)) = (rec.started_unix, rec.ended_unix) else {
                            return CheckResult::unknown(
                                name,
                                format!("{} has no start and end to take frames between", rec.describe()),
                            );
                        };
                        (Some((from, to)), format!(" while {} ran", rec.describe()))
                    }
                };
                let considered: Vec<&TraceFrame> = frames
                    .iter()
                    .filter(|f| {
                        window.is_none_or(|(a, b)| {
                            let t = f.timestamp_ns as f64 / 1e9;
                            t >= a && t <= b
                        })
                    })
                    .collect();
                let hits = trace::matching(considered.iter().copied(), matcher, *delivered);
                let n = hits.len() as u64;
                let (ok, want) = match count {
                    Count::AtLeast(k) => (n >= *k, format!("at least {k}")),
                    Count::Equals(k) => (n == *k, format!("exactly {k}")),
                };
                let file = format!("wire/{segment}.pcapng");
                // Counting no frame proves an absence only where the trace was being written:
                // a complete trace (the runner makes an incomplete one an Err) with a frame
                // before the window and one after it. A step's window without such frames may
                // lie before the capture started or after it stopped.
                let absence = hits.is_empty() && (*count == Count::Equals(0) || considered.is_empty());
                if let (true, Some((a, b))) = (absence, window) {
                    let t = |f: &TraceFrame| f.timestamp_ns as f64 / 1e9;
                    let before = frames.iter().any(|f| t(f) < a);
                    let after = frames.iter().any(|f| t(f) > b);
                    if !(before && after) {
                        return CheckResult::unknown(
                            name,
                            format!(
                                "{file} has no frame {}{while_}, so it does not show that the trace covers that time",
                                match (before, after) {
                                    (false, false) => "before or after the window",
                                    (false, true) => "before the window",
                                    _ => "after the window",
                                }
                            ),
                        );
                    }
                }
                if ok && hits.is_empty() {
                    let said = format!(
                        "none of the {} frames in {file}{while_} matches {}, as expected",
                        considered.len(),
                        describe_match(matcher)
                    );
                    CheckResult::new(name, Verdict::Pass, Some(said)).expect("one line")
                } else if ok {
                    // Where to look in the trace, for a reader who wants to see it.
                    let said = format!(
                        "{n} frame(s) in {file}{while_} match {}: frames {}",
                        describe_match(matcher),
                        trace::list_frames(&hits)
                    );
                    CheckResult::new(name, Verdict::Pass, Some(said)).expect("one line")
                } else if hits.is_empty() {
                    CheckResult::fail(
                        name,
                        format!(
                            "none of the {} frames in {file}{while_} matches {}; expected {want}",
                            considered.len(),
                            describe_match(matcher)
                        ),
                    )
                } else {
                    CheckResult::fail(
                        name,
                        format!(
                            "{n} frames in {file}{while_} match {} (frames {}); expected {want}",
                            describe_match(matcher),
                            trace::list_frames(&hits)
                        ),
                    )
                }
            }
        },
    }
}

/// Why a command's output is only part of the evidence (it exited non-zero, the guest agent
/// cut it short), as the start of a sentence; `None` for a whole text.
fn partial(obs: &Observed, evidence: &str) -> Option<String> {
    let e = obs.evidence.get(evidence)?;
    match e.exit_code.filter(|c| *c != 0) {
        Some(code) => Some(format!("the command exited {code}")),
        None => e
            .truncated
            .then(|| "the guest agent cut short the output of the command".to_string()),
    }
}

/// The reason a step that did not succeed gives.
fn outcome_why(outcome: &StepOutcome) -> &str {
    match outcome {
        StepOutcome::Failed(why) | StepOutcome::Error(why) => why,
        _ => "it did not succeed",
    }
}

/// The step's record if it ran to its end (ok or failed); otherwise the check's unknown (skipped,
/// timed out) or error result.
fn ran<'a>(check: &str, rec: Option<&'a StepRecord>) -> Result<&'a StepRecord, CheckResult> {
    match rec {
        None => Err(CheckResult::unknown(check, "the step has no record")),
        Some(r) => match &r.outcome {
            StepOutcome::Ok | StepOutcome::Failed(_) => Ok(r),
            StepOutcome::Skipped => Err(CheckResult::unknown(
                check,
                format!("{} was skipped in this arm", r.describe()),
            )),
            StepOutcome::Error(why) => Err(CheckResult::error(
                check,
                format!("{} could not be run: {}", r.describe(), snippet(why, 200)),
            )),
            // Killed at its limit: why it did not end is unknown, so no check on the step
            // fails for it.
            StepOutcome::TimedOut(why) => Err(CheckResult::unknown(
                check,
                format!(
                    "{} ran out of time ({}), so it cannot be judged",
                    r.describe(),
                    snippet(why, 200)
                ),
            )),
        },
    }
}

fn evidence_text<'a>(check: &str, obs: &'a Observed, name: &str) -> Result<(&'a str, &'a str), CheckResult> {
    match obs.evidence.get(name) {
        None => Err(CheckResult::unknown(
            check,
            format!("evidence `{name}` was not captured"),
        )),
        Some(e) => match &e.text {
            Some(t) => Ok((t.as_str(), e.file.as_str())),
            None => Err(CheckResult::unknown(
                check,
                format!(
                    "evidence `{name}` from {} is missing: {}",
                    e.guest,
                    snippet(e.problem.as_deref().unwrap_or("not captured"), 200)
                ),
            )),
        },
    }
}

/// `Ok` when `text` meets the expectation, else the rest of a sentence saying how it missed.
fn text_meets(text: &str, expect: &TextExpect) -> Result<(), String> {
    let trimmed = text.trim_end();
    match expect {
        TextExpect::Equals(want) if trimmed == want.trim_end() => Ok(()),
        TextExpect::Equals(want) => Err(format!(
            "was \"{}\", not \"{}\"",
            snippet(trimmed, 160),
            snippet(want, 80)
        )),
        TextExpect::Contains(want) if trimmed.contains(want.as_str()) => Ok(()),
        TextExpect::Contains(want) => Err(format!(
            "does not contain \"{}\" ({} lines{})",
            snippet(want, 80),
            trimmed.lines().count(),
            last_line(trimmed)
        )),
        TextExpect::Matches(p) if trimmed.lines().any(|l| p.matches_line(l)) => Ok(()),
        TextExpect::Matches(p) => Err(format!(
            "has no line matching \"{}\" ({} lines{})",
            p.as_str(),
            trimmed.lines().count(),
            last_line(trimmed)
        )),
    }
}

fn last_line(text: &str) -> String {
    match text.lines().last() {
        Some(l) => format!(", the last: {}", snippet(l, 120)),
        None => String::new(),
    }
}

/// "NLM4_GRANTED_MSG call from filer to imap2" — a match in words.
pub fn describe_match(m: &Match) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(r) = &m.rpc {
        let proc_name = match (r.program, r.version, r.procedure) {
            (Some(p), Some(v), Some(n)) => rpc::procedure_name(p, v, n).map(str::to_string),
            _ => None,
        };
        let what = match (proc_name, r.program, r.procedure) {
            (Some(n), _, _) => n,
            (None, Some(p), Some(n)) => format!("RPC program {p} procedure {n}"),
            (None, Some(p), None) => format!(
                "{} RPC",
                rpc::program_name(p)
                    .map(str::to_string)
                    .unwrap_or_else(|| p.to_string())
            ),
            _ => "RPC".to_string(),
        };
        parts.push(match r.kind {
            Some(RpcKind::Call) => format!("{what} call"),
            Some(RpcKind::Reply) => format!("{what} reply"),
            None => format!("{what} message"),
        });
        if let Some(reclaim) = r.reclaim {
            parts.push(format!("with reclaim={}", u8::from(reclaim)));
        }
        if let Some(stat) = r.nlm_stat {
            parts.push(format!("with NLM stat {stat}"));
        }
    } else {
        parts.push("frame".into());
    }
    if let Some(f) = &m.from {
        parts.push(format!("from {f}"));
    }
    if let Some(t) = &m.to {
        parts.push(format!("to {t}"));
    }
    for (k, v) in [
        ("ethertype", m.ethertype.map(|e| format!("{e:#06x}"))),
        ("ip proto", m.ip_proto.map(|p| p.to_string())),
        ("src", m.src_ip.map(|a| a.to_string())),
        ("dst", m.dst_ip.map(|a| a.to_string())),
        ("src port", m.src_port.map(|p| p.to_string())),
        ("dst port", m.dst_port.map(|p| p.to_string())),
        ("tcp flags", m.tcp_flags.map(tcp_flag_names)),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k} {v}"));
        }
    }
    if let Some(p) = &m.payload_contains {
        parts.push(format!("with \"{}\" in its payload", snippet(p, 40)));
    }
    parts.join(" ")
}

/// "fin|ack" for 0x11: the names a case file writes them with.
fn tcp_flag_names(bits: u8) -> String {
    const NAMES: [&str; 8] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"];
    let names: Vec<&str> = (0..8)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| NAMES[i])
        .collect();
    if names.is_empty() {
        format!("{bits:#04x}")
    } else {
        names.join("|")
    }
}

#[cfg(test)]
mod arms;
mod series;
#[cfg(test)]
mod tests;
