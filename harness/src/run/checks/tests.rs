//! Checks judged against hand-made observations of the smoke case: what passes, what fails
//! and why, and that missing evidence is never a pass.

use std::path::Path;

use super::*;
use crate::case::{self, Verdict};
use crate::run::record::EvidenceRecord;
use crate::wire::rules::{Facts, RpcFacts};

fn smoke() -> Case {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml");
    case::load(&path).expect("cases/smoke.toml is valid")
}

fn step(name: &str, guest: &str, t: (f64, f64), outcome: StepOutcome, output: &str) -> StepRecord {
    StepRecord {
        started_s: Some(t.0),
        ended_s: Some(t.1),
        duration_s: Some(t.1 - t.0),
        exit_code: Some(if outcome == StepOutcome::Ok { 0 } else { 32 }),
        outcome,
        output: output.into(),
        ..StepRecord::new(name, Some(guest))
    }
}

fn evidence(name: &str, guest: &str, text: Option<&str>) -> EvidenceRecord {
    EvidenceRecord {
        name: name.into(),
        guest: guest.into(),
        phase: "after",
        file: format!("evidence/after/{name}.out"),
        text: text.map(str::to_string),
        exit_code: Some(0),
        problem: text
            .is_none()
            .then(|| "guest agent: no answer within 60s".to_string()),
        truncated: false,
    }
}

/// A GRANTED_MSG call from the filer to imap2, as the trace reader describes it.
fn granted(number: u64) -> TraceFrame {
    TraceFrame {
        number,
        timestamp_ns: 0,
        from: "filer".into(),
        to: vec!["imap2".into()],
        dropped_to: Vec::new(),
        facts: Facts {
            ethertype: 0x0800,
            ip_proto: Some(6),
            rpc: vec![RpcFacts {
                xid: 1,
                call: true,
                program: Some(100021),
                version: Some(4),
                procedure: Some(10),
                reclaim: None,
                nlm_stat: None,
            }],
            ..Facts::default()
        },
    }
}

fn all_ok(with_grant: bool) -> (Observed, Traces) {
    let ok = StepOutcome::Ok;
    let mut obs = Observed::default();
    for s in [
        step("mount-imap1", "imap1", (0.0, 1.0), ok.clone(), ""),
        step("mount-imap2", "imap2", (1.0, 2.0), ok.clone(), ""),
        step("hold-imap1", "imap1", (2.0, 7.0), ok.clone(), ""),
        step("wait-imap2", "imap2", (2.5, 7.1), ok.clone(), ""),
        step("write-imap1", "imap1", (7.1, 7.2), ok.clone(), ""),
        step(
            "read-imap2",
            "imap2",
            (7.2, 7.3),
            ok.clone(),
            "written-on-imap1\n",
        ),
        step("deliver", "imap1", (7.3, 9.0), ok.clone(), ""),
        step(
            "imap-read",
            "imap1",
            (9.0, 10.0),
            ok.clone(),
            "1.0 S: * 3 EXISTS\n",
        ),
        step(
            "pop3-read",
            "imap2",
            (10.0, 11.0),
            ok.clone(),
            "1.0 S: +OK 3 183\n",
        ),
    ] {
        obs.steps.insert(s.name.clone(), s);
    }
    for (n, g) in [
        ("filer-locks", "filer"),
        ("dovecot-log-imap2", "imap2"),
        ("check:no-dovecot-errors-imap1", "imap1"),
    ] {
        obs.evidence
            .insert(n.into(), evidence(n, g, Some("Info: all fine\n")));
    }
    let mut traces = Traces::new();
    let frames = if with_grant { vec![granted(41)] } else { Vec::new() };
    traces.insert("lan".into(), Ok(frames));
    (obs, traces)
}

