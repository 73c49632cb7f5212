use std::collections::BTreeMap;

use super::*;
use crate::results::junit::tests::fixture;
use crate::results::ArmRecord;

fn arm(case: &str, name: &str, verdict: Verdict, met: bool) -> ArmRecord {
    ArmRecord {
        case: case.into(),
        arm: name.into(),
        verdict,
        met,
        dir: format!("{case}/{name}"),
        rerun: format!("faultline run cases/{case}.toml --arm {name} --accel tcg"),
        ..fixture().arms[0].clone()
    }
}

fn versions(qemu: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("accel".to_string(), "tcg".to_string()),
        ("faultline".to_string(), "0.1.0".to_string()),
        ("qemu".to_string(), qemu.to_string()),
        ("filer.recipe".to_string(), "7b19a78252cd5b03".to_string()),
    ])
}

fn run(id: &str, started: f64, arms: Vec<ArmRecord>, rerun: &str) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        started_unix: started,
        accel: "tcg".into(),
        arms,
        versions: versions("7.2.22"),
        rerun: rerun.into(),
        merged: None,
        images: Vec::new(),
        variants: None,
        sweeps: Vec::new(),
    }
}

/// Seven arms of three cases, in the order a single run takes them.
fn single() -> RunRecord {
    run(
        "20261203-093710-c677",
        1000.0,
        vec![
            arm("nlm-grant-lost", "baseline", Verdict::Pass, true),
            arm("nlm-grant-lost", "bug", Verdict::Fail, true),
            arm("pop3-vsize-persist", "fixed", Verdict::Pass, true),
            arm("pop3-vsize-persist", "disconnect", Verdict::Pass, true),
            arm("pop3-vsize-persist", "bug", Verdict::Fail, true),
            arm("smoke", "baseline", Verdict::Pass, true),
            arm("smoke", "broken", Verdict::Unknown, false),
        ],
        "faultline run --accel tcg",
    )
}

/// The single run's arms split as `--partition K/3` splits them (round robin), each shard a
/// run of its own.
fn shards() -> Vec<Source> {
    let all = single();
    (1..=3)
        .map(|k| Source {
            name: format!("shard-{k}"),
            record: run(
                &format!("2026120{k}-000000-000{k}"),
                2000.0 + k as f64,
                all.arms.iter().skip(k - 1).step_by(3).cloned().collect(),
                &format!("faultline run --partition {k}/3 --accel tcg"),
            ),
        })
        .collect()
}

