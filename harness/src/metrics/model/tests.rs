use super::*;

/// Plausible lab figures: 100 slots, a 0.3 s healthy login, a 20 s rebuild, 30 % of
/// mailboxes damaged, a 30 s client timeout, a fixed 5 s retry, everyone at once and logging
/// out at once, 2 min to drain (an arm's storm within its 3 min). Stock Dovecot: a rebuild
/// survives its client leaving.
fn stock() -> Params {
    Params {
        slots: 100,
        login_s: 0.3,
        rebuild_s: 20.0,
        damaged_fraction: 0.3,
        timeout_s: 30.0,
        retry: Retry::Fixed { delay_s: 5.0 },
        max_attempts: None,
        arrival_spread_s: 0.0,
        after_login_s: 0.0,
        abandoned_work: AbandonedWork::Kept,
        cpus: None,
        notice_s: None,
        repeat_after_s: None,
        horizon_s: 120.0,
        seed: 16,
    }
}

/// The same, on the 2008 build: a rebuild whose client left is thrown away.
fn build_2008() -> Params {
    Params {
        abandoned_work: AbandonedWork::Lost,
        ..stock()
    }
}

fn sizes() -> Vec<u32> {
    (1..=16).map(|k| k * 50).collect()
}

fn table(p: &Params) -> String {
    let mut s = String::from("users drains drain_s peak_busy peak_waiting attempts timeouts wasted\n");
    for r in sweep(p, &sizes()) {
        s.push_str(&format!(
            "{:>5} {:>6} {:>7} {:>9} {:>12} {:>8} {:>8} {:>6}\n",
            r.users,
            r.drains,
            r.drain_time_s.map_or("-".into(), |t| format!("{t:.1}")),
            r.peak_busy_slots,
            r.peak_waiting,
            r.attempts,
            r.timeouts,
            r.wasted_rebuilds
        ));
    }
    s
}

/// Drain time with "never" as infinity, for ordering.
fn drain_or_inf(p: &Prediction) -> f64 {
    if p.drains {
        p.drain_time_s.unwrap_or(f64::INFINITY)
    } else {
        f64::INFINITY
    }
}

#[test]
fn stock_dovecot_drains_over_the_sweep() {
    insta::assert_snapshot!(table(&stock()));
}

#[test]
fn the_2008_build_stops_draining_within_the_sweep() {
    insta::assert_snapshot!(table(&build_2008()));
}

#[test]
fn the_2008_build_stops_draining_at_a_smaller_size_than_stock() {
    let lost = threshold(&build_2008(), &sizes()).expect("the 2008 build has a threshold in 50…800");
    // Stock drains across the sweep; its threshold lies further out.
    let wide: Vec<u32> = (1..=32).map(|k| k * 400).collect();
    let kept = threshold(&stock(), &sizes())
        .or_else(|| threshold(&stock(), &wide))
        .expect("stock has one too");
    assert!(lost < kept, "2008 {lost}, stock {kept}");
}

#[test]
fn past_its_threshold_the_2008_build_times_out_healthy_users_too() {
    let p = predict(&build_2008(), 800);
    assert!(!p.drains);
    assert!(p.healthy_timeouts > 0, "{p:?}");
    insta::assert_snapshot!(p.why);
}

#[test]
fn sessions_that_stay_logged_in_keep_their_slots() {
    // 150 users on 100 slots, each staying 60 s: the last 50 wait past their 30 s timeout,
    // retry, and get in once the first sessions end.
    let p = Params {
        damaged_fraction: 0.0,
        after_login_s: 60.0,
        ..stock()
    };
    let r = predict(&p, 150);
    assert_eq!(
        (r.timeouts, r.healthy_timeouts, r.logged_in),
        (50, 50, 150),
        "{r:?}"
    );
    assert!(r.drain_time_s.unwrap() > 60.0);
}

#[test]
fn closed_form_estimates_sit_next_to_the_simulated_thresholds() {
    insta::assert_json_snapshot!([closed_form(&stock()), closed_form(&build_2008())]);
}

