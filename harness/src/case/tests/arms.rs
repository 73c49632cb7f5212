//! Arms: expectations, check selection, setup.

use super::*;

/// HEAD, step `b`, fault `f` (starting after `b`) and check `ok` (on `a`): arms start on line 20.
const ARMS_PREFIX: &str = r#"[[steps]]
name = "b"
guest = "imap1"
exec = { command = "x" }
[faults.f]
start = { after_step = "b" }
service = { guest = "filer", unit = "nfs-server.service", action = "stop" }
[checks.ok]
step_ok = { step = "a" }
"#;

fn arms_err(arms: &str) -> String {
    full_err(&format!("{HEAD}{ARMS_PREFIX}{arms}"))
}

#[test]
fn arms() {
    let rows = [
        (
            "[arms.bug]\nfaults = [\"f\"]\nexpect = \"fail\"\n",
            "t.toml:22:10: arm `bug` expects \"fail\" but names no failing_checks: say which checks must fail",
        ),
        (
            "[arms.bug]\nexpect = \"fail\"\nfailing_checks = []\n",
            "t.toml:22:18: failing_checks must name at least one check",
        ),
        (
            "[arms.bug]\nexpect = \"fail\"\nfailing_checks = [\"ok\", \"gone\"]\n",
            "t.toml:22:25: unknown check `gone` (this case has ok)",
        ),
        (
            "[arms.bug]\nexpect = \"fail\"\nfailing_checks = [\"ok\", \"ok\"]\n",
            "t.toml:22:25: check `ok` is listed twice",
        ),
        (
            "[arms.a]\nexpect = \"pass\"\nfailing_checks = [\"ok\"]\n",
            "t.toml:22:18: failing_checks only goes with expect = \"fail\"",
        ),
        (
            "[arms.a]\nexpect = \"error\"\n",
            "t.toml:21:10: an arm cannot expect \"error\": use \"pass\", \"fail\" or \"unknown\"",
        ),
        (
            "[arms.a]\nexpect = \"maybe\"\n",
            "t.toml:21:10: expect must be \"pass\", \"fail\" or \"unknown\", not \"maybe\"",
        ),
        ("[arms.a]\nfaults = [\"g\"]\nexpect = \"pass\"\n", "t.toml:21:11: unknown fault `g` (this case has f)"),
        ("[arms.a]\nfaults = [\"f\", \"f\"]\nexpect = \"pass\"\n", "t.toml:21:16: fault `f` is listed twice"),
        (
            "[arms.a]\nexpect = \"pass\"\nsetup = { skip_steps = [\"a\"] }\n",
            "t.toml:22:25: arm `a` skips step `a`, which check `ok` is judged on: the check could only be unknown",
        ),
        (
            "[arms.a]\nfaults = [\"f\"]\nexpect = \"pass\"\nsetup = { skip_steps = [\"b\"] }\n",
            "t.toml:23:25: arm `a` skips step `b`, which its fault `f` starts or ends at",
        ),
        (
            "[arms.a]\nexpect = \"pass\"\nsetup = { skip_steps = [\"c\"] }\n",
            "t.toml:22:25: unknown step `c` (this case has a, b)",
        ),
        (
            "[arms.a]\nexpect = \"pass\"\nsetup = { images = { imap2 = \"frontend-fixed\" } }\n",
            "t.toml:22:22: unknown guest `imap2` (this case has filer, imap1)",
        ),
        (
            "[arms.a]\nexpect = \"pass\"\n[arms.a.setup.images]\nimap1 = \"Frontend\"\n",
            "t.toml:23:9: image name \"Frontend\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit",
        ),
        ("[arms]\n", "t.toml:20:1: a case needs at least one arm"),
    ];
    for (arms, want) in rows {
        assert_eq!(arms_err(arms), want, "for:\n{arms}");
    }
    assert_eq!(arms_err(""), "t.toml:1:1: missing field `arms`");
    assert_eq!(
        arms_err("[checks.later]\nrequires = [\"ok\"]\nstep_ok = { step = \"b\" }\n[arms.bug]\nexpect = \"fail\"\nfailing_checks = [\"ok\", \"later\"]\n"),
        "t.toml:25:25: check `later` requires `ok`, which this arm expects to fail: it could only be unknown"
    );
    // Skipping a fault's step is fine in an arm without that fault.
    let c = parse_t(&format!(
        "{HEAD}{ARMS_PREFIX}[arms.a]\nexpect = \"unknown\"\nsetup = {{ skip_steps = [\"b\"], images = {{ imap1 = \"frontend-fixed\" }} }}\n"
    ))
    .unwrap();
    let a = c.arm("a").unwrap();
    assert_eq!(a.expect, ArmExpectation::Unknown);
    assert_eq!(a.setup.skip_steps, ["b"]);
    assert_eq!(a.setup.images["imap1"], "frontend-fixed");
    // A step may go with the checks judged on it, when the arm skips those too.
    let c = parse_t(&format!(
        "{HEAD}{ARMS_PREFIX}[arms.a]\nexpect = \"pass\"\nskip_checks = [\"ok\"]\nsetup = {{ skip_steps = [\"a\"] }}\n"
    ))
    .unwrap();
    assert_eq!(c.arm("a").unwrap().setup.skip_steps, ["a"]);
}

// ---- arm check selection ---------------------------------------------------------------------

/// Checks `ok` (step a) and `later` (requires ok), then `middle` (arms), for the arm tests.
fn arms_case(arms: &str) -> String {
    format!("{HEAD}[checks.ok]\nstep_ok = {{ step = \"a\" }}\n[checks.later]\nrequires = [\"ok\"]\nstep_ok = {{ step = \"a\" }}\n{arms}")
}

