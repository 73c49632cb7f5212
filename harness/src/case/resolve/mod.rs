//! From the raw shape to a validated [`Case`], one section of the case file at a time: the lab
//! (guests, segments, disks), steps, faults, evidence, checks, measures, arms, the sweep. Each
//! section refers only to those before it.
//!
//! Every meaning error is collected with its offset; the one that comes first in the case's
//! files (`case::source`) is returned, so the error a user sees does not depend on the order
//! of the checks. Errors at the same offset keep the order they were found in, so `build`
//! calls the sections in a fixed order.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::raw::*;
use super::source::Sources;
use super::*;
use crate::span::PosError;

mod arms;
mod checks;
mod evidence;
mod faults;
mod guests;
mod matches;
mod measures;
mod population;
mod steps;
mod sweep;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// One guest process per connection: a thousand is already far past what a 1 GiB guest holds.
const MAX_CONNECTIONS: u32 = 1000;
const DEFAULT_EVIDENCE_TIMEOUT: Duration = Duration::from_secs(30);

struct Cx<'a> {
    /// The case file (whose stem the case's name must equal).
    path: &'a Path,
    sources: &'a Sources,
    errors: Vec<(usize, PosError)>,
}

impl Cx<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = self.sources.error(span.start, message);
        self.errors.push((span.start, e));
    }

    fn at<T>(&mut self, v: &S<T>, message: impl Into<String>) {
        self.err(v.span(), message)
    }

    /// "line 12" for where `first` is, said at `here` (with the file, when it is another).
    fn line(&self, first: usize, here: usize) -> String {
        self.sources.line_from(first, here)
    }

    /// A duration; `None` (error recorded) when malformed.
    fn duration(&mut self, s: &Str) -> Option<Duration> {
        match duration::parse(s.get_ref()) {
            Ok(d) => Some(d),
            Err(m) => {
                self.at(s, m);
                None
            }
        }
    }

    /// A duration that must be more than zero, or `default` when not given.
    fn positive(&mut self, s: Option<&Str>, default: Duration) -> Duration {
        let Some(s) = s else { return default };
        match self.duration(s) {
            Some(Duration::ZERO) => {
                self.at(
                    s,
                    format!("{:?} is zero: this duration must be more than 0", s.get_ref()),
                );
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    fn name(&mut self, s: &Str, what: &str) {
        if !is_name(s.get_ref()) {
            self.at(
                s,
                format!(
                    "{what} name {:?} must be lower-case letters, digits, '-' and '_', starting with a letter or digit",
                    s.get_ref()
                ),
            );
        }
    }

    fn absolute(&mut self, s: &Str, what: &str) {
        if !s.get_ref().starts_with('/') {
            self.at(s, format!("{what} {:?} must be an absolute path", s.get_ref()));
        }
    }

    /// Non-blank, one line.
    fn line_text(&mut self, s: &Str, what: &str) {
        if s.get_ref().trim().is_empty() {
            self.at(s, format!("{what} is empty"));
        } else if s.get_ref().contains(['\n', '\r']) {
            self.at(s, format!("{what} must be one line"));
        }
    }

    fn nonblank(&mut self, s: &Str, what: &str) {
        if s.get_ref().trim().is_empty() {
            self.at(s, format!("{what} is empty"));
        }
    }

    fn pattern(&mut self, s: &Str) -> Pattern {
        Pattern::new(s.get_ref()).unwrap_or_else(|m| {
            self.at(s, m);
            Pattern::new("?").expect("a valid pattern")
        })
    }

    /// Exactly one of some optional keys (given as their value spans), in file order.
    fn one_of(
        &mut self,
        owner: Range<usize>,
        what: &str,
        keys: &[(&'static str, Option<Range<usize>>)],
    ) -> Option<&'static str> {
        let mut given: Vec<(&'static str, Range<usize>)> = keys
            .iter()
            .filter_map(|(k, s)| s.clone().map(|s| (*k, s)))
            .collect();
        given.sort_by_key(|(_, s)| s.start);
        let list = keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
        match given.as_slice() {
            [] => {
                self.err(owner, format!("{what} needs one of {list}"));
                None
            }
            [(k, _)] => Some(k),
            [(a, _), (b, span), ..] => {
                self.err(
                    span.clone(),
                    format!("{what} takes one of {list}, not both `{a}` and `{b}`"),
                );
                None
            }
        }
    }
}

/// Names of one kind of thing, for references to them.
struct Names {
    what: &'static str,
    names: Vec<String>,
}

impl Names {
    fn new(what: &'static str, names: impl IntoIterator<Item = String>) -> Names {
        Names {
            what,
            names: names.into_iter().collect(),
        }
    }

    fn has(&self, n: &str) -> bool {
        self.names.iter().any(|x| x == n)
    }

    /// Record an error at `r` unless it names one of these.
    fn refer(&self, cx: &mut Cx, r: &Str) -> bool {
        if self.has(r.get_ref()) {
            return true;
        }
        let have = if self.names.is_empty() {
            "none".to_string()
        } else {
            self.names.join(", ")
        };
        cx.at(
            r,
            format!("unknown {} `{}` (this case has {have})", self.what, r.get_ref()),
        );
        false
    }
}

/// Where the top-level `key` is written (`key = …` or a `[key]` / `[key.…]` header) in the first
/// file that writes it, as a span for errors about the table as a whole; the end of the case
/// file if nowhere.
fn key_offset(sources: &Sources, key: &str) -> Range<usize> {
    for file in sources.files() {
        if let Some(at) = key_in(&file.text, key) {
            return file.base + at.start..file.base + at.end;
        }
    }
    let end = sources.files()[0].text.len();
    end..end
}

/// Where the top-level `key` is written in one file's text.
fn key_in(text: &str, key: &str) -> Option<Range<usize>> {
    let mut offset = 0;
    let mut in_root = true;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let start = offset + (line.len() - body.len());
        offset += line.len();
        let (rest, header) = match body.strip_prefix('[') {
            Some(r) => (r.trim_start(), true),
            None => (body, false),
        };
        in_root &= !header;
        let Some(after) = rest.strip_prefix(key) else {
            continue;
        };
        let next = after.trim_start().chars().next();
        let found = if header {
            matches!(next, Some(']' | '.'))
        } else {
            in_root && next == Some('=')
        };
        if found {
            return Some(start..start + key.len());
        }
    }
    None
}

fn is_name(s: &str) -> bool {
    s.len() <= 64
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Report a name listed twice in one list.
fn no_repeats(cx: &mut Cx, list: &[Str], what: &str) {
    for (i, s) in list.iter().enumerate() {
        if list[..i].iter().any(|p| p.get_ref() == s.get_ref()) {
            cx.at(s, format!("{what} `{}` is listed twice", s.get_ref()));
        }
    }
}

pub(super) fn resolve(sources: &Sources, raw: RawCase) -> Result<Case, PosError> {
    let path = &sources.files()[0].path;
    let mut cx = Cx {
        path,
        sources,
        errors: Vec::new(),
    };
    let case = build(&mut cx, raw);
    // `min_by_key` keeps the first of equal offsets: the order the checks ran in.
    match cx.errors.into_iter().min_by_key(|(offset, _)| *offset) {
        Some((_, e)) => Err(e),
        None => Ok(case),
    }
}

fn build(cx: &mut Cx, raw: RawCase) -> Case {
    name_and_summary(cx, &raw.name, &raw.summary);
    let lab = guests::build(cx, &raw.guests, raw.segments.as_ref(), &raw.disks, &raw.shelves);
    let shelves = lab.shelves.clone();
    let steps = steps::build(cx, &raw.steps, &lab.guest_names);
    let faults = faults::build(cx, &raw.faults, &lab, &steps);
    let (mut evidence, evidence_names) = evidence::build(cx, &raw.evidence, &lab.guest_names);
    let checks = checks::build(cx, &raw.checks, &lab, &steps, &evidence_names, &mut evidence);
    let measures = measures::build(cx, &raw.measures, &steps);
    let arms = arms::build(cx, &raw.arms, &lab, &steps, &faults, &checks);
    let healthy_arm = raw.healthy_arm.as_ref().map(|h| {
        match arms.iter().find(|a| a.name == *h.get_ref()) {
            None => cx.at(
                h,
                format!(
                    "unknown arm `{}` (this case has {})",
                    h.get_ref(),
                    arms.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ),
            Some(a) if !a.faults.is_empty() => cx.at(
                h,
                format!(
                    "the healthy arm is the normal range other arms are measured against: arm `{}` turns on faults ({})",
                    a.name,
                    a.faults.join(", ")
                ),
            ),
            Some(_) => {}
        }
        h.get_ref().clone()
    });
    let sweep = raw.sweep.as_ref().map(|s| sweep::build(cx, s, &steps, &arms));
    let guests::Lab {
        guests,
        segments,
        disks,
        ..
    } = lab;
    Case {
        name: raw.name.into_inner(),
        summary: raw.summary.into_inner(),
        file: cx.path.to_path_buf(),
        guests,
        segments,
        disks,
        shelves,
        steps: steps.list,
        faults: faults.list,
        evidence,
        checks: checks.list,
        measures,
        arms,
        healthy_arm,
        sweep,
    }
}

fn name_and_summary(cx: &mut Cx, name: &Str, summary: &Str) {
    cx.name(name, "case");
    let stem = cx
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if *name.get_ref() != stem {
        let file = cx
            .path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        cx.at(
            name,
            format!(
                "the case is named `{}` but its file is {file}: the name must be `{stem}`",
                name.get_ref()
            ),
        );
    }
    cx.line_text(summary, "summary");
}