fn grid() -> Vec<Params> {
    let mut ps = Vec::new();
    for base in [stock(), build_2008()] {
        for retry in [
            Retry::None,
            Retry::Fixed { delay_s: 5.0 },
            Retry::Exponential {
                base_s: 2.0,
                max_s: 60.0,
            },
        ] {
            for spread in [0.0, 60.0] {
                ps.push(Params {
                    retry,
                    arrival_spread_s: spread,
                    ..base
                });
            }
        }
    }
    ps
}

#[test]
fn more_users_never_drain_faster() {
    for p in grid() {
        let preds = sweep(&p, &sizes());
        for w in preds.windows(2) {
            assert!(
                drain_or_inf(&w[1]) >= drain_or_inf(&w[0]),
                "{p:?}: {} users drain at {:?}, {} users at {:?}",
                w[0].users,
                w[0].drain_time_s,
                w[1].users,
                w[1].drain_time_s
            );
        }
    }
}

#[test]
fn more_slots_never_drain_slower() {
    for p in grid() {
        for users in [100, 300, 500, 800] {
            let mut last = f64::INFINITY;
            for slots in [25, 50, 100, 150, 200, 400] {
                let d = drain_or_inf(&predict(&Params { slots, ..p }, users));
                assert!(
                    d <= last,
                    "{p:?}: {users} users, {slots} slots drain at {d}, fewer slots at {last}"
                );
                last = d;
            }
        }
    }
}

#[test]
fn without_damage_a_storm_within_capacity_has_no_timeout() {
    let p = predict(
        &Params {
            damaged_fraction: 0.0,
            ..build_2008()
        },
        800,
    );
    assert!(p.drains);
    assert_eq!(p.timeouts, 0);
    // 800 logins of 0.3 s on 100 slots: eight rounds.
    assert!((p.drain_time_s.unwrap() - 2.4).abs() < 1e-9, "{p:?}");
}

#[test]
fn a_rebuild_longer_than_the_timeout_never_succeeds_when_its_work_is_lost() {
    let p = Params {
        rebuild_s: 40.0,
        max_attempts: Some(3),
        ..build_2008()
    };
    let r = predict(&p, 50);
    assert_eq!(r.gave_up, 15, "{r:?}");
    assert_eq!(r.logged_in, 35);
    // Stock: the first rebuild is committed after its client left; the retry logs in.
    let r = predict(
        &Params {
            abandoned_work: AbandonedWork::Kept,
            ..p
        },
        50,
    );
    assert_eq!((r.logged_in, r.gave_up), (50, 0), "{r:?}");
}

#[test]
fn jittered_back_off_is_the_same_on_every_run_and_differs_by_seed() {
    let p = Params {
        retry: Retry::Exponential {
            base_s: 2.0,
            max_s: 60.0,
        },
        ..build_2008()
    };
    assert_eq!(predict(&p, 400), predict(&p, 400));
    let other = predict(&Params { seed: 17, ..p }, 400);
    assert_ne!(predict(&p, 400).attempts, other.attempts);
}

#[test]
fn measured_and_predicted_sizes_compare_by_threshold_and_drain_time() {
    let predicted = sweep(&build_2008(), &[100, 200, 400, 600, 800]);
    let measured = [
        Measured {
            users: 100,
            drained: true,
            drain_time_s: Some(22.0),
        },
        Measured {
            users: 200,
            drained: true,
            drain_time_s: Some(75.0),
        },
        Measured {
            users: 400,
            drained: false,
            drain_time_s: None,
        },
        Measured {
            users: 600,
            drained: false,
            drain_time_s: None,
        },
        Measured {
            users: 800,
            drained: false,
            drain_time_s: None,
        },
    ];
    insta::assert_json_snapshot!(compare(&measured, &predicted));
}

#[test]
fn a_threshold_only_one_side_finds_is_not_within_tolerance() {
    let predicted = sweep(&stock(), &[100, 200]);
    let measured = [
        Measured {
            users: 100,
            drained: true,
            drain_time_s: Some(3.0),
        },
        Measured {
            users: 200,
            drained: false,
            drain_time_s: None,
        },
    ];
    let c = compare(&measured, &predicted);
    assert!(!c.within_tolerance);
    assert_eq!((c.measured_threshold, c.predicted_threshold), (Some(200), None));
    assert_eq!(
        c.note,
        "the lab stops draining at 200 users; the model drains at every swept size (up to 200)"
    );
}

