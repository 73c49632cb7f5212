//! The `faultline` binary's contract for bad input: one clear line, the documented exit code,
//! nothing started.

use std::path::Path;
use std::process::{Command, Output};

fn faultline(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("faultline runs")
}

fn project_images() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("images")
        .display()
        .to_string()
}

#[test]
fn a_recipe_with_an_unknown_key_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"bad\"\nrole = \"filer\"\nflavour = \"x\"\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let recipes = dir.path().display().to_string();
    let out = faultline(
        &["images", "build", "--recipes", &recipes],
        &[("FAULTLINE_CACHE", cache.path().to_str().unwrap())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:3:1: unknown field `flavour`"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // Nothing was built or even started.
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none());
}

#[test]
fn a_missing_host_tool_is_one_line_naming_its_package() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = faultline(
        &["images", "build", "--recipes", &project_images(), "filer"],
        &[
            ("FAULTLINE_CACHE", cache.path().to_str().unwrap()),
            ("PATH", empty.path().to_str().unwrap()),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        ["error: missing host tool `mmdebstrap`: install it with `apt-get install mmdebstrap`"],
        "{err}"
    );
}

#[test]
fn checking_an_image_that_is_not_built_says_how_to_build_it() {
    let cache = tempfile::tempdir().unwrap();
    let out = faultline(
        &["images", "check", "--recipes", &project_images(), "frontend"],
        &[("FAULTLINE_CACHE", cache.path().to_str().unwrap())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("image frontend is not built"), "{err}");
    assert!(err.contains("faultline images build"), "{err}");
}

#[test]
fn an_unknown_image_name_is_a_usage_error() {
    let out = faultline(&["images", "list", "--recipes", &project_images(), "nosuch"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no image named \"nosuch\" (known: filer, frontend-2008-imap, frontend-2008, frontend-deb12u6, frontend)"),
        "{err}"
    );
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{}: {cmdline}", name.to_string_lossy()));
        }
    }
    found
}

#[test]
fn a_build_killed_midway_leaves_no_entry_and_no_process() {
    if faultline::hosttools::require(&[faultline::hosttools::MMDEBSTRAP]).is_err() {
        eprintln!("skipped: mmdebstrap is not installed");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let cache_s = cache.path().to_str().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["images", "build", "--recipes", &project_images(), "filer"])
        .env("FAULTLINE_CACHE", &cache_s)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until mmdebstrap is really at work.
    let tmp = cache.path().join("images").join(".tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let logged = std::fs::read_dir(&tmp)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("out/build.log")).ok())
            .is_some_and(|l| l.contains("I: "));
        if logged {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "mmdebstrap never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no signal handler runs
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(&cache_s).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        processes_mentioning(&cache_s),
        Vec::<String>::new(),
        "processes outlived the harness"
    );
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(entries, Vec::<String>::new(), "a half-built entry was published");
    // What the next build does with the killed one's work folder (mmdebstrap's mounts in it).
    faultline::images::cache::sweep_stale(&cache.path().join("images"));
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "the killed build's work folder was not swept"
    );
}

#[test]
fn a_malformed_case_exits_2_with_file_line_and_column_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/smoke.toml");
    let text = std::fs::read_to_string(smoke)
        .unwrap()
        .replace("name = \"smoke\"", "name = \"bad\"")
        .replace("limit = \"15s\"", "limit = \"15 s\"");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.as_bytes()).unwrap();
    let line = text.lines().position(|l| l.contains("\"15 s\"")).unwrap() + 1;
    let results = dir.path().join("results");
    for args in [
        vec!["list", bad.to_str().unwrap()],
        vec![
            "run",
            bad.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--recipes",
            &project_images(),
        ],
    ] {
        let out = faultline(&args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("bad.toml:{line}:")), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // No run folder: nothing was started.
    assert!(!results.exists());
}