#[test]
fn arms_skip_and_report_checks_by_name() {
    let c = parse_t(&arms_case(
        "[arms.base]\nexpect = \"pass\"\nskip_checks = [\"later\"]\n[arms.bug]\nexpect = \"fail\"\nfailing_checks = [\"ok\"]\nreport_only = [\"later\"]\nfinding = \" stock behaves badly \"\n",
    ))
    .unwrap();
    assert_eq!(c.arm("base").unwrap().skip_checks, ["later"]);
    assert_eq!(c.arm("bug").unwrap().report_only, ["later"]);
    assert_eq!(
        c.arm("bug").unwrap().finding.as_deref(),
        Some("stock behaves badly")
    );
}

#[test]
fn arm_check_selection_errors_point_at_the_name() {
    let rows = [
        (
            "[arms.base]\nexpect = \"pass\"\nskip_checks = [\"nope\"]\n",
            "t.toml:18:16: unknown check `nope` (this case has ok, later)",
        ),
        // A pass arm that leaves a check out of its verdict says why.
        (
            "[arms.fine]\nexpect = \"pass\"\nreport_only = [\"later\"]\n",
            "t.toml:18:16: arm `fine` expects pass but only reports check `later`: give it a `finding` saying why that check is left out of the verdict",
        ),
        (
            "[arms.bug]\nexpect = \"fail\"\nfailing_checks = [\"ok\"]\nreport_only = [\"ok\"]\n",
            "t.toml:19:16: arm `bug` only reports check `ok`, which it also expects to fail",
        ),
        (
            "[arms.base]\nexpect = \"pass\"\nskip_checks = [\"ok\"]\n",
            "t.toml:18:16: arm `base` skips check `ok`, which check `later` requires: skip both or neither",
        ),
        (
            "[arms.base]\nexpect = \"pass\"\nfinding = \" \"\n",
            "t.toml:18:11: a finding is a sentence, not empty",
        ),
    ];
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|(arms, want)| {
            let got = full_err(&arms_case(arms));
            (got != *want).then(|| format!("for:\n{arms}\n  got: {got}\n want: {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn arms_change_how_a_session_ends() {
    let text = format!(
        "{HEAD}{}[checks.ok]\nstep_ok = {{ step = \"a\" }}\n[arms.base]\nexpect = \"pass\"\n[arms.gone]\nexpect = \"pass\"\nsetup.sessions.s = {{ stop_after_lines = 1, close = \"rst\" }}\n",
        session_step("")
    );
    let c = parse_t(&text).unwrap_or_else(|e| panic!("{e}"));
    let StepKind::Pop3(base) = &c.step("s").unwrap().kind else {
        panic!()
    };
    let gone = c.arm("gone").unwrap().session("s", base);
    assert_eq!(
        (gone.close, gone.stop),
        (CloseMode::Rst, Some(SessionStop::AfterLines(1)))
    );
    assert_eq!(c.arm("base").unwrap().session("s", base), *base);
    let bad = text.replace("setup.sessions.s", "setup.sessions.a");
    assert_eq!(
        full_err(&bad),
        "t.toml:25:16: step `a` is not an imap or pop3 session"
    );
}

#[test]
fn the_healthy_arm_is_an_arm_of_the_case_with_no_fault() {
    let with = |line: &str| {
        format!("healthy_arm = {line}\n{HEAD}{TAIL}[faults.f]\nstart = {{ at = \"0s\" }}\nguest_exec = {{ guest = \"filer\", command = \"true\" }}\n[arms.bug]\nfaults = [\"f\"]\nexpect = \"fail\"\nfailing_checks = [\"ok\"]\n")
    };
    assert_eq!(
        full_err(&with("\"nope\"")),
        "t.toml:1:15: unknown arm `nope` (this case has base, bug)"
    );
    assert_eq!(
        full_err(&with("\"bug\"")),
        "t.toml:1:15: the healthy arm is the normal range other arms are measured against: arm `bug` turns on faults (f)"
    );
    let case = parse_t(&with("\"base\"")).unwrap();
    assert_eq!(case.healthy_arm.as_deref(), Some("base"));
}

#[test]
fn an_arm_changes_a_population_s_size_and_retries_and_nothing_else() {
    let text = format!(
        "{HEAD}[[steps]]\nname = \"p\"\nguest = \"imap1\"\npopulation = {{ protocol = \"imap\", server = \"filer\", user = \"u%i\", password = \"x\", users = 20, duration = \"60s\", retry = {{ policy = \"fixed\", delay = \"2s\" }} }}\n{TAIL}[arms.backoff]\nexpect = \"pass\"\nsetup.populations.p = {{ users = 400, retry = {{ policy = \"exponential\", delay = \"1s\", max_delay = \"30s\", jitter = true }} }}\n"
    );
    let case = parse_t(&text).unwrap_or_else(|e| panic!("{e}"));
    let StepKind::Population(base) = &case.step("p").unwrap().kind else {
        panic!("not a population")
    };
    let changed = case.arm("backoff").unwrap().population("p", base);
    assert_eq!(changed.users, 400);
    assert_eq!(changed.retry.policy, RetryPolicy::Exponential);
    assert!(changed.retry.jitter);
    assert_eq!(changed.duration, base.duration);
    assert_eq!(case.arm("base").unwrap().population("p", base), *base);
    assert_eq!(
        full_err(&text.replace("setup.populations.p", "setup.populations.a")),
        "t.toml:21:19: step `a` is not a population"
    );
    assert_eq!(
        full_err(&text.replace("users = 400", "users = 0")),
        "t.toml:21:33: users is 1 to 4000"
    );
}
