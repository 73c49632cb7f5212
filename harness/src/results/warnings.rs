//! The earliest-warning table of each arm of a run: which monitoring point left its normal range
//! first, and how long before the first user-visible failure. Made when run.json is written,
//! because an arm's normal range is another arm's series: its case's healthy arm, when that ran
//! in the same run (`healthy_arm` in the case), else the arm's own samples before its first
//! fault started.
//!
//! Architecture invariant: pure (the series are handed in); the healthy arm itself and an arm
//! with neither baseline get no table, and the population's own series (the symptom itself)
//! are never a warning.

use serde::{Deserialize, Serialize};

use crate::metrics::warning::{earliest_warnings, Baseline, Status, Warning};
use crate::metrics::{ArmMetrics, Origin, Series};
use crate::results::ArmRecord;

/// Rows of the table kept in run.json: those that left their range (the others are counted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarningTable {
    /// Where the normal range came from, in words.
    pub baseline: String,
    /// The first user-visible failure, seconds since the workload started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_s: Option<f64>,
    /// Series that left their range, earliest first (longest lead first).
    pub rows: Vec<Warning>,
    /// Series judged that stayed in range.
    pub in_range: usize,
    /// Series that could not be judged (no baseline or no samples).
    pub not_judged: usize,
}

/// The series' samples from `from` on.
fn since(m: &ArmMetrics, from: f64) -> ArmMetrics {
    ArmMetrics {
        interval_s: m.interval_s,
        series: m
            .series
            .iter()
            .map(|s| Series {
                points: s.points.iter().filter(|p| p.t >= from).copied().collect(),
                ..s.clone()
            })
            .collect(),
    }
}

/// The table of every arm (same order as `arms`); `metrics[i]` is arm i's series.
pub fn tables(arms: &[ArmRecord], metrics: &[Option<ArmMetrics>]) -> Vec<Option<WarningTable>> {
    arms.iter()
        .zip(metrics)
        .map(|(arm, m)| table(arm, m.as_ref()?, arms, metrics))
        .collect()
}

