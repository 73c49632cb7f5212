//! `faultline merge` on result folders made here, no VM: the CI matrix simulated (the whole
//! suite's run split by `--partition K/3` into three shard folders, then merged), duplicates
//! and a broken source.
//!
//! The single run is a real one, committed as `fixtures/suite-run.json` (every arm of
//! `cases/` at the time, all met). When a case or an arm is added, refresh it from a whole
//! `faultline run`'s `run.json`, or from `faultline merge` of real runs that together hold
//! every arm (as now: the last whole run's other cases and a run of the two cases whose arms
//! changed).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use faultline::accel::Accel;
use faultline::results::RunRecord;
use faultline::suite::{self, Partition};

use super::faultline;

fn single() -> RunRecord {
    serde_json::from_str(include_str!("../fixtures/suite-run.json")).expect("the fixture parses")
}

fn cases() -> Vec<faultline::case::Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    suite::load_cases(&suite::case_files(&[], &dir).unwrap()).unwrap()
}

/// A run folder holding `record` and, for each arm, a folder with a history line.
fn write_run(dir: &Path, record: &RunRecord) {
    for arm in &record.arms {
        let d = dir.join(&arm.dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("history.jsonl"),
            r#"{"t": 0.0, "unix": 1796290630.0, "kind": "workload-start", "name": "workload"}"#,
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(record).unwrap(),
    )
    .unwrap();
}

fn outcomes(r: &RunRecord) -> Vec<(String, String, String, bool)> {
    r.arms
        .iter()
        .map(|a| (a.case.clone(), a.arm.clone(), a.verdict.to_string(), a.met))
        .collect()
}

#[test]
fn three_shards_of_the_suite_merge_into_the_single_runs_arms_and_verdicts() {
    let single = single();
    let cases = cases();
    let name = |(ci, arm): &(usize, String)| (cases[*ci].name.clone(), arm.clone());
    let suite: Vec<(String, String)> = suite::select(&cases, None, None).iter().map(name).collect();
    let recorded: BTreeSet<(String, String)> = single
        .arms
        .iter()
        .map(|a| (a.case.clone(), a.arm.clone()))
        .collect();
    assert_eq!(
        recorded,
        suite.iter().cloned().collect(),
        "fixtures/suite-run.json no longer holds every arm of cases/: refresh it from a whole run"
    );

    // Each shard takes what `faultline run --partition K/3` would take, in its order.
    let root = tempfile::tempdir().unwrap();
    let mut taken = Vec::new();
    for k in 1..=3 {
        let p = Partition { k, n: 3 };
        let chosen: Vec<(String, String)> = suite::select(&cases, None, Some(p)).iter().map(name).collect();
        let shard = RunRecord {
            run_id: format!("{}-shard{k}", single.run_id),
            started_unix: single.started_unix + k as f64,
            arms: chosen
                .iter()
                .map(|(c, a)| {
                    single
                        .arms
                        .iter()
                        .find(|r| &r.case == c && &r.arm == a)
                        .unwrap()
                        .clone()
                })
                .collect(),
            rerun: suite::rerun_selection(&[], None, Some(p), Accel::Tcg),
            ..single.clone()
        };
        write_run(&root.path().join(format!("shard-{k}")), &shard);
        taken.extend(chosen);
    }
    let mut once = taken.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), taken.len(), "no arm in two partitions");
    assert_eq!(once.len(), suite.len(), "every arm in a partition");

    let out = root.path().join("merged");
    let started = Instant::now();
    let ran = faultline(
        &[
            "merge",
            root.path().join("shard-1").to_str().unwrap(),
            root.path().join("shard-2").to_str().unwrap(),
            root.path().join("shard-3").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{err}");
    assert!(!err.contains("duplicate") && !err.contains("mismatch"), "{err}");
    assert!(took < Duration::from_secs(2), "merge took {took:?}");

    let merged = RunRecord::load(&out).unwrap();
    assert_eq!(
        outcomes(&merged),
        outcomes(&single),
        "same arms, verdicts and order"
    );
    assert_eq!(
        merged.rerun, "faultline run --accel tcg",
        "the single run's command"
    );
    assert_eq!(merged.versions, single.versions);
    let found = merged.merged.expect("a merged section");
    assert_eq!(found.sources.len(), 3);
    assert!(found.duplicates.is_empty() && found.mismatches.is_empty());
    for arm in &merged.arms {
        assert!(out.join(&arm.dir).join("history.jsonl").is_file(), "{}", arm.dir);
    }
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), suite.len());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Merged from 3 runs"));

    // The merged folder stands on its own: the shards gone, its files are still there.
    for k in 1..=3 {
        std::fs::remove_dir_all(root.path().join(format!("shard-{k}"))).unwrap();
    }
    assert!(out.join(&merged.arms[0].dir).join("history.jsonl").is_file());
}

#[test]
fn a_rerun_that_disagrees_is_reported_kept_and_decides_the_exit_code() {
    let single = single();
    let root = tempfile::tempdir().unwrap();
    write_run(&root.path().join("first"), &single);
    let mut arm = single.arms[0].clone();
    arm.verdict = faultline::case::Verdict::Unknown;
    arm.met = false;
    let mut rerun = RunRecord {
        run_id: "20261204-000000-beef".into(),
        started_unix: single.started_unix + 3600.0,
        arms: vec![arm.clone()],
        rerun: arm.rerun.clone(),
        ..single.clone()
    };
    rerun
        .versions
        .insert("qemu".into(), "QEMU emulator version 8.2.2".into());
    write_run(&root.path().join("again"), &rerun);
    let results = root.path().join("results");
    let ran = faultline(
        &[
            "merge",
            root.path().join("first").to_str().unwrap(),
            root.path().join("again").to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(1), "an unmet arm: {err}");
    let dup = format!(
        "merge: duplicate {}::{}: kept unknown (NOT met) from again (run 20261204-000000-beef); \
         dropped pass (met) from first",
        arm.case, arm.arm
    );
    assert!(err.contains(&dup), "{err}");
    assert!(err.contains("merge: version mismatch qemu: "), "{err}");

    let out = results.join("latest");
    let merged = RunRecord::load(&out).unwrap();
    assert_eq!(merged.arms.len(), single.arms.len());
    assert_eq!(
        merged.arms[0].verdict,
        faultline::case::Verdict::Unknown,
        "the later run's"
    );
    let found = merged.merged.unwrap();
    assert_eq!(found.duplicates.len(), 1);
    assert_eq!(found.mismatches["qemu"].len(), 2);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("class=\"notice\""), "a visible notice");
    assert!(html.contains("version mismatch qemu"));
}

#[test]
fn merging_a_folder_without_a_run_is_one_line_naming_the_file_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    write_run(&root.path().join("good"), &single());
    std::fs::create_dir(root.path().join("empty")).unwrap();
    let bad = root.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("run.json"), "{\"run_id\": ").unwrap();
    for (source, named) in [("empty", "empty/run.json"), ("bad", "bad/run.json")] {
        let out = root.path().join("merged");
        let ran = faultline(
            &[
                "merge",
                root.path().join("good").to_str().unwrap(),
                root.path().join(source).to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        let err = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(named), "{err}");
        assert!(!out.exists());
    }
}