fn table(results: &[CheckResult]) -> String {
    results
        .iter()
        .map(|r| format!("{} {}: {}", r.name(), r.verdict(), r.explanation().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn everything_observed_passes() {
    let (obs, traces) = all_ok(true);
    let results = judge(&smoke(), &obs, &traces);
    assert!(
        results.iter().all(|r| r.verdict() == Verdict::Pass),
        "{}",
        table(&results)
    );
}

#[test]
fn failed_mounts_fail_and_what_needs_them_is_not_judged() {
    let (mut obs, traces) = all_ok(false);
    // As a filer without an NFS server makes them fail (a real run's exit status and stderr).
    for (s, g) in [("mount-imap1", "imap1"), ("mount-imap2", "imap2")] {
        obs.steps.insert(
            s.into(),
            StepRecord {
                stderr: "mount.nfs: requested NFS version or transport protocol is not supported\n".into(),
                ..step(
                    s,
                    g,
                    (0.0, 10.2),
                    StepOutcome::Failed("exited 32 (expected 0): mount.nfs: requested NFS version or transport protocol is not supported".into()),
                    "",
                )
            },
        );
    }
    insta::assert_snapshot!(table(&judge(&smoke(), &obs, &traces)));
}

#[test]
fn missing_evidence_is_unknown_never_pass() {
    let (mut obs, mut traces) = all_ok(true);
    obs.evidence.insert(
        "dovecot-log-imap2".into(),
        evidence("dovecot-log-imap2", "imap2", None),
    );
    obs.evidence.remove("check:no-dovecot-errors-imap1");
    traces.insert(
        "lan".into(),
        Err("wire/lan.pcapng: truncated block at byte 4096".into()),
    );
    obs.steps.get_mut("imap-read").unwrap().outcome =
        StepOutcome::Error("guest agent: connection closed".into());
    insta::assert_snapshot!(table(&judge(&smoke(), &obs, &traces)));
}

#[test]
fn log_absent_on_a_failed_command_is_unknown_unless_a_line_matches() {
    let (mut obs, traces) = all_ok(true);
    let e = obs.evidence.get_mut("dovecot-log-imap2").unwrap();
    e.text = Some(String::new());
    e.exit_code = Some(1);
    e.problem = Some("`journalctl -u dovecot` exited 1".into());
    let verdict = |obs: &Observed| {
        let r = judge(&smoke(), obs, &traces);
        let r = r.iter().find(|r| r.name() == "no-dovecot-errors-imap2").unwrap();
        (r.verdict(), r.explanation().unwrap_or("-").to_string())
    };
    let (v, why) = verdict(&obs);
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("exited 1"), "{why}");
    obs.evidence.get_mut("dovecot-log-imap2").unwrap().text = Some("Error: broken\n".into());
    assert_eq!(verdict(&obs).0, Verdict::Fail);
}

#[test]
fn wrong_output_slow_lock_and_log_lines_fail_with_pointers() {
    let (mut obs, traces) = all_ok(true);
    obs.steps.get_mut("read-imap2").unwrap().output = "stale\n".into();
    obs.steps.get_mut("wait-imap2").unwrap().duration_s = Some(33.1);
    obs.evidence.get_mut("dovecot-log-imap2").unwrap().text = Some(
        "Info: ok\nError: Corrupted index cache file /srv/mail/alice/Maildir/dovecot.index.cache\n".into(),
    );
    insta::assert_snapshot!(table(&judge(&smoke(), &obs, &traces)));
}

#[test]
fn faster_gives_the_ratio_pass_or_fail() {
    let case = case::parse(
        Path::new("t.toml"),
        "name = \"t\"\nsummary = \"s\"\n[guests.imap1]\nimage = \"frontend\"\n[[steps]]\nname = \"cold\"\nguest = \"imap1\"\nexec = { command = \"true\" }\n[[steps]]\nname = \"warm\"\nguest = \"imap1\"\nexec = { command = \"true\" }\n[checks.quick]\nfaster = { step = \"warm\", than = \"cold\", factor = 5 }\n[arms.a]\nexpect = \"pass\"\n",
    )
    .unwrap();
    let mut obs = Observed::default();
    obs.steps.insert(
        "cold".into(),
        step("cold", "imap1", (0.0, 12.0), StepOutcome::Ok, ""),
    );
    obs.steps.insert(
        "warm".into(),
        step("warm", "imap1", (12.0, 12.4), StepOutcome::Ok, ""),
    );
    let traces = Traces::new();
    let r = &judge(&case, &obs, &traces)[0];
    assert_eq!(r.verdict(), Verdict::Pass);
    assert!(r.explanation().unwrap().contains("30.0 times faster"), "{r:?}");
    obs.steps.get_mut("warm").unwrap().duration_s = Some(6.0);
    let r = &judge(&case, &obs, &traces)[0];
    assert_eq!(r.verdict(), Verdict::Fail);
    assert!(
        r.explanation()
            .unwrap()
            .contains("2.0 times faster, not the 5 times required"),
        "{r:?}"
    );
}

#[test]
fn frames_during_a_step_count_only_its_window() {
    let case = case::parse(
        Path::new("t.toml"),
        "name = \"t\"\nsummary = \"s\"\n[guests.filer]\nimage = \"filer\"\n[guests.imap2]\nimage = \"frontend\"\n[[steps]]\nname = \"first\"\nguest = \"imap2\"\nexec = { command = \"true\" }\n[[steps]]\nname = \"second\"\nguest = \"imap2\"\nexec = { command = \"true\" }\n[checks.granted-in-first]\nframes = { segment = \"lan\", from = \"filer\", rpc_procedure = \"NLM4_GRANTED_MSG\", during = \"first\", count_at_least = 1 }\n[arms.a]\nexpect = \"pass\"\n",
    )
    .unwrap();
    let t0 = 1_800_000_000.0;
    let at = |n: u64, t: f64| TraceFrame {
        timestamp_ns: ((t0 + t) * 1e9) as u64,
        ..granted(n)
    };
    // Steps carry wall-clock times of their own; the monotonic ones may have drifted from them.
    let timed = |name: &str, t: (f64, f64)| StepRecord {
        started_unix: Some(t0 + t.0),
        ended_unix: Some(t0 + t.1),
        ..step(name, "imap2", (t.0 - 0.5, t.1 - 0.5), StepOutcome::Ok, "")
    };
    let mut obs = Observed::default();
    obs.steps.insert("first".into(), timed("first", (1.0, 2.0)));
    obs.steps.insert("second".into(), timed("second", (3.0, 4.0)));
    let mut traces = Traces::new();
    traces.insert("lan".into(), Ok(vec![at(7, 1.5), at(9, 3.5)]));
    let r = &judge(&case, &obs, &traces)[0];
    assert_eq!(r.verdict(), Verdict::Pass, "{r:?}");
    assert_eq!(
        r.explanation().unwrap(),
        "1 frame(s) in wire/lan.pcapng while step `first` on imap2 (t=0.5–1.5 s) ran match NLM4_GRANTED_MSG message from filer: frames 7"
    );
    // The only grant came during the second step: none while the first ran (the trace
    // covers the first step's run: a frame before it, one after).
    let other = |n: u64, t: f64| TraceFrame {
        from: "imap2".into(),
        to: vec!["filer".into()],
        facts: Facts::default(),
        ..at(n, t)
    };
    traces.insert("lan".into(), Ok(vec![other(3, 0.5), at(9, 3.5)]));
    let r = &judge(&case, &obs, &traces)[0];
    assert_eq!(r.verdict(), Verdict::Fail, "{r:?}");
    assert!(
        r.explanation()
            .unwrap()
            .starts_with("none of the 0 frames in wire/lan.pcapng while step `first`"),
        "{r:?}"
    );
    // Without the step's wall-clock times there is no window to count in.
    obs.steps.get_mut("first").unwrap().ended_unix = None;
    assert_eq!(judge(&case, &obs, &traces)[0].verdict(), Verdict::Unknown);
}

/// Two exec steps on imap1, `a` then `b`, and `checks` after them.
fn two_steps(checks: &str) -> Case {
    case::parse(
        Path::new("t.toml"),
        &format!("name = \"t\"\nsummary = \"s\"\n[guests.imap1]\nimage = \"frontend\"\n[[steps]]\nname = \"a\"\nguest = \"imap1\"\nexec = {{ command = \"true\" }}\n[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = {{ command = \"true\" }}\n{checks}[arms.x]\nexpect = \"pass\"\n"),
    )
    .unwrap()
}

/// A case of one guest step `s` on imap1 and `checks` (TOML), for the tests below.
fn one_step_case(extra: &str) -> Case {
    case::parse(
        Path::new("t.toml"),
        &format!("name = \"t\"\nsummary = \"s\"\n[guests.filer]\nimage = \"filer\"\n[guests.imap1]\nimage = \"frontend\"\n[[steps]]\nname = \"s\"\nguest = \"imap1\"\nexec = {{ command = \"true\" }}\n{extra}[arms.a]\nexpect = \"pass\"\n"),
    )
    .unwrap()
}

fn verdicts(case: &Case, obs: &Observed) -> Vec<(Verdict, String)> {
    judge(case, obs, &Traces::new())
        .iter()
        .map(|r| (r.verdict(), r.explanation().unwrap_or("-").to_string()))
        .collect()
}

fn killed(name: &str, t: (f64, f64)) -> StepRecord {
    StepRecord {
        exit_code: None,
        ..step(
            name,
            "imap1",
            t,
            StepOutcome::TimedOut("still running after 90 s, killed".into()),
            "",
        )
    }
}

#[test]
fn a_step_that_timed_out_is_unknown_not_failed() {
    let case = two_steps(
        "[checks.ok]\nstep_ok = { step = \"b\" }\n[checks.failed]\nstep_failed = { step = \"b\" }\n[checks.quick]\nduration_at_most = { step = \"b\", limit = \"5s\" }\n[checks.soon]\nduration_at_most = { step = \"b\", limit = \"5s\", since_end_of = \"a\" }\n[checks.faster]\nfaster = { step = \"a\", than = \"b\", factor = 2 }\n",
    );
    let mut obs = Observed::default();
    obs.steps
        .insert("a".into(), step("a", "imap1", (0.0, 1.0), StepOutcome::Ok, ""));
    obs.steps.insert("b".into(), killed("b", (1.0, 91.0)));
    for (v, why) in verdicts(&case, &obs) {
        assert_eq!(v, Verdict::Unknown, "{why}");
        assert!(
            why.contains("ran out of time (still running after 90 s, killed)"),
            "{why}"
        );
    }
    // How a timed-out step reads in steps.json.
    assert_eq!(
        serde_json::to_string(&obs.steps["b"].outcome).unwrap(),
        r#"{"outcome":"timed-out","why":"still running after 90 s, killed"}"#
    );
}

#[test]
fn step_failed_passes_only_for_its_stated_reason() {
    let case = two_steps(
        "[checks.double-holder]\nstep_failed = { step = \"b\", exit = 3, output_contains = \"imap2 got the lock while imap1 was inside\" }\n",
    );
    let mut obs = Observed::default();
    let failed = |exit: i64, output: &str| StepRecord {
        exit_code: Some(exit),
        ..step(
            "b",
            "imap1",
            (1.0, 2.0),
            StepOutcome::Failed(format!("exited {exit} (expected 0)")),
            output,
        )
    };
    obs.steps.insert(
        "b".into(),
        failed(
            3,
            "imap2 read 0, wrote 1\nimap2 got the lock while imap1 was inside its critical section\n",
        ),
    );
    assert_eq!(verdicts(&case, &obs)[0].0, Verdict::Pass);
    // flock -w 90 timing out: exit 1, nothing printed. Not the double holder.
    obs.steps.insert("b".into(), failed(1, ""));
    let (v, why) = verdicts(&case, &obs).remove(0);
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("but not as expected (exit 3, output containing \"imap2 got the lock while imap1 was inside\"): it exited 1, not 3"), "{why}");
    // The right exit status without the line is not it either.
    obs.steps.insert("b".into(), failed(3, "imap2 read 0, wrote 1\n"));
    let (v, why) = verdicts(&case, &obs).remove(0);
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("(its output) does not contain"), "{why}");
    // Succeeding is the opposite of the claim.
    obs.steps
        .insert("b".into(), step("b", "imap1", (1.0, 2.0), StepOutcome::Ok, ""));
    assert_eq!(verdicts(&case, &obs)[0].0, Verdict::Fail);
}

