use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::results::RunRecord;
use crate::vendor::cut::CutFrame;
use crate::wire::pcapng::Direction;

/// The committed fixture run: a bug arm and its fixed arm.
fn fixture() -> RunRecord {
    serde_json::from_str(include_str!("../../../tests/fixtures/vendor-run/run.json")).unwrap()
}

fn frame(cut: u64, original: u64, wanted: bool, port: &str) -> CutFrame {
    CutFrame {
        cut,
        original,
        timestamp_ns: 1_795_893_010_000_000_000 + original * 250_000_000,
        port: port.into(),
        direction: Direction::Inbound,
        wanted,
    }
}

fn citers(pairs: &[(u64, &str)]) -> BTreeMap<u64, BTreeSet<String>> {
    let mut m: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (n, who) in pairs {
        m.entry(*n).or_default().insert(who.to_string());
    }
    m
}

#[test]
fn a_bug_arm_reads_next_to_its_fixed_arm_with_cut_frame_numbers() {
    let run = fixture();
    let bug = run.arms.iter().find(|a| a.arm == "bug").unwrap();
    let fixed = run.arms.iter().find(|a| a.arm == "fixed").unwrap();
    let bug_frames: Vec<CutFrame> = (1..=18)
        .map(|o| {
            frame(
                o,
                o,
                [2, 9, 12, 15].contains(&o),
                if o % 2 == 0 { "imap1" } else { "filer" },
            )
        })
        .collect();
    let s = Summary {
        run: &run,
        arm: ArmView {
            record: bug,
            cuts: vec![CutView {
                original: "wire/lan.pcapng".into(),
                file: "bug-lan.pcapng".into(),
                citers: citers(&[
                    (2, "lock-on-wire"),
                    (9, "lock-on-wire"),
                    (12, "notify-lost"),
                    (15, "lock-on-wire"),
                ]),
                result: Ok(CutDone {
                    frames: bug_frames,
                    original_frames: 20,
                    missing: vec![],
                }),
            }],
            lines: vec![LineExcerpt {
                file: "evidence/after/statd.out".into(),
                line: 5,
                citers: BTreeSet::from(["statd-reached-lockd".to_string()]),
                lines: Ok(vec![
                    (2, "rpc.statd: Flags: TI-RPC".into()),
                    (3, "rpc.statd: Received SM_NOTIFY for filer".into()),
                    (4, "rpc.statd: notify_reply".into()),
                    (
                        5,
                        "rpc.statd: process_notify_list: Can't callback imap1 (100021,3), giving up".into(),
                    ),
                    (6, "rpc.statd: sm-notify done".into()),
                ]),
            }],
            workload_start_unix: Some(1_795_893_010.0),
        },
        compare: Some(ArmView {
            record: fixed,
            cuts: vec![CutView {
                original: "wire/lan.pcapng".into(),
                file: "fixed-lan.pcapng".into(),
                citers: citers(&[(3, "lock-on-wire"), (7, "reclaim-on-wire")]),
                result: Ok(CutDone {
                    frames: (1..=10).map(|o| frame(o, o, o == 3 || o == 7, "imap1")).collect(),
                    original_frames: 12,
                    missing: vec![],
                }),
            }],
            lines: vec![],
            workload_start_unix: None,
        }),
    };
    insta::assert_snapshot!(render(&s));
}

#[test]
fn an_arm_alone_with_an_uncut_trace_says_why() {
    let run = fixture();
    let bug = run.arms.iter().find(|a| a.arm == "bug").unwrap();
    let s = Summary {
        run: &run,
        arm: ArmView {
            record: bug,
            cuts: vec![CutView {
                original: "wire/lan.pcapng".into(),
                file: "bug-lan.pcapng".into(),
                citers: citers(&[(2, "lock-on-wire")]),
                result: Err("lan.pcapng: missing".into()),
            }],
            lines: vec![LineExcerpt {
                file: "evidence/after/statd.out".into(),
                line: 5,
                citers: BTreeSet::from(["statd-reached-lockd".to_string()]),
                lines: Err("statd.out: missing".into()),
            }],
            workload_start_unix: None,
        },
        compare: None,
    };
    let text = render(&s);
    assert!(text.contains("could not be cut: lan.pcapng: missing"), "{text}");
    assert!(text.contains("Not readable: statd.out: missing"), "{text}");
    assert!(!text.contains("Compared with"), "{text}");
    // Frame numbers stay the original's where there is no cut.
    assert!(text.contains("frames 2, 9, 15"), "{text}");
}
