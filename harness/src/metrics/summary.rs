//! What run.json says about an arm's series: per series its count of samples and of missing
//! ones, min, max, mean and last value; the samplers' own cost; and what could not be read.
//! The series themselves are in the arm's `metrics.json` ([`FILE`]).
//!
//! Architecture invariant: pure. A gap (a sample not taken) is counted, never filled: the
//! figures are over the samples that exist, and a series with none has no min/max/mean/last.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ArmMetrics, Series};

/// The arm folder's file holding every series ([`ArmMetrics`] as JSON).
pub const FILE: &str = "metrics.json";

/// An arm's metrics as run.json records them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// The series file, relative to the arm folder.
    pub file: String,
    pub series: Vec<SeriesSummary>,
    /// Guest → the sampler's CPU time over its lifetime, in % of one CPU.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sampler_overhead_pct: BTreeMap<String, f64>,
    /// The first user-visible failure ([`super::first_user_failure`]), seconds since the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_user_failure_s: Option<f64>,
    /// What is missing and why (a guest without a sampler output, an incomplete trace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One series in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    /// `<origin>.<metric>`.
    pub name: String,
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    pub samples: usize,
    /// Samples missing between the first and the last: those due every interval from the first
    /// less those taken.
    pub gaps: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub last: Option<f64>,
}

/// The summary of every series of `m`, in its order.
pub fn summarise(m: &ArmMetrics) -> Vec<SeriesSummary> {
    m.series.iter().map(|s| summary(s, m.interval_s)).collect()
}

fn summary(s: &Series, interval_s: f64) -> SeriesSummary {
    let values: Vec<f64> = s.points.iter().map(|p| p.v).filter(|v| v.is_finite()).collect();
    let interval = if interval_s > 0.0 { interval_s } else { 1.0 };
    // Samples are due every interval from the first and are taken late, never early: a
    // sample up to 3/4 of an interval late still fills its own slot.
    let gaps = match (s.points.first(), s.points.last()) {
        (Some(a), Some(b)) if (b.t - a.t).is_finite() => {
            let due = ((b.t - a.t) / interval + 0.25).floor() as usize + 1;
            due.saturating_sub(s.points.len())
        }
        _ => 0,
    };
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    SeriesSummary {
        name: s.full_name(),
        unit: s.unit.clone(),
        limit: s.limit,
        samples: values.len(),
        gaps,
        min: values.iter().copied().reduce(f64::min),
        max: values.iter().copied().reduce(f64::max),
        mean: (!values.is_empty()).then(|| r(values.iter().sum::<f64>() / values.len() as f64)),
        last: values.last().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Origin, Point};

    #[test]
    fn a_summary_counts_gaps_and_figures_only_the_samples_taken() {
        let pts = |v: &[(f64, f64)]| v.iter().map(|&(t, v)| Point { t, v }).collect();
        let m = ArmMetrics {
            interval_s: 1.0,
            series: vec![
                Series {
                    origin: Origin::Guest("imap1".into()),
                    metric: "procs.imap".into(),
                    unit: "processes".into(),
                    limit: Some(1024.0),
                    // 3, 4 and 6 missing; 7 late, 8 early: not missing.
                    points: pts(&[(1.0, 2.0), (2.0, 4.0), (5.0, 3.0), (7.7, 1.0), (8.0, 1.0)]),
                },
                Series {
                    origin: Origin::Wire("lan".into()),
                    metric: "syn".into(),
                    unit: "frames/s".into(),
                    limit: None,
                    points: Vec::new(),
                },
            ],
        };
        let s = summarise(&m);
        assert_eq!(
            s[0],
            SeriesSummary {
                name: "imap1.procs.imap".into(),
                unit: "processes".into(),
                limit: Some(1024.0),
                samples: 5,
                gaps: 3,
                min: Some(1.0),
                max: Some(4.0),
                mean: Some(2.2),
                last: Some(1.0),
            }
        );
        assert_eq!((s[1].samples, s[1].gaps, s[1].mean), (0, 0, None));
    }
}