#[test]
fn three_shards_merge_into_the_single_runs_arms_in_its_order() {
    let m = merge("merged-x", &shards());
    assert_eq!(m.record.arms, single().arms);
    assert_eq!(m.origins, [0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(m.record.rerun, "faultline run --accel tcg");
    assert_eq!(m.record.started_unix, 2001.0, "the first shard's start");
    assert_eq!(m.record.versions, versions("7.2.22"));
    assert_eq!(m.record.accel, "tcg");
    let found = m.record.merged.unwrap();
    assert!(found.duplicates.is_empty() && found.mismatches.is_empty());
    assert!(found.notices().is_empty());
    assert_eq!(
        found.sources.iter().map(|s| s.kept).collect::<Vec<_>>(),
        [3, 2, 2]
    );
}

#[test]
fn shards_given_in_any_order_merge_the_same() {
    let mut s = shards();
    s.reverse();
    assert_eq!(merge("m", &s).record.arms, single().arms);
}

/// Shard 2 ran on another QEMU; `smoke::broken` was run again later and met; shard 3 ran no
/// front-end (it has no `frontend.kernel`), which is no mismatch.
fn disagreeing() -> Vec<Source> {
    let mut s = shards();
    s[1].record.versions.insert("qemu".into(), "8.2.2".into());
    s[0].record
        .versions
        .insert("frontend.kernel".into(), "6.1.0-56-cloud-amd64".into());
    s[1].record
        .versions
        .insert("frontend.kernel".into(), "6.1.0-56-cloud-amd64".into());
    s.push(Source {
        name: "rerun".into(),
        record: run(
            "20261204-000000-0004",
            3000.0,
            vec![arm("smoke", "broken", Verdict::Fail, true)],
            "faultline run cases/smoke.toml --arm broken --accel tcg",
        ),
    });
    s
}

#[test]
fn findings_of_a_merge_that_does_not_agree() {
    let m = merge("merged-x", &disagreeing());
    let found = m.record.merged.clone().unwrap();
    insta::assert_json_snapshot!("findings", found);
    insta::assert_snapshot!("notices", found.notices().join("\n"));
    assert_eq!(m.record.versions["qemu"], "7.2.22 | 8.2.2");
    assert_eq!(
        m.record.rerun, "faultline run --accel tcg",
        "the shards' command covers the rerun's arm"
    );
}

#[test]
fn a_duplicate_keeps_the_run_that_started_last_wherever_it_is_named() {
    let mut s = disagreeing();
    let rerun = s.pop().unwrap();
    s.insert(0, rerun);
    let m = merge("m", &s);
    let broken = m.record.arms.iter().find(|a| a.arm == "broken").unwrap();
    assert_eq!((broken.verdict, broken.met), (Verdict::Fail, true));
    assert_eq!(m.origins[m.record.arms.len() - 1], 0, "from the rerun");
    assert_eq!(m.record.arms.len(), 7);
}

#[test]
fn on_equal_start_times_the_folder_named_later_wins() {
    let a = run(
        "a",
        5.0,
        vec![arm("smoke", "baseline", Verdict::Pass, true)],
        "faultline run",
    );
    let b = run(
        "b",
        5.0,
        vec![arm("smoke", "baseline", Verdict::Fail, false)],
        "faultline run",
    );
    let src = |name: &str, record: &RunRecord| Source {
        name: name.into(),
        record: record.clone(),
    };
    let m = merge("m", &[src("a", &a), src("b", &b)]);
    assert_eq!(m.record.arms[0].verdict, Verdict::Fail);
    let m = merge("m", &[src("b", &b), src("a", &a)]);
    assert_eq!(m.record.arms[0].verdict, Verdict::Pass);
    assert_eq!(m.record.merged.unwrap().duplicates[0].dropped[0].source, "b");
}

#[test]
fn reruns_without_a_partition_are_each_run_again() {
    let a = run(
        "a",
        1.0,
        vec![arm("smoke", "baseline", Verdict::Pass, true)],
        "faultline run smoke --accel tcg",
    );
    let b = run(
        "b",
        2.0,
        vec![arm("x", "bug", Verdict::Pass, true)],
        "faultline run x --accel tcg",
    );
    let src = |name: &str, record: RunRecord| Source {
        name: name.into(),
        record,
    };
    let m = merge("m", &[src("a", a), src("b", b)]);
    assert_eq!(
        m.record.rerun,
        "faultline run smoke --accel tcg; faultline run x --accel tcg"
    );
}

#[test]
fn a_different_accelerator_is_a_mismatch_even_without_a_versions_entry() {
    let mut a = run("a", 1.0, vec![], "faultline run --partition 1/2");
    let mut b = run("b", 2.0, vec![], "faultline run --partition 2/2");
    a.versions.clear();
    b.versions.clear();
    b.accel = "kvm".into();
    let m = merge(
        "m",
        &[
            Source {
                name: "a".into(),
                record: a,
            },
            Source {
                name: "b".into(),
                record: b,
            },
        ],
    );
    assert_eq!(m.record.accel, "tcg | kvm");
    assert_eq!(m.record.merged.unwrap().mismatches["accel"].len(), 2);
}

#[test]
fn partitions_are_read_from_and_taken_out_of_a_command() {
    assert_eq!(
        partition_of("faultline run --partition 2/3 --accel tcg"),
        Some((2, 3))
    );
    assert_eq!(partition_of("faultline run --accel tcg"), None);
    assert_eq!(partition_of("faultline run --partition 4/3"), None);
    assert_eq!(partition_of("faultline run --partition"), None);
    assert_eq!(
        without_partition("faultline run smoke --partition 2/3 --accel tcg"),
        "faultline run smoke --accel tcg"
    );
}

#[test]
fn the_merged_record_round_trips_through_run_json() {
    let m = merge("m", &disagreeing()).record;
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<RunRecord>(&json).unwrap(), m);
    let plain = serde_json::to_string(&single()).unwrap();
    assert!(!plain.contains("merged"), "a plain run has no merged section");
}

#[test]
fn a_sweep_keeps_the_source_with_the_most_sizes_and_a_run_without_one_has_none() {
    let m = merge("merged-x", &shards());
    assert!(m.record.sweeps.is_empty());
    let json = serde_json::to_string(&m.record).unwrap();
    assert!(!json.contains("sweeps"), "{json}");

    let whole = crate::results::sweep::tests::sweep_run().sweeps[0].clone();
    let mut one = whole.clone();
    one.measured.truncate(1);
    let with = |id: &str, started: f64, sw: &crate::results::sweep::SweepRecord| Source {
        name: id.into(),
        record: RunRecord {
            sweeps: vec![sw.clone()],
            ..run(id, started, Vec::new(), "faultline run --sweep --accel tcg")
        },
    };
    // The later run measured fewer sizes: the fuller sweep is kept.
    let m = merge("merged-x", &[with("a", 1.0, &whole), with("b", 2.0, &one)]);
    assert_eq!(m.record.sweeps, [whole]);
    // As many sizes: the later run's.
    let m = merge("merged-x", &[with("a", 1.0, &one), with("b", 2.0, &one)]);
    assert_eq!(m.record.sweeps.len(), 1);
}
