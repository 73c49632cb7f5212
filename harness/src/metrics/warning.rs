//! The earliest warning: for every series of an arm, the first time it left its normal range,
//! and how long that was ahead of the first user-visible symptom (the first login timeout).
//! Ordered by that lead time, the rows name the monitoring point that would have warned first.
//!
//! # The normal range: which baseline, and why
//!
//! A series' normal range comes from one of two baselines; the caller says which.
//!
//! - [`Baseline::Reference`] — the healthy arm of the same run and case: the same workload
//!   without the fault. A series' range is taken from the healthy arm's series of the same full
//!   name, over all of that arm's samples. This is preferred whenever the case has such an arm:
//!   many series move with load alone — the number of `imap` processes jumps when the client
//!   population starts, the per-second SYN count with it — and against a quiet window before the
//!   fault they would "warn" though nothing is wrong. The healthy arm saw the same load, so
//!   only what the fault changed falls outside its range.
//! - [`Baseline::Window`] — the arm's own samples between `from_s` and `to_s` (its pre-fault
//!   period). Used when there is no healthy arm to compare with (a case run arm by arm, or a
//!   series only this arm has), and for series the workload does not drive. Its rows say so, so
//!   a reader can discount a load-driven series that "warned" when the population started.
//!
//! # The rule
//!
//! Robust z-score (cascade reference §5, "baseline z-score … use a robust σ for short
//! windows"): the baseline's median `m` and `σ = max(1.4826·MAD, floor)`. A sample is out of
//! range when `|x − m| > 3σ` **and** it lies outside the baseline's own `[min, max]`; a series
//! has left its range at the first of [`SUSTAIN`] consecutive out-of-range samples on the same
//! side (a sample after a gap in the series is not consecutive: gaps are not filled). One-off
//! spikes are not warnings.
//!
//! The floor: `max(q, 5 % of |m|)`, with `q = 1` when every baseline value is a whole number (a
//! count — processes, calls, frames per second — cannot move by less than one, so a flat count
//! must move by more than three to warn) and otherwise `q` = the smallest gap between two
//! distinct baseline values (the series' own resolution). The 5 % keeps a large, very steady
//! figure (a latency of 120 ms ± 0) from alarming on a change a user never notices. σ is never
//! zero, so a flat baseline (0 processes before the population) does not turn every change
//! into an alarm. The `[min, max]` condition keeps a baseline that happened to be tight around
//! its median from flagging values it has itself already shown.
//!
//! Why not EWMA or CUSUM (§5)? Both are tuned to find *small* sustained shifts (EWMA with
//! λ = 0.25, L = 3 needs 11 samples on average for a 1σ shift; CUSUM needs the shift size δ
//! chosen beforehand). The shifts that precede a login storm are large — process counts at
//! their limit, lock tables many times their size — and what we report is *when* the series
//! left its range: a smoothed statistic crosses its limit samples after the step, which would
//! shrink every lead time, and by an amount that depends on the step's height. Two consecutive
//! 3σ samples on a Gaussian baseline are a false alarm about once in 500,000 samples (in
//! control), and a step of 4σ or more is found at its first sample.
//!
//! Missing data: a series whose baseline has fewer than [`MIN_BASELINE`] samples (or none: the
//! healthy arm has no such series) is listed as "no baseline", never as a warning; a series
//! with no samples to judge is listed as such; neither is ever in range by default.
//!
//! Architecture invariant: pure — series in, rows out; no clock, no I/O. The rows' order is
//! total (ties broken by the series' name), so the table is the same for the same data.

use serde::{Deserialize, Serialize};

use super::{ArmMetrics, Point, Series};

/// Fewer baseline samples than this and a series has no baseline.
pub const MIN_BASELINE: usize = 5;
/// How many robust σ from the median a sample must be to be out of range.
pub const K_SIGMA: f64 = 3.0;
/// Consecutive out-of-range samples (same side, no gap between) before a series counts as out.
pub const SUSTAIN: usize = 2;
/// The part of |median| below which σ is not allowed to fall.
pub const FLOOR_FRACTION: f64 = 0.05;
/// MAD to σ for normally distributed data.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Where a series' normal range comes from (module docs: which and why).
#[derive(Debug, Clone, Copy)]
pub enum Baseline<'a> {
    /// The healthy arm of the same run and case: its series of the same full name.
    Reference(&'a ArmMetrics),
    /// The arm's own samples with `from_s <= t <= to_s`; only later samples are judged.
    Window { from_s: f64, to_s: f64 },
}

