//! `[sweep]`: what a sweep resolves to, its arms, and every error at its value.

use super::*;

/// The fixture `sweep-storm.toml` without its `[sweep]`, read as `t.toml`.
fn prefix() -> String {
    let text = std::fs::read_to_string(testdata("sweep-storm")).unwrap();
    let cut = text.find("[sweep]").unwrap();
    text[..cut].replace("name = \"sweep-storm\"", "name = \"t\"")
}

const SWEEP: &str = r#"[sweep]
arm = "storm"
populations = ["damaged", "healthy"]
scale = [1, 2, 3.5]
damaged = "damaged"
[sweep.model]
slots = 5
login = "one-login"
rebuild = "one-rebuild"
abandoned_work = "kept"
"#;

/// The error for the prefix and `sweep`, its line counted within `sweep` (`t.toml:+3:9: …`).
fn sweep_err(sweep: &str) -> String {
    let head = prefix();
    let e = full_err(&format!("{head}{sweep}"));
    let lines = head.lines().count();
    let (pos, message) = e.split_once(": ").unwrap();
    let mut parts = pos.split(':');
    let (file, line, col) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let line: usize = line.parse().unwrap();
    assert!(line > lines, "not in the sweep: {e}");
    format!("{file}:+{}:{col}: {message}", line - lines)
}

#[test]
fn the_fixture_resolves_with_defaults_and_its_sizes() {
    let c = load(&testdata("sweep-storm")).unwrap();
    let sweep = c.sweep.as_ref().unwrap();
    insta::assert_json_snapshot!("sweep_storm_sweep", sweep);
    let arms = c.sweep_arms();
    let names: Vec<&str> = arms.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["storm@x1", "storm@x2", "storm@x3.5"]);
    // The healthy users as the arm runs them (8, not the step's 10), times each scale.
    let users: Vec<Vec<u32>> = arms
        .iter()
        .map(|a| a.sweep.as_ref().unwrap().users.values().copied().collect())
        .collect();
    assert_eq!(users, [[3, 8], [6, 16], [11, 28]]);
    let x2 = &arms[1];
    let storm = c.arm("storm").unwrap();
    assert_eq!(x2.faults, storm.faults);
    assert_eq!(x2.expect, storm.expect);
    let healthy = match &c.step("healthy").unwrap().kind {
        StepKind::Population(p) => p,
        _ => unreachable!(),
    };
    let as_run = x2.population("healthy", healthy);
    assert_eq!(as_run.users, 16);
    assert_eq!(as_run.repeat_after, healthy.repeat_after, "the other keys stay");
    // The sweep's case: its sizes in place of its arms, everything else the case's.
    let swept = c.sweep_case().unwrap();
    assert_eq!(swept.arms, arms);
    assert_eq!(swept.steps, c.steps);
    assert_eq!(c.arms.iter().filter(|a| a.sweep.is_some()).count(), 0);
}

#[test]
fn a_case_without_a_sweep_has_no_sizes_and_serializes_as_before() {
    let c = load(&testdata("grant-lost")).unwrap();
    assert_eq!(c.sweep, None);
    assert!(c.sweep_arms().is_empty());
    assert_eq!(c.sweep_case(), None);
    let json = serde_json::to_string(&c).unwrap();
    assert!(!json.contains("sweep"), "{json}");
}

#[test]
fn sizes_round_to_whole_users_and_never_to_none() {
    assert_eq!(scaled_users(3, Milli(1000)), 3);
    assert_eq!(scaled_users(3, Milli(3500)), 11);
    assert_eq!(scaled_users(3, Milli(100)), 1);
    assert_eq!(scaled_users(10, Milli(250)), 3);
    assert_eq!(Milli(2000).to_string(), "2");
    assert_eq!(Milli(1500).to_string(), "1.5");
    assert_eq!(Milli(250).to_string(), "0.25");
}

