//! Evidence, checks and measures.

use super::*;

#[test]
fn evidence() {
    table(&[
        (
            "[[evidence.after]]\nname = \"e\"\nguest = \"filer\"\ncommand = \"x\"\nfile = \"/y\"\n",
            "t.toml:15:8: evidence `e` takes one of command, file, not both `command` and `file`",
        ),
        (
            "[[evidence.after]]\nname = \"e\"\nguest = \"filer\"\n",
            "t.toml:12:8: evidence `e` needs one of command, file",
        ),
        (
            "[[evidence.before]]\nname = \"e\"\nguest = \"filer\"\nfile = \"/y\"\n[[evidence.after]]\nname = \"e\"\nguest = \"filer\"\nfile = \"/y\"\n",
            "t.toml:16:8: evidence `e` is already defined on line 12",
        ),
        (
            "[[evidence.after]]\nname = \"e\"\nguest = \"filer\"\nfile = \"/y\"\ntimeout = \"5s\"\n",
            "t.toml:15:11: `timeout` only goes with a `command`",
        ),
        (
            "[[evidence.after]]\nname = \"e\"\nguest = \"nfs\"\ncommand = \"x\"\n",
            "t.toml:13:9: unknown guest `nfs` (this case has filer, imap1)",
        ),
    ]);
}

#[test]
fn checks() {
    table(&[
        ("[checks.x]\nstep_ok = { step = \"zz\" }\n", "t.toml:12:20: unknown step `zz` (this case has a)"),
        (
            "[checks.x]\nstep_ok = { step = \"a\" }\nstep_failed = { step = \"a\" }\n",
            "t.toml:13:15: check `x` takes one of step_ok, step_failed, step_output, exec_output, duration_at_most, log_absent, frames, faster, success_rate, drains_within, series_peak, not both `step_ok` and `step_failed`",
        ),
        (
            "[checks.x]\nrequires = []\n",
            "t.toml:11:9: check `x` needs one of step_ok, step_failed, step_output, exec_output, duration_at_most, log_absent, frames, faster, success_rate, drains_within, series_peak",
        ),
        (
            "[checks.x]\nrequires = [\"ok\"]\nstep_ok = { step = \"a\" }\n",
            "t.toml:12:13: check `x` can only require checks declared before it, and `ok` is not",
        ),
        (
            "[checks.x]\nrequires = [\"nope\"]\nstep_ok = { step = \"a\" }\n",
            "t.toml:12:13: unknown check `nope` (this case has x, ok)",
        ),
        (
            "[checks.x]\nstep_output = { step = \"a\" }\n",
            "t.toml:12:15: `step_output` needs one of equals, contains, matches",
        ),
        (
            "[checks.x]\nstep_output = { step = \"a\", equals = \"1\", matches = \"1*\" }\n",
            "t.toml:12:53: `step_output` takes one of equals, contains, matches, not both `equals` and `matches`",
        ),
        (
            "[[steps]]\nname = \"w\"\nwait = { duration = \"1s\" }\n[checks.x]\nstep_output = { step = \"w\", contains = \"x\" }\n",
            "t.toml:15:24: step `w` is a wait: it has no output",
        ),
        (
            "[checks.x]\nstep_output = { step = \"a\", contains = \"\" }\n",
            "t.toml:12:40: `contains = \"\"` always holds",
        ),
        // An empty output is what a failed command prints: it proves no absence.
        (
            "[checks.x]\nstep_output = { step = \"a\", equals = \"\" }\n",
            "t.toml:12:38: `equals = \"\"` holds for a command that printed nothing because it failed: print a count and compare it (`equals = \"0\"`), or use `log_absent` with a `control`",
        ),
        // A command's output must carry a control line for an absence in it to count.
        (
            "[[evidence.after]]\nname = \"j\"\nguest = \"imap1\"\ncommand = \"journalctl | grep x || true\"\n[checks.x]\nlog_absent = { evidence = \"j\", pattern = \"x\" }\n",
            "t.toml:16:27: evidence `j` is a command's output: `log_absent` on it needs a `control`, a pattern of a line that is always in that output (the service's start line, the kernel's banner), so that an empty or cut-short output cannot pass",
        ),
        (
            "[checks.x]\nexec_output = { equals = \"1\" }\n",
            "t.toml:12:15: `exec_output` needs `evidence`, or `guest` and `command`",
        ),
        (
            "[checks.x]\nexec_output = { evidence = \"e\", guest = \"filer\", equals = \"1\" }\n",
            "t.toml:12:41: give either `evidence` or `guest` and `command`, not both",
        ),
        (
            "[checks.x]\nexec_output = { evidence = \"nope\", equals = \"1\" }\n",
            "t.toml:12:28: unknown evidence `nope` (this case has none)",
        ),
        (
            "[checks.x]\nexec_output = { guest = \"filer\", equals = \"1\" }\n",
            "t.toml:12:25: `guest` needs a `command` to go with it",
        ),
        (
            "[checks.x]\nlog_absent = { guest = \"imap1\", file = \"dovecot.log\", pattern = \"Error\" }\n",
            "t.toml:12:40: file \"dovecot.log\" must be an absolute path",
        ),
        (
            "[checks.x]\nlog_absent = { guest = \"imap1\", file = \"/l\", pattern = \"\" }\n",
            "t.toml:12:56: empty pattern",
        ),
        (
            "[checks.x]\nframes = { segment = \"lan\", count_at_least = 0 }\n",
            "t.toml:12:46: count_at_least = 0 always holds: use 1 or more",
        ),
        (
            "[checks.x]\nframes = { segment = \"lan\" }\n",
            "t.toml:12:10: `frames` needs one of count_at_least, count_equals",
        ),
        (
            "[checks.x]\nframes = { segment = \"lan\", count_equals = -1 }\n",
            "t.toml:12:44: a count cannot be negative",
        ),
    ]);
    assert_eq!(
        full_err(&format!("{HEAD}[checks]\n[arms.a]\nexpect = \"pass\"\n")),
        "t.toml:11:1: a case needs at least one check: an arm with no checks can only be unknown"
    );
    // Inline evidence for a check becomes an after-evidence item named after it.
    let c = ok("[[evidence.before]]\nname = \"locks\"\nguest = \"filer\"\ncommand = \"cat /proc/locks\"\n[checks.x]\nexec_output = { guest = \"filer\", command = \"wc -l < /proc/locks\", timeout = \"5s\", equals = \"0\" }\n[checks.y]\nrequires = [\"x\"]\nexec_output = { evidence = \"locks\", contains = \"POSIX\" }\n");
    assert_eq!(
        c.evidence.after,
        [EvidenceItem {
            name: "check:x".into(),
            guest: "filer".into(),
            source: EvidenceSource::Command {
                command: "wc -l < /proc/locks".into(),
                timeout: Duration::from_secs(5)
            }
        }]
    );
    assert_eq!(
        c.check("y").unwrap().needs,
        [Need::Evidence {
            evidence: "locks".into()
        }]
    );
    assert_eq!(c.check("y").unwrap().requires, ["x"]);
}

