use std::collections::BTreeSet;

use super::*;
use crate::wire::rules::{Facts, RpcFacts, RpcKind, RpcMatch, RuleSet};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/case/testdata")
        .join(format!("{name}.toml"))
}

fn parse_t(text: &str) -> Result<Case, CaseError> {
    parse(Path::new("t.toml"), text)
}

/// The error for a whole case text, read as `t.toml`.
fn full_err(text: &str) -> String {
    match parse_t(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Lines 1–10: two guests and step `a` (on imap1).
const HEAD: &str = r#"name = "t"
summary = "s"
[guests.filer]
image = "filer"
[guests.imap1]
image = "frontend"
[[steps]]
name = "a"
guest = "imap1"
exec = { command = "true" }
"#;

/// A check and an arm, after whatever goes in the middle.
const TAIL: &str = r#"[checks.ok]
step_ok = { step = "a" }
[arms.base]
expect = "pass"
"#;

/// The error for HEAD + `middle` + TAIL: `middle`'s first line is line 11.
fn err(middle: &str) -> String {
    full_err(&format!("{HEAD}{middle}{TAIL}"))
}

fn ok(middle: &str) -> Case {
    let text = format!("{HEAD}{middle}{TAIL}");
    parse_t(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Every row's error, all mismatches reported together.
fn table(rows: &[(&str, &str)]) {
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|(middle, want)| {
            let got = err(middle);
            (got != *want).then(|| format!("for:\n{middle}\n  got: {got}\n want: {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

// ---- the examples ----------------------------------------------------------------------------

#[test]
fn every_example_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    let examples = std::fs::read_dir(root.join("src/case/testdata")).unwrap();
    let cases = std::fs::read_dir(root.join("../cases")).unwrap();
    let drafts = std::fs::read_dir(root.join("../cases/wip")).unwrap();
    for e in examples.chain(cases).chain(drafts) {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let c = load(&p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.file, p);
            n += 1;
        }
    }
    assert!(n >= 2);
}

/// The example at the top of docs/cases.md is a valid case.
#[test]
fn the_reference_example_is_valid() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cases.md")).unwrap();
    let start = doc.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let text = &doc[start..start + doc[start..].find("```").unwrap()];
    let c = parse(Path::new("cases/grant-lost.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.arms.len(), 2);
    assert_eq!(
        wire_rule(c.fault("grant-lost").unwrap()),
        wire_rule(
            load(&testdata("grant-lost"))
                .unwrap()
                .fault("grant-lost")
                .unwrap()
        )
    );
}

/// What the smoke case resolves to, defaults and derived evidence included.
#[test]
fn the_smoke_case_resolves() {
    let c = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml")).unwrap();
    insta::assert_json_snapshot!("smoke", c);
}

#[test]
fn the_smoke_case_reads_as_intended() {
    let c = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml")).unwrap();
    assert_eq!(
        c.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [
            "mount-imap1",
            "mount-imap2",
            "hold-imap1",
            "wait-imap2",
            "write-imap1",
            "read-imap2",
            "deliver",
            "imap-read",
            "pop3-read"
        ]
    );
    let broken = c.arm("broken").unwrap();
    assert_eq!(broken.faults, ["nfs-down"]);
    let nfs_down = c.faults_of(broken).next().unwrap();
    assert_eq!(
        nfs_down.kind,
        FaultKind::Service {
            guest: "filer".into(),
            unit: Some("nfs-server.service".into()),
            action: ServiceAction::Stop
        }
    );
    assert_eq!(
        nfs_down.start,
        Trigger::At {
            offset: Duration::ZERO
        }
    );
    assert_eq!(nfs_down.end, End::Never);
    assert_eq!(wire_rule(nfs_down), None);
    assert_eq!(
        c.evidence.item("check:no-dovecot-errors-imap1").unwrap().source,
        EvidenceSource::File {
            path: "/var/log/dovecot.log".into()
        }
    );
    assert_eq!(
        c.requires(),
        [
            (
                "shared-file".to_string(),
                vec!["mounted-imap1".to_string(), "mounted-imap2".to_string()]
            ),
            ("delivered".to_string(), vec!["mounted-imap1".to_string()]),
            ("imap-reads-three".to_string(), vec!["delivered".to_string()]),
            (
                "pop3-reads-three".to_string(),
                vec!["delivered".to_string(), "mounted-imap2".to_string()]
            ),
            (
                "no-dovecot-errors-imap1".to_string(),
                vec!["mounted-imap1".to_string()]
            ),
            (
                "no-dovecot-errors-imap2".to_string(),
                vec!["mounted-imap2".to_string()]
            ),
        ]
    );
}

/// The broken arm, judged with the results its fault should produce: mounts and contention
/// fail, what requires the mounts is not judged, and the arm meets its expectation.
#[test]
fn the_smoke_broken_arm_meets_its_expectation_with_plausible_results() {
    let c = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml")).unwrap();
    let fail = [
        "mounted-imap1",
        "mounted-imap2",
        "lock-contended",
        "shared-file",
        "pop3-reads-three",
    ];
    let results: Vec<CheckResult> = c
        .checks
        .iter()
        .map(|k| {
            if fail.contains(&k.name.as_str()) {
                CheckResult::fail(&k.name, "as the fault makes it")
            } else {
                CheckResult::pass(&k.name)
            }
        })
        .collect();
    let results = verdict::apply_requires(&c.requires(), &results);
    let broken = c.arm("broken").unwrap();
    let proof = [FaultProof {
        name: "nfs-down".into(),
        fired: true,
        evidence: "nfs-server.service inactive at 0.4 s".into(),
    }];
    let o = arm_outcome(&broken.expect, &results, &proof);
    assert_eq!((o.verdict, o.met), (Verdict::Fail, true), "{}", o.explanation);
    let o = arm_outcome(&c.arm("baseline").unwrap().expect, &results, &[]);
    assert!(!o.met);
}

// ---- wire faults become switch rules ---------------------------------------------------------

#[test]
fn a_wire_fault_becomes_the_switchs_rule() {
    let c = load(&testdata("grant-lost")).unwrap();
    let f = c.fault("grant-lost").unwrap();
    assert_eq!(
        f.start,
        Trigger::AfterStep {
            step: "mount-imap2".into()
        }
    );
    assert_eq!(
        f.end,
        End::Duration {
            duration: Duration::from_secs(60)
        }
    );
    let rule = wire_rule(f).unwrap();
    assert_eq!(
        rule,
        Rule {
            name: "grant-lost".into(),
            matcher: Match {
                to: Some("imap1".into()),
                rpc: Some(RpcMatch {
                    program: Some(100021),
                    version: Some(4),
                    procedure: Some(10),
                    kind: Some(RpcKind::Call),
                    reclaim: None,
                    nlm_stat: None,
                }),
                ..Match::default()
            },
            action: Action::Drop,
        }
    );
    // And the switch drops a GRANTED_MSG toward imap1 with it, and nothing toward imap2.
    let mut rules = RuleSet::default();
    rules.add(rule);
    let grant = Facts {
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
    };
    let d = rules.decide(&grant, 7, "filer", &["imap1", "imap2"], &mut || 0.0);
    assert_eq!(
        d.verdicts,
        [
            crate::wire::rules::Verdict::Drop,
            crate::wire::rules::Verdict::Forward
        ]
    );
}

#[test]
fn every_match_field_and_action_converts() {
    let c = ok(r#"[faults.slow]
start = { at = "0s" }
[faults.slow.wire]
segment = "lan"
from = "filer"
to = "imap1"
ethertype = "ipv4"
ip_proto = "tcp"
src_ip = "192.0.2.10"
dst_ip = "192.0.2.11"
src_port = 2049
dst_port = 0x3ff
tcp_flags = "syn|ACK"
rpc_program = "nlm"
rpc_version = 4
rpc_procedure = 2
rpc_kind = "reply"
action = "delay"
delay = "200ms"
jitter = "50ms"
[faults.twice]
start = { at = "1s" }
wire = { segment = "lan", ethertype = 0x0806, ip_proto = 17, tcp_flags = 4, rpc_program = 100003, action = "duplicate" }
[faults.split]
start = { at = "1s" }
wire = { segment = "lan", rpc_procedure = "nlm4_granted_res", action = "partition", groups = [["filer"], ["imap1"]] }
[faults.other]
start = { at = "1s" }
guest_nft = { guest = "filer", ruleset = "table inet cut {\n chain in { type filter hook input priority 0; drop; }\n}" }
"#);
    let rule = |n: &str| wire_rule(c.fault(n).unwrap()).unwrap();
    assert_eq!(
        rule("slow"),
        Rule {
            name: "slow".into(),
            matcher: Match {
                from: Some("filer".into()),
                to: Some("imap1".into()),
                ethertype: Some(0x0800),
                ip_proto: Some(6),
                src_ip: Some("192.0.2.10".parse().unwrap()),
                dst_ip: Some("192.0.2.11".parse().unwrap()),
                src_port: Some(2049),
                dst_port: Some(1023),
                tcp_flags: Some(0x12),
                rpc: Some(RpcMatch {
                    program: Some(100021),
                    version: Some(4),
                    procedure: Some(2),
                    kind: Some(RpcKind::Reply),
                    reclaim: None,
                    nlm_stat: None,
                }),
            },
            action: Action::Delay {
                fixed: Duration::from_millis(200),
                jitter: Duration::from_millis(50),
            },
        }
    );
    assert_eq!(
        rule("twice"),
        Rule {
            name: "twice".into(),
            matcher: Match {
                ethertype: Some(0x0806),
                ip_proto: Some(17),
                tcp_flags: Some(4),
                rpc: Some(RpcMatch {
                    program: Some(100003),
                    ..RpcMatch::default()
                }),
                ..Match::default()
            },
            action: Action::Duplicate,
        }
    );
    assert_eq!(
        rule("split"),
        Rule {
            name: "split".into(),
            matcher: Match {
                rpc: Some(RpcMatch {
                    program: Some(100021),
                    version: Some(4),
                    procedure: Some(15),
                    kind: None,
                    reclaim: None,
                    nlm_stat: None,
                }),
                ..Match::default()
            },
            action: Action::Partition {
                groups: vec![
                    BTreeSet::from(["filer".to_string()]),
                    BTreeSet::from(["imap1".to_string()])
                ],
            },
        }
    );
    assert_eq!(wire_rule(c.fault("other").unwrap()), None);
    assert_eq!(
        c.fault("other").unwrap().kind,
        FaultKind::GuestNft {
            guest: "filer".into(),
            ruleset: "table inet cut {\n chain in { type filter hook input priority 0; drop; }\n}".into(),
            tables: vec!["inet cut".into()],
        }
    );
}

// ---- shape errors, as the TOML reader meets them ------------------------------------------------

#[test]
fn shape_errors_name_file_line_and_column() {
    assert_eq!(
        full_err("name = \"t\"\nsummary = \"s\"\n  colour = \"red\"\n"),
        "t.toml:3:3: unknown field `colour`, expected one of `name`, `summary`, `guests`, `segments`, `disks`, `steps`, `faults`, `evidence`, `checks`, `measures`, `arms`"
    );
    table(&[
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \"x\", tiemout = \"5s\" }\n",
            "t.toml:14:25: unknown field `tiemout`, expected one of `command`, `timeout`, `expect_exit`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", proto = 6, action = \"drop\" }\n",
            "t.toml:13:27: unknown field `proto`, expected one of `segment`, `from`, `to`, `ethertype`, `ip_proto`, `src_ip`, `dst_ip`, `src_port`, `dst_port`, `tcp_flags`, `rpc_program`, `rpc_version`, `rpc_procedure`, `rpc_kind`, `nlm_reclaim`, `nlm_stat`, `action`, `delay`, `jitter`, `groups`",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nlock_probe = { path = \"/l\", mode = \"hold\", seconds = \"5\" }\n",
            "t.toml:14:54: invalid type: string \"5\", expected i64",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = \"later\"\n",
            "t.toml:13:7: invalid value: string \"later\", expected \"never\" or a table with one of duration, until_step, heal_step",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"1s\", bogus = 1 }\n",
            "t.toml:13:26: unknown field `bogus`, expected one of `duration`, `until_step`, `heal_step`",
        ),
        ("[[steps]]\nguest = \"imap1\"\n", "t.toml:11:1: missing field `name`"),
        ("[faults.f\n", "t.toml:11:10: invalid table header"),
    ]);
    assert_eq!(
        full_err("name = \"t\"\n[guests.filer]\nimage = \"filer\"\n"),
        "t.toml:1:1: missing field `summary`"
    );
}

// ---- meaning errors: one, at the value that is wrong -------------------------------------------

#[test]
fn the_case_its_guests_and_segments() {
    assert_eq!(
        full_err(&format!("{HEAD}{TAIL}").replace("name = \"t\"", "name = \"x\"")),
        "t.toml:1:8: the case is named `x` but its file is t.toml: the name must be `t`"
    );
    assert_eq!(
        parse(Path::new("dir/Bad Name.toml"), &format!("{HEAD}{TAIL}").replace("name = \"t\"", "name = \"Bad Name\""))
            .unwrap_err()
            .to_string(),
        "dir/Bad Name.toml:1:8: case name \"Bad Name\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit"
    );
    assert_eq!(
        full_err(&format!("{HEAD}{TAIL}").replace("summary = \"s\"", "summary = \" \"")),
        "t.toml:2:11: summary is empty"
    );
    assert_eq!(
        full_err(&format!("{HEAD}{TAIL}").replace("[guests.imap1]", "[guests.web]")),
        "t.toml:5:9: `web` is not a lab guest name: use one of filer, imap1, imap2, imap3, client (the names with an address in the images' /etc/hosts)"
    );
    assert_eq!(
        full_err("name = \"t\"\nsummary = \"s\"\nguests = {}\n[checks.ok]\nstep_ok = { step = \"a\" }\n[arms.a]\nexpect = \"pass\"\n"),
        "t.toml:3:1: a case needs at least one guest"
    );
    table(&[
        (
            "[segments]\n",
            "t.toml:11:1: `segments` needs at least one segment (or leave it out: one segment `lan` then holds every guest)",
        ),
        (
            "[segments.lan]\nguests = [\"filer\", \"imap1\", \"client\"]\n",
            "t.toml:12:29: unknown guest `client` (this case has filer, imap1)",
        ),
        (
            "[segments.lan]\nguests = [\"filer\", \"imap1\"]\n[segments.back]\nguests = [\"imap1\"]\n",
            "t.toml:14:11: guest `imap1` is already on segment `lan`: a guest has one network port",
        ),
        ("[segments.lan]\nguests = [\"filer\"]\n", "t.toml:5:9: guest `imap1` is on no segment"),
        (
            "[segments.lan]\nguests = []\n",
            "t.toml:12:10: segment `lan` needs at least one guest",
        ),
        (
            "[segments.LAN]\nguests = [\"filer\", \"imap1\"]\n",
            "t.toml:11:11: segment name \"LAN\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit",
        ),
    ]);
    // Without `segments`, one segment `lan` holds every guest.
    let c = ok("");
    assert_eq!(
        c.segments,
        [Segment {
            name: "lan".into(),
            guests: vec!["filer".into(), "imap1".into()]
        }]
    );
    assert_eq!(c.guest("filer").unwrap().role, "filer");
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
fn steps() {
    table(&[
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap9\"\nexec = { command = \"x\" }\n",
            "t.toml:13:9: unknown guest `imap9` (this case has filer, imap1)",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\n",
            "t.toml:12:8: step `b` needs one of exec, lock_probe, imap, pop3, wait, wait_for_log, capture",
        ),
        (
            "[[steps]]\nname = \"b\"\nwait = { duration = \"1s\" }\nexec = { command = \"x\" }\n",
            "t.toml:14:8: step `b` takes one of exec, lock_probe, imap, pop3, wait, wait_for_log, capture, not both `wait` and `exec`",
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
fn fault_triggers_and_ends() {
    table(&[
        (
            "[faults.f]\nstart = { at = \"1s\" }\n",
            "t.toml:11:9: fault `f` needs one of wire, guest_nft, guest_exec, service, disk_error",
        ),
        (
            "[faults.f]\nstart = { after_step = \"nope\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:24: unknown step `nope` (this case has a)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\", after_step = \"a\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:35: `start` takes one of at, after_step, on_log, on_frame, not both `at` and `after_step`",
        ),
        (
            "[faults.f]\nstart = {}\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:9: `start` needs one of at, after_step, on_log, on_frame",
        ),
        (
            "[faults.f]\nstart = { on_log = { guest = \"imap1\", file = \"log\", pattern = \"x\" } }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:46: file \"log\" must be an absolute path",
        ),
        (
            "[faults.f]\nstart = { on_frame = { segment = \"lan\", from = \"imap3\" } }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:48: unknown guest `imap3` (this case has filer, imap1)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"5s\", until_step = \"a\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:13:39: `end` takes one of duration, until_step, heal_step, not both `duration` and `until_step`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = {}\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:13:7: `end` needs one of duration, until_step, heal_step",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { heal_step = \"z\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:13:21: unknown step `z` (this case has a)",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \"x\" }\n[faults.f]\nstart = { after_step = \"b\" }\nend = { until_step = \"a\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:17:22: fault `f` starts after step `b` but ends at step `a`, which does not come after it",
        ),
    ]);
    let c = ok("[[steps]]\nname = \"b\"\nguest = \"filer\"\nexec = { command = \"systemctl start nfs-server\" }\n[faults.f]\nstart = { on_log = { guest = \"imap1\", file = \"/var/log/syslog\", pattern = \"lockd: server * not responding\" } }\nend = { heal_step = \"b\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"kill\" }\n[faults.g]\nstart = { after_step = \"a\" }\nend = \"never\"\nservice = { guest = \"imap1\", action = \"reboot\" }\n");
    let f = c.fault("f").unwrap();
    assert_eq!(f.end, End::HealStep { step: "b".into() });
    assert_eq!(
        f.start,
        Trigger::OnLog {
            guest: "imap1".into(),
            file: "/var/log/syslog".into(),
            pattern: Pattern::new("lockd: server * not responding").unwrap()
        }
    );
    assert_eq!(f.kind.guest(), Some("filer"));
    assert_eq!(c.fault("g").unwrap().end, End::Never);
}

#[test]
fn fault_kinds() {
    table(&[
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { heal_step = \"a\" }\nwire = { segment = \"lan\", action = \"drop\" }\n",
            "t.toml:13:21: a wire fault is removed by the harness, not by a step: use until_step",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"wan\", action = \"drop\" }\n",
            "t.toml:13:20: unknown segment `wan` (this case has lan)",
        ),
        (
            "[segments.lan]\nguests = [\"filer\"]\n[segments.back]\nguests = [\"imap1\"]\n[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", to = \"imap1\", action = \"drop\" }\n",
            "t.toml:17:32: guest `imap1` is not on segment `lan`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"delay\" }\n",
            "t.toml:13:36: a delay action needs `delay` (e.g. \"200ms\")",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"delay\", delay = \"0ms\" }\n",
            "t.toml:13:53: a delay of 0 with no jitter does nothing",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"drop\", jitter = \"5ms\" }\n",
            "t.toml:13:53: `jitter` only goes with action = \"delay\"",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"partition\" }\n",
            "t.toml:13:36: a partition needs `groups`, e.g. [[\"filer\"], [\"imap1\", \"imap2\"]]",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"partition\", groups = [[\"filer\"], [\"imap1\", \"filer\"]] }\n",
            "t.toml:13:80: guest `filer` is in two groups",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"corrupt\" }\n",
            "t.toml:13:36: action must be \"drop\", \"delay\", \"duplicate\" or \"partition\", not \"corrupt\"",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"5s\" }\nguest_exec = { guest = \"imap1\", command = \"x\" }\n",
            "t.toml:13:7: fault `f` is ended by the harness, so its guest_exec needs a `heal` command",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nguest_exec = { guest = \"imap1\", command = \"x\", heal = \"y\" }\n",
            "t.toml:13:55: `heal` runs only when the harness ends the fault (end.duration or end.until_step)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"5s\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"restart\" }\n",
            "t.toml:13:7: a restart is over at once: it takes no `end`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", unit = \"x.service\", action = \"reboot\" }\n",
            "t.toml:13:37: a reboot takes no unit: it restarts the whole guest",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", action = \"stop\" }\n",
            "t.toml:13:39: a stop needs the `unit` to act on",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", unit = \"nfs-server\", action = \"stop\" }\n",
            "t.toml:13:37: \"nfs-server\" is not a systemd unit name (e.g. nfs-server.service)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"pause\" }\n",
            "t.toml:13:68: action must be \"stop\", \"kill\", \"restart\" or \"reboot\", not \"pause\"",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nguest_nft = { guest = \"filer\", ruleset = \"add rule inet x y drop\" }\n",
            "t.toml:13:42: the ruleset declares no table: write `table inet NAME { ... }`, so that the harness can delete it to heal the fault",
        ),
        (
            "[disks.shelf]\nguest = \"filer\"\nsize = \"1G\"\n[faults.f]\nstart = { at = \"1s\" }\ndisk_error = { disk = \"shelf\" }\n",
            "t.toml:16:23: disk `shelf` has no `error` filter: add \"error\" to its nbdkit_filters",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\ndisk_error = { disk = \"tray\" }\n",
            "t.toml:13:23: unknown disk `tray` (this case has none)",
        ),
        (
            "[disks.shelf]\nguest = \"filer\"\nsize = \"lots\"\n",
            "t.toml:13:8: bad size \"lots\": use a number with K, M or G, e.g. \"1G\"",
        ),
        (
            "[disks.shelf]\nguest = \"filer\"\nsize = \"1G\"\nnbdkit_filters = [\"error\", \"delay\", \"error\"]\n",
            "t.toml:14:37: filter `error` is listed twice",
        ),
        (
            "[disks.shelf-controller-a-10]\nguest = \"filer\"\nsize = \"1G\"\n",
            "t.toml:11:8: disk name `shelf-controller-a-10` is longer than 20 characters: the guest sees it as the disk's serial, which holds no more",
        ),
    ]);
    let c = ok("[disks.shelf]\nguest = \"filer\"\nsize = \"512M\"\nnbdkit_filters = [\"error\"]\n[faults.f]\nstart = { at = \"1s\" }\nend = { until_step = \"a\" }\ndisk_error = { disk = \"shelf\" }\n");
    assert_eq!(
        c.disks,
        [Disk {
            name: "shelf".into(),
            guest: "filer".into(),
            size_bytes: 512 << 20,
            nbdkit_filters: vec!["error".into()]
        }]
    );
}

#[test]
fn frame_matches() {
    let wire = |fields: &str| {
        format!("[faults.f]\nstart = {{ at = \"1s\" }}\nwire = {{ segment = \"lan\", {fields}, action = \"drop\" }}\n")
    };
    // Field values start at column 27 + the length of `key = `.
    let rows = [
        (
            wire("rpc_procedure = \"NLM4_GRANTED_MESSAGE\""),
            "t.toml:13:43: unknown RPC procedure `NLM4_GRANTED_MESSAGE`: names are as the frame decoder prints them, e.g. NLM4_GRANTED_MSG, NFS3_WRITE, SM_NOTIFY",
        ),
        (
            wire("rpc_procedure = \"NLM_LOCK\""),
            "t.toml:13:43: procedure `NLM_LOCK` is in versions 1 and 3 of nlockmgr (100021): set rpc_version",
        ),
        (
            wire("rpc_program = \"nfs\", rpc_procedure = \"NLM4_GRANTED_MSG\""),
            "t.toml:13:64: unknown RPC procedure `NLM4_GRANTED_MSG` in nfs (100003): names are as the frame decoder prints them, e.g. NLM4_GRANTED_MSG, NFS3_WRITE, SM_NOTIFY",
        ),
        (
            wire("rpc_program = \"sunrpc\""),
            "t.toml:13:41: rpc_program is a number from 0 to 0xffffffff or one of nlm, nlockmgr, nsm, status, nfs, mount, mountd, portmap, portmapper, rpcbind",
        ),
        (
            wire("rpc_kind = \"callback\""),
            "t.toml:13:38: rpc_kind must be \"call\" or \"reply\", not \"callback\"",
        ),
        (
            wire("ip_proto = \"sctp\""),
            "t.toml:13:38: ip_proto is a number from 0 to 0xff or one of tcp, udp, icmp, icmpv6",
        ),
        (
            wire("ethertype = 70000"),
            "t.toml:13:39: ethertype is a number from 0 to 0xffff or one of ipv4, ipv6, arp, vlan",
        ),
        (
            wire("tcp_flags = \"syn|xmas\""),
            "t.toml:13:39: tcp_flags is a number from 1 to 255 or names joined by '|', e.g. \"syn|ack\" (fin, syn, rst, psh, ack, urg, ece, cwr)",
        ),
        (wire("dst_port = 70000"), "t.toml:13:38: a port is 1 to 65535"),
        (wire("src_ip = \"10.0.0\""), "t.toml:13:36: \"10.0.0\" is not an IP address"),
    ];
    let rows: Vec<(&str, &str)> = rows.iter().map(|(m, w)| (m.as_str(), *w)).collect();
    table(&rows);
    // With a version, the name is found in it.
    let c = ok(&wire("rpc_version = 3, rpc_procedure = \"NLM_LOCK\""));
    let FaultKind::Wire { matcher, .. } = &c.fault("f").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        matcher.rpc,
        Some(RpcMatch {
            program: Some(100021),
            version: Some(3),
            procedure: Some(2),
            kind: None,
            reclaim: None,
            nlm_stat: None,
        })
    );
}

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
            "t.toml:13:15: check `x` takes one of step_ok, step_failed, step_output, exec_output, duration_at_most, log_absent, frames, faster, not both `step_ok` and `step_failed`",
        ),
        (
            "[checks.x]\nrequires = []\n",
            "t.toml:11:9: check `x` needs one of step_ok, step_failed, step_output, exec_output, duration_at_most, log_absent, frames, faster",
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
}

/// The error reported is the first in the file, whatever order validation runs in.
#[test]
fn the_first_error_in_the_file_wins() {
    let text = r#"name = "t"
summary = "s"
[guests.filer]
image = "filer"
[arms.a]
faults = ["nope"]
expect = "pass"
[checks.ok]
step_ok = { step = "a" }
[[steps]]
name = "a"
guest = "imap7"
exec = { command = "x" }
"#;
    assert_eq!(
        full_err(text),
        "t.toml:6:11: unknown fault `nope` (this case has none)"
    );
    let fixed = text.replace("[\"nope\"]", "[]");
    assert_eq!(
        full_err(&fixed),
        "t.toml:12:9: unknown guest `imap7` (this case has filer)"
    );
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.toml");
    let e = load(&missing).unwrap_err();
    assert!(matches!(e, CaseError::Io { .. }));
    assert_eq!(
        e.to_string(),
        format!("{}: No such file or directory (os error 2)", missing.display())
    );
    let p = dir.path().join("t.toml");
    std::fs::write(
        &p,
        format!("{HEAD}{TAIL}").replace("expect = \"pass\"", "expect = \"fail\""),
    )
    .unwrap();
    assert_eq!(
        load(&p).unwrap_err().to_string(),
        format!(
            "{}:14:10: arm `base` expects \"fail\" but names no failing_checks: say which checks must fail",
            p.display()
        )
    );
    assert_eq!(CaseError::EXIT_CODE, 2);
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
fn duration_since_another_steps_end_needs_both_steps() {
    let c =
        ok("[checks.prompt]\nduration_at_most = { step = \"a\", since_end_of = \"a\", limit = \"5s\" }\n");
    assert_eq!(c.check("prompt").unwrap().needs.len(), 2);
    assert_eq!(
        err("[checks.prompt]\nduration_at_most = { step = \"a\", since_end_of = \"b\", limit = \"5s\" }\n"),
        "t.toml:12:49: unknown step `b` (this case has a)"
    );
}

// ---- mail sessions that end early ------------------------------------------------------------

fn session_step(keys: &str) -> String {
    format!("[[steps]]\nname = \"s\"\nguest = \"imap1\"\n[steps.pop3]\nserver = \"filer\"\nuser = \"u\"\npassword = \"p\"\ncommands = [\"STAT\"]\n{keys}")
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
