//! Checks on series over time: a client population's success rate in a window, whether its
//! failures drain, a sampled series' peak. Pure: step records and the arm's metrics in,
//! a verdict with its figures out.
//!
//! A population's series are per-second counts made from every attempt it recorded (its step
//! must have run to its end, with its output whole), so a second without a point is a second
//! in which no attempt ended, not a missing sample. A sampled series (a guest's) is different:
//! a gap in it is samples not taken, and a peak judged across a gap is `unknown`.

use crate::case::CheckResult;
use crate::metrics::{ArmMetrics, Point, Series};
use crate::run::record::{Observed, StepOutcome, StepRecord};

/// The population series a check reads: attempts that ended, and those that succeeded.
const ATTEMPTS: &str = "attempts";
const OK: &str = "ok";

/// A sampled series may miss this many intervals in a row before a peak across the gap is
/// unknown: one late sample on a loaded host is not a hole.
const GAP_INTERVALS: f64 = 3.0;

/// The population step's run: its record and its window in workload seconds, or why it
/// cannot be judged.
fn population<'a>(
    check: &str,
    obs: &'a Observed,
    step: &str,
) -> Result<(&'a StepRecord, f64, f64), CheckResult> {
    let Some(rec) = obs.steps.get(step) else {
        return Err(CheckResult::unknown(
            check,
            format!("population step `{step}` has no record"),
        ));
    };
    let why = match &rec.outcome {
        StepOutcome::Ok if rec.truncated => {
            Some("its output was cut short, so some attempts are missing".to_string())
        }
        StepOutcome::Ok => None,
        StepOutcome::Skipped => Some("it was skipped in this arm".into()),
        StepOutcome::Failed(w) | StepOutcome::TimedOut(w) | StepOutcome::Error(w) => {
            Some(format!("the client did not run to its end ({w})"))
        }
    };
    if let Some(why) = why {
        return Err(CheckResult::unknown(check, format!("{}: {why}", rec.describe())));
    }
    match (rec.started_s, rec.ended_s) {
        (Some(a), Some(b)) if b >= a => Ok((rec, a, b)),
        _ => Err(CheckResult::unknown(
            check,
            format!("{} has no start and end times", rec.describe()),
        )),
    }
}

fn series<'a>(check: &str, metrics: &'a ArmMetrics, name: &str) -> Result<&'a Series, CheckResult> {
    metrics
        .get(name)
        .ok_or_else(|| CheckResult::unknown(check, format!("no series `{name}` was recorded")))
}

/// A population step's start and end, and its per-second attempts and successes.
fn attempts_and_ok<'a>(
    check: &str,
    obs: &'a Observed,
    step: &str,
) -> Result<(f64, f64, &'a Series, &'a Series), CheckResult> {
    let (_, start, end) = population(check, obs, step)?;
    let attempts = series(check, &obs.metrics, &format!("{step}.{ATTEMPTS}"))?;
    let ok = series(check, &obs.metrics, &format!("{step}.{OK}"))?;
    Ok((start, end, attempts, ok))
}

/// The sum of a count series' points with `from <= t < to`.
fn sum(points: &[Point], from: f64, to: f64) -> f64 {
    // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0".
    points
        .iter()
        .filter(|p| p.t >= from && p.t < to)
        .map(|p| p.v)
        .sum::<f64>()
        + 0.0
}

