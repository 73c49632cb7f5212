//! A client population's output (what `population.pl` printed) read into attempt records and
//! per-second series: attempts and their outcomes, connections open, latency percentiles and
//! the client's own CPU.
//!
//! Times: the client prints the guest's uptime on every line, and its first line is its own
//! start. That line is placed at the step's start on the workload's clock, and every other
//! line as far after it as its uptime says.
//!
//! Architecture invariant: pure, and total over any input — the output is guest bytes, so a
//! line that does not parse, or whose time is not after the start and within a day of it, is
//! skipped and counted, never trusted and never a panic. Per-second counts are zero in a
//! second where the client ran and nothing ended (a real zero); a latency or a connection
//! count that was not measured is absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Origin, Point, Series};

/// How one attempt of one user ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Ok,
    /// The client gave up after its attempt timeout.
    Timeout,
    /// Turned away: connection refused or closed before the greeting, or the login answered
    /// with a limit (BYE, `NO [UNAVAILABLE]`, `-ERR [SYS/TEMP]`, …).
    Refused,
    Error,
}

/// One finished attempt, as `population/<step>.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it ended, seconds since the workload started.
    pub t: f64,
    /// The user's number (`%i`).
    pub user: u32,
    /// Attempts since the user's last success, this one included (1: a first try).
    #[serde(rename = "try")]
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// Connect start to the last answer, or to giving up.
    pub latency_ms: f64,
    /// Where it ended: `connect`, `greeting`, `login`, `command1`, …
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One worker's once-a-second report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenSample {
    pub t: f64,
    pub worker: u32,
    /// Its sockets open (connecting, in a session, logging out or draining).
    pub open: u32,
    /// Its own user+system CPU seconds so far.
    pub cpu_s: f64,
}

/// The client's closing line.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub attempts: u64,
    pub ok: u64,
    pub timeout: u64,
    pub refused: u64,
    pub error: u64,
    pub users: u64,
    /// Users without a single successful attempt.
    pub never_ok: u64,
    /// Connections open at once, summed over workers at one-second ticks.
    pub peak_open: u64,
    /// Every client process's user+system time over the wall time, % of one CPU.
    pub cpu_pct: f64,
    pub wall_s: f64,
}

/// A population's output, read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// The client's start, seconds since the workload started (the step's start).
    pub start: f64,
    /// The last time any line was printed.
    pub end: f64,
    pub attempts: Vec<Attempt>,
    pub open: Vec<OpenSample>,
    /// `None` when the client did not get to its end (killed, crashed).
    pub summary: Option<Summary>,
    /// Lines that fit no pattern (or whose times could not be placed).
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PopulationError {
    #[error(
        "the client printed no `population start` line: its times cannot be placed on the workload's clock"
    )]
    NoStart,
}

/// A line further than this from the start is taken for garbage (and would stretch every
/// series over days).
const MAX_SPAN_S: f64 = 86_400.0;

/// Read the client's output; `started_s`: the step's start, seconds since the workload started.
pub fn parse(output: &str, started_s: f64) -> Result<Transcript, PopulationError> {
    let mut origin = None;
    let mut tr = Transcript {
        start: started_s,
        end: started_s,
        ..Transcript::default()
    };
    for line in output.lines() {
        let mut words = line.split(' ');
        let up = words
            .next()
            .and_then(|w| w.parse::<f64>().ok())
            .filter(|u| u.is_finite());
        let (Some(up), Some(kind)) = (up, words.next()) else {
            tr.skipped += 1;
            continue;
        };
        let rest: Vec<&str> = words.collect();
        let Some(up0) = origin else {
            if kind == "population" && rest.first() == Some(&"start") {
                origin = Some(up);
            } else {
                tr.skipped += 1;
            }
            continue;
        };
        let rel = up - up0;
        if !(0.0..=MAX_SPAN_S).contains(&rel) {
            tr.skipped += 1;
            continue;
        }
        // The client prints milliseconds: finer digits are float noise that would move an
        // attempt at 11.000 into second 10.
        let t = ((started_s + rel) * 1000.0).round() / 1000.0;
        let read = match kind {
            "attempt" => attempt(t, &rest).map(|a| tr.attempts.push(a)),
            "open" => open_sample(t, &rest).map(|o| tr.open.push(o)),
            "population" if rest.first() == Some(&"end") => summary(&rest[1..]).map(|s| tr.summary = Some(s)),
            _ => None,
        };
        match read {
            Some(()) => tr.end = tr.end.max(t),
            None => tr.skipped += 1,
        }
    }
    if origin.is_none() {
        return Err(PopulationError::NoStart);
    }
    Ok(tr)
}