#[test]
fn an_unknown_arm_is_a_usage_error() {
    let out = faultline(
        &[
            "run",
            "smoke",
            "--arm",
            "nonesuch",
            "--cases-dir",
            &format!("{}/../cases", env!("CARGO_MANIFEST_DIR")),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no case here has an arm named nonesuch"), "{err}");
}

#[test]
fn a_sweep_of_a_case_without_one_or_of_unknown_sizes_is_a_usage_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let cases = project_cases();
    let fixture = format!(
        "{}/src/case/testdata/sweep-storm.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    for (args, want) in [
        (
            vec!["run", "smoke", "--sweep", "--cases-dir", &cases],
            "error: --sweep: no selected case has a [sweep]",
        ),
        (
            vec!["run", &fixture, "--sweep", "--arm", "storm@x9"],
            "error: no case here has a sweep size or swept arm named storm@x9",
        ),
        (
            vec!["run", &fixture, "--sweep", "--image", "imap1=frontend,frontend-2008"],
            "error: --image imap1=frontend,frontend-2008: a sweep runs each size on one image; give one image per NAME",
        ),
    ] {
        let mut args = args;
        args.extend(["--results", results.to_str().unwrap()]);
        let out = faultline(&args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end(), want, "{args:?}");
    }
    assert!(!results.exists());
}

/// The tools are looked for in PATH, then in the sbin folders: an empty PATH hides QEMU only
/// when it is not in those.
fn qemu_in_sbin() -> bool {
    faultline::hosttools::find(faultline::hosttools::QEMU_SYSTEM).is_ok_and(|p| {
        ["/usr/local/sbin", "/usr/sbin", "/sbin"]
            .iter()
            .any(|d| p.starts_with(d))
    })
}

#[test]
fn a_sweep_passes_its_input_checks_and_stops_only_at_the_missing_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    if qemu_in_sbin() {
        eprintln!("skipped: QEMU is in an sbin folder, which an empty PATH does not hide");
        return;
    }
    let fixture = format!(
        "{}/src/case/testdata/sweep-storm.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    // One size by its name, and every size by the swept arm's.
    for arm in ["storm@x2", "storm"] {
        let out = faultline(
            &[
                "run",
                &fixture,
                "--sweep",
                "--arm",
                arm,
                "--recipes",
                &project_images(),
                "--results",
                results.to_str().unwrap(),
            ],
            &[
                ("PATH", dir.path().to_str().unwrap()),
                ("FAULTLINE_CACHE", cache.path().to_str().unwrap()),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{arm}: {err}");
        assert!(
            err.contains("missing host tool `qemu-system-x86_64`"),
            "{arm}: {err}"
        );
    }
    assert!(!results.exists());
}

fn project_cases() -> String {
    format!("{}/../cases", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn an_unknown_case_name_is_a_usage_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let cases = project_cases();
    for args in [
        vec!["list", "nosuch", "--cases-dir", &cases],
        vec![
            "run",
            "nosuch",
            "--cases-dir",
            &cases,
            "--results",
            results.to_str().unwrap(),
        ],
    ] {
        let out = faultline(&args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("error: {cases}/nosuch.toml: no such case file"),
            "{args:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!results.exists());
}

#[test]
fn a_bad_partition_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for (partition, why) in [("3/2", "need 1 <= K <= N"), ("x", "a partition is K/N")] {
        let out = faultline(
            &[
                "run",
                "--partition",
                partition,
                "--results",
                results.to_str().unwrap(),
            ],
            &[],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{partition}: {err}");
        assert!(err.contains(why), "{partition}: {err}");
    }
    assert!(!results.exists());
}

#[test]
fn a_bad_number_of_jobs_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for jobs in ["0", "many"] {
        let out = faultline(
            &["run", "--jobs", jobs, "--results", results.to_str().unwrap()],
            &[],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{jobs}: {err}");
        assert!(
            err.contains("is not a number of arms (1 or more) or `auto`"),
            "{jobs}: {err}"
        );
    }
    assert!(!results.exists());
}

#[test]
fn a_run_without_qemu_exits_3_naming_its_package_before_any_image_or_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    if qemu_in_sbin() {
        eprintln!("skipped: QEMU is in an sbin folder, which an empty PATH does not hide");
        return;
    }
    let out = faultline(
        &[
            "run",
            "smoke",
            "--cases-dir",
            &project_cases(),
            "--recipes",
            &project_images(),
            "--results",
            results.to_str().unwrap(),
        ],
        &[
            ("PATH", dir.path().to_str().unwrap()),
            ("FAULTLINE_CACHE", cache.path().to_str().unwrap()),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(
        err.trim_end(),
        "error: missing host tool `qemu-system-x86_64`: install it with `apt-get install qemu-system-x86`"
    );
    assert!(!results.exists());
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none());
}

#[test]
fn a_report_of_a_folder_without_a_run_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = faultline(&["report", dir.path().to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let prefix = format!("error: {}: ", dir.path().join("run.json").display());
    assert!(err.starts_with(&prefix), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn a_shell_without_a_kept_lab_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().to_str().unwrap();
    for args in [
        vec!["shell", "imap1", "--run", run],
        vec!["shell", "imap1", "--run", run, "-c", "true"],
    ] {
        let out = faultline(&args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("error: {run} has no kept lab (start one with `faultline run CASE --arm ARM --keep`)")
        );
    }
}

#[test]
fn list_prints_every_arm_with_its_expectation_on_stdout_only() {
    let out = faultline(&["list", "smoke", "--cases-dir", &project_cases()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let case = faultline::case::load(&Path::new(&project_cases()).join("smoke.toml")).unwrap();
    assert_eq!(text.lines().count(), case.arms.len(), "{text}");
    for (line, arm) in text.lines().zip(&case.arms) {
        let head = format!("smoke::{}\texpect {}\t", arm.name, arm.expect.verdict());
        assert!(line.starts_with(&head), "{line}");
    }
}

/// A copy of the committed fixture run (a bug arm and its fixed arm, small traces and a log).
fn fixture_run(to: &Path) -> std::path::PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
    let run = to.join("run");
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vendor-run"),
        &run,
    );
    run
}

#[test]
fn a_vendor_report_writes_one_folder_and_its_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run(tmp.path());
    let out = tmp.path().join("for-vendor");
    let out_s = out.to_str().unwrap();
    let o = faultline(
        &[
            "report",
            run.to_str().unwrap(),
            "--vendor",
            "demo::bug",
            "--out",
            out_s,
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [format!("{out_s}/demo--bug"), format!("{out_s}/demo--bug.tar.gz")]
    );
    let mut names: Vec<String> = std::fs::read_dir(out.join("demo--bug"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["SUMMARY.md", "bug-lan.pcapng", "fixed-lan.pcapng", "run.json"]
    );
    let summary = std::fs::read_to_string(out.join("demo--bug/SUMMARY.md")).unwrap();
    assert!(
        summary.starts_with("# demo::bug — fail (expected fail)"),
        "{summary}"
    );
    assert!(summary.contains("#7 (orig. 7)"), "{summary}");
    assert!(!summary.contains(tmp.path().to_str().unwrap()), "{summary}");
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(out.join("demo--bug.tar.gz"))
        .output()
        .unwrap();
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("demo--bug/bug-lan.pcapng"));
    // The run folder is only read.
    assert!(!run.join("vendor").exists());
}

#[test]
fn a_vendor_report_of_an_arm_the_run_does_not_hold_lists_its_arms_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run(tmp.path());
    let o = faultline(&["report", run.to_str().unwrap(), "--vendor", "demo::nope"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        "error: the run holds no arm demo::nope; it holds: demo::fixed, demo::bug"
    );
    assert!(!run.join("vendor").exists(), "nothing written");
    let o = faultline(&["report", run.to_str().unwrap(), "--vendor", "demo"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = faultline(
        &[
            "report",
            tmp.path().join("absent").to_str().unwrap(),
            "--vendor",
            "demo::bug",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_plain_report_still_remakes_the_run_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run(tmp.path());
    let o = faultline(&["report", run.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(run.join("report.html").exists() && run.join("junit.xml").exists());
}

#[path = "cli/merge.rs"]
mod merge;

#[path = "cli/host_deps.rs"]
mod host_deps;

#[path = "cli/images.rs"]
mod images;
