use super::*;

/// A run as the client prints it, with what a hostile or broken guest might add: lines
/// without a time, before the start, from the far future, with bad numbers or cut short.
const TRANSCRIPT: &str = "\
garbage before the start
100.000 attempt 1 1 ok 10 command1
100.500 population start users=4 workers=2
100.510 open 0 2 0.00
100.520 open 1 2 0.01
100.900 attempt 3 1 refused 380 greeting closed by the server
101.010 open 0 2 0.05
101.020 open 1 1 0.06
101.200 attempt 1 1 ok 700 command2
101.300 attempt 4 1 refused 60 login a1 NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded
101.400 attempt 4 1 ok NaN command2
101.500 attempt 2 1 bogus 5 login
101.600 attempt 2 1 ok 5 login;rm
NaN attempt 2 1 ok 5 login
inf open 0 1 1.00
1e300 attempt 2 1 ok 5 login
99999999.000 attempt 2 1 ok 5 login
102.010 open 0 1 0.30
102.400 attempt 3 2 ok 1500 command2
102.450 attempt 2 1 timeout 2000 login
103.010 open 0 0 0.40
103.020 open 1 1 0.50
104.020 open 1 0 0.70
104.300 attempt 4 3 error 20 command1 a2 NO [SERVERBUG] Internal error occurred. Refer to server log for more information. \u{1F4A5}
104.400 open 1 0 0.75
104.500 population end attempts=6 ok=2 timeout=1 refused=2 error=1 users=4 never_ok=2 peak_open=4 cpu_pct=12.5 wall_s=4.0
104.600 population end attempts=x
";

/// Series as one line each: `name [unit]: t=v …`.
fn render(series: &[Series]) -> String {
    series
        .iter()
        .map(|s| {
            let points: Vec<String> = s.points.iter().map(|p| format!("{}={}", p.t, p.v)).collect();
            format!("{} [{}]: {}", s.full_name(), s.unit, points.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_transcript_reads_into_attempts_and_per_second_series_skipping_garbage() {
    // The step started 10.2 s into the workload: the start line is placed there.
    let tr = parse(TRANSCRIPT, 10.2).unwrap();
    assert_eq!(tr.skipped, 10);
    assert_eq!(tr.summary.map(|s| s.peak_open), Some(4));
    insta::assert_snapshot!(format!("{}\n{}", jsonl(&tr), render(&series_of("storm", &tr))));
}

#[test]
fn series_places_times_through_the_steps_start() {
    let s = series("storm", TRANSCRIPT, 0.0).unwrap();
    let attempts = s.iter().find(|s| s.metric == "attempts").unwrap();
    // Start at uptime 100.5 is t = 0; the last line (104.5) falls in second 4.
    assert_eq!(attempts.points.first().map(|p| p.t), Some(0.0));
    assert_eq!(attempts.points.last().map(|p| p.t), Some(4.0));
    let total: f64 = attempts.points.iter().map(|p| p.v).sum();
    assert_eq!(total, 6.0);
}

#[test]
fn output_without_a_start_line_cannot_be_placed_in_time() {
    assert_eq!(
        series("storm", "100.0 attempt 1 1 ok 10 login\n", 3.0),
        Err(PopulationError::NoStart)
    );
}

#[test]
fn latency_percentiles_are_nearest_rank_of_the_attempts_ending_that_second() {
    let mut out = String::from("50.0 population start users=20 workers=1\n");
    for i in 1..=20 {
        out.push_str(&format!("50.5 attempt {i} 1 ok {} command1\n", i * 10));
    }
    let s = series("p", &out, 0.0).unwrap();
    let v = |m: &str| s.iter().find(|s| s.metric == m).unwrap().points.clone();
    assert_eq!(v("latency.p50"), vec![Point { t: 0.0, v: 100.0 }]);
    assert_eq!(v("latency.p95"), vec![Point { t: 0.0, v: 190.0 }]);
    assert_eq!(v("latency.max"), vec![Point { t: 0.0, v: 200.0 }]);
}

#[test]
fn hostile_bytes_never_panic() {
    let nasty = [
        "",
        "\n\n\n",
        "1 population start",
        "1 population start\n-5 attempt 1 1 ok 1 login",
        "1 population start\n2 attempt 99999999999 1 ok 1 login",
        "1 population start\n2 attempt 1 1 ok -1 login",
        "1 population start\n2 open 0 -1 0",
        "1 population start\n2 open 0 1 -inf",
        "1 population start\n2 open 4294967295 4294967295 1e308\n3 open 4294967295 0 1e308",
        "1 population start\n86402 attempt 1 1 ok 1 login",
        "1e308 population start\n1e308 attempt 1 1 ok 1 login",
        "-1e308 population start\n1e308 attempt 1 1 ok 1 login",
        "1 population start\n2 population end attempts=1",
        "1 population start\n2 attempt 1 1 ok 1 \u{0}\u{7f}",
        "\u{FEFF}1 population start",
    ];
    for text in nasty {
        for started in [0.0, -3.0, 1e9, f64::NAN] {
            let _ = series("x", text, started);
        }
    }
}