#[test]
fn measures() {
    table(&[
        (
            "[measures.m]\nwhat = \"x\"\n",
            "t.toml:11:11: measure `m` needs one of step_output, duration",
        ),
        (
            "[measures.m]\nwhat = \"x\"\nstep_output = \"a\"\nduration = \"a\"\n",
            "t.toml:14:12: measure `m` takes one of step_output, duration, not both `step_output` and `duration`",
        ),
        (
            "[measures.m]\nwhat = \"x\"\nduration = \"zz\"\n",
            "t.toml:13:12: unknown step `zz` (this case has a)",
        ),
        (
            "[measures.m]\nwhat = \" \"\nduration = \"a\"\n",
            "t.toml:12:8: what is empty",
        ),
        (
            "[measures.M]\nwhat = \"x\"\nduration = \"a\"\n",
            "t.toml:11:11: measure name \"M\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit",
        ),
        (
            "[[steps]]\nname = \"w\"\nwait = { duration = \"1s\" }\n[measures.m]\nwhat = \"x\"\nstep_output = \"w\"\n",
            "t.toml:16:15: step `w` is a wait: it has no output",
        ),
    ]);
    let c = ok("[measures.opened]\nwhat = \"messages opened\"\nstep_output = \"a\"\nunit = \"messages\"\n");
    assert_eq!(
        c.measures,
        vec![Measure {
            name: "opened".into(),
            what: "messages opened".into(),
            source: MeasureSource::StepOutput { step: "a".into() },
            unit: Some("messages".into()),
        }]
    );
}