#[test]
fn fail_when_turns_a_failure_for_another_reason_into_unknown() {
    let case = two_steps(
        "[[evidence.after]]\nname = \"counter\"\nguest = \"imap1\"\ncommand = \"cat /export/counter\"\n[checks.second-write]\nstep_ok = { step = \"b\" }\nfail_when = { exit = 1, stderr_contains = \"Input/output error\" }\n[checks.counter]\nexec_output = { evidence = \"counter\", equals = \"2\" }\nfail_when = { exit = 0, output_equals = \"1\" }\n",
    );
    let mut obs = Observed::default();
    obs.steps.insert(
        "b".into(),
        StepRecord {
            exit_code: Some(1),
            stderr: "dd: failed to open '/mnt/shelf/during': Input/output error\n".into(),
            ..step(
                "b",
                "imap1",
                (1.0, 2.0),
                StepOutcome::Failed(
                    "exited 1 (expected 0): dd: failed to open '/mnt/shelf/during': Input/output error"
                        .into(),
                ),
                "",
            )
        },
    );
    obs.evidence
        .insert("counter".into(), evidence("counter", "filer", Some("1\n")));
    let got = verdicts(&case, &obs);
    assert_eq!(got[0].0, Verdict::Fail, "{}", got[0].1);
    assert!(
        got[0]
            .1
            .ends_with("(the failure the check names: exit 1, stderr containing \"Input/output error\")"),
        "{}",
        got[0].1
    );
    assert_eq!(got[1].0, Verdict::Fail, "{}", got[1].1);
    // dd failing on something else, and a counter that reads 3: failures, but not the ones
    // the checks name.
    let b = obs.steps.get_mut("b").unwrap();
    b.stderr = "dd: error writing '/mnt/shelf/during': No space left on device\n".into();
    obs.evidence.get_mut("counter").unwrap().text = Some("3\n".into());
    let got = verdicts(&case, &obs);
    assert_eq!(got[0].0, Verdict::Unknown, "{}", got[0].1);
    assert!(
        got[0]
            .1
            .contains("(its stderr) does not contain \"Input/output error\""),
        "{}",
        got[0].1
    );
    assert_eq!(got[1].0, Verdict::Unknown, "{}", got[1].1);
    assert!(
        got[1].1.contains("(its output) was \"3\", not \"1\""),
        "{}",
        got[1].1
    );
    // A pass is a pass whatever the reason says.
    obs.evidence.get_mut("counter").unwrap().text = Some("2\n".into());
    assert_eq!(verdicts(&case, &obs)[1].0, Verdict::Pass);
}

