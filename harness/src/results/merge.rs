//! Several runs made one: the run records of shards (`faultline run --partition K/N`) or of
//! reruns in, one run record out, with what the merge found written into it (`merged`):
//! the sources, every case::arm found in more than one of them (which was kept, what each
//! said) and every version that differs between them. Nothing found is dropped silently.
//!
//! Rules:
//! - A duplicate (one case::arm in several sources) keeps the arm of the source that started
//!   last (`started_unix`; on a tie, the one named later): a rerun supersedes the run it
//!   repeats. The others are listed with their verdicts.
//! - A version key whose value differs between sources (a source without the key does not
//!   count: a shard that ran no front-end has no front-end versions) is a mismatch; the merged
//!   `versions` holds its distinct values joined with ` | `, so no single value stands for
//!   arms that ran on another.
//! - Arms are ordered by case name, then where they stood in the unpartitioned run: the j-th
//!   arm of shard K/N stood at `j*N + K-1`, which gives back the single run's order. An arm
//!   in several sources stands where the one with the most arms put it (a rerun of one arm
//!   takes the place of the arm it repeats).
//! - The merged `rerun` is the sources' commands without their `--partition`: the command that
//!   runs the whole merged run on one machine.
//!
//! Architecture invariant: pure. Reading the sources and copying their arm folders is the
//! command's (`commands/merge.rs`); this module sees run records only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RunRecord;
use crate::case::Verdict;

/// One run to merge: its record and the name it goes by in the findings (its folder's name).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub record: RunRecord,
}

/// `run.json`'s `merged` section: where a merged run's arms came from and what did not agree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MergeRecord {
    /// The runs merged, in the order they were given.
    pub sources: Vec<MergeSource>,
    /// Every case::arm found in more than one source.
    #[serde(default)]
    pub duplicates: Vec<Duplicate>,
    /// Version key → its value in each source that has it, for keys whose values differ.
    #[serde(default)]
    pub mismatches: BTreeMap<String, Vec<SourceValue>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeSource {
    /// The source's folder name.
    pub name: String,
    pub run_id: String,
    pub started_unix: f64,
    pub accel: String,
    /// The command that ran it (with its `--partition`, if it had one).
    pub rerun: String,
    /// Arms it recorded.
    pub arms: usize,
    /// Of those, arms the merged run took from it.
    pub kept: usize,
}

/// One case::arm that more than one source recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Duplicate {
    pub case: String,
    pub arm: String,
    pub kept: ArmFrom,
    /// The other records of it, in the order the sources were given.
    pub dropped: Vec<ArmFrom>,
}

/// A record of an arm and the source it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmFrom {
    pub source: String,
    pub run_id: String,
    pub verdict: Verdict,
    pub met: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceValue {
    pub source: String,
    pub value: String,
}

/// A merge's result: the record (with `merged` set) and, for each of its arms, the index of
/// the source it came from (whose folder holds the arm's files).
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub record: RunRecord,
    pub origins: Vec<usize>,
}

/// Merge `sources` (at least one) into a run named `run_id`.
pub fn merge(run_id: &str, sources: &[Source]) -> Merged {
    // Every record of every case::arm: (source, position in that source).
    let mut seen: BTreeMap<(&str, &str), Vec<(usize, usize)>> = BTreeMap::new();
    for (s, src) in sources.iter().enumerate() {
        for (j, arm) in src.record.arms.iter().enumerate() {
            seen.entry((&arm.case, &arm.arm)).or_default().push((s, j));
        }
    }
    let later = |a: &(usize, usize), b: &(usize, usize)| {
        let (sa, sb) = (&sources[a.0].record, &sources[b.0].record);
        sa.started_unix.total_cmp(&sb.started_unix).then(a.0.cmp(&b.0))
    };
    let from = |(s, j): (usize, usize)| {
        let arm = &sources[s].record.arms[j];
        ArmFrom {
            source: sources[s].name.clone(),
            run_id: sources[s].record.run_id.clone(),
            verdict: arm.verdict,
            met: arm.met,
        }
    };
    let slot = |(s, j): (usize, usize)| match partition_of(&sources[s].record.rerun) {
        Some((k, n)) => j * n + (k - 1),
        None => j,
    };
    // (case, where it stands, the record kept).
    let mut kept: Vec<(&str, usize, (usize, usize))> = Vec::new();
    let mut duplicates = Vec::new();
    for ((case, arm), records) in &seen {
        let winner = *records
            .iter()
            .max_by(|a, b| later(a, b))
            .expect("at least one record");
        // It stands where the broadest run that has it put it: a rerun of one arm takes the
        // place of the arm it repeats.
        let broadest = *records
            .iter()
            .max_by_key(|r| (sources[r.0].record.arms.len(), std::cmp::Reverse(r.0)))
            .expect("at least one record");
        if records.len() > 1 {
            duplicates.push(Duplicate {
                case: case.to_string(),
                arm: arm.to_string(),
                kept: from(winner),
                dropped: records
                    .iter()
                    .filter(|r| **r != winner)
                    .map(|r| from(*r))
                    .collect(),
            });
        }
        kept.push((case, slot(broadest), winner));
    }
    kept.sort_by_key(|&(case, slot, (s, _))| (case, slot, s));
    let kept: Vec<(usize, usize)> = kept.into_iter().map(|k| k.2).collect();

    let (versions, mismatches) = versions(sources);
    let accels = distinct(sources.iter().map(|s| s.record.accel.as_str()));
    let merged = MergeRecord {
        sources: sources
            .iter()
            .enumerate()
            .map(|(s, src)| MergeSource {
                name: src.name.clone(),
                run_id: src.record.run_id.clone(),
                started_unix: src.record.started_unix,
                accel: src.record.accel.clone(),
                rerun: src.record.rerun.clone(),
                arms: src.record.arms.len(),
                kept: kept.iter().filter(|k| k.0 == s).count(),
            })
            .collect(),
        duplicates,
        mismatches,
    };
    let arms: Vec<_> = kept
        .iter()
        .map(|&(s, j)| sources[s].record.arms[j].clone())
        .collect();
    let variants = super::variants::table(&arms);
    let record = RunRecord {
        run_id: run_id.to_string(),
        started_unix: sources
            .iter()
            .map(|s| s.record.started_unix)
            .reduce(f64::min)
            .unwrap_or(0.0),
        accel: accels.join(" | "),
        arms,
        versions,
        rerun: rerun(sources),
        merged: Some(merged),
        images: distinct(
            sources
                .iter()
                .flat_map(|s| s.record.images.iter().map(String::as_str)),
        )
        .into_iter()
        .map(str::to_string)
        .collect(),
        variants,
        sweeps: sweeps(sources),
    };
    Merged {
        record,
        origins: kept.iter().map(|k| k.0).collect(),
    }
}

