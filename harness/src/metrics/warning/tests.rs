use super::*;
use crate::metrics::{Origin, Point, Series};

fn series(guest: &str, metric: &str, unit: &str, values: impl IntoIterator<Item = (f64, f64)>) -> Series {
    Series {
        origin: Origin::Guest(guest.into()),
        metric: metric.into(),
        unit: unit.into(),
        limit: None,
        points: values.into_iter().map(|(t, v)| Point { t, v }).collect(),
    }
}

/// One sample a second from 0 to `end` s, the value `f(t)`.
fn every_second(end: u32, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (0..=end).map(|t| (t as f64, f(t as f64))).collect()
}

fn arm(series: Vec<Series>) -> ArmMetrics {
    ArmMetrics {
        interval_s: 1.0,
        series,
    }
}

/// A small deterministic wobble around `base`: base-2 … base+2.
fn noise(base: f64, t: f64) -> f64 {
    base + [0.0, 1.0, -1.0, 2.0, -2.0, 1.0, 0.0][(t as usize) % 7]
}

fn lines(rows: &[Warning]) -> String {
    summary_lines(rows).join("\n")
}

#[test]
fn a_series_that_steps_up_20_s_before_the_failure_warns_with_a_positive_lead() {
    let healthy = arm(vec![series(
        "imap1",
        "procs.imap-login",
        "processes",
        every_second(90, |t| noise(12.0, t)),
    )]);
    let faulty = arm(vec![series(
        "imap1",
        "procs.imap-login",
        "processes",
        every_second(90, |t| if t < 40.0 { noise(12.0, t) } else { 97.0 }),
    )]);
    let rows = earliest_warnings(&faulty, Baseline::Reference(&healthy), Some(60.0));
    assert_eq!(rows[0].status, Status::Out);
    assert_eq!(rows[0].first_out_s, Some(40.0));
    assert_eq!(rows[0].lead_s, Some(20.0));
    insta::assert_json_snapshot!(rows);
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn noise_within_the_healthy_range_never_leaves_it() {
    let healthy = arm(vec![series(
        "imap1",
        "load1",
        "",
        every_second(90, |t| noise(3.0, t)),
    )]);
    // The same wobble, shifted in time: every value is one the healthy arm showed.
    let faulty = arm(vec![series(
        "imap1",
        "load1",
        "",
        every_second(90, |t| noise(3.0, t + 3.0)),
    )]);
    let rows = earliest_warnings(&faulty, Baseline::Reference(&healthy), Some(60.0));
    assert_eq!(rows[0].status, Status::InRange);
    assert_eq!(rows[0].lead_s, None);
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn a_one_sample_spike_is_not_a_warning() {
    let healthy = arm(vec![series(
        "filer",
        "locks",
        "locks",
        every_second(90, |t| noise(20.0, t)),
    )]);
    let faulty = arm(vec![series(
        "filer",
        "locks",
        "locks",
        every_second(90, |t| {
            if t == 30.0 || t == 50.0 {
                400.0
            } else {
                noise(20.0, t)
            }
        }),
    )]);
    let rows = earliest_warnings(&faulty, Baseline::Reference(&healthy), Some(60.0));
    assert_eq!(rows[0].status, Status::InRange);
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn a_gap_between_two_out_of_range_samples_does_not_make_them_consecutive() {
    let faulty = arm(vec![series(
        "filer",
        "locks",
        "locks",
        every_second(90, |t| {
            if t == 30.0 || t == 32.0 {
                400.0
            } else {
                noise(20.0, t)
            }
        })
        .into_iter()
        .filter(|(t, _)| *t != 31.0),
    )]);
    let rows = earliest_warnings(
        &faulty,
        Baseline::Window {
            from_s: 0.0,
            to_s: 20.0,
        },
        Some(60.0),
    );
    assert_eq!(rows[0].status, Status::InRange);
}

#[test]
fn a_flat_zero_baseline_needs_a_rise_of_more_than_three_to_warn() {
    // σ floors at one process (a count), so 3σ = 3: a rise to 3 stays in range, 4 leaves it.
    let healthy = arm(vec![
        series("imap1", "procs.imap", "processes", every_second(90, |_| 0.0)),
        series("imap1", "procs.pop3", "processes", every_second(90, |_| 0.0)),
    ]);
    let faulty = arm(vec![
        series(
            "imap1",
            "procs.imap",
            "processes",
            every_second(90, |t| if t < 30.0 { 0.0 } else { 3.0 }),
        ),
        series(
            "imap1",
            "procs.pop3",
            "processes",
            every_second(90, |t| if t < 30.0 { 0.0 } else { 4.0 }),
        ),
    ]);
    let rows = earliest_warnings(&faulty, Baseline::Reference(&healthy), Some(60.0));
    assert_eq!(rows[0].baseline.sigma, Some(1.0));
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn a_steady_non_count_series_floors_at_five_percent_of_its_median() {
    // 120.5 ms, never varying: σ ≈ 6 ms (3σ ≈ 18 ms), so 135.5 ms stays in range and 150.5
    // ms leaves it.
    let healthy = arm(vec![series(
        "storm",
        "latency.p50",
        "ms",
        every_second(90, |_| 120.5),
    )]);
    let faulty = arm(vec![series(
        "storm",
        "latency.p50",
        "ms",
        every_second(90, |t| match t as u32 {
            0..=29 => 120.5,
            30..=49 => 135.5,
            _ => 150.5,
        }),
    )]);
    let rows = earliest_warnings(&faulty, Baseline::Reference(&healthy), Some(60.0));
    assert_eq!(rows[0].first_out_s, Some(50.0));
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn series_without_a_baseline_come_last_and_never_warn() {
    let healthy = arm(vec![
        series(
            "imap1",
            "procs.imap",
            "processes",
            every_second(90, |t| noise(10.0, t)),
        ),
        // Only three samples: too few for a range.
        series("imap1", "nfs.retrans", "per s", every_second(2, |_| 0.0)),
    ]);
    let faulty = arm(vec![
        series(
            "imap1",
            "nfs.retrans",
            "per s",
            every_second(90, |t| if t < 20.0 { 0.0 } else { 50.0 }),
        ),
        // The healthy arm has no such series at all.
        series(
            "imap1",
            "lockd.calls",
            "per s",
            every_second(90, |t| if t < 20.0 { 0.0 } else { 50.0 }),
        ),
        series(
            "imap1",
            "procs.imap",
            "processes",
            every_second(90, |t| if t < 50.0 { noise(10.0, t) } else { 60.0 }),
        ),
    ]);
    let rows = earliest_warnings(&faulty, Baseline::Reference(&healthy), Some(60.0));
    let status: Vec<Status> = rows.iter().map(|r| r.status).collect();
    assert_eq!(status, [Status::Out, Status::NoBaseline, Status::NoBaseline]);
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn without_a_user_visible_failure_the_lead_is_none_but_the_departure_is_kept() {
    let faulty = arm(vec![series(
        "imap1",
        "procs.imap-login",
        "processes",
        every_second(90, |t| if t < 40.0 { noise(12.0, t) } else { 97.0 }),
    )]);
    let rows = earliest_warnings(
        &faulty,
        Baseline::Window {
            from_s: 0.0,
            to_s: 30.0,
        },
        None,
    );
    assert_eq!(rows[0].first_out_s, Some(40.0));
    assert_eq!(rows[0].lead_s, None);
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn rows_are_ordered_by_lead_time_then_in_range_then_no_samples_then_no_baseline() {
    let faulty = arm(vec![
        series(
            "imap1",
            "late",
            "per s",
            every_second(90, |t| if t < 70.0 { noise(5.0, t) } else { 90.0 }),
        ),
        series("imap1", "quiet", "per s", every_second(90, |t| noise(5.0, t))),
        series(
            "imap1",
            "falls",
            "per s",
            every_second(90, |t| if t < 35.0 { noise(50.0, t) } else { 2.0 }),
        ),
        series(
            "imap1",
            "early",
            "per s",
            every_second(90, |t| if t < 25.0 { noise(5.0, t) } else { 90.0 }),
        ),
        // Sampled only during the window: nothing to judge after it.
        series("imap1", "stopped", "per s", every_second(15, |t| noise(5.0, t))),
        series(
            "imap1",
            "started-late",
            "per s",
            (40..90).map(|t| (t as f64, 1.0)),
        ),
    ]);
    let rows = earliest_warnings(
        &faulty,
        Baseline::Window {
            from_s: 0.0,
            to_s: 20.0,
        },
        Some(60.0),
    );
    let names: Vec<&str> = rows.iter().map(|r| r.series.as_str()).collect();
    assert_eq!(
        names,
        [
            "imap1.early",
            "imap1.falls",
            "imap1.late",
            "imap1.quiet",
            "imap1.stopped",
            "imap1.started-late"
        ]
    );
    assert_eq!(rows[1].direction, Some(Direction::Down));
    insta::assert_snapshot!(lines(&rows));
}

#[test]
fn a_window_baseline_judges_only_samples_after_the_window() {
    // Out of range before the window (the population starting) does not count.
    let faulty = arm(vec![series(
        "imap1",
        "procs.imap",
        "processes",
        every_second(90, |t| if t < 5.0 { 80.0 } else { noise(10.0, t) }),
    )]);
    let rows = earliest_warnings(
        &faulty,
        Baseline::Window {
            from_s: 10.0,
            to_s: 30.0,
        },
        Some(60.0),
    );
    assert_eq!(rows[0].status, Status::InRange);
    assert_eq!(rows[0].baseline.n, 21);
}

#[test]
fn samples_that_are_not_numbers_are_missing_not_values() {
    let faulty = arm(vec![series(
        "imap1",
        "procs.imap",
        "processes",
        every_second(90, |t| if t < 40.0 { noise(10.0, t) } else { f64::NAN }),
    )]);
    let rows = earliest_warnings(
        &faulty,
        Baseline::Window {
            from_s: 0.0,
            to_s: 30.0,
        },
        Some(60.0),
    );
    assert_eq!(rows[0].status, Status::InRange);
}
