//! Bug arms judged whole, from observation files in `testdata/`: what the arm's story says
//! happened meets its expectation; a mis-reason (a timeout, a hang) that makes the same checks
//! look failed does not.
//!
//! An observation file names a case of `cases/` and one of its arms, and what differs from a
//! run where every step succeeded printing nothing, every evidence item was captured empty and
//! the trace held no frame: `[steps.NAME]` (`outcome` = `ok` / `failed` / `timed-out`, `exit`,
//! `output`, `stderr`), `[evidence]` (item = text) and `[[frames]]` (RPC calls on the wire).
//! Every fault of the arm fired.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::*;
use crate::case::{self, arm_outcome, ArmOutcome, FaultProof};
use crate::run::record::EvidenceRecord;
use crate::wire::rules::{Facts, RpcFacts};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservationFile {
    case: String,
    arm: String,
    #[serde(default)]
    steps: BTreeMap<String, StepFile>,
    #[serde(default)]
    evidence: BTreeMap<String, String>,
    #[serde(default)]
    frames: Vec<FrameFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    outcome: String,
    exit: Option<i64>,
    #[serde(default)]
    output: String,
    #[serde(default)]
    stderr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameFile {
    number: u64,
    from: String,
    to: String,
    program: u32,
    version: u32,
    procedure: u32,
    reclaim: Option<bool>,
}

/// The arm's outcome for the observations in `testdata/<name>.toml`.
fn judge_file(name: &str) -> ArmOutcome {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = dir.join(format!("src/run/checks/testdata/{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let file: ObservationFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let case = case::load(&dir.join(format!("../cases/{}.toml", file.case))).unwrap();
    let arm = case.arm(&file.arm).unwrap();

    let mut obs = Observed::default();
    for (i, s) in case.steps.iter().enumerate() {
        let t = i as f64;
        let mut rec = StepRecord {
            started_s: Some(t),
            ended_s: Some(t + 1.0),
            started_unix: Some(1.8e9 + t),
            ended_unix: Some(1.8e9 + t + 1.0),
            duration_s: Some(1.0),
            outcome: StepOutcome::Ok,
            exit_code: Some(0),
            ..StepRecord::new(&s.name, s.guest.as_deref())
        };
        if arm.setup.skip_steps.contains(&s.name) {
            rec.outcome = StepOutcome::Skipped;
            rec.exit_code = None;
        }
        if let Some(f) = file.steps.get(&s.name) {
            rec.outcome = match f.outcome.as_str() {
                "ok" => StepOutcome::Ok,
                "failed" => StepOutcome::Failed(format!("exited {}", f.exit.unwrap_or(1))),
                "timed-out" => StepOutcome::TimedOut("still running after 130 s, killed".into()),
                other => panic!("{name}: step outcome {other:?}"),
            };
            rec.exit_code = f.exit;
            rec.output = f.output.clone();
            rec.stderr = f.stderr.clone();
        }
        obs.steps.insert(s.name.clone(), rec);
    }
    assert!(
        file.steps.keys().all(|s| case.step(s).is_some()),
        "{name}: a step the case does not have"
    );
    for (phase, items) in [("before", &case.evidence.before), ("after", &case.evidence.after)] {
        for e in items {
            obs.evidence.insert(
                e.name.clone(),
                EvidenceRecord {
                    name: e.name.clone(),
                    guest: e.guest.clone(),
                    phase,
                    file: format!("evidence/{phase}/{}.out", e.name),
                    text: Some(file.evidence.get(&e.name).cloned().unwrap_or_default()),
                    exit_code: Some(0),
                    problem: None,
                    truncated: false,
                },
            );
        }
    }
    assert!(
        file.evidence.keys().all(|e| case.evidence.item(e).is_some()),
        "{name}: an evidence item the case does not have"
    );
    let frames: Vec<TraceFrame> = file
        .frames
        .iter()
        .map(|f| TraceFrame {
            number: f.number,
            timestamp_ns: 1_800_000_000_000_000_000,
            from: f.from.clone(),
            to: vec![f.to.clone()],
            dropped_to: Vec::new(),
            facts: Facts {
                ethertype: 0x0800,
                ip_proto: Some(6),
                rpc: vec![RpcFacts {
                    xid: 1,
                    call: true,
                    program: Some(f.program),
                    version: Some(f.version),
                    procedure: Some(f.procedure),
                    reclaim: f.reclaim,
                    nlm_stat: None,
                }],
                ..Facts::default()
            },
        })
        .collect();
    let mut traces = Traces::new();
    for s in &case.segments {
        traces.insert(s.name.clone(), Ok(frames.clone()));
    }

    // As the runner counts them: skipped checks out, report-only ones judged but not counted.
    let counted: Vec<CheckResult> = judge(&case, &obs, &traces)
        .into_iter()
        .filter(|r| !arm.skip_checks.iter().any(|s| s == r.name()))
        .filter(|r| !arm.report_only.iter().any(|s| s == r.name()))
        .collect();
    let proofs: Vec<FaultProof> = case
        .faults_of(arm)
        .map(|f| FaultProof {
            name: f.name.clone(),
            fired: true,
            evidence: "fired (hand-made proof)".into(),
        })
        .collect();
    arm_outcome(&arm.expect, &counted, &proofs)
}

#[test]
fn the_reclaim_bug_arm_is_met_by_a_double_holder() {
    let o = judge_file("reclaim-double-holder");
    assert!(o.met, "{}", o.explanation);
    assert!(
        o.explanation
            .contains("mutual-exclusion failed (step `counter-b` on imap2"),
        "{}",
        o.explanation
    );
}

#[test]
fn the_reclaim_bug_arm_is_not_met_when_b_s_flock_times_out() {
    let o = judge_file("reclaim-b-flock-times-out");
    assert_eq!(o.verdict, Verdict::Fail, "{}", o.explanation);
    assert!(!o.met, "{}", o.explanation);
    // B's critical section never ran, and B's failure is not the double holder's.
    assert!(
        o.explanation.contains("mutual-exclusion was unknown"),
        "{}",
        o.explanation
    );
    assert!(
        o.explanation.contains("b-incremented also went wrong"),
        "{}",
        o.explanation
    );
    assert!(o.explanation.contains("exited 1, not 3"), "{}", o.explanation);
}

#[test]
fn the_reclaim_bug_arm_is_not_met_when_b_is_killed_at_its_limit() {
    let o = judge_file("reclaim-b-killed-at-limit");
    assert!(!o.met, "{}", o.explanation);
    assert!(
        o.explanation.contains("mutual-exclusion was unknown"),
        "{}",
        o.explanation
    );
    assert!(o.explanation.contains("ran out of time"), "{}", o.explanation);
}

#[test]
fn the_shelf_bug_arm_is_met_by_eio_from_the_write() {
    let o = judge_file("shelf-eio");
    assert!(o.met, "{}", o.explanation);
}

#[test]
fn the_shelf_bug_arm_is_not_met_when_dd_hangs() {
    let o = judge_file("shelf-dd-hangs");
    assert!(!o.met, "{}", o.explanation);
    assert!(
        o.explanation.contains("second-write was unknown"),
        "{}",
        o.explanation
    );
    assert!(
        o.explanation
            .contains("second-write is unknown (step `write-during` on imap1 (t=3.0–4.0 s) ran out of time"),
        "{}",
        o.explanation
    );
}