#[test]
fn a_million_users_on_ten_front_ends_at_a_monday_peak() {
    // Assumption for the example: half the users log in within the first hour.
    let peak = Peak {
        fraction: 0.5,
        window_s: 3600.0,
    };
    let healthy = extrapolate(
        &Params {
            damaged_fraction: 0.0,
            ..build_2008()
        },
        1_000_000,
        10,
        peak,
    );
    let damaged = extrapolate(&build_2008(), 1_000_000, 10, peak);
    assert!(!healthy.overflows && healthy.simulated.as_ref().unwrap().drains);
    insta::assert_snapshot!(format!("healthy: {}\ndamaged: {}", healthy.why, damaged.why));
    insta::assert_json_snapshot!(damaged);
}

/// A lab-sized front-end: one CPU shared by its sessions, five slots, a 2 s rebuild, clients
/// that give up after 5 s and come back 5 s later, a server that notices 4 s late.
fn one_cpu(work: AbandonedWork) -> Params {
    Params {
        slots: 5,
        login_s: 0.3,
        rebuild_s: 2.0,
        damaged_fraction: 1.0,
        timeout_s: 5.0,
        retry: Retry::Fixed { delay_s: 5.0 },
        abandoned_work: work,
        cpus: Some(1.0),
        notice_s: Some(4.0),
        ..stock()
    }
}

#[test]
fn rebuilds_sharing_a_cpu_slow_each_other_past_the_timeout() {
    // Two 2 s rebuilds at once take 4 s each: inside the timeout.
    let two = predict(&one_cpu(AbandonedWork::Lost), 2);
    assert!(two.drains && two.timeouts == 0, "{two:?}");
    // Three take 6 s: every one times out, its work is thrown away, and the retries come
    // back together to do it all again.
    let three = predict(&one_cpu(AbandonedWork::Lost), 3);
    assert!(!three.drains, "{three:?}");
    assert!(three.wasted_rebuilds >= 3, "{three:?}");
    // Without CPU sharing the slots alone would let all three through.
    let unshared = predict(
        &Params {
            cpus: None,
            ..one_cpu(AbandonedWork::Lost)
        },
        3,
    );
    assert!(unshared.drains && unshared.timeouts == 0, "{unshared:?}");
}

#[test]
fn work_committed_when_the_server_notices_makes_each_retry_cheaper() {
    // Stock keeps what a cut-off session rebuilt: the same three users drain.
    let kept = predict(&one_cpu(AbandonedWork::Kept), 3);
    assert!(kept.drains && kept.timeouts >= 3, "{kept:?}");
    // A rebuild three times the timeout, alone: kept work gets through in steps, lost never.
    let long = |work| Params {
        rebuild_s: 15.0,
        ..one_cpu(work)
    };
    let kept = predict(&long(AbandonedWork::Kept), 1);
    assert!(kept.drains && kept.timeouts >= 1, "{kept:?}");
    let lost = predict(&long(AbandonedWork::Lost), 1);
    assert!(!lost.drains && lost.logged_in == 0, "{lost:?}");
}

#[test]
fn a_late_noticed_disconnect_ends_the_session_without_a_login() {
    let p = Params {
        notice_s: Some(4.0),
        rebuild_s: 60.0,
        damaged_fraction: 1.0,
        retry: Retry::None,
        ..stock()
    };
    let r = predict(&p, 1);
    // It gave up at 30 s; the server stopped at 34 s and threw nothing away (stock).
    assert_eq!((r.logged_in, r.gave_up, r.wasted_rebuilds), (0, 1, 0), "{r:?}");
    assert_eq!(r.drain_time_s, Some(30.0));
}

#[test]
fn polling_users_add_load_but_only_their_first_login_counts() {
    let once = one_cpu(AbandonedWork::Kept);
    let polling = Params {
        damaged_fraction: 0.25,
        repeat_after_s: Some(2.0),
        ..once
    };
    let r = predict(&polling, 8);
    assert!(r.drains, "{r:?}");
    assert_eq!((r.logged_in, r.gave_up), (8, 0), "{r:?}");
    // The polls are attempts beyond one per user, while the damaged ones still rebuild.
    assert!(r.attempts > 8, "{r:?}");
}