#[test]
fn errors_point_at_the_sweeps_values() {
    let rows: Vec<(String, &str)> = vec![
        (
            SWEEP.replace("arm = \"storm\"", "arm = \"gale\""),
            "t.toml:+2:7: unknown arm `gale` (this case has healthy, storm)",
        ),
        (
            SWEEP.replace("[\"damaged\", \"healthy\"]", "[\"damaged\", \"one-login\"]"),
            "t.toml:+3:27: step `one-login` is not a population",
        ),
        (
            SWEEP.replace("[\"damaged\", \"healthy\"]", "[\"damaged\", \"calm\"]"),
            "t.toml:+3:27: unknown step `calm` (this case has one-login, one-rebuild, damaged, healthy)",
        ),
        (
            SWEEP.replace("[\"damaged\", \"healthy\"]", "[\"damaged\", \"damaged\"]"),
            "t.toml:+3:27: population `damaged` is listed twice",
        ),
        (
            SWEEP.replace("[\"damaged\", \"healthy\"]", "[]"),
            "t.toml:+3:15: populations must name at least one population step",
        ),
        (
            SWEEP.replace("damaged = \"damaged\"", "damaged = \"healthy2\""),
            "t.toml:+5:11: damaged must be one of the sweep's populations (damaged, healthy), not `healthy2`",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[]"),
            "t.toml:+4:9: scale must list at least one factor",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[1, 0, 3]"),
            "t.toml:+4:13: scale must be a positive number, not 0",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[1, -2]"),
            "t.toml:+4:13: scale must be a positive number, not -2",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[1, \"2\"]"),
            "t.toml:+4:13: scale must be a positive number, not \"2\"",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[2, 1]"),
            "t.toml:+4:13: scale 1 comes after 2: the factors go in ascending order, each once",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[2, 2]"),
            "t.toml:+4:13: scale 2 comes after 2: the factors go in ascending order, each once",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[1, 1.0001]"),
            "t.toml:+4:13: scale 1.0001 has more than three decimals (scale is read in thousandths)",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[1, 1.01]"),
            "t.toml:+4:13: scale 1.01 gives the populations the same users as scale 1",
        ),
        (
            SWEEP.replace("[1, 2, 3.5]", "[1, 600]"),
            "t.toml:+4:13: scale 600 makes population `healthy` 4800 users, more than a population may have (4000)",
        ),
        (
            SWEEP.replace("slots = 5", "slots = 0"),
            "t.toml:+7:9: slots is a whole number of at least 1 (the sessions the server runs at once)",
        ),
        (
            SWEEP.replace("slots = 5", "slots = 5\ncpus = 0"),
            "t.toml:+8:8: cpus must be a positive number, not 0",
        ),
        (
            SWEEP.replace("login = \"one-login\"", "login = \"two-logins\""),
            "t.toml:+8:9: unknown step `two-logins` (this case has one-login, one-rebuild, damaged, healthy)",
        ),
        (
            SWEEP.replace("rebuild = \"one-rebuild\"", "rebuild = \"rebuild\""),
            "t.toml:+9:11: unknown step `rebuild` (this case has one-login, one-rebuild, damaged, healthy)",
        ),
        (
            SWEEP.replace("\"kept\"", "\"maybe\""),
            "t.toml:+10:18: abandoned_work must be \"lost\" or \"kept\", not \"maybe\"",
        ),
        (
            format!("{SWEEP}notice = \"4\"\n"),
            "t.toml:+11:10: bad duration \"4\": write a whole number and a unit (ms, s, m or h), e.g. \"250ms\", \"5s\", \"2m\", \"1h\"",
        ),
        (
            format!("{SWEEP}notice = \"0s\"\n"),
            "t.toml:+11:10: \"0s\" is zero: this duration must be more than 0",
        ),
        (
            format!("{SWEEP}seed = -1\n"),
            "t.toml:+11:8: seed is a whole number, 0 or more",
        ),
        // Shape errors, as the TOML reader meets them.
        (
            SWEEP.replace("slots = 5\n", ""),
            "t.toml:+6:1: missing field `slots`",
        ),
        (
            format!("{SWEEP}colour = \"red\"\n"),
            "t.toml:+11:1: unknown field `colour`, expected one of `slots`, `cpus`, `login`, `rebuild`, `abandoned_work`, `notice`, `seed`",
        ),
    ];
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|(sweep, want)| {
            let got = sweep_err(sweep);
            (got != *want).then(|| format!("for:\n{sweep}\n  got: {got}\n want: {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn a_step_the_sweep_reads_must_run_in_its_arm() {
    let skip = prefix().replace(
        "setup.populations.healthy = { users = 8 }",
        "setup.populations.healthy = { users = 8 }\nsetup.skip_steps = [\"one-login\"]",
    );
    let e = full_err(&format!("{skip}{SWEEP}"));
    assert!(
        e.ends_with("arm `storm` skips step `one-login`: the sweep could not read it"),
        "{e}"
    );
}