#[test]
fn faster_between_steps_that_did_not_both_succeed_is_unknown() {
    let case = two_steps("[checks.quick]\nfaster = { step = \"b\", than = \"a\", factor = 5 }\n");
    let mut obs = Observed::default();
    // `a` failed fast after a long time, `b` is quick: no ratio of work to work.
    obs.steps.insert(
        "a".into(),
        step(
            "a",
            "imap1",
            (0.0, 30.0),
            StepOutcome::Failed("exited 1 (expected 0)".into()),
            "",
        ),
    );
    obs.steps
        .insert("b".into(), step("b", "imap1", (30.0, 30.1), StepOutcome::Ok, ""));
    let (v, why) = verdicts(&case, &obs).remove(0);
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(
        why.contains("step `a` on imap1 (t=0.0–30.0 s) did not succeed"),
        "{why}"
    );
    obs.steps.get_mut("a").unwrap().outcome = StepOutcome::Ok;
    assert_eq!(verdicts(&case, &obs)[0].0, Verdict::Pass);
}

#[test]
fn a_step_that_ended_before_the_one_it_is_timed_from_is_unknown_not_a_pass() {
    let case = two_steps(
        "[checks.soon]\nduration_at_most = { step = \"a\", limit = \"5s\", since_end_of = \"b\" }\n",
    );
    let mut obs = Observed::default();
    obs.steps
        .insert("a".into(), step("a", "imap1", (0.0, 1.0), StepOutcome::Ok, ""));
    obs.steps
        .insert("b".into(), step("b", "imap1", (1.0, 4.0), StepOutcome::Ok, ""));
    let (v, why) = verdicts(&case, &obs).remove(0);
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(
        why.contains("ended 3.00 s before the end of step `b` on imap1 (t=1.0–4.0 s): the order was wrong"),
        "{why}"
    );
    obs.steps.get_mut("a").unwrap().ended_s = Some(6.0);
    assert_eq!(verdicts(&case, &obs)[0].0, Verdict::Pass);
}