#[test]
fn duration_since_another_steps_end_needs_both_steps() {
    let c =
        ok("[checks.prompt]\nduration_at_most = { step = \"a\", since_end_of = \"a\", limit = \"5s\" }\n");
    assert_eq!(c.check("prompt").unwrap().needs.len(), 2);
    assert_eq!(
        err("[checks.prompt]\nduration_at_most = { step = \"a\", since_end_of = \"b\", limit = \"5s\" }\n"),
        "t.toml:12:49: unknown step `b` (this case has a)"
    );
}

#[test]
fn faster_compares_two_steps() {
    let c = ok("[checks.quick]\nfaster = { step = \"a\", than = \"a\", factor = 2.5 }\n");
    assert_eq!(
        c.check("quick").unwrap().kind,
        CheckKind::Faster {
            step: "a".into(),
            than: "a".into(),
            factor_milli: 2500
        }
    );
    assert_eq!(
        err("[checks.quick]\nfaster = { step = \"a\", than = \"a\", factor = 0.5 }\n"),
        "t.toml:12:45: factor is a number, at least 1 (how many times faster)"
    );
}

#[test]
fn a_failure_reason_is_validated_where_it_is_written() {
    table(&[
        (
            "[checks.x]\nstep_ok = { step = \"a\" }\nfail_when = {}\n",
            "t.toml:13:13: `fail_when` needs at least one of exit, output_equals, output_contains, output_matches, stderr_equals, stderr_contains, stderr_matches",
        ),
        (
            "[checks.x]\nframes = { segment = \"lan\", count_at_least = 1 }\nfail_when = { exit = 1 }\n",
            "t.toml:13:13: `fail_when` goes with `step_ok`, `step_output` or `exec_output`: what their step's or evidence item's failure must look like",
        ),
        (
            "[[evidence.after]]\nname = \"e\"\nguest = \"filer\"\ncommand = \"x\"\n[checks.x]\nexec_output = { evidence = \"e\", equals = \"2\" }\nfail_when = { stderr_contains = \"x\" }\n",
            "t.toml:17:33: an evidence item keeps no stderr: `fail_when` on `exec_output` takes `exit` and `output_*`",
        ),
        (
            "[checks.x]\nstep_failed = { step = \"a\", exit = 300 }\n",
            "t.toml:12:36: exit 300 is not an exit status (0–255)",
        ),
        (
            "[checks.x]\nstep_failed = { step = \"a\", output_contains = \"x\", output_matches = \"y*\" }\n",
            "t.toml:12:69: give one of output_equals, output_contains, output_matches, not both `output_contains` and `output_matches`",
        ),
        (
            "[checks.x]\nstep_ok = { step = \"a\" }\nfail_when = { stderr_contains = \"\" }\n",
            "t.toml:13:33: `stderr_contains = \"\"` says nothing of why the step failed",
        ),
        (
            "[checks.x]\nstep_ok = { step = \"a\" }\nfail_when = { code = 3 }\n",
            "t.toml:13:15: unknown field `code`, expected one of `exit`, `output_equals`, `output_contains`, `output_matches`, `stderr_equals`, `stderr_contains`, `stderr_matches`",
        ),
        (
            "[checks.x]\nframes = { segment = \"lan\", payload_contains = \"a line longer than the thirty-two bytes looked at\", count_at_least = 1 }\n",
            "t.toml:12:48: payload_contains is 1 to 32 bytes of one line: only the payload's first 32 bytes are looked at",
        ),
        (
            "[checks.x]\nframes = { segment = \"lan\", payload_contains = \"\", count_at_least = 1 }\n",
            "t.toml:12:48: payload_contains is 1 to 32 bytes of one line: only the payload's first 32 bytes are looked at",
        ),
    ]);
}