/// `USER TRY OUTCOME MS PHASE [REASON…]`.
fn attempt(t: f64, w: &[&str]) -> Option<Attempt> {
    let [user, attempt, outcome, ms, phase, reason @ ..] = w else {
        return None;
    };
    let outcome = match *outcome {
        "ok" => AttemptOutcome::Ok,
        "timeout" => AttemptOutcome::Timeout,
        "refused" => AttemptOutcome::Refused,
        "error" => AttemptOutcome::Error,
        _ => return None,
    };
    let latency_ms = ms.parse::<f64>().ok().filter(|m| m.is_finite() && *m >= 0.0)?;
    let phase_ok = !phase.is_empty() && phase.len() <= 32 && phase.bytes().all(|b| b.is_ascii_alphanumeric());
    Some(Attempt {
        t,
        user: user.parse().ok()?,
        attempt: attempt.parse().ok()?,
        outcome,
        latency_ms,
        phase: phase_ok.then(|| phase.to_string())?,
        reason: (!reason.is_empty()).then(|| {
            let r = reason.join(" ");
            r.chars().take(200).collect()
        }),
    })
}

/// `WORKER OPEN CPU_S`.
fn open_sample(t: f64, w: &[&str]) -> Option<OpenSample> {
    let [worker, open, cpu] = w else { return None };
    Some(OpenSample {
        t,
        worker: worker.parse().ok()?,
        open: open.parse().ok()?,
        cpu_s: cpu.parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 0.0)?,
    })
}

/// `key=value …`; every key of [`Summary`] must be there.
fn summary(w: &[&str]) -> Option<Summary> {
    let kv: BTreeMap<&str, &str> = w.iter().filter_map(|p| p.split_once('=')).collect();
    let n = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
    let f = |k: &str| {
        kv.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|x| x.is_finite())
    };
    Some(Summary {
        attempts: n("attempts")?,
        ok: n("ok")?,
        timeout: n("timeout")?,
        refused: n("refused")?,
        error: n("error")?,
        users: n("users")?,
        never_ok: n("never_ok")?,
        peak_open: n("peak_open")?,
        cpu_pct: f("cpu_pct")?,
        wall_s: f("wall_s")?,
    })
}

/// The population's per-second series, named `<step>.<metric>`: see [`series_of`].
pub fn series(step: &str, output: &str, started_s: f64) -> Result<Vec<Series>, PopulationError> {
    Ok(series_of(step, &parse(output, started_s)?))
}