#[test]
fn a_goodbye_is_found_in_the_payload_head_and_only_there() {
    let case = case::parse(
        Path::new("t.toml"),
        "name = \"t\"\nsummary = \"s\"\n[guests.imap1]\nimage = \"frontend\"\n[guests.client]\nimage = \"frontend\"\n[checks.no-quit]\nframes = { segment = \"lan\", from = \"client\", to = \"imap1\", dst_port = 110, payload_contains = \"QUIT\", count_equals = 0 }\n[arms.a]\nexpect = \"pass\"\n",
    )
    .unwrap();
    let sent = |number: u64, payload: &[u8]| TraceFrame {
        number,
        timestamp_ns: 0,
        from: "client".into(),
        to: vec!["imap1".into()],
        dropped_to: Vec::new(),
        facts: Facts {
            ethertype: 0x0800,
            ip_proto: Some(6),
            dst_port: Some(110),
            payload: crate::wire::rules::PayloadHead::new(payload),
            ..Facts::default()
        },
    };
    let mut traces = Traces::new();
    let mut late = vec![b'x'; 40];
    late.extend_from_slice(b"QUIT\r\n");
    traces.insert("lan".into(), Ok(vec![sent(3, b"STAT\r\n"), sent(5, &late)]));
    let obs = Observed::default();
    assert_eq!(judge(&case, &obs, &traces)[0].verdict(), Verdict::Pass);
    traces.insert("lan".into(), Ok(vec![sent(3, b"STAT\r\n"), sent(7, b"QUIT\r\n")]));
    let r = &judge(&case, &obs, &traces)[0];
    assert_eq!(r.verdict(), Verdict::Fail);
    assert!(
        r.explanation()
            .unwrap()
            .contains("with \"QUIT\" in its payload (frames 7)"),
        "{r:?}"
    );
}

