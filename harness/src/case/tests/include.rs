//! `include`: merging, positions in included files, cycles, missing files.

use super::*;

/// A folder holding `files` (relative path, text).
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// Shared guests, a step, an evidence item and a check.
const COMMON: &str = r#"summary = "shared"
[guests.filer]
image = "filer"
[guests.imap1]
image = "frontend"
[[steps]]
name = "a"
guest = "imap1"
exec = { command = "true" }
[[evidence.after]]
name = "locks"
guest = "filer"
command = "cat /proc/locks"
[checks.ok]
step_ok = { step = "a" }
"#;

#[test]
fn included_parts_come_first_and_the_including_file_wins_scalars() {
    let dir = folder(&[
        ("common/shared.toml", COMMON),
        (
            "t.toml",
            r#"name = "t"
summary = "own"
include = ["common/shared.toml"]
[[steps]]
name = "b"
guest = "filer"
exec = { command = "true" }
[[evidence.after]]
name = "log"
guest = "imap1"
file = "/var/log/x"
[checks.b-ok]
requires = ["ok"]
step_ok = { step = "b" }
[arms.base]
expect = "pass"
"#,
        ),
    ]);
    let c = load(&dir.path().join("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.summary, "own");
    assert_eq!(c.file, dir.path().join("t.toml"));
    let names = |v: Vec<&String>| v.into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(c.guests.iter().map(|g| &g.name).collect()),
        ["filer", "imap1"]
    );
    assert_eq!(names(c.steps.iter().map(|s| &s.name).collect()), ["a", "b"]);
    assert_eq!(
        names(c.evidence.after.iter().map(|e| &e.name).collect()),
        ["locks", "log"]
    );
    assert_eq!(names(c.checks.iter().map(|c| &c.name).collect()), ["ok", "b-ok"]);

    // The same case written in one file resolves to the same plan.
    let one = format!(
        "name = \"t\"\nsummary = \"own\"\n{}{}",
        COMMON.replace("summary = \"shared\"\n", "").replace("[checks.ok]\nstep_ok = { step = \"a\" }\n", ""),
        "[[steps]]\nname = \"b\"\nguest = \"filer\"\nexec = { command = \"true\" }\n[[evidence.after]]\nname = \"log\"\nguest = \"imap1\"\nfile = \"/var/log/x\"\n[checks.ok]\nstep_ok = { step = \"a\" }\n[checks.b-ok]\nrequires = [\"ok\"]\nstep_ok = { step = \"b\" }\n[arms.base]\nexpect = \"pass\"\n"
    );
    let single = parse(&dir.path().join("t.toml"), &one).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c, single);
}

#[test]
fn errors_point_into_the_file_that_holds_the_value() {
    let case =
        "name = \"t\"\nsummary = \"s\"\ninclude = [\"common/shared.toml\"]\n[arms.base]\nexpect = \"pass\"\n";
    let err = |common: &str| {
        let dir = folder(&[("common/shared.toml", common), ("t.toml", case)]);
        let e = load(&dir.path().join("t.toml")).unwrap_err().to_string();
        e.replace(&dir.path().display().to_string(), "D")
    };
    // A meaning error: the unknown guest on line 8 of the included file.
    assert_eq!(
        err(&COMMON.replace("guest = \"imap1\"", "guest = \"imap9\"")),
        "D/common/shared.toml:8:9: unknown guest `imap9` (this case has filer, imap1)"
    );
    // A shape error.
    assert_eq!(
        err(&COMMON.replace("exec = { command", "exec = { comand")),
        "D/common/shared.toml:9:10: unknown field `comand`, expected one of `command`, `timeout`, `expect_exit`"
    );
    // A name both files define: at the including file's.
    let dir = folder(&[
        ("common/shared.toml", COMMON),
        (
            "t.toml",
            &format!("{case}[checks.ok]\nstep_ok = {{ step = \"a\" }}\n"),
        ),
    ]);
    assert_eq!(
        load(&dir.path().join("t.toml")).unwrap_err().to_string(),
        format!(
            "{}:6:9: check `ok` is already defined on line 14 of {}",
            dir.path().join("t.toml").display(),
            dir.path().join("common/shared.toml").display()
        )
    );
    // A step both define: the resolver says where the first one is.
    let dir = folder(&[
        ("common/shared.toml", COMMON),
        (
            "t.toml",
            &format!("{case}[[steps]]\nname = \"a\"\nwait = {{ duration = \"1s\" }}\n"),
        ),
    ]);
    assert_eq!(
        load(&dir.path().join("t.toml")).unwrap_err().to_string(),
        format!(
            "{}:7:8: step `a` is already defined on line 7 of {}",
            dir.path().join("t.toml").display(),
            dir.path().join("common/shared.toml").display()
        )
    );
    // What no file gives is missing from the case file.
    let dir = folder(&[
        ("common/shared.toml", "[arms.base]\nexpect = \"pass\"\n"),
        ("t.toml", "include = [\"common/shared.toml\"]\nname = \"t\"\n"),
    ]);
    assert_eq!(
        load(&dir.path().join("t.toml")).unwrap_err().to_string(),
        format!(
            "{}:1:1: missing field `summary`",
            dir.path().join("t.toml").display()
        )
    );
}

#[test]
fn an_include_cycle_is_one_error_at_the_include() {
    let dir = folder(&[
        ("t.toml", "name = \"t\"\ninclude = [\"common/a.toml\"]\n"),
        ("common/a.toml", "include = [\"b.toml\"]\n"),
        ("common/b.toml", "summary = \"s\"\ninclude = [\"a.toml\"]\n"),
    ]);
    assert_eq!(
        load(&dir.path().join("t.toml")).unwrap_err().to_string(),
        format!(
            "{}:2:12: include cycle: {} includes itself",
            dir.path().join("common/b.toml").display(),
            dir.path().join("common/a.toml").display()
        )
    );
    // A file that includes itself.
    let dir = folder(&[("t.toml", "name = \"t\"\ninclude = [\"t.toml\"]\n")]);
    assert_eq!(
        load(&dir.path().join("t.toml")).unwrap_err().to_string(),
        format!(
            "{0}:2:12: include cycle: {0} includes itself",
            dir.path().join("t.toml").display()
        )
    );
}

#[test]
fn a_missing_include_is_one_error_at_the_include() {
    let dir = folder(&[("t.toml", "name = \"t\"\ninclude = [\"common/none.toml\"]\n")]);
    let e = load(&dir.path().join("t.toml")).unwrap_err().to_string();
    let want = format!(
        "{}:2:12: cannot read included case file {}: ",
        dir.path().join("t.toml").display(),
        dir.path().join("common/none.toml").display()
    );
    assert!(e.starts_with(&want), "{e}");
}