#[test]
fn a_failure_reason_reads_as_written() {
    let c = ok("[checks.x]\nstep_failed = { step = \"a\", exit = 3, output_contains = \"twice\", stderr_matches = \"dd: * Input/output error\" }\n[checks.y]\nstep_ok = { step = \"a\" }\nfail_when = { exit = 1, output_equals = \"1\" }\n");
    assert_eq!(
        c.check("x").unwrap().kind,
        CheckKind::StepFailed {
            step: "a".into(),
            reason: FailureReason {
                exit: Some(3),
                output: Some(TextExpect::Contains("twice".into())),
                stderr: Some(TextExpect::Matches(
                    Pattern::new("dd: * Input/output error").unwrap()
                )),
            },
        }
    );
    assert_eq!(c.check("x").unwrap().fail_when, None);
    assert_eq!(
        c.check("y").unwrap().fail_when,
        Some(FailureReason {
            exit: Some(1),
            output: Some(TextExpect::Equals("1".into())),
            stderr: None,
        })
    );
}

#[test]
fn a_log_absent_on_a_command_takes_a_control_and_frames_take_delivered() {
    let c = ok("[[evidence.after]]\nname = \"j\"\nguest = \"imap1\"\ncommand = \"journalctl | grep x || true\"\n[checks.x]\nlog_absent = { evidence = \"j\", pattern = \"x\", control = \"x * starting\" }\n[checks.y]\nframes = { segment = \"lan\", to = \"imap1\", delivered = true, count_at_least = 1 }\n");
    match &c.check("x").unwrap().kind {
        CheckKind::LogAbsent { control, .. } => {
            assert_eq!(control.as_ref().map(|p| p.as_str()), Some("x * starting"))
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(
        c.check("y").unwrap().kind,
        CheckKind::Frames { delivered: true, .. }
    ));
}

/// A population step `p` (lines 11–14), for series checks to name.
const POP: &str = "[[steps]]\nname = \"p\"\nguest = \"imap1\"\npopulation = { protocol = \"imap\", server = \"filer\", user = \"u%i\", password = \"x\", users = 2, duration = \"10s\" }\n";

#[test]
fn series_checks_are_validated_where_they_are_written() {
    let rows = [
        (
            "[checks.x]\nsuccess_rate = { population = \"zz\", at_least = \"95%\" }\n",
            "t.toml:16:31: unknown step `zz` (this case has a, p)",
        ),
        (
            "[checks.x]\nsuccess_rate = { population = \"a\", at_least = \"95%\" }\n",
            "t.toml:16:31: step `a` is not a `population`: only a population's attempts have a rate",
        ),
        (
            "[checks.x]\nsuccess_rate = { population = \"p\", at_least = \"120%\" }\n",
            "t.toml:16:47: a share is a percentage (\"95%\", \"99.5%\") or a number from 0 to 1",
        ),
        (
            "[checks.x]\nsuccess_rate = { population = \"p\", at_least = 0.9, from = \"60s\", to = \"30s\" }\n",
            "t.toml:16:71: `to` must come after `from`: the window would hold no attempt",
        ),
        (
            "[checks.x]\ndrains_within = { population = \"p\", within = \"90s\", failure_rate_below = \"0%\" }\n",
            "t.toml:16:74: a failure rate below 0 % never holds: give a bound above 0 (e.g. \"5%\")",
        ),
        (
            "[checks.x]\ndrains_within = { population = \"p\", failure_rate_below = \"5%\" }\n",
            "t.toml:16:17: missing field `within`",
        ),
        (
            "[checks.x]\nseries_peak = { series = \"load1\", at_most = 3 }\n",
            "t.toml:16:26: a series is named `<guest, segment or step>.<metric>` (e.g. `imap1.procs.imap-login`), not `load1`",
        ),
        (
            "[checks.x]\nseries_peak = { series = \"imap1.load1\", at_most = \"3\" }\n",
            "t.toml:16:51: at_most is a number",
        ),
    ];
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|(middle, want)| {
            let got = err(&format!("{POP}{middle}"));
            (got != *want).then(|| format!("for:\n{middle}\n  got: {got}\n want: {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn series_checks_read_as_written() {
    let case = ok(&format!("{POP}[checks.rate]\nsuccess_rate = {{ population = \"p\", at_least = \"99.5%\", from = \"1m\" }}\n[checks.drain]\ndrains_within = {{ population = \"p\", within = \"90s\", failure_rate_below = 0.05 }}\n[checks.peak]\nseries_peak = {{ series = \"imap1.procs.imap-login\", at_most = 95, during = \"a\" }}\n"));
    let kinds: Vec<_> = case.checks.iter().take(3).map(|c| (&c.kind, &c.needs)).collect();
    insta::assert_debug_snapshot!(kinds);
}
