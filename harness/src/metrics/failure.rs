//! The first user-visible failure of an arm: the first time a client population saw an
//! attempt time out, be refused or fail. Plots mark it; the earliest-warning table measures
//! lead times against it.
//!
//! Architecture invariant: pure, and only client-side series count: a server's own figures
//! say what it did, not what a user saw.

use super::{ArmMetrics, Origin};

/// The population metrics whose first non-zero value is a user-visible failure.
pub const FAILURE_METRICS: [&str; 3] = ["timeouts", "refused", "errors"];

/// The first time (seconds since the workload started) any population series named
/// `timeouts`, `refused` or `errors` is above zero; `None` when none ever is (or there is no
/// population).
pub fn first_user_failure(m: &ArmMetrics) -> Option<f64> {
    m.series
        .iter()
        .filter(|s| matches!(s.origin, Origin::Population(_)))
        .filter(|s| FAILURE_METRICS.contains(&s.metric.as_str()))
        .filter_map(|s| s.points.iter().find(|p| p.v > 0.0).map(|p| p.t))
        .reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Point, Series};

    fn series(origin: Origin, metric: &str, points: &[(f64, f64)]) -> Series {
        Series {
            origin,
            metric: metric.into(),
            unit: "per s".into(),
            limit: None,
            points: points.iter().map(|&(t, v)| Point { t, v }).collect(),
        }
    }

    #[test]
    fn the_first_failure_is_the_earliest_non_zero_timeout_refusal_or_error_of_a_population() {
        let pop = || Origin::Population("storm".into());
        let mut m = ArmMetrics {
            interval_s: 1.0,
            series: vec![
                series(pop(), "attempts", &[(1.0, 50.0), (2.0, 80.0)]),
                series(pop(), "timeouts", &[(1.0, 0.0), (2.0, 0.0), (9.0, 3.0)]),
                series(pop(), "refused", &[(1.0, 0.0), (7.0, 1.0)]),
                // A server figure named alike does not count.
                series(Origin::Guest("imap1".into()), "errors", &[(0.5, 4.0)]),
            ],
        };
        assert_eq!(first_user_failure(&m), Some(7.0));
        m.series.remove(2);
        assert_eq!(first_user_failure(&m), Some(9.0));
        m.series.remove(1);
        assert_eq!(first_user_failure(&m), None);
    }
}