/// The sources' sweeps, one per case::arm: the one with the most sizes (on a tie, from the
/// source that started last). A sweep whose sizes ran in different sources is not made again
/// from them: its model inputs are medians over one run's sizes.
fn sweeps(sources: &[Source]) -> Vec<super::sweep::SweepRecord> {
    let mut best: Vec<(usize, &super::sweep::SweepRecord)> = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        for sw in &src.record.sweeps {
            let better = |(j, old): &(usize, &super::sweep::SweepRecord)| {
                let started = |k: usize| sources[k].record.started_unix;
                (sw.measured.len(), started(i), i) > (old.measured.len(), started(*j), *j)
            };
            match best
                .iter_mut()
                .find(|(_, o)| o.case == sw.case && o.arm == sw.arm)
            {
                Some(slot) if better(slot) => *slot = (i, sw),
                Some(_) => {}
                None => best.push((i, sw)),
            }
        }
    }
    best.into_iter().map(|(_, sw)| sw.clone()).collect()
}

/// The versions every source agrees on, with differing ones as their distinct values joined
/// by ` | `; and those differences, per source.
fn versions(sources: &[Source]) -> (BTreeMap<String, String>, BTreeMap<String, Vec<SourceValue>>) {
    let mut all: BTreeMap<&str, Vec<SourceValue>> = BTreeMap::new();
    for src in sources {
        // The accelerator is a version of the run too; older records kept it only here.
        let accel = (!src.record.versions.contains_key("accel")).then_some(("accel", &src.record.accel));
        let pairs = src
            .record
            .versions
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .chain(accel);
        for (key, value) in pairs {
            all.entry(key).or_default().push(SourceValue {
                source: src.name.clone(),
                value: value.clone(),
            });
        }
    }
    let mut versions = BTreeMap::new();
    let mut mismatches = BTreeMap::new();
    for (key, values) in all {
        let d = distinct(values.iter().map(|v| v.value.as_str()));
        versions.insert(key.to_string(), d.join(" | "));
        if d.len() > 1 {
            mismatches.insert(key.to_string(), values);
        }
    }
    (versions, mismatches)
}

/// The command that runs the merged run again: the sources' commands without `--partition`,
/// each once. When some sources were partitions, theirs alone: they cover what the others
/// (reruns of single arms) repeated.
fn rerun(sources: &[Source]) -> String {
    let partitioned = sources.iter().any(|s| partition_of(&s.record.rerun).is_some());
    let commands: Vec<String> = sources
        .iter()
        .filter(|s| !partitioned || partition_of(&s.record.rerun).is_some())
        .map(|s| without_partition(&s.record.rerun))
        .collect();
    distinct(commands.iter().map(String::as_str)).join("; ")
}

/// `K/N` of a `… --partition K/N …` command.
fn partition_of(command: &str) -> Option<(usize, usize)> {
    let mut words = command.split_whitespace();
    words.find(|w| *w == "--partition")?;
    let (k, n) = words.next()?.split_once('/')?;
    let (k, n) = (k.parse().ok()?, n.parse().ok()?);
    (k >= 1 && k <= n).then_some((k, n))
}

/// The command without its `--partition K/N`.
fn without_partition(command: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut words = command.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--partition" {
            words.next();
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

/// Each value once, in the order first seen.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

impl MergeRecord {
    /// One line per duplicate and per mismatch: what stderr and the report say about them.
    pub fn notices(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.duplicates {
            let others: Vec<String> = d.dropped.iter().map(describe).collect();
            out.push(format!(
                "duplicate {}::{}: kept {}; dropped {}",
                d.case,
                d.arm,
                describe(&d.kept),
                others.join(", ")
            ));
        }
        for (key, values) in &self.mismatches {
            let each: Vec<String> = values
                .iter()
                .map(|v| format!("{} in {}", v.value, v.source))
                .collect();
            out.push(format!("version mismatch {key}: {}", each.join(", ")));
        }
        out
    }
}

fn describe(a: &ArmFrom) -> String {
    format!(
        "{} ({}) from {} (run {})",
        a.verdict,
        if a.met { "met" } else { "NOT met" },
        a.source,
        a.run_id
    )
}

#[cfg(test)]
mod tests;
