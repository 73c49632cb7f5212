//! `include` for cases: a case file may name other TOML files (paths relative to the file that
//! names them) holding what several cases share — guests, a workload, evidence, checks. They
//! live in `cases/common/`, which the suite does not scan, so they are never cases themselves.
//!
//! Merging, file by file: a file's includes are merged first, in the order listed, then the
//! file itself. So lists (`[[steps]]`, `[[evidence.before]]`, `[[evidence.after]]`) hold the
//! included items first; named tables (`[guests.*]`, `[checks.*]`, `[arms.*]`, …) hold the
//! included names first, and a name defined in two files is an error; `name` and `summary` are
//! the including file's when both give one.
//!
//! Architecture invariant: every error names the file that holds the offending value: a
//! missing included file or an include cycle is one error at the `include` value that names
//! it; TOML and shape errors are at their place in the included file.

use std::path::{Path, PathBuf};

use super::raw::RawShelf;
use super::raw::{
    Named, RawArm, RawCase, RawCheck, RawDisk, RawEvidence, RawFault, RawFile, RawGuest, RawMeasure,
    RawSegment, RawStep, RawSweep, Str, S,
};
use super::source::{self, Sources};
use crate::span::PosError;

/// Everything gathered from a case file and its includes, before the required keys are known
/// to be there.
#[derive(Default)]
struct Merged {
    name: Option<Str>,
    summary: Option<Str>,
    healthy_arm: Option<Str>,
    guests: Option<Named<RawGuest>>,
    segments: Option<Named<RawSegment>>,
    disks: Named<RawDisk>,
    shelves: Named<RawShelf>,
    steps: Vec<RawStep>,
    faults: Named<RawFault>,
    evidence: RawEvidence,
    checks: Option<Named<RawCheck>>,
    measures: Named<RawMeasure>,
    arms: Option<Named<RawArm>>,
    sweep: Option<S<RawSweep>>,
}

/// Read the case whose file `path` holds `text`, with every file it includes.
pub(super) fn read(path: &Path, text: &str) -> Result<(Sources, RawCase), PosError> {
    let mut sources = Sources::default();
    let mut m = Merged::default();
    let mut stack = Vec::new();
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    merge_file(
        path,
        canonical,
        text.to_string(),
        &mut sources,
        &mut m,
        &mut stack,
    )?;
    // Fields are evaluated in order: the first missing key is the one serde would report for
    // one file (the order of `RawFile`'s fields).
    let missing = |key: &str| sources.error(0, format!("missing field `{key}`"));
    let raw = RawCase {
        name: m.name.ok_or_else(|| missing("name"))?,
        summary: m.summary.ok_or_else(|| missing("summary"))?,
        healthy_arm: m.healthy_arm,
        guests: m.guests.ok_or_else(|| missing("guests"))?,
        segments: m.segments,
        disks: m.disks,
        shelves: m.shelves,
        steps: m.steps,
        faults: m.faults,
        evidence: m.evidence,
        checks: m.checks.ok_or_else(|| missing("checks"))?,
        measures: m.measures,
        arms: m.arms.ok_or_else(|| missing("arms"))?,
        sweep: m.sweep,
    };
    Ok((sources, raw))
}

/// Merge the file at `path` (canonically `canonical`), holding `text`, into `m`: its includes
/// first. `stack` holds the files being merged, for cycles.
fn merge_file(
    path: &Path,
    canonical: PathBuf,
    text: String,
    sources: &mut Sources,
    m: &mut Merged,
    stack: &mut Vec<PathBuf>,
) -> Result<(), PosError> {
    let base = sources.add(path, text);
    let file = sources.files().last().expect("just added");
    let raw: RawFile =
        source::parse(&file.text, base).map_err(|e| PosError::from_toml(path, &file.text, &e))?;

    stack.push(canonical);
    for inc in &raw.include {
        let at = |message: String| sources.error(inc.span().start, message);
        let inc_path = path.parent().unwrap_or(Path::new(".")).join(inc.get_ref());
        let read = inc_path
            .canonicalize()
            .and_then(|c| std::fs::read_to_string(&inc_path).map(|t| (c, t)));
        let (inc_canonical, inc_text) = read.map_err(|e| {
            at(format!(
                "cannot read included case file {}: {e}",
                inc_path.display()
            ))
        })?;
        if stack.contains(&inc_canonical) {
            return Err(at(format!(
                "include cycle: {} includes itself",
                inc_path.display()
            )));
        }
        merge_file(&inc_path, inc_canonical, inc_text, sources, m, stack)?;
    }
    stack.pop();

    if raw.name.is_some() {
        m.name = raw.name;
    }
    if raw.summary.is_some() {
        m.summary = raw.summary;
    }
    if raw.healthy_arm.is_some() {
        m.healthy_arm = raw.healthy_arm;
    }
    if raw.sweep.is_some() {
        m.sweep = raw.sweep;
    }
    join_some(sources, &mut m.guests, raw.guests, "guest")?;
    join_some(sources, &mut m.segments, raw.segments, "segment")?;
    join(sources, &mut m.disks, raw.disks, "disk")?;
    join(sources, &mut m.shelves, raw.shelves, "shelf")?;
    m.steps.extend(raw.steps);
    join(sources, &mut m.faults, raw.faults, "fault")?;
    m.evidence.before.extend(raw.evidence.before);
    m.evidence.after.extend(raw.evidence.after);
    join_some(sources, &mut m.checks, raw.checks, "check")?;
    join(sources, &mut m.measures, raw.measures, "measure")?;
    join_some(sources, &mut m.arms, raw.arms, "arm")?;
    Ok(())
}

/// Add a file's named tables to those already merged; a name both define is an error at the
/// later one.
fn join<T>(sources: &Sources, into: &mut Named<T>, more: Named<T>, what: &str) -> Result<(), PosError> {
    for (name, value) in more.0 {
        if let Some((first, _)) = into.0.iter().find(|(n, _)| n.get_ref() == name.get_ref()) {
            let here = name.span().start;
            return Err(sources.error(
                here,
                format!(
                    "{what} `{}` is already defined on {}",
                    name.get_ref(),
                    sources.line_from(first.span().start, here)
                ),
            ));
        }
        into.0.push((name, value));
    }
    Ok(())
}

/// [`join`] for a table a case must have somewhere (given, even empty, once any file has it).
fn join_some<T>(
    sources: &Sources,
    into: &mut Option<Named<T>>,
    more: Option<Named<T>>,
    what: &str,
) -> Result<(), PosError> {
    match more {
        None => Ok(()),
        Some(more) => join(sources, into.get_or_insert_with(Named::default), more, what),
    }
}