/// Which baseline a row's range came from, as run.json records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BaselineKind {
    /// The healthy arm of the same run.
    Reference,
    /// The arm's own samples in this window.
    Window { from_s: f64, to_s: f64 },
}

/// A series' normal range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    #[serde(flatten)]
    pub kind: BaselineKind,
    /// Baseline samples used.
    pub n: usize,
    /// `None` when there were too few samples (`n < MIN_BASELINE`).
    pub median: Option<f64>,
    pub sigma: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// What became of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It left its normal range (`first_out_s` says when).
    Out,
    /// Every judged sample stayed in range.
    InRange,
    /// It had a baseline but no sample to judge.
    NoSamples,
    /// Too few baseline samples: no range, no judgement.
    NoBaseline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Up,
    Down,
}

/// One row of the earliest-warning table (one series of the arm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// The series' full name (`imap1.procs.imap-login`).
    pub series: String,
    pub unit: String,
    pub status: Status,
    pub baseline: Range,
    /// The first of the sustained out-of-range samples: when the series left its range.
    pub first_out_s: Option<f64>,
    /// The value at `first_out_s`.
    pub value: Option<f64>,
    /// When the sustained rule was met (the last of the [`SUSTAIN`] samples): when a monitor
    /// using this rule would have alarmed.
    pub confirmed_s: Option<f64>,
    pub direction: Option<Direction>,
    /// `first_failure_s − first_out_s`: positive means it warned before the first symptom;
    /// `None` when it never left its range or no user-visible failure happened.
    pub lead_s: Option<f64>,
}

/// Every series of `arm` judged against `baseline`, ordered: series that left their range,
/// earliest first (so by lead time, longest first), then series that stayed in range, then
/// those with no samples, then those with no baseline; by name within each.
pub fn earliest_warnings(
    arm: &ArmMetrics,
    baseline: Baseline<'_>,
    first_failure_s: Option<f64>,
) -> Vec<Warning> {
    let mut rows: Vec<Warning> = arm
        .series
        .iter()
        .map(|s| judge(s, arm.interval_s, baseline, first_failure_s))
        .collect();
    rows.sort_by(|a, b| {
        a.status
            .cmp(&b.status)
            .then_with(|| match (a.first_out_s, b.first_out_s) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.series.cmp(&b.series))
    });
    rows
}

fn judge(s: &Series, interval_s: f64, baseline: Baseline<'_>, first_failure_s: Option<f64>) -> Warning {
    let usable = |p: &&Point| p.t.is_finite() && p.v.is_finite();
    let (kind, base, judged): (BaselineKind, Vec<f64>, Vec<Point>) = match baseline {
        Baseline::Reference(healthy) => (
            BaselineKind::Reference,
            healthy
                .get(&s.full_name())
                .map(|h| h.points.iter().filter(usable).map(|p| p.v).collect())
                .unwrap_or_default(),
            s.points.iter().filter(usable).copied().collect(),
        ),
        Baseline::Window { from_s, to_s } => (
            BaselineKind::Window { from_s, to_s },
            s.points
                .iter()
                .filter(usable)
                .filter(|p| p.t >= from_s && p.t <= to_s)
                .map(|p| p.v)
                .collect(),
            s.points
                .iter()
                .filter(usable)
                .filter(|p| p.t > to_s)
                .copied()
                .collect(),
        ),
    };
    let mut row = Warning {
        series: s.full_name(),
        unit: s.unit.clone(),
        status: Status::NoBaseline,
        baseline: Range {
            kind,
            n: base.len(),
            median: None,
            sigma: None,
            min: None,
            max: None,
        },
        first_out_s: None,
        value: None,
        confirmed_s: None,
        direction: None,
        lead_s: None,
    };
    let Some(stats) = Stats::of(&base) else {
        return row;
    };
    row.baseline.median = Some(stats.median);
    row.baseline.sigma = Some(stats.sigma);
    row.baseline.min = Some(stats.min);
    row.baseline.max = Some(stats.max);
    if judged.is_empty() {
        row.status = Status::NoSamples;
        return row;
    }
    row.status = Status::InRange;
    // A run of out-of-range samples on one side; broken by an in-range sample, a change of
    // side, or a gap (a missing sample is not evidence either way).
    let mut run: Option<(usize, Direction, usize)> = None; // (start index, side, length)
    for (i, p) in judged.iter().enumerate() {
        let side = stats.side(p.v);
        let contiguous = i > 0 && !is_gap(judged[i - 1].t, p.t, interval_s);
        run = match (side, run) {
            (None, _) => None,
            (Some(d), Some((start, rd, len))) if rd == d && contiguous => Some((start, d, len + 1)),
            (Some(d), _) => Some((i, d, 1)),
        };
        if let Some((start, d, len)) = run {
            if len >= SUSTAIN {
                let first = judged[start];
                row.status = Status::Out;
                row.first_out_s = Some(first.t);
                row.value = Some(first.v);
                row.confirmed_s = Some(p.t);
                row.direction = Some(d);
                row.lead_s = first_failure_s.map(|f| f - first.t);
                break;
            }
        }
    }
    row
}