fn pct(milli: u64) -> String {
    let p = milli as f64 / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// `success_rate`: the share of attempts ending in `[start+from, start+to)` that succeeded.
pub fn success_rate(
    check: &str,
    obs: &Observed,
    step: &str,
    at_least_milli: u64,
    from: f64,
    to: Option<f64>,
) -> CheckResult {
    let (start, end, attempts, ok) = match attempts_and_ok(check, obs, step) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (a, b) = (start + from, to.map_or(end + 1.0, |t| (start + t).min(end + 1.0)));
    let n = sum(&attempts.points, a, b);
    let good = sum(&ok.points, a, b);
    let window = format!("population `{step}` ending t={a:.0}–{:.0} s", b.min(end));
    if n <= 0.0 {
        return CheckResult::unknown(check, format!("no attempt of {window}: no rate to judge"));
    }
    let rate = good / n;
    let said = format!(
        "{good:.0} of {n:.0} attempts of {window} succeeded ({:.1} %)",
        rate * 100.0
    );
    if (rate * 1000.0).round() as u64 >= at_least_milli {
        CheckResult::new(check, crate::case::Verdict::Pass, Some(said)).expect("one line")
    } else {
        CheckResult::fail(check, format!("{said}, under {}", pct(at_least_milli)))
    }
}

/// `drains_within`: the first second from which every window of `window` seconds (to the
/// population's end) that saw attempts end had a failure rate under the bound; within
/// `within` of the population's start, or not.
pub fn drains_within(
    check: &str,
    obs: &Observed,
    step: &str,
    within: f64,
    below_milli: u64,
    window: f64,
) -> CheckResult {
    let (start, end, attempts, ok) = match attempts_and_ok(check, obs, step) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let seconds = ((end - start).ceil() as usize).max(1);
    let bins = |s: &Series| {
        let mut b = vec![0.0; seconds + 1];
        for p in &s.points {
            let i = (p.t - start).floor();
            if i >= 0.0 && (i as usize) <= seconds {
                b[i as usize] += p.v;
            }
        }
        b
    };
    let (n, good) = (bins(attempts), bins(ok));
    if n.iter().sum::<f64>() <= 0.0 {
        return CheckResult::unknown(
            check,
            format!("no attempt of population `{step}` ended: no rate to judge"),
        );
    }
    let w = (window.round() as usize).max(1);
    let bound = below_milli as f64 / 1000.0;
    // The last window (from its start second) whose failure rate was at or over the bound.
    let mut last_bad: Option<(usize, f64, f64)> = None;
    for u in 0..=seconds {
        let hi = (u + w).min(seconds + 1);
        let tried: f64 = n[u..hi].iter().sum();
        if tried <= 0.0 {
            continue;
        }
        let failed = tried - good[u..hi].iter().sum::<f64>();
        if failed / tried >= bound {
            last_bad = Some((u, failed, tried));
        }
    }
    let what = format!(
        "population `{step}` (t={start:.0}–{end:.0} s; failure rate over {w} s windows, bound {})",
        pct(below_milli)
    );
    match last_bad {
        None => CheckResult::new(
            check,
            crate::case::Verdict::Pass,
            Some(format!("{what}: under the bound from its start")),
        )
        .expect("one line"),
        Some((u, failed, tried)) => {
            let drained = (u + 1) as f64;
            let window_said = format!(
                "{failed:.0} of {tried:.0} attempts ending t={:.0}–{:.0} s failed",
                start + u as f64,
                (start + (u + w) as f64).min(end)
            );
            if u + w > seconds {
                CheckResult::fail(
                    check,
                    format!("{what} never drained: {window_said}, the last window of its run"),
                )
            } else if drained > within {
                CheckResult::fail(
                    check,
                    format!(
                        "{what} drained only {drained:.0} s after its start, over the {within:.0} s allowed: {window_said}"
                    ),
                )
            } else {
                CheckResult::new(
                    check,
                    crate::case::Verdict::Pass,
                    Some(format!(
                        "{what} drained {drained:.0} s after its start (last window over it: {window_said})"
                    )),
                )
                .expect("one line")
            }
        }
    }
}

/// `series_peak`: the series' highest sample in the window, when the samples cover it.
pub fn series_peak(
    check: &str,
    obs: &Observed,
    name: &str,
    at_most: f64,
    during: Option<&str>,
) -> CheckResult {
    let s = match series(check, &obs.metrics, name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (from, to, within) = match during {
        None => (f64::NEG_INFINITY, f64::INFINITY, String::new()),
        Some(step) => match obs
            .steps
            .get(step)
            .and_then(|r| Some((r, r.started_s?, r.ended_s?)))
        {
            Some((r, a, b)) => (a, b, format!(" while {} ran", r.describe())),
            None => {
                return CheckResult::unknown(
                    check,
                    format!("step `{step}` has no start and end times to bound the series"),
                )
            }
        },
    };
    let inside: Vec<&Point> = s.points.iter().filter(|p| p.t >= from && p.t <= to).collect();
    // The first sample at the highest value: when it was first reached.
    let Some(peak) = inside
        .iter()
        .copied()
        .reduce(|a, b| if b.v > a.v { b } else { a })
    else {
        return CheckResult::unknown(check, format!("series `{name}` has no sample{within}"));
    };
    let interval = if s.points.len() > 1 && obs.metrics.interval_s > 0.0 {
        obs.metrics.interval_s
    } else {
        1.0
    };
    let limit = GAP_INTERVALS * interval;
    // Holes: between samples, and at the window's edges when it is bounded.
    let mut edges: Vec<f64> = Vec::new();
    if from.is_finite() {
        edges.push(from);
    }
    edges.extend(inside.iter().map(|p| p.t));
    if to.is_finite() {
        edges.push(to);
    }
    let hole = edges.windows(2).find(|w| w[1] - w[0] > limit);
    let unit = if s.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", s.unit)
    };
    let said = format!(
        "series `{name}` peaked at {}{unit} at t={:.0} s{within}",
        fmt_num(peak.v),
        peak.t
    );
    if peak.v > at_most {
        // A peak over the bound is seen whatever was missed.
        return CheckResult::fail(check, format!("{said}, over {}", fmt_num(at_most)));
    }
    if let Some(w) = hole {
        return CheckResult::unknown(
            check,
            format!(
                "{said}, but no sample was taken between t={:.0} s and t={:.0} s: a higher one may have been missed",
                w[0], w[1]
            ),
        );
    }
    CheckResult::new(
        check,
        crate::case::Verdict::Pass,
        Some(format!("{said} (at most {} allowed)", fmt_num(at_most))),
    )
    .expect("one line")
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Origin;

    fn counts(step: &str, metric: &str, per_second: &[(f64, f64)]) -> Series {
        Series {
            origin: Origin::Population(step.into()),
            metric: metric.into(),
            unit: "per s".into(),
            limit: None,
            points: per_second.iter().map(|&(t, v)| Point { t, v }).collect(),
        }
    }

    /// A population step `storm` from t=10 to t=130 s whose attempts fail (10 a second, none
    /// ok) until `fails_until` and then succeed (10 a second, all ok).
    fn storm(fails_until: f64) -> Observed {
        let mut obs = Observed::default();
        let mut rec = StepRecord::new("storm", Some("client"));
        rec.started_s = Some(10.0);
        rec.ended_s = Some(130.0);
        rec.outcome = StepOutcome::Ok;
        obs.steps.insert("storm".into(), rec);
        let ts: Vec<f64> = (10..130).map(f64::from).collect();
        let attempts: Vec<(f64, f64)> = ts.iter().map(|&t| (t, 10.0)).collect();
        let ok: Vec<(f64, f64)> = ts
            .iter()
            .filter(|&&t| t >= fails_until)
            .map(|&t| (t, 10.0))
            .collect();
        obs.metrics.interval_s = 1.0;
        obs.metrics.series.push(counts("storm", "attempts", &attempts));
        obs.metrics.series.push(counts("storm", "ok", &ok));
        obs
    }

    fn said(r: &CheckResult) -> String {
        format!(
            "{}: {}",
            r.verdict().as_str(),
            r.explanation().unwrap_or_default()
        )
    }

    #[test]
    fn a_success_rate_counts_the_attempts_ending_in_its_window() {
        let obs = storm(50.0);
        insta::assert_snapshot!(
            [
                success_rate("r", &obs, "storm", 950, 0.0, None),
                success_rate("r", &obs, "storm", 950, 40.0, None),
                success_rate("r", &obs, "storm", 950, 0.0, Some(20.0)),
            ]
            .iter()
            .map(said)
            .collect::<Vec<_>>()
            .join("\n"),
            @r"
        fail: 800 of 1200 attempts of population `storm` ending t=10–130 s succeeded (66.7 %), under 95 %
        pass: 800 of 800 attempts of population `storm` ending t=50–130 s succeeded (100.0 %)
        fail: 0 of 200 attempts of population `storm` ending t=10–30 s succeeded (0.0 %), under 95 %
        "
        );
    }

    #[test]
    fn a_population_that_did_not_run_whole_is_unknown_never_a_rate() {
        let mut obs = storm(50.0);
        obs.steps.get_mut("storm").unwrap().truncated = true;
        assert_eq!(
            success_rate("r", &obs, "storm", 950, 0.0, None).verdict(),
            crate::case::Verdict::Unknown
        );
        let mut obs = storm(50.0);
        obs.steps.get_mut("storm").unwrap().outcome = StepOutcome::TimedOut("limit 200 s".into());
        assert_eq!(
            drains_within("d", &obs, "storm", 90.0, 50, 10.0).verdict(),
            crate::case::Verdict::Unknown
        );
        let mut obs = storm(50.0);
        obs.metrics.series.retain(|s| s.metric != "ok");
        insta::assert_snapshot!(said(&drains_within("d", &obs, "storm", 90.0, 50, 10.0)), @"unknown: no series `storm.ok` was recorded");
        let mut obs = storm(50.0);
        obs.metrics.series.iter_mut().for_each(|s| s.points.clear());
        insta::assert_snapshot!(said(&success_rate("r", &obs, "storm", 950, 0.0, None)), @"unknown: no attempt of population `storm` ending t=10–130 s: no rate to judge");
    }

    #[test]
    fn a_storm_drains_when_its_last_failing_window_ends_and_never_when_it_reaches_the_end() {
        insta::assert_snapshot!(
            [
                drains_within("d", &storm(50.0), "storm", 90.0, 50, 10.0),
                drains_within("d", &storm(50.0), "storm", 30.0, 50, 10.0),
                drains_within("d", &storm(200.0), "storm", 90.0, 50, 10.0),
                drains_within("d", &storm(0.0), "storm", 90.0, 50, 10.0),
            ]
            .iter()
            .map(said)
            .collect::<Vec<_>>()
            .join("\n"),
            @r"
        pass: population `storm` (t=10–130 s; failure rate over 10 s windows, bound 5 %) drained 40 s after its start (last window over it: 10 of 100 attempts ending t=49–59 s failed)
        fail: population `storm` (t=10–130 s; failure rate over 10 s windows, bound 5 %) drained only 40 s after its start, over the 30 s allowed: 10 of 100 attempts ending t=49–59 s failed
        fail: population `storm` (t=10–130 s; failure rate over 10 s windows, bound 5 %) never drained: 10 of 10 attempts ending t=129–130 s failed, the last window of its run
        pass: population `storm` (t=10–130 s; failure rate over 10 s windows, bound 5 %): under the bound from its start
        "
        );
    }

    fn sampled(points: &[(f64, f64)]) -> Observed {
        let mut obs = storm(0.0);
        obs.metrics.series.push(Series {
            origin: Origin::Guest("imap1".into()),
            metric: "procs.imap-login".into(),
            unit: "processes".into(),
            limit: Some(100.0),
            points: points.iter().map(|&(t, v)| Point { t, v }).collect(),
        });
        obs
    }

    #[test]
    fn a_peak_across_missing_samples_is_unknown_unless_it_is_already_over() {
        let whole: Vec<(f64, f64)> = (0..140).map(|t| (f64::from(t), f64::from(t % 50))).collect();
        let holed: Vec<(f64, f64)> = whole
            .iter()
            .copied()
            .filter(|(t, _)| !(60.0..70.0).contains(t))
            .collect();
        let s = "imap1.procs.imap-login";
        insta::assert_snapshot!(
            [
                series_peak("p", &sampled(&whole), s, 60.0, Some("storm")),
                series_peak("p", &sampled(&whole), s, 40.0, Some("storm")),
                series_peak("p", &sampled(&holed), s, 60.0, Some("storm")),
                series_peak("p", &sampled(&holed), s, 40.0, None),
                series_peak("p", &sampled(&whole), "imap1.procs.imap", 40.0, None),
            ]
            .iter()
            .map(said)
            .collect::<Vec<_>>()
            .join("\n"),
            @r"
        pass: series `imap1.procs.imap-login` peaked at 49 processes at t=49 s while step `storm` on client (t=10.0–130.0 s) ran (at most 60 allowed)
        fail: series `imap1.procs.imap-login` peaked at 49 processes at t=49 s while step `storm` on client (t=10.0–130.0 s) ran, over 40
        unknown: series `imap1.procs.imap-login` peaked at 49 processes at t=49 s while step `storm` on client (t=10.0–130.0 s) ran, but no sample was taken between t=59 s and t=70 s: a higher one may have been missed
        fail: series `imap1.procs.imap-login` peaked at 49 processes at t=49 s, over 40
        unknown: no series `imap1.procs.imap` was recorded
        "
        );
    }
}
