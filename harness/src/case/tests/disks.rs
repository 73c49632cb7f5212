//! Disks, shelves and the faults that act on them: errors at their values, the plan they
//! resolve to, and the serialized plan of a disk case from before shelves, unchanged.

use super::*;
use crate::disks::{ErrorRate, WriteCache};

/// Lines 11–19: disks a1, a2 (filer), b1 (filer, an honest cache), c1 (imap1).
const DISKS: &str = "[disks.a1]\nguest = \"filer\"\nsize = \"64M\"\n[disks.a2]\nguest = \"filer\"\nsize = \"64M\"\n[disks.b1]\nguest = \"filer\"\nsize = \"64M\"\n";

fn with_disks(rest: &str) -> String {
    format!("{DISKS}[disks.c1]\nguest = \"imap1\"\nsize = \"64M\"\n{rest}")
}

/// The error for HEAD + the disks + `rest` + TAIL: `rest`'s first line is line 23.
fn disk_err(rest: &str) -> (String, String) {
    let middle = with_disks(rest);
    let got = err(&middle);
    (middle, got)
}

fn disk_table(rows: &[(&str, &str)]) {
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|(rest, want)| {
            let (middle, got) = disk_err(rest);
            (got != *want).then(|| format!("for:\n{middle}\n  got: {got}\n want: {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn shelves_and_write_caches() {
    disk_table(&[
        (
            "[shelves.a]\ndisks = [\"a1\", \"a9\"]\n",
            "t.toml:24:16: unknown disk `a9` (this case has a1, a2, b1, c1)",
        ),
        ("[shelves.a]\ndisks = []\n", "t.toml:24:9: shelf `a` needs at least one disk"),
        (
            "[shelves.a]\ndisks = [\"a1\", \"a1\"]\n",
            "t.toml:24:16: disk `a1` is listed twice",
        ),
        (
            "[shelves.a]\ndisks = [\"a1\"]\n[shelves.b]\ndisks = [\"b1\", \"a1\"]\n",
            "t.toml:26:16: disk `a1` is already in shelf `a`: a disk sits behind one controller",
        ),
        (
            "[shelves.a]\ndisks = [\"a1\", \"c1\"]\n",
            "t.toml:24:16: disk `c1` is on guest imap1, but shelf `a`'s disk `a1` is on filer: a shelf is cabled to one guest",
        ),
        (
            "[shelves.A]\ndisks = [\"a1\"]\n",
            "t.toml:23:10: shelf name \"A\" must be lower-case letters, digits, '-' and '_', starting with a letter or digit",
        ),
        (
            "[shelves.a]\ndisks = [\"a1\"]\nwrite_cache = \"sometimes\"\n",
            "t.toml:25:15: write_cache must be \"none\", \"honest\" (flushes reach the disk) or \"lying\" (flushes are acknowledged and persist nothing), not \"sometimes\"",
        ),
        (
            "[disks.d1]\nguest = \"filer\"\nsize = \"64M\"\nwrite_cache = \"lying\"\n[shelves.d]\ndisks = [\"d1\"]\nwrite_cache = \"honest\"\n",
            "t.toml:29:15: disk `d1` of shelf `d` sets its own write_cache: a shelf's cache is its disks', so set it on the shelf or on each disk",
        ),
    ]);
    let c = ok(&with_disks(
        "write_cache = \"honest\"\n[shelves.a]\ndisks = [\"a2\", \"a1\"]\nwrite_cache = \"lying\"\n[shelves.b]\ndisks = [\"b1\"]\n",
    ));
    assert_eq!(
        c.shelves,
        [
            Shelf {
                name: "a".into(),
                disks: vec!["a2".into(), "a1".into()]
            },
            Shelf {
                name: "b".into(),
                disks: vec!["b1".into()]
            }
        ]
    );
    let caches: Vec<(&str, WriteCache)> = c.disks.iter().map(|d| (d.name.as_str(), d.write_cache)).collect();
    assert_eq!(
        caches,
        [
            ("a1", WriteCache::Lying),
            ("a2", WriteCache::Lying),
            ("b1", WriteCache::None),
            ("c1", WriteCache::Honest)
        ]
    );
}

/// A shelf `a` (a1, a2) and `b` (b1), then `rest` from line 27.
fn shelved(rest: &str) -> String {
    format!("[shelves.a]\ndisks = [\"a1\", \"a2\"]\n[shelves.b]\ndisks = [\"b1\"]\n{rest}")
}

#[test]
fn disk_faults_name_a_disk_or_a_shelf() {
    let rows = [
        (
            shelved("[faults.f]\nstart = { at = \"1s\" }\ndisk_error = { disk = \"a1\", shelf = \"a\" }\n"),
            "t.toml:29:37: `disk_error` takes one of disk, shelf, not both `disk` and `shelf`",
        ),
        (
            shelved("[faults.f]\nstart = { at = \"1s\" }\ndisk_error = { rate = \"5%\" }\n"),
            "t.toml:29:14: `disk_error` needs one of disk, shelf",
        ),
        (
            shelved("[faults.f]\nstart = { at = \"1s\" }\ndisk_pause = { shelf = \"c\" }\nend = { duration = \"5s\" }\n"),
            "t.toml:29:24: unknown shelf `c` (this case has a, b)",
        ),
        (
            shelved("[faults.f]\nstart = { at = \"1s\" }\ndisk_error = { shelf = \"a\", rate = \"0%\" }\n"),
            "t.toml:29:36: bad rate \"0%\": a percentage more than 0 and at most 100, e.g. \"5%\" or \"0.5%\"",
        ),
        (
            shelved("[faults.f]\nstart = { at = \"1s\" }\nend = { heal_step = \"a\" }\ndisk_error = { shelf = \"a\" }\n"),
            "t.toml:29:21: a disk_error fault is removed by the harness, not by a step: use until_step",
        ),
    ];
    disk_table(&rows.iter().map(|(r, w)| (r.as_str(), *w)).collect::<Vec<_>>());
    let c = ok(&with_disks(&shelved(
        "[faults.f]\nstart = { at = \"1s\" }\nend = { until_step = \"a\" }\ndisk_error = { shelf = \"a\", rate = \"0.5%\" }\n",
    )));
    let f = c.fault("f").unwrap();
    assert_eq!(
        f.kind,
        FaultKind::DiskError {
            on: DiskTarget::Shelf("a".into()),
            rate: Some(ErrorRate::parse("0.5%").unwrap())
        }
    );
    let names: Vec<&str> = c.fault_disks(&f.kind).iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a1", "a2"]);
}

#[test]
fn delays_pauses_and_power_cuts() {
    let rows = [
        (
            "[faults.f]\nstart = { at = \"0s\" }\ndisk_delay = { disk = \"a1\" }\n",
            "t.toml:25:14: a disk_delay needs `read`, `write` or both (e.g. read = \"200ms\")",
        ),
        (
            "[faults.f]\nstart = { at = \"0s\" }\ndisk_delay = { disk = \"a1\", read = \"0ms\" }\n",
            "t.toml:25:36: \"0ms\" is zero: this duration must be more than 0",
        ),
        (
            "[faults.f]\nstart = { at = \"5s\" }\ndisk_delay = { disk = \"a1\", read = \"200ms\" }\n",
            "t.toml:24:9: nbdkit's delay filter is fixed when the disk is served, so a disk_delay is in place from the start of the workload to its end: start it with at = \"0s\"",
        ),
        (
            "[faults.f]\nstart = { at = \"0s\" }\nend = { duration = \"5s\" }\ndisk_delay = { disk = \"a1\", write = \"1s\" }\n",
            "t.toml:25:7: nbdkit's delay filter is fixed when the disk is served, so a disk_delay is in place from the start of the workload to its end: it takes no end",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\ndisk_pause = { disk = \"a1\" }\n",
            "t.toml:23:9: fault `f` stalls its disks until the harness ends it: give it end.duration or end.until_step (the requests it holds complete, and prove it, only then)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = \"never\"\ndisk_pause = { disk = \"a1\" }\n",
            "t.toml:25:7: fault `f` stalls its disks until the harness ends it: give it end.duration or end.until_step (the requests it holds complete, and prove it, only then)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { heal_step = \"a\" }\ndisk_pause = { disk = \"a1\" }\n",
            "t.toml:25:21: a disk_pause fault is removed by the harness, not by a step: use until_step",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\npower_cut = { disk = \"a1\", hold = \"1500ms\" }\n",
            "t.toml:25:35: hold \"1500ms\" is QEMU's reconnect-delay, whole seconds from 0s to 1h",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\npower_cut = { disk = \"a1\", hold = \"2h\" }\n",
            "t.toml:25:35: hold \"2h\" is QEMU's reconnect-delay, whole seconds from 0s to 1h",
        ),
    ];
    disk_table(&rows);
    let c = ok(&with_disks(&shelved(
        "[faults.slow]\nstart = { at = \"0s\" }\ndisk_delay = { shelf = \"a\", read = \"200ms\" }\n\
         [faults.stall]\nstart = { at = \"1s\" }\nend = { duration = \"30s\" }\ndisk_pause = { shelf = \"b\" }\n\
         [faults.dark]\nstart = { at = \"1s\" }\nend = { until_step = \"a\" }\npower_cut = { disk = \"c1\", hold = \"10s\" }\n",
    )));
    assert_eq!(
        c.fault("slow").unwrap().kind,
        FaultKind::DiskDelay {
            on: DiskTarget::Shelf("a".into()),
            read: Some(Duration::from_millis(200)),
            write: None
        }
    );
    assert_eq!(
        c.fault("stall").unwrap().kind,
        FaultKind::DiskPause {
            on: DiskTarget::Shelf("b".into())
        }
    );
    assert_eq!(
        c.fault("dark").unwrap().kind,
        FaultKind::PowerCut {
            on: DiskTarget::Disk("c1".into()),
            hold: Duration::from_secs(10)
        }
    );
    let kinds: Vec<serde_json::Value> = c
        .faults
        .iter()
        .map(|f| serde_json::to_value(&f.kind).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            serde_json::json!({"kind": "disk_delay", "shelf": "a", "read": "200ms", "write": null}),
            serde_json::json!({"kind": "disk_pause", "shelf": "b"}),
            serde_json::json!({"kind": "power_cut", "disk": "c1", "hold": "10s"}),
        ]
    );
}

/// An arm's faults agree on what is fixed for a disk's life.
#[test]
fn an_arms_disk_faults_agree_on_each_disk() {
    let case = |faults: &str, arm: &str| {
        format!(
            "{HEAD}{}{faults}{TAIL}[arms.x]\nexpect = \"unknown\"\nfaults = {arm}\n",
            with_disks(&shelved(""))
        )
    };
    let faults = "[faults.some]\nstart = { at = \"1s\" }\ndisk_error = { shelf = \"a\", rate = \"5%\" }\n\
                  [faults.all]\nstart = { at = \"2s\" }\ndisk_error = { disk = \"a2\" }\n\
                  [faults.other]\nstart = { at = \"2s\" }\ndisk_error = { disk = \"b1\" }\n\
                  [faults.slow]\nstart = { at = \"0s\" }\ndisk_delay = { disk = \"a1\", read = \"1s\" }\n\
                  [faults.slower]\nstart = { at = \"0s\" }\ndisk_delay = { shelf = \"a\", write = \"1s\" }\n\
                  [faults.cut]\nstart = { at = \"5s\" }\npower_cut = { shelf = \"a\" }\n\
                  [faults.cut-held]\nstart = { at = \"9s\" }\npower_cut = { disk = \"a1\", hold = \"5s\" }\n\
                  [faults.cut-again]\nstart = { at = \"9s\" }\npower_cut = { disk = \"a1\" }\n";
    // The arm's `faults` is on line 57.
    for (arm, want) in [
        (
            "[\"some\", \"all\"]",
            "t.toml:57:19: faults `some` and `all` both act on disk `a2` with different error rates (5% and 100%): nbdkit's error-rate is fixed when the disk is served; put them in different arms",
        ),
        (
            "[\"slower\", \"slow\"]",
            "t.toml:57:21: faults `slower` and `slow` both act on disk `a1` each with a delay: nbdkit's delay filter has one setting, fixed when the disk is served; put them in different arms",
        ),
        (
            "[\"cut\", \"cut-held\"]",
            "t.toml:57:18: faults `cut` and `cut-held` both act on disk `a1` with different holds (0s and 5s): QEMU's reconnect-delay is fixed when the disk is plugged in; put them in different arms",
        ),
    ] {
        assert_eq!(full_err(&case(faults, arm)), want);
    }
    for fine in [
        "[\"some\", \"other\"]",
        "[\"cut\", \"cut-again\", \"slow\", \"some\"]",
    ] {
        parse_t(&case(faults, fine)).unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
}

/// The example case with shelves resolves as written (and serializes as the snapshot).
#[test]
fn the_shelves_example_resolves() {
    let c = load(&testdata("shelves")).unwrap();
    insta::assert_json_snapshot!("shelves", (&c.disks, &c.shelves, &c.faults));
}

/// A case written before shelves serializes its disk and disk fault as it did: no shelves, no
/// write cache, no rate.
#[test]
fn a_disk_case_from_before_shelves_serializes_as_before() {
    let c = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/shelf-error.toml")).unwrap();
    let v = serde_json::to_value(&c).unwrap();
    assert!(v.get("shelves").is_none());
    assert_eq!(
        v["disks"],
        serde_json::json!([{"name": "shelf", "guest": "filer", "size_bytes": 268435456, "nbdkit_filters": ["error"]}])
    );
    assert_eq!(
        v["faults"],
        serde_json::json!([{"name": "shelf-fails", "kind": "disk_error", "disk": "shelf",
                            "start": {"on": "after_step", "step": "write-before"},
                            "end": {"end": "until_step", "step": "write-during"}}])
    );
}