fn table(
    arm: &ArmRecord,
    m: &ArmMetrics,
    arms: &[ArmRecord],
    metrics: &[Option<ArmMetrics>],
) -> Option<WarningTable> {
    let rec = arm.metrics.as_ref()?;
    let healthy = arm.healthy_arm.as_deref();
    if healthy == Some(arm.arm.as_str()) {
        return None;
    }
    // Symptoms are not monitoring points: a population's series are what users saw.
    let watched_all = ArmMetrics {
        interval_s: m.interval_s,
        series: m
            .series
            .iter()
            .filter(|s| !matches!(s.origin, Origin::Population(_)))
            .cloned()
            .collect(),
    };
    let reference = healthy.and_then(|h| {
        arms.iter()
            .zip(metrics)
            .find(|(a, _)| a.case == arm.case && a.arm == h && a.variant == arm.variant)
            .or_else(|| {
                arms.iter()
                    .zip(metrics)
                    .find(|(a, _)| a.case == arm.case && a.arm == h)
            })
            .and_then(|(a, m)| Some((a, m.as_ref()?)))
    });
    let first_fault = arm.faults.iter().filter_map(|f| f.started_s).reduce(f64::min);
    let (baseline, said) = match (reference, first_fault) {
        (Some((a, hm)), _) => (
            Baseline::Reference(hm),
            format!(
                "arm `{}` of this run (the same workload without the fault)",
                a.arm
            ),
        ),
        (None, Some(t)) if t > 0.0 => (
            Baseline::Window { from_s: 0.0, to_s: t },
            format!(
                "this arm's own samples before its first fault (t=0–{t:.0} s){}",
                match healthy {
                    Some(h) => format!("; arm `{h}` did not run in this run"),
                    None => String::new(),
                }
            ),
        ),
        _ => return None,
    };
    let first = rec.first_user_failure_s;
    // Against the healthy arm, both are compared from the fault's start on: before it the two
    // ran the same steps, and a setup's bursts (writing the mailboxes) are nothing to warn of.
    // Comparing the same phase keeps the healthy arm's setup peaks out of the normal range too.
    let from = first_fault.unwrap_or(0.0);
    let (watched, healthy_phase);
    let baseline = match baseline {
        Baseline::Reference(hm) => {
            watched = since(&watched_all, from);
            healthy_phase = since(hm, from);
            Baseline::Reference(&healthy_phase)
        }
        window => {
            watched = watched_all;
            window
        }
    };
    let all = earliest_warnings(&watched, baseline, first);
    let in_range = all.iter().filter(|w| w.status == Status::InRange).count();
    let rows: Vec<Warning> = all.iter().filter(|w| w.status == Status::Out).cloned().collect();
    Some(WarningTable {
        baseline: said,
        first_failure_s: first,
        not_judged: all.len() - rows.len() - in_range,
        rows,
        in_range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::summary::MetricsRecord;
    use crate::metrics::{Point, Series};
    use crate::results::{FaultRecord, RunRecord};

    fn arm(name: &str, fault_at: Option<f64>, first_failure: Option<f64>) -> ArmRecord {
        let run: RunRecord = serde_json::from_str(include_str!("../../tests/fixtures/suite-run.json"))
            .expect("the fixture parses");
        let mut a = run.arms[0].clone();
        a.case = "cascade".into();
        a.arm = name.into();
        a.variant = None;
        a.healthy_arm = Some("healthy".into());
        a.faults = fault_at
            .map(|t| FaultRecord {
                name: "damage".into(),
                fired: true,
                evidence: "cut".into(),
                started_s: Some(t),
                ended_s: None,
            })
            .into_iter()
            .collect();
        a.metrics = Some(MetricsRecord {
            file: "metrics.json".into(),
            first_user_failure_s: first_failure,
            ..MetricsRecord::default()
        });
        a
    }

    /// imap1's mail processes: about 5 throughout, or from `rise` on 30; the population's
    /// timeouts from `rise` + 20 s on.
    fn series(rise: Option<f64>) -> ArmMetrics {
        let procs = (0..120)
            .map(|t| {
                let t = f64::from(t);
                let high = rise.is_some_and(|r| t >= r);
                Point {
                    t,
                    v: if high { 30.0 } else { 5.0 + (t % 3.0) },
                }
            })
            .collect();
        let timeouts = (0..120)
            .map(|t| Point {
                t: f64::from(t),
                v: if rise.is_some_and(|r| f64::from(t) >= r + 20.0) {
                    4.0
                } else {
                    0.0
                },
            })
            .collect();
        ArmMetrics {
            interval_s: 1.0,
            series: vec![
                Series {
                    origin: Origin::Guest("imap1".into()),
                    metric: "procs.imap".into(),
                    unit: "processes".into(),
                    limit: Some(30.0),
                    points: procs,
                },
                Series {
                    origin: Origin::Population("storm".into()),
                    metric: "timeouts".into(),
                    unit: "per s".into(),
                    limit: None,
                    points: timeouts,
                },
            ],
        }
    }

    #[test]
    fn the_healthy_arm_is_the_normal_range_when_it_ran_and_the_arm_s_own_start_when_not() {
        let arms = [arm("healthy", None, None), arm("cascade", Some(20.0), Some(60.0))];
        let m = [Some(series(None)), Some(series(Some(40.0)))];
        let t = tables(&arms, &m);
        assert_eq!(t[0], None, "the healthy arm has no table of its own");
        let c = t[1].as_ref().expect("a table");
        assert_eq!(
            c.baseline,
            "arm `healthy` of this run (the same workload without the fault)"
        );
        assert_eq!(
            c.rows.len(),
            1,
            "the population's timeouts are the symptom, not a warning"
        );
        assert_eq!(c.rows[0].series, "imap1.procs.imap");
        assert_eq!(c.rows[0].first_out_s, Some(40.0));
        assert_eq!(c.rows[0].lead_s, Some(20.0));

        let alone = tables(&arms[1..], &m[1..]);
        let c = alone[0].as_ref().expect("a table");
        assert_eq!(
            c.baseline,
            "this arm's own samples before its first fault (t=0–20 s); arm `healthy` did not run in this run"
        );
        assert_eq!(c.rows[0].first_out_s, Some(40.0));
    }

    #[test]
    fn an_arm_with_neither_baseline_has_no_table() {
        let arms = [arm("cascade", None, Some(60.0))];
        assert_eq!(tables(&arms, &[Some(series(Some(40.0)))]), vec![None]);
        assert_eq!(tables(&arms, &[None]), vec![None]);
    }
}
