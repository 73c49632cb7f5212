//! Steps, durations, mail sessions that end early.

use super::*;

#[test]
fn steps() {
    table(&[
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap9\"\nexec = { command = \"x\" }\n",
            "t.toml:13:9: unknown guest `imap9` (this case has filer, imap1)",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\n",
            "t.toml:12:8: step `b` needs one of exec, lock_probe, imap, pop3, wait, wait_for_log, capture, population",
        ),
        (
            "[[steps]]\nname = \"b\"\nwait = { duration = \"1s\" }\nexec = { command = \"x\" }\n",
            "t.toml:14:8: step `b` takes one of exec, lock_probe, imap, pop3, wait, wait_for_log, capture, population, not both `wait` and `exec`",
        ),
        (
            "[[steps]]\nname = \"b\"\nexec = { command = \"x\" }\n",
            "t.toml:12:8: step `b` needs a `guest` to run its exec in",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nwait = { duration = \"1s\" }\n",
            "t.toml:13:9: a wait step runs in no guest: leave out `guest`",
        ),
        (
            "[[steps]]\nname = \"b\"\nbackground = true\nwait = { duration = \"1s\" }\n",
            "t.toml:13:14: a wait step cannot run in the background",
        ),
        (
            "[[steps]]\nname = \"a\"\nguest = \"imap1\"\nexec = { command = \"x\" }\n",
            "t.toml:12:8: step `a` is already defined on line 8",
        ),
        (
            "[[steps]]\nname = \"Mount A\"\nguest = \"imap1\"\nexec = { command = \"x\" }\n",
            "t.toml:12:8: step name \"Mount A\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \" \" }\n",
            "t.toml:14:20: command is empty",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \"x\", expect_exit = 300 }\n",
            "t.toml:14:39: expect_exit must be 0 to 255",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nlock_probe = { path = \"srv/l\", mode = \"hold\", seconds = 5 }\n",
            "t.toml:14:23: path \"srv/l\" must be an absolute path",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nlock_probe = { path = \"/l\", mode = \"shared\", seconds = 5 }\n",
            "t.toml:14:36: mode must be \"hold\" or \"wait\", not \"shared\"",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nlock_probe = { path = \"/l\", mode = \"hold\", seconds = 0 }\n",
            "t.toml:14:54: seconds must be 1 to 3600",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nimap = { user = \"u\", password = \"p\", commands = [\"SELECT INBOX\", \"LOGOUT\"] }\n",
            "t.toml:14:66: the session logs in and out by itself: leave out LOGOUT (close = \"fin\" ends it without LOGOUT)",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\npop3 = { user = \"u\", password = \"p\", commands = [\"quit\"] }\n",
            "t.toml:14:50: the session logs in and out by itself: leave out QUIT (close = \"fin\" ends it without QUIT)",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nimap = { user = \"u\", password = \"p\", commands = [\"NOOP\\r\\nLOGOUT\"] }\n",
            "t.toml:14:50: an IMAP command must be one line",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nimap = { server = \"imap7\", user = \"u\", password = \"p\" }\n",
            "t.toml:14:19: unknown guest `imap7` (this case has filer, imap1)",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\npop3 = { user = \"u\", password = \"p\", port = 0 }\n",
            "t.toml:14:45: a port is 1 to 65535",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nwait_for_log = { file = \"/var/log/x\", pattern = \"a\\\\\" }\n",
            "t.toml:14:49: a pattern cannot end with a lone `\\`",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nwait_for_log = { file = \"x\", pattern = \"a\" }\n",
            "t.toml:14:25: file \"x\" must be an absolute path",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\ncapture = { timeout = \"5s\" }\n",
            "t.toml:14:11: a capture step needs a `command`, some `files`, or both",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\ncapture = { files = [\"/srv/mail/a b/x*\"] }\n",
            "t.toml:14:22: \"/srv/mail/a b/x*\" has ' ': capture paths are letters, digits, / . _ - + = , @ % : ~ and the globs * ?",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\ncapture = { files = [\"/x/$(reboot)\"] }\n",
            "t.toml:14:22: \"/x/$(reboot)\" has '$': capture paths are letters, digits, / . _ - + = , @ % : ~ and the globs * ?",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\ncapture = { files = [\"x*\"] }\n",
            "t.toml:14:22: file \"x*\" must be an absolute path",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nbackground = true\ncapture = { command = \"ls\" }\n",
            "t.toml:14:14: a capture step cannot run in the background",
        ),
    ]);
    let c = ok("[[steps]]\nname = \"c\"\nguest = \"imap1\"\ncapture = { command = \"doveadm dump /m\", files = [\"/m/dovecot.index*\", \"/m/dovecot-uidlist\"] }\n");
    assert_eq!(
        c.step("c").unwrap().kind,
        StepKind::Capture {
            command: Some("doveadm dump /m".into()),
            files: vec!["/m/dovecot.index*".into(), "/m/dovecot-uidlist".into()],
            timeout: Duration::from_secs(30),
        }
    );
    let c = ok("[[steps]]\nname = \"b\"\nguest = \"imap1\"\nbackground = true\n[steps.pop3]\nserver = \"filer\"\nuser = \"u\"\npassword = \"p\"\nclose = \"fin\"\n[[steps]]\nname = \"w\"\nwait = { duration = \"250ms\" }\n");
    assert_eq!(
        c.step("b").unwrap(),
        &Step {
            name: "b".into(),
            guest: Some("imap1".into()),
            background: true,
            kind: StepKind::Pop3(Session {
                server: "filer".into(),
                port: 110,
                user: "u".into(),
                password: "p".into(),
                commands: vec![],
                close: CloseMode::Fin,
                stop: None,
                hold: None,
                timeout: Duration::from_secs(60),
                connections: 1,
            }),
        }
    );
    assert_eq!(c.step("w").unwrap().guest, None);
}

#[test]
fn bad_durations_are_reported_where_they_are_written() {
    let hint = duration::HINT;
    table(&[
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \"x\", timeout = \"5 s\" }\n",
            &format!("t.toml:14:35: bad duration \"5 s\": {hint}"),
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \"x\", timeout = \"0s\" }\n",
            "t.toml:14:35: \"0s\" is zero: this duration must be more than 0",
        ),
        (
            "[faults.f]\nstart = { at = \"1.5s\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            &format!("t.toml:12:16: bad duration \"1.5s\": {hint}"),
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"0ms\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:13:20: \"0ms\" is zero: this duration must be more than 0",
        ),
        (
            "[checks.x]\nduration_at_most = { step = \"a\", limit = \"soon\" }\n",
            &format!("t.toml:12:42: bad duration \"soon\": {hint}"),
        ),
        (
            "[[steps]]\nname = \"w\"\nwait = { duration = \"5\" }\n",
            &format!("t.toml:13:21: bad duration \"5\": {hint}"),
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"delay\", delay = \"1m30s\" }\n",
            &format!("t.toml:13:53: bad duration \"1m30s\": {hint}"),
        ),
    ]);
}
#[test]
fn sessions_stop_one_way_and_close_without_a_goodbye() {
    let c = ok(&session_step("stop_after_lines = 1\nclose = \"rst\"\n"));
    let StepKind::Pop3(s) = &c.step("s").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (s.close, s.stop.clone()),
        (CloseMode::Rst, Some(SessionStop::AfterLines(1)))
    );
    // A stop without `close` closes with FIN.
    let c = ok(&session_step("stop_after = \"250ms\"\n"));
    let StepKind::Pop3(s) = &c.step("s").unwrap().kind else {
        panic!()
    };
    assert_eq!(s.close, CloseMode::Fin);
    table(&[
        (
            &session_step("stop_after_lines = 1\nstop_after = \"1s\"\n"),
            "t.toml:20:14: a session stops one way: `stop_after` and another stop key are both given",
        ),
        (
            &session_step("stop_after_lines = 0\n"),
            "t.toml:19:20: stop_after_lines is a number of lines, at least 1",
        ),
        (
            &session_step("stop_after = \"1s\"\nclose = \"quit\"\n"),
            "t.toml:20:9: a stopped session cannot end with QUIT: close with \"fin\", \"rst\" or \"silent\"",
        ),
        (
            &session_step("close = \"slam\"\n"),
            "t.toml:19:9: close must be \"quit\", \"fin\", \"rst\" or \"silent\", not \"slam\"",
        ),
        (
            &session_step("stop_on_log = { guest = \"filer\", file = \"/var/log/x\", pattern = \"y\" }\n")
                .replace("guest = \"imap1\"\n", "guest = \"imap1\"\nbackground = true\n"),
            "t.toml:14:14: a session stopped by a log line runs in the foreground: leave out background",
        ),
    ]);
}

fn population_step(keys: &str) -> String {
    format!("[[steps]]\nname = \"p\"\nguest = \"imap1\"\n[steps.population]\nserver = \"filer\"\nprotocol = \"imap\"\nuser = \"user%i\"\npassword = \"pw%i\"\nduration = \"60s\"\n{keys}")
}

#[test]
fn populations_take_defaults_and_report_each_bad_value_where_it_is() {
    let c = ok(&population_step("users = 400\ncommands = [\"SELECT INBOX\"]\n"));
    assert_eq!(
        c.step("p").unwrap().kind,
        StepKind::Population(Population {
            protocol: MailProtocol::Imap,
            server: "filer".into(),
            port: 143,
            user: "user%i".into(),
            password: "pw%i".into(),
            users: 400,
            commands: vec!["SELECT INBOX".into()],
            arrivals: Duration::ZERO,
            attempt_timeout: Duration::from_secs(30),
            close: CloseMode::Fin,
            retry: Retry {
                policy: RetryPolicy::None,
                delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
                jitter: false,
            },
            duration: Duration::from_secs(60),
            repeat_after: None,
            hold: None,
        })
    );
    let c = ok(&population_step(
        "users = 10\nclose = \"rst\"\narrivals = \"10s\"\nretry = { policy = \"exponential\", delay = \"1s\", max_delay = \"8s\", jitter = true }\nrepeat_after = \"30s\"\nhold = \"5s\"\nport = 1143\n",
    ));
    let StepKind::Population(p) = &c.step("p").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (p.close, p.retry, p.arrivals, p.repeat_after, p.hold, p.port),
        (
            CloseMode::Rst,
            Retry {
                policy: RetryPolicy::Exponential,
                delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(8),
                jitter: true,
            },
            Duration::from_secs(10),
            Some(Duration::from_secs(30)),
            Some(Duration::from_secs(5)),
            1143
        )
    );
    table(&[
        (&population_step("users = 0\n"), "t.toml:20:9: users is 1 to 4000"),
        (
            "[[steps]]\nname = \"p\"\nguest = \"imap1\"\npopulation = { protocol = \"smtp\", user = \"u%i\", password = \"p\", users = 2, duration = \"5s\" }\n",
            "t.toml:14:27: protocol must be \"imap\" or \"pop3\", not \"smtp\"",
        ),
        (
            &population_step("users = 5\narrivals = \"2m\"\n"),
            "t.toml:21:12: arrivals (2m) is longer than duration (60s): the last users would never arrive",
        ),
        (
            &population_step("users = 5\nclose = \"silent\"\n"),
            "t.toml:21:9: close must be \"fin\" or \"rst\" (how a client that gives up disconnects), not \"silent\"",
        ),
        (
            &population_step("users = 5\nretry = { policy = \"sometimes\" }\n"),
            "t.toml:21:20: policy must be \"none\", \"fixed\" or \"exponential\", not \"sometimes\"",
        ),
        (
            &population_step("users = 5\nretry = { policy = \"none\", delay = \"1s\" }\n"),
            "t.toml:21:36: delay means nothing here: a user with policy \"none\" does not retry",
        ),
        (
            &population_step("users = 5\nretry = { policy = \"fixed\", max_delay = \"9s\" }\n"),
            "t.toml:21:41: max_delay means nothing here: a fixed delay does not grow: max_delay is for \"exponential\"",
        ),
        (
            &population_step("users = 5\nretry = { policy = \"exponential\", delay = \"10s\", max_delay = \"5s\" }\n"),
            "t.toml:21:62: max_delay (5s) is shorter than delay (10s)",
        ),
        (
            &population_step("users = 5\nattempt_timeout = \"0s\"\n"),
            "t.toml:21:19: \"0s\" is zero: this duration must be more than 0",
        ),
        (
            &population_step("users = 5\ncommands = [\"LOGOUT\"]\n"),
            "t.toml:21:13: the session logs in and out by itself: leave out LOGOUT (each user logs out after its last command)",
        ),
        (
            "[[steps]]\nname = \"p\"\nguest = \"imap1\"\npopulation = { protocol = \"imap\", user = \"a b\", password = \"p\", users = 2, duration = \"5s\" }\n",
            "t.toml:14:42: user \"a b\" has ' ': a population's user is printable ASCII without spaces, quotes or backslashes",
        ),
        (
            "[[steps]]\nname = \"p\"\nguest = \"imap1\"\npopulation = { protocol = \"pop3\", user = \"u%i\", password = \"p\\\"\", users = 2, duration = \"5s\" }\n",
            "t.toml:14:60: password \"p\\\"\" has '\"': a population's password is printable ASCII without spaces, quotes or backslashes",
        ),
    ]);
}