fn judged(case: &Case, obs: &Observed, traces: &Traces) -> (Verdict, String) {
    let r = &judge(case, obs, traces)[0];
    (r.verdict(), r.explanation().unwrap_or("-").to_string())
}

#[test]
fn step_output_of_a_step_that_did_not_succeed_is_unknown_not_judged_on_its_output() {
    let case = one_step_case("[checks.count]\nstep_output = { step = \"s\", equals = \"0 lines\" }\n");
    let mut obs = Observed::default();
    obs.steps.insert(
        "s".into(),
        step(
            "s",
            "imap1",
            (1.0, 61.0),
            StepOutcome::Failed("still running after 60 s, killed".into()),
            "0 lines",
        ),
    );
    let (v, why) = judged(&case, &obs, &Traces::new());
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(
        why.contains("did not succeed (still running after 60 s, killed)"),
        "{why}"
    );
    // Succeeded, but the agent cut its output short: partial evidence.
    let rec = obs.steps.get_mut("s").unwrap();
    rec.outcome = StepOutcome::Ok;
    rec.truncated = true;
    let (v, why) = judged(&case, &obs, &Traces::new());
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("cut the output"), "{why}");
    obs.steps.get_mut("s").unwrap().truncated = false;
    assert_eq!(judged(&case, &obs, &Traces::new()).0, Verdict::Pass);
}

#[test]
fn exec_output_of_a_command_that_exited_non_zero_is_unknown() {
    let case = one_step_case("[[evidence.after]]\nname = \"counter\"\nguest = \"filer\"\ncommand = \"cat /export/counter\"\n[checks.count]\nexec_output = { evidence = \"counter\", equals = \"2\" }\n");
    let mut obs = Observed::default();
    let mut e = evidence("counter", "filer", Some(""));
    e.exit_code = Some(1);
    obs.evidence.insert("counter".into(), e);
    // A failed `cat` printed "": not a counter of "", not a fail.
    let (v, why) = judged(&case, &obs, &Traces::new());
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("the command exited 1"), "{why}");
    let e = obs.evidence.get_mut("counter").unwrap();
    e.exit_code = Some(0);
    e.text = Some("1\n".into());
    assert_eq!(judged(&case, &obs, &Traces::new()).0, Verdict::Fail);
    // The whole output, cut short by the agent, is partial too.
    obs.evidence.get_mut("counter").unwrap().truncated = true;
    assert_eq!(judged(&case, &obs, &Traces::new()).0, Verdict::Unknown);
}