/// Two samples further apart than one and a half sampling intervals have a sample missing
/// between them. An unknown interval (0) makes no gaps.
fn is_gap(prev_t: f64, t: f64, interval_s: f64) -> bool {
    interval_s > 0.0 && t - prev_t > 1.5 * interval_s
}

struct Stats {
    median: f64,
    sigma: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(values: &[f64]) -> Option<Stats> {
        if values.len() < MIN_BASELINE {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let median = median_sorted(&v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mad = median_sorted(&dev);
        let quantum = if v.iter().all(|x| x.fract() == 0.0) {
            1.0
        } else {
            // The smallest step between distinct values; a constant (non-whole) baseline has
            // none, and its floor is the 5 % of its median (not zero: it is not a whole number).
            let step = v
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|d| *d > 0.0)
                .fold(f64::INFINITY, f64::min);
            if step.is_finite() {
                step
            } else {
                0.0
            }
        };
        let floor = quantum.max(FLOOR_FRACTION * median.abs());
        let sigma = (MAD_TO_SIGMA * mad).max(floor);
        Some(Stats {
            median,
            sigma,
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    /// The side a value is out of range on, or `None` when it is in range.
    fn side(&self, x: f64) -> Option<Direction> {
        if (x - self.median).abs() <= K_SIGMA * self.sigma {
            return None;
        }
        if x > self.max {
            Some(Direction::Up)
        } else if x < self.min {
            Some(Direction::Down)
        } else {
            None
        }
    }
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One plain-text line per row, for a summary: `imap1.procs.imap-login left its normal range
/// at t=41.0 s (up: 97 vs 12 ± 2 processes), 23.0 s before the first login timeout`.
pub fn summary_lines(rows: &[Warning]) -> Vec<String> {
    rows.iter().map(summary_line).collect()
}

/// The summary line of one row.
pub fn summary_line(w: &Warning) -> String {
    let r = &w.baseline;
    let from = match r.kind {
        BaselineKind::Reference => "the healthy arm".to_string(),
        BaselineKind::Window { from_s, to_s } => format!("t={from_s:.1}–{to_s:.1} s"),
    };
    let range = match (r.median, r.sigma) {
        (Some(m), Some(s)) => format!("{} ± {}{}", num(m), num(s), unit_suffix(&w.unit)),
        _ => String::new(),
    };
    match w.status {
        Status::Out => {
            let (t, v) = (w.first_out_s.unwrap_or(f64::NAN), w.value.unwrap_or(f64::NAN));
            let dir = match w.direction {
                Some(Direction::Down) => "down",
                _ => "up",
            };
            let when = match w.lead_s {
                Some(l) if l > 0.0 => format!("{l:.1} s before the first login timeout"),
                Some(l) if l < 0.0 => format!("{:.1} s after the first login timeout", -l),
                Some(_) => "at the first login timeout".to_string(),
                None => "no login timed out".to_string(),
            };
            let sep = if w.lead_s.is_some() { "," } else { ";" };
            format!(
                "{} left its normal range at t={t:.1} s ({dir}: {} vs {range}, baseline: {from}){sep} {when}",
                w.series,
                num(v)
            )
        }
        Status::InRange => format!(
            "{} stayed in its normal range ({range}, baseline: {from})",
            w.series
        ),
        Status::NoSamples => {
            format!("{} has no samples to judge ({range}, baseline: {from})", w.series)
        }
        Status::NoBaseline => format!(
            "{} has no baseline ({} sample{} from {from}, {MIN_BASELINE} needed)",
            w.series,
            r.n,
            if r.n == 1 { "" } else { "s" }
        ),
    }
}

fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// A number as a table shows it: whole numbers without decimals, others to two places.
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests;
