//! The case model's tests: the examples and shape errors here, meaning errors by section of
//! the case file in the submodules (as `resolve` is split), `include` in `include`.

use super::*;

mod arms;
mod checks;
mod disks;
mod faults;
mod include;
mod lab;
mod steps;
mod sweep;

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

fn session_step(keys: &str) -> String {
    format!("[[steps]]\nname = \"s\"\nguest = \"imap1\"\n[steps.pop3]\nserver = \"filer\"\nuser = \"u\"\npassword = \"p\"\ncommands = [\"STAT\"]\n{keys}")
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
                "lock-contended".to_string(),
                vec!["lock-taken".to_string(), "lock-granted".to_string()]
            ),
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

// ---- shape errors, as the TOML reader meets them ------------------------------------------------

#[test]
fn shape_errors_name_file_line_and_column() {
    assert_eq!(
        full_err("name = \"t\"\nsummary = \"s\"\n  colour = \"red\"\n"),
        "t.toml:3:3: unknown field `colour`, expected one of `name`, `summary`, `healthy_arm`, `include`, `guests`, `segments`, `disks`, `shelves`, `steps`, `faults`, `evidence`, `checks`, `measures`, `arms`, `sweep`"
    );
    table(&[
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \"x\", tiemout = \"5s\" }\n",
            "t.toml:14:25: unknown field `tiemout`, expected one of `command`, `timeout`, `expect_exit`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", proto = 6, action = \"drop\" }\n",
            "t.toml:13:27: unknown field `proto`, expected one of `segment`, `from`, `to`, `ethertype`, `ip_proto`, `src_ip`, `dst_ip`, `src_port`, `dst_port`, `tcp_flags`, `rpc_program`, `rpc_version`, `rpc_procedure`, `rpc_kind`, `nlm_reclaim`, `nlm_stat`, `payload_contains`, `action`, `delay`, `jitter`, `groups`",
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