#[test]
fn log_absent_without_its_control_line_or_on_a_cut_output_is_unknown() {
    let case = one_step_case("[[evidence.after]]\nname = \"statd\"\nguest = \"imap1\"\ncommand = \"journalctl -t rpc.statd | grep -i statd || true\"\n[checks.reached]\nlog_absent = { evidence = \"statd\", pattern = \"Can't callback\", control = \"rpc.statd*Version * starting\" }\n");
    let mut obs = Observed::default();
    // journalctl failed: the pipeline printed nothing and exited 0.
    obs.evidence
        .insert("statd".into(), evidence("statd", "imap1", Some("")));
    let (v, why) = judged(&case, &obs, &Traces::new());
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("no line matching its control"), "{why}");
    let started = "Jan 01 00:00:01.000000 imap1 rpc.statd[412]: Version 2.6.2 starting\n";
    obs.evidence.get_mut("statd").unwrap().text = Some(started.into());
    assert_eq!(judged(&case, &obs, &Traces::new()).0, Verdict::Pass);
    obs.evidence.get_mut("statd").unwrap().truncated = true;
    assert_eq!(judged(&case, &obs, &Traces::new()).0, Verdict::Unknown);
    // A matching line is a finding even in a partial text.
    obs.evidence.get_mut("statd").unwrap().text =
        Some("rpc.statd[412]: Can't callback imap1 (100021,4), giving up.\n".into());
    assert_eq!(judged(&case, &obs, &Traces::new()).0, Verdict::Fail);
}

/// A window the trace does not provably cover (no frame before it, or none after) cannot
/// show that nothing was sent in it.
#[test]
fn frames_counting_none_in_a_window_the_trace_does_not_cover_are_unknown() {
    let case = one_step_case("[checks.silent]\nframes = { segment = \"lan\", from = \"filer\", rpc_procedure = \"NLM4_GRANTED_MSG\", during = \"s\", count_equals = 0 }\n");
    let t0 = 1_800_000_000.0;
    let mut obs = Observed::default();
    obs.steps.insert(
        "s".into(),
        StepRecord {
            started_unix: Some(t0 + 1.0),
            ended_unix: Some(t0 + 2.0),
            ..step("s", "imap1", (1.0, 2.0), StepOutcome::Ok, "")
        },
    );
    let other = |n: u64, t: f64| TraceFrame {
        timestamp_ns: ((t0 + t) * 1e9) as u64,
        from: "imap1".into(),
        to: vec!["filer".into()],
        facts: Facts::default(),
        ..granted(n)
    };
    let mut traces = Traces::new();
    // The capture ended before the step: nothing after its window.
    traces.insert("lan".into(), Ok(vec![other(1, 0.5)]));
    let (v, why) = judged(&case, &obs, &traces);
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("no frame after the window"), "{why}");
    // No frames at all.
    traces.insert("lan".into(), Ok(Vec::new()));
    assert_eq!(judged(&case, &obs, &traces).0, Verdict::Unknown);
    // Frames on both sides: the absence is proven.
    traces.insert(
        "lan".into(),
        Ok(vec![other(1, 0.5), other(2, 1.5), other(3, 2.5)]),
    );
    assert_eq!(judged(&case, &obs, &traces).0, Verdict::Pass);
    // A trace the runner found incomplete is no evidence.
    traces.insert(
        "lan".into(),
        Err("wire/lan.pcapng holds fewer frames than the switch received (2 of 3 from imap1)".into()),
    );
    let (v, why) = judged(&case, &obs, &traces);
    assert_eq!(v, Verdict::Unknown, "{why}");
    assert!(why.contains("fewer frames than the switch received"), "{why}");
}

/// `to` is addressed to; `delivered = true` leaves out a frame a rule dropped toward it.
#[test]
fn frames_to_a_guest_count_dropped_frames_unless_delivered_is_asked() {
    let check = |delivered: bool| {
        one_step_case(&format!("[checks.reached]\nframes = {{ segment = \"lan\", from = \"filer\", to = \"imap2\", rpc_procedure = \"NLM4_GRANTED_MSG\", delivered = {delivered}, count_at_least = 1 }}\n[guests.imap2]\nimage = \"frontend\"\n"))
    };
    let mut traces = Traces::new();
    traces.insert(
        "lan".into(),
        Ok(vec![TraceFrame {
            dropped_to: vec!["imap2".into()],
            ..granted(41)
        }]),
    );
    let obs = Observed::default();
    assert_eq!(judged(&check(false), &obs, &traces).0, Verdict::Pass);
    assert_eq!(judged(&check(true), &obs, &traces).0, Verdict::Fail);
}