/// Per second of the workload (points at whole seconds, each for the second that follows),
/// from the client's start to its last line:
/// - `attempts`, `ok`, `timeouts`, `refused`, `errors`, `retries` (attempts with try > 1):
///   attempts that ended in that second;
/// - `latency.p50`, `latency.p95`, `latency.max` (ms, nearest rank) of those attempts; absent
///   in a second where none ended;
/// - `active`: connections open at the second's last tick, summed over the workers; absent
///   when a worker with connections open did not report in it;
/// - `cpu`: the client workers' CPU in that second, % of one CPU; absent when a worker still
///   running did not report in it.
pub fn series_of(step: &str, tr: &Transcript) -> Vec<Series> {
    let first = tr.start.floor();
    let bins = (tr.end.floor() - first) as usize + 1;
    let bin = |t: f64| ((t.floor() - first).max(0.0) as usize).min(bins - 1);
    let at = |i: usize| first + i as f64;
    let mut ended: Vec<Vec<&Attempt>> = vec![Vec::new(); bins];
    for a in &tr.attempts {
        ended[bin(a.t)].push(a);
    }
    let origin = Origin::Population(step.to_string());
    let make = |metric: &str, unit: &str, points: Vec<Point>| Series {
        origin: origin.clone(),
        metric: metric.into(),
        unit: unit.into(),
        limit: None,
        points,
    };
    let count = |keep: &dyn Fn(&Attempt) -> bool| -> Vec<Point> {
        ended
            .iter()
            .enumerate()
            .map(|(i, list)| Point {
                t: at(i),
                v: list.iter().filter(|a| keep(a)).count() as f64,
            })
            .collect()
    };
    let quantile = |q: f64| -> Vec<Point> {
        ended
            .iter()
            .enumerate()
            .filter(|(_, list)| !list.is_empty())
            .map(|(i, list)| {
                let mut ms: Vec<f64> = list.iter().map(|a| a.latency_ms).collect();
                ms.sort_by(f64::total_cmp);
                let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
                Point {
                    t: at(i),
                    v: ms[rank - 1],
                }
            })
            .collect()
    };
    let is = |o: AttemptOutcome| move |a: &Attempt| a.outcome == o;
    let (active, cpu) = workers(tr, bins, first);
    vec![
        make("attempts", "per s", count(&|_| true)),
        make("ok", "per s", count(&is(AttemptOutcome::Ok))),
        make("timeouts", "per s", count(&is(AttemptOutcome::Timeout))),
        make("refused", "per s", count(&is(AttemptOutcome::Refused))),
        make("errors", "per s", count(&is(AttemptOutcome::Error))),
        make("retries", "per s", count(&|a| a.attempt > 1)),
        make("active", "connections", active),
        make("latency.p50", "ms", quantile(0.5)),
        make("latency.p95", "ms", quantile(0.95)),
        make("latency.max", "ms", quantile(1.0)),
        make("cpu", "% of one CPU", cpu),
    ]
}

/// `active` and `cpu` from the workers' ticks.
fn workers(tr: &Transcript, bins: usize, first: f64) -> (Vec<Point>, Vec<Point>) {
    // Per worker, per second: its last sample in that second.
    let mut last: BTreeMap<u32, BTreeMap<usize, OpenSample>> = BTreeMap::new();
    for s in &tr.open {
        let b = (s.t.floor() - first).max(0.0) as usize;
        if b < bins {
            last.entry(s.worker).or_default().insert(b, *s);
        }
    }
    let (mut active, mut cpu) = (Vec::new(), Vec::new());
    for b in 0..bins {
        let (mut open, mut open_known) = (0.0, true);
        let (mut busy, mut cpu_known) = (0.0, true);
        for ticks in last.values() {
            let here = ticks.get(&b);
            let before = ticks.range(..b).next_back().map(|(_, s)| s);
            let after = ticks.range(b + 1..).next().is_some();
            // Open: its sample in this second, else its last one if that held nothing (an
            // idle or finished worker holds no connection), else unknown.
            match here.or(before) {
                Some(s) if here.is_some() || s.open == 0 => open += f64::from(s.open),
                Some(_) => open_known = false,
                None => {} // not started yet
            }
            // CPU: from its previous sample to this second's. Unknown in its first second
            // (what it spent before its first sample is not known), and in a second it did
            // not report in though it reports later.
            match (here, before) {
                (Some(h), Some(p)) if h.t > p.t => busy += (h.cpu_s - p.cpu_s).max(0.0) / (h.t - p.t),
                (Some(_), _) => cpu_known = false,
                (None, _) if after && before.is_some() => cpu_known = false,
                (None, _) => {}
            }
        }
        let t = first + b as f64;
        if open_known && !last.is_empty() {
            active.push(Point { t, v: open });
        }
        if cpu_known && !last.is_empty() {
            cpu.push(Point {
                t,
                v: (busy * 1000.0).round() / 10.0,
            });
        }
    }
    (active, cpu)
}

/// The attempts as JSON lines, for `population/<step>.jsonl`.
pub fn jsonl(tr: &Transcript) -> String {
    tr.attempts
        .iter()
        .filter_map(|a| serde_json::to_string(a).ok())
        .map(|l| l + "\n")
        .collect()
}

#[cfg(test)]
mod tests;
