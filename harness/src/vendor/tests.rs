use std::path::{Path, PathBuf};

use super::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vendor-run")
}

/// A copy of the fixture run in a temporary folder, as `cp -a` would make it.
fn copy_fixture(to: &Path) {
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
    copy(&fixture(), to);
}

/// Every file under `dir`, by path.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn the_bundle_names_no_host_path_and_not_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("results").join("run-1");
    copy_fixture(&run_dir);
    let run_abs = std::fs::canonicalize(&run_dir).unwrap().display().to_string();
    let cwd = std::env::current_dir().unwrap().display().to_string();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let name = host_name().expect("the host has a name");
    // What a run made on this host may hold: its folders in a step's output and a re-run
    // command naming the case file by its absolute path, the host's name in a log line.
    let mut run = RunRecord::load(&run_dir).unwrap();
    let bug = run.arms.iter_mut().find(|a| a.arm == "bug").unwrap();
    bug.rerun = format!("faultline run {cwd}/cases/demo.toml --arm bug --accel tcg");
    bug.checks[1].explanation = Some(format!(
        "none of the 20 frames in wire/lan.pcapng matches x (saved in {run_abs}/demo/bug, cache {home}/.cache/faultline, built on {name}); expected at least 1"
    ));
    bug.faults[0]
        .evidence
        .push_str(&format!("; host {name} wrote {cwd}/x"));
    run.rerun = format!("faultline run {cwd}/cases/demo.toml --accel tcg");
    std::fs::write(run_dir.join("run.json"), serde_json::to_string(&run).unwrap()).unwrap();

    let b = make(&run_dir, "demo::bug", None).unwrap();
    assert_eq!(b.dir, run_dir.join("vendor/demo--bug"));
    assert_eq!(b.archive, run_dir.join("vendor/demo--bug.tar.gz"));
    let host = host_of(&run_dir, None);
    let needles = [
        run_abs.clone(),
        cwd.clone(),
        home.clone(),
        tmp.path().display().to_string(),
    ];
    for f in files(&b.dir) {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for n in needles.iter().filter(|n| n.len() > 1) {
            assert!(!text.contains(n.as_str()), "{} holds {n}", f.display());
        }
        assert!(
            host.leaks(&text).is_empty(),
            "{}: {:?}",
            f.display(),
            host.leaks(&text)
        );
    }
    let summary = std::fs::read_to_string(b.dir.join("SUMMARY.md")).unwrap();
    assert!(
        summary.contains("faultline run cases/demo.toml --arm bug --accel tcg"),
        "{summary}"
    );
    assert!(summary.contains("saved in <run>/demo/bug"), "{summary}");
}

#[test]
fn the_bundle_holds_the_summary_the_cuts_and_an_archive_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    copy_fixture(&run_dir);
    let out = tmp.path().join("out");
    let b = make(&run_dir, "demo::bug", Some(&out)).unwrap();
    let names: Vec<String> = files(&b.dir)
        .iter()
        .map(|p| p.strip_prefix(&b.dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        ["SUMMARY.md", "bug-lan.pcapng", "fixed-lan.pcapng", "run.json"]
    );
    // The bug arm cites frames 2, 9, 15 and its fault frame 12: with 3 either side, 1–18.
    let cut = std::fs::read(b.dir.join("bug-lan.pcapng")).unwrap();
    let frames = crate::run::trace::read(&cut).unwrap();
    assert_eq!(frames.len(), 18);
    let summary = std::fs::read_to_string(b.dir.join("SUMMARY.md")).unwrap();
    assert!(summary.contains("| 12 | 12 |"), "{summary}");
    assert!(summary.contains("> 5  Dec 03 09:45:03.005865"), "{summary}");
    // The archive holds the folder.
    let list = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&b.archive)
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.lines().any(|l| l == "demo--bug/SUMMARY.md"), "{list}");
    assert!(list.lines().any(|l| l == "demo--bug/bug-lan.pcapng"), "{list}");
    // Nothing temporary is left beside it; a second bundle replaces the first.
    make(&run_dir, "demo::bug", Some(&out)).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["demo--bug", "demo--bug.tar.gz"]);
}

#[test]
fn an_unknown_arm_lists_what_the_run_holds() {
    let e = make(&fixture(), "demo::nope", Some(Path::new("/nonexistent"))).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.to_string(),
        "the run holds no arm demo::nope; it holds: demo::fixed, demo::bug"
    );
    let e = make(&fixture(), "demo", None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let e = make(Path::new("/nonexistent/run"), "demo::bug", None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn excerpts_clip_at_both_ends() {
    let text = b"a\nb\nc\nd\ne\n";
    assert_eq!(
        excerpt(text, 1, 2).iter().map(|l| l.0).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        excerpt(text, 5, 3).iter().map(|l| l.0).collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    assert!(excerpt(text, 99, 3).is_empty());
}
