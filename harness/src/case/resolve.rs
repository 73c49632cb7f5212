//! From the raw shape to a validated [`Case`]. Every meaning error is collected with its byte
//! offset; the one that comes first in the file is returned, so the error a user sees does not
//! depend on the order of the checks below.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::raw::*;
use super::*;
use crate::span::{Pos, PosError};
use crate::wire::frame::{self, program};
use crate::wire::rules::{RpcKind, RpcMatch};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// One guest process per connection: a thousand is already far past what a 1 GiB guest holds.
const MAX_CONNECTIONS: u32 = 1000;
const DEFAULT_EVIDENCE_TIMEOUT: Duration = Duration::from_secs(30);

struct Cx<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<(usize, PosError)>,
}

impl Cx<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = PosError::new(self.path, self.text, span.start, message);
        self.errors.push((span.start, e));
    }

    fn at<T>(&mut self, v: &S<T>, message: impl Into<String>) {
        self.err(v.span(), message)
    }

    fn line(&self, offset: usize) -> usize {
        Pos::at(self.path, self.text, offset).line
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

/// Where the top-level `key` is written (`key = …` or a `[key]` / `[key.…]` header), as a span
/// for errors about the table as a whole; the end of the text if nowhere.
pub(super) fn key_offset(text: &str, key: &str) -> Range<usize> {
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
            return start..start + key.len();
        }
    }
    text.len()..text.len()
}

fn is_name(s: &str) -> bool {
    s.len() <= 64
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// What a capture path may hold: it is expanded by the guest's shell, unquoted, so that its
/// globs work, and so may carry nothing else the shell would act on.
fn glob_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._-+=,@%:~*?".contains(c)
}

fn is_unit_name(s: &str) -> bool {
    const KINDS: [&str; 5] = [".service", ".socket", ".timer", ".target", ".mount"];
    KINDS.iter().any(|k| s.len() > k.len() && s.ends_with(k))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@_.-:\\".contains(&b))
}

/// Report a name listed twice in one list.
fn no_repeats(cx: &mut Cx, list: &[Str], what: &str) {
    for (i, s) in list.iter().enumerate() {
        if list[..i].iter().any(|p| p.get_ref() == s.get_ref()) {
            cx.at(s, format!("{what} `{}` is listed twice", s.get_ref()));
        }
    }
}

pub(super) fn resolve(path: &Path, text: &str) -> Result<Case, PosError> {
    let raw: RawCase = toml::from_str(text).map_err(|e| PosError::from_toml(path, text, &e))?;
    let mut cx = Cx {
        path,
        text,
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
    // ---- name, summary
    cx.name(&raw.name, "case");
    let stem = cx
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if *raw.name.get_ref() != stem {
        let file = cx
            .path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        cx.at(
            &raw.name,
            format!(
                "the case is named `{}` but its file is {file}: the name must be `{stem}`",
                raw.name.get_ref()
            ),
        );
    }
    cx.line_text(&raw.summary, "summary");

    // ---- guests
    let mut guests = Vec::new();
    if raw.guests.0.is_empty() {
        cx.err(key_offset(cx.text, "guests"), "a case needs at least one guest");
    }
    for (name, g) in &raw.guests.0 {
        if !LAB_GUESTS.contains(&name.get_ref().as_str()) {
            cx.at(
                name,
                format!(
                    "`{}` is not a lab guest name: use one of {} (the names with an address in the images' /etc/hosts)",
                    name.get_ref(),
                    LAB_GUESTS.join(", ")
                ),
            );
        }
        cx.name(&g.image, "image");
        if let Some(r) = &g.role {
            cx.name(r, "role");
        }
        guests.push(Guest {
            name: name.get_ref().clone(),
            image: g.image.get_ref().clone(),
            role: g.role.as_ref().unwrap_or(&g.image).get_ref().clone(),
        });
    }
    let guest_names = Names::new("guest", guests.iter().map(|g| g.name.clone()));

    // ---- segments
    let mut segments = Vec::new();
    match &raw.segments {
        None => segments.push(Segment {
            name: "lan".into(),
            guests: guests.iter().map(|g| g.name.clone()).collect(),
        }),
        Some(raw_segments) => {
            if raw_segments.0.is_empty() {
                cx.err(
                    key_offset(cx.text, "segments"),
                    "`segments` needs at least one segment (or leave it out: one segment `lan` then holds every guest)",
                );
            }
            let mut on: BTreeMap<String, String> = BTreeMap::new();
            for (name, s) in &raw_segments.0 {
                cx.name(name, "segment");
                if s.guests.get_ref().is_empty() {
                    cx.at(
                        &s.guests,
                        format!("segment `{}` needs at least one guest", name.get_ref()),
                    );
                }
                let mut members = Vec::new();
                for g in s.guests.get_ref() {
                    if !guest_names.refer(cx, g) {
                        continue;
                    }
                    if let Some(other) = on.get(g.get_ref()) {
                        cx.at(
                            g,
                            format!(
                                "guest `{}` is already on segment `{other}`: a guest has one network port",
                                g.get_ref()
                            ),
                        );
                        continue;
                    }
                    on.insert(g.get_ref().clone(), name.get_ref().clone());
                    members.push(g.get_ref().clone());
                }
                segments.push(Segment {
                    name: name.get_ref().clone(),
                    guests: members,
                });
            }
            // An empty segment (or table) is the error to show, not its consequences.
            let some_empty = raw_segments.0.is_empty()
                || raw_segments.0.iter().any(|(_, s)| s.guests.get_ref().is_empty());
            for (name, _) in &raw.guests.0 {
                if !some_empty
                    && LAB_GUESTS.contains(&name.get_ref().as_str())
                    && !on.contains_key(name.get_ref())
                {
                    cx.at(name, format!("guest `{}` is on no segment", name.get_ref()));
                }
            }
        }
    }
    let segment_names = Names::new("segment", segments.iter().map(|s| s.name.clone()));

    // ---- disks
    let mut disks = Vec::new();
    for (name, d) in &raw.disks.0 {
        cx.name(name, "disk");
        if name.get_ref().len() > crate::disks::SERIAL_MAX {
            cx.at(
                name,
                format!(
                    "disk name `{}` is longer than {} characters: the guest sees it as the disk's serial, which holds no more",
                    name.get_ref(),
                    crate::disks::SERIAL_MAX
                ),
            );
        }
        guest_names.refer(cx, &d.guest);
        let size_bytes = match crate::recipe::parse_size(d.size.get_ref()) {
            Some(n) if n > 0 => n,
            _ => {
                cx.at(
                    &d.size,
                    format!(
                        "bad size {:?}: use a number with K, M or G, e.g. \"1G\"",
                        d.size.get_ref()
                    ),
                );
                0
            }
        };
        for f in &d.nbdkit_filters {
            cx.name(f, "nbdkit filter");
        }
        no_repeats(cx, &d.nbdkit_filters, "filter");
        disks.push(Disk {
            name: name.get_ref().clone(),
            guest: d.guest.get_ref().clone(),
            size_bytes,
            nbdkit_filters: d.nbdkit_filters.iter().map(|f| f.get_ref().clone()).collect(),
        });
    }
    let disk_names = Names::new("disk", disks.iter().map(|d| d.name.clone()));

    // ---- steps
    let mut steps = Vec::new();
    let mut step_at: BTreeMap<String, (usize, usize)> = BTreeMap::new(); // name → (index, offset)
    for (i, s) in raw.steps.iter().enumerate() {
        let step = build_step(cx, s, &guest_names);
        cx.name(&s.name, "step");
        if let Some((_, first)) = step_at.get(s.name.get_ref()) {
            let line = cx.line(*first);
            cx.at(
                &s.name,
                format!("step `{}` is already defined on line {line}", s.name.get_ref()),
            );
        } else {
            step_at.insert(s.name.get_ref().clone(), (i, s.name.span().start));
        }
        steps.push(step);
    }
    let step_names = Names::new("step", steps.iter().map(|s| s.name.clone()));
    let step_index = |n: &str| step_at.get(n).map(|(i, _)| *i);

    // ---- faults
    let members = |seg: &str| -> Option<Vec<String>> {
        segments.iter().find(|s| s.name == seg).map(|s| s.guests.clone())
    };
    let mut faults = Vec::new();
    for (name, f) in &raw.faults.0 {
        cx.name(name, "fault");
        let start = build_start(cx, &f.start, &guest_names, &step_names, &segment_names, &members);
        let end = build_end(cx, f.end.as_ref(), &step_names);
        // An end at a step must come after a start at a step.
        if let (Some(raw::RawEnd::Table(t)), Trigger::AfterStep { step: from }) =
            (f.end.as_ref().map(|e| e.get_ref()), &start)
        {
            if let Some(to) = t.until_step.as_ref().or(t.heal_step.as_ref()) {
                if let (Some(a), Some(b)) = (step_index(from), step_index(to.get_ref())) {
                    if b <= a {
                        cx.at(
                            to,
                            format!(
                                "fault `{}` starts after step `{from}` but ends at step `{}`, which does not come after it",
                                name.get_ref(),
                                to.get_ref()
                            ),
                        );
                    }
                }
            }
        }
        let kind = build_fault_kind(
            cx,
            name,
            f,
            &end,
            &guest_names,
            &segment_names,
            &disk_names,
            &disks,
            &members,
        );
        faults.push(Fault {
            name: name.get_ref().clone(),
            kind,
            start,
            end,
        });
    }
    let fault_names = Names::new("fault", faults.iter().map(|f| f.name.clone()));

    // ---- evidence
    let mut evidence = EvidencePlan::default();
    let mut evidence_at: BTreeMap<String, usize> = BTreeMap::new();
    for (list, out) in [
        (&raw.evidence.before, &mut evidence.before),
        (&raw.evidence.after, &mut evidence.after),
    ] {
        for e in list {
            cx.name(&e.name, "evidence");
            if let Some(first) = evidence_at.get(e.name.get_ref()) {
                let line = cx.line(*first);
                cx.at(
                    &e.name,
                    format!(
                        "evidence `{}` is already defined on line {line}",
                        e.name.get_ref()
                    ),
                );
            } else {
                evidence_at.insert(e.name.get_ref().clone(), e.name.span().start);
            }
            guest_names.refer(cx, &e.guest);
            let what = format!("evidence `{}`", e.name.get_ref());
            let source = match cx.one_of(
                e.name.span(),
                &what,
                &[
                    ("command", e.command.as_ref().map(|s| s.span())),
                    ("file", e.file.as_ref().map(|s| s.span())),
                ],
            ) {
                Some("file") => {
                    let file = e.file.as_ref().expect("given");
                    cx.absolute(file, "file");
                    if let Some(t) = &e.timeout {
                        cx.at(t, "`timeout` only goes with a `command`");
                    }
                    EvidenceSource::File {
                        path: file.get_ref().clone(),
                    }
                }
                Some(_) => {
                    let command = e.command.as_ref().expect("given");
                    cx.nonblank(command, "command");
                    EvidenceSource::Command {
                        command: command.get_ref().clone(),
                        timeout: cx.positive(e.timeout.as_ref(), DEFAULT_EVIDENCE_TIMEOUT),
                    }
                }
                None => EvidenceSource::File { path: String::new() },
            };
            out.push(EvidenceItem {
                name: e.name.get_ref().clone(),
                guest: e.guest.get_ref().clone(),
                source,
            });
        }
    }
    let evidence_names = Names::new("evidence", evidence_at.keys().cloned());

    // ---- checks
    let mut checks: Vec<Check> = Vec::new();
    if raw.checks.0.is_empty() {
        cx.err(
            key_offset(cx.text, "checks"),
            "a case needs at least one check: an arm with no checks can only be unknown",
        );
    }
    let all_checks = Names::new("check", raw.checks.0.iter().map(|(n, _)| n.get_ref().clone()));
    for (name, c) in &raw.checks.0 {
        cx.name(name, "check");
        for r in &c.requires {
            if checks.iter().any(|x| x.name == *r.get_ref()) {
                continue;
            }
            if all_checks.refer(cx, r) {
                cx.at(
                    r,
                    format!(
                        "check `{}` can only require checks declared before it, and `{}` is not",
                        name.get_ref(),
                        r.get_ref()
                    ),
                );
            }
        }
        no_repeats(cx, &c.requires, "check");
        let ctx = CheckCx {
            guests: &guest_names,
            steps: &step_names,
            segments: &segment_names,
            evidence: &evidence_names,
            step_list: &steps,
        };
        let (kind, inline) = build_check_kind(cx, name, c, &ctx, &members);
        if let Some(item) = inline {
            evidence.after.push(item);
        }
        let needs = match &kind {
            CheckKind::StepOk { step }
            | CheckKind::StepFailed { step }
            | CheckKind::StepOutput { step, .. }
            | CheckKind::DurationAtMost {
                step,
                since_end_of: None,
                ..
            } => vec![Need::Step { step: step.clone() }],
            CheckKind::DurationAtMost {
                step,
                since_end_of: Some(other),
                ..
            } => vec![
                Need::Step { step: step.clone() },
                Need::Step { step: other.clone() },
            ],
            CheckKind::Faster { step, than, .. } => vec![
                Need::Step { step: step.clone() },
                Need::Step { step: than.clone() },
            ],
            CheckKind::ExecOutput { evidence, .. } | CheckKind::LogAbsent { evidence, .. } => {
                vec![Need::Evidence {
                    evidence: evidence.clone(),
                }]
            }
            CheckKind::Frames { segment, during, .. } => std::iter::once(Need::Trace {
                segment: segment.clone(),
            })
            .chain(during.iter().map(|s| Need::Step { step: s.clone() }))
            .collect(),
        };
        checks.push(Check {
            name: name.get_ref().clone(),
            kind,
            requires: c.requires.iter().map(|r| r.get_ref().clone()).collect(),
            needs,
        });
    }

    // ---- measures
    let mut measures = Vec::new();
    for (name, m) in &raw.measures.0 {
        cx.name(name, "measure");
        cx.line_text(&m.what, "what");
        if let Some(u) = &m.unit {
            cx.line_text(u, "unit");
        }
        let what = format!("measure `{}`", name.get_ref());
        let source = match cx.one_of(
            name.span(),
            &what,
            &[
                ("step_output", m.step_output.as_ref().map(|s| s.span())),
                ("duration", m.duration.as_ref().map(|s| s.span())),
            ],
        ) {
            Some("step_output") => {
                let s = m.step_output.as_ref().expect("given");
                if step_names.refer(cx, s)
                    && matches!(
                        steps.iter().find(|x| x.name == *s.get_ref()).map(|x| &x.kind),
                        Some(StepKind::Wait { .. })
                    )
                {
                    cx.at(s, format!("step `{}` is a wait: it has no output", s.get_ref()));
                }
                MeasureSource::StepOutput {
                    step: s.get_ref().clone(),
                }
            }
            Some(_) => {
                let s = m.duration.as_ref().expect("given");
                step_names.refer(cx, s);
                MeasureSource::Duration {
                    step: s.get_ref().clone(),
                }
            }
            None => MeasureSource::Duration { step: String::new() },
        };
        measures.push(Measure {
            name: name.get_ref().clone(),
            what: m.what.get_ref().clone(),
            source,
            unit: m.unit.as_ref().map(|u| u.get_ref().clone()),
        });
    }

    // ---- arms
    let mut arms = Vec::new();
    if raw.arms.0.is_empty() {
        cx.err(key_offset(cx.text, "arms"), "a case needs at least one arm");
    }
    for (name, a) in &raw.arms.0 {
        cx.name(name, "arm");
        for f in &a.faults {
            fault_names.refer(cx, f);
        }
        no_repeats(cx, &a.faults, "fault");
        let expect = match (a.expect.get_ref().as_str(), &a.failing_checks) {
            ("fail", None) => {
                cx.at(
                    &a.expect,
                    format!(
                        "arm `{}` expects \"fail\" but names no failing_checks: say which checks must fail",
                        name.get_ref()
                    ),
                );
                ArmExpectation::Fail {
                    failing_checks: Vec::new(),
                }
            }
            ("fail", Some(list)) => {
                if list.get_ref().is_empty() {
                    cx.at(list, "failing_checks must name at least one check");
                }
                for c in list.get_ref() {
                    if !all_checks.refer(cx, c) {
                        continue;
                    }
                    // A check whose premise fails is judged unknown, never fail.
                    let requires = checks
                        .iter()
                        .find(|k| k.name == *c.get_ref())
                        .map(|k| &k.requires);
                    if let Some(premise) = requires
                        .into_iter()
                        .flatten()
                        .find(|r| list.get_ref().iter().any(|x| x.get_ref() == *r))
                    {
                        cx.at(
                            c,
                            format!(
                                "check `{}` requires `{premise}`, which this arm expects to fail: it could only be unknown",
                                c.get_ref()
                            ),
                        );
                    }
                }
                no_repeats(cx, list.get_ref(), "check");
                ArmExpectation::Fail {
                    failing_checks: list.get_ref().iter().map(|c| c.get_ref().clone()).collect(),
                }
            }
            (other, list) => {
                if let Some(list) = list {
                    cx.at(list, "failing_checks only goes with expect = \"fail\"");
                }
                match other {
                    "pass" => ArmExpectation::Pass,
                    "unknown" => ArmExpectation::Unknown,
                    "error" => {
                        cx.at(
                            &a.expect,
                            "an arm cannot expect \"error\": use \"pass\", \"fail\" or \"unknown\"",
                        );
                        ArmExpectation::Unknown
                    }
                    _ => {
                        cx.at(
                            &a.expect,
                            format!("expect must be \"pass\", \"fail\" or \"unknown\", not {other:?}"),
                        );
                        ArmExpectation::Unknown
                    }
                }
            }
        };
        for s in &a.setup.skip_steps {
            if !step_names.refer(cx, s) {
                continue;
            }
            let skipped = s.get_ref();
            if let Some(c) = checks.iter().find(|c| {
                c.needs
                    .iter()
                    .any(|n| matches!(n, Need::Step { step } if step == skipped))
            }) {
                cx.at(
                    s,
                    format!(
                        "arm `{}` skips step `{skipped}`, which check `{}` is judged on: the check could only be unknown",
                        name.get_ref(),
                        c.name
                    ),
                );
                continue;
            }
            let on_step = |f: &Fault| {
                matches!(&f.start, Trigger::AfterStep { step } if step == skipped)
                    || matches!(&f.end, End::UntilStep { step } | End::HealStep { step } if step == skipped)
            };
            if let Some(f) = a
                .faults
                .iter()
                .filter_map(|n| faults.iter().find(|f| f.name == *n.get_ref()))
                .find(|f| on_step(f))
            {
                cx.at(
                    s,
                    format!(
                        "arm `{}` skips step `{skipped}`, which its fault `{}` starts or ends at",
                        name.get_ref(),
                        f.name
                    ),
                );
            }
        }
        no_repeats(cx, &a.setup.skip_steps, "step");
        let failing: Vec<&str> = match &expect {
            ArmExpectation::Fail { failing_checks } => failing_checks.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        for (list, what) in [(&a.skip_checks, "skips"), (&a.report_only, "only reports")] {
            for c in list {
                if !all_checks.refer(cx, c) {
                    continue;
                }
                if failing.contains(&c.get_ref().as_str()) {
                    cx.at(
                        c,
                        format!(
                            "arm `{}` {what} check `{}`, which it also expects to fail",
                            name.get_ref(),
                            c.get_ref()
                        ),
                    );
                }
            }
            no_repeats(cx, list, "check");
        }
        for c in &a.skip_checks {
            let skipped = c.get_ref();
            if let Some(user) = checks.iter().find(|k| {
                k.requires.contains(skipped) && !a.skip_checks.iter().any(|s| s.get_ref() == &k.name)
            }) {
                cx.at(
                    c,
                    format!(
                        "arm `{}` skips check `{skipped}`, which check `{}` requires: skip both or neither",
                        name.get_ref(),
                        user.name
                    ),
                );
            }
            if a.report_only.iter().any(|r| r.get_ref() == skipped) {
                cx.at(c, format!("check `{skipped}` is both skipped and report-only"));
            }
        }
        for (text, what) in [(&a.finding, "a finding"), (&a.story, "a story")] {
            if let Some(f) = text {
                if f.get_ref().trim().is_empty() {
                    cx.at(f, format!("{what} is a sentence, not empty"));
                }
            }
        }
        let mut sessions = BTreeMap::new();
        for (step_name, end) in &a.setup.sessions.0 {
            if !step_names.refer(cx, step_name) {
                continue;
            }
            let Some(step) = steps.iter().find(|s| s.name == *step_name.get_ref()) else {
                continue;
            };
            let (StepKind::Imap(base) | StepKind::Pop3(base)) = &step.kind else {
                cx.at(
                    step_name,
                    format!("step `{}` is not an imap or pop3 session", step_name.get_ref()),
                );
                continue;
            };
            let bye = if matches!(step.kind, StepKind::Imap(_)) {
                "LOGOUT"
            } else {
                "QUIT"
            };
            let (close, stop, hold) = session_end(
                cx,
                &end.get_ref().end(),
                bye,
                !base.commands.is_empty(),
                step_name,
                &guest_names,
            );
            if step.background && matches!(stop, Some(SessionStop::OnLog { .. })) {
                cx.at(
                    step_name,
                    "a session stopped by a log line runs in the foreground",
                );
            }
            sessions.insert(step_name.get_ref().clone(), SessionEnd { close, stop, hold });
        }
        let mut images = BTreeMap::new();
        for (g, image) in &a.setup.images.0 {
            guest_names.refer(cx, g);
            cx.name(image, "image");
            images.insert(g.get_ref().clone(), image.get_ref().clone());
        }
        arms.push(Arm {
            name: name.get_ref().clone(),
            faults: a.faults.iter().map(|f| f.get_ref().clone()).collect(),
            expect,
            skip_checks: a.skip_checks.iter().map(|c| c.get_ref().clone()).collect(),
            report_only: a.report_only.iter().map(|c| c.get_ref().clone()).collect(),
            finding: a.finding.as_ref().map(|f| one_line(f.get_ref())),
            story: a.story.as_ref().map(|f| one_line(f.get_ref())),
            setup: Setup {
                skip_steps: a.setup.skip_steps.iter().map(|s| s.get_ref().clone()).collect(),
                images,
                sessions,
            },
        });
    }

    Case {
        name: raw.name.into_inner(),
        summary: raw.summary.into_inner(),
        file: cx.path.to_path_buf(),
        guests,
        segments,
        disks,
        steps,
        faults,
        evidence,
        checks,
        measures,
        arms,
    }
}

// ---- steps ---------------------------------------------------------------------------------

fn build_step(cx: &mut Cx, s: &RawStep, guests: &Names) -> Step {
    let what = format!("step `{}`", s.name.get_ref());
    let kind_name = cx.one_of(
        s.name.span(),
        &what,
        &[
            ("exec", s.exec.as_ref().map(|v| v.span())),
            ("lock_probe", s.lock_probe.as_ref().map(|v| v.span())),
            ("imap", s.imap.as_ref().map(|v| v.span())),
            ("pop3", s.pop3.as_ref().map(|v| v.span())),
            ("wait", s.wait.as_ref().map(|v| v.span())),
            ("wait_for_log", s.wait_for_log.as_ref().map(|v| v.span())),
            ("capture", s.capture.as_ref().map(|v| v.span())),
        ],
    );
    // Steps whose point in the workload is their whole meaning: the next starts after them.
    let waits = matches!(kind_name, Some("wait" | "wait_for_log" | "capture"));
    match (&s.guest, kind_name) {
        (Some(g), Some("wait")) => cx.at(g, "a wait step runs in no guest: leave out `guest`"),
        (Some(g), _) => {
            guests.refer(cx, g);
        }
        (None, Some("wait") | None) => {}
        (None, Some(k)) => cx.at(&s.name, format!("{what} needs a `guest` to run its {k} in")),
    }
    if let (Some(b), true) = (&s.background, waits) {
        if *b.get_ref() {
            cx.at(
                b,
                format!(
                    "a {} step cannot run in the background",
                    kind_name.unwrap_or("wait")
                ),
            );
        }
    }
    let guest = s.guest.as_ref().map(|g| g.get_ref().clone());
    let kind = match kind_name {
        Some("exec") => {
            let e = s.exec.as_ref().expect("given").get_ref();
            cx.nonblank(&e.command, "command");
            let expect_exit = match &e.expect_exit {
                None => 0,
                Some(x) => u8::try_from(*x.get_ref()).unwrap_or_else(|_| {
                    cx.at(x, "expect_exit must be 0 to 255");
                    0
                }),
            };
            StepKind::Exec {
                command: e.command.get_ref().clone(),
                timeout: cx.positive(e.timeout.as_ref(), DEFAULT_TIMEOUT),
                expect_exit,
            }
        }
        Some("lock_probe") => {
            let l = s.lock_probe.as_ref().expect("given").get_ref();
            cx.absolute(&l.path, "path");
            let mode = match l.mode.get_ref().as_str() {
                "hold" => LockMode::Hold,
                "wait" => LockMode::Wait,
                _ => {
                    cx.at(
                        &l.mode,
                        format!("mode must be \"hold\" or \"wait\", not {:?}", l.mode.get_ref()),
                    );
                    LockMode::Hold
                }
            };
            let seconds = match u32::try_from(*l.seconds.get_ref()) {
                Ok(n @ 1..=3600) => n,
                _ => {
                    cx.at(&l.seconds, "seconds must be 1 to 3600");
                    1
                }
            };
            StepKind::LockProbe {
                path: l.path.get_ref().clone(),
                mode,
                seconds,
            }
        }
        Some(k @ ("imap" | "pop3")) => {
            let (raw, imap) = if k == "imap" {
                (s.imap.as_ref().expect("given").get_ref(), true)
            } else {
                (s.pop3.as_ref().expect("given").get_ref(), false)
            };
            let session = build_session(cx, raw, imap, guest.as_deref(), guests);
            if imap {
                StepKind::Imap(session)
            } else {
                StepKind::Pop3(session)
            }
        }
        Some("wait") => {
            let w = s.wait.as_ref().expect("given").get_ref();
            StepKind::Wait {
                duration: cx.positive(Some(&w.duration), Duration::from_secs(1)),
            }
        }
        Some("capture") => {
            let c = s.capture.as_ref().expect("given");
            let files = c.get_ref().files.as_ref();
            if c.get_ref().command.is_none() && files.is_none_or(|f| f.get_ref().is_empty()) {
                cx.at(c, "a capture step needs a `command`, some `files`, or both");
            }
            if let Some(cmd) = &c.get_ref().command {
                cx.nonblank(cmd, "command");
            }
            for f in files.map(|f| f.get_ref().as_slice()).unwrap_or_default() {
                cx.absolute(f, "file");
                if let Some(bad) = f.get_ref().chars().find(|ch| !glob_path_char(*ch)) {
                    cx.at(
                        f,
                        format!(
                            "{:?} has {bad:?}: capture paths are letters, digits, / . _ - + = , @ % : ~ and the globs * ?",
                            f.get_ref()
                        ),
                    );
                }
            }
            if let Some(f) = files {
                no_repeats(cx, f.get_ref(), "file");
            }
            StepKind::Capture {
                command: c.get_ref().command.as_ref().map(|c| c.get_ref().clone()),
                files: files
                    .map(|f| f.get_ref().iter().map(|x| x.get_ref().clone()).collect())
                    .unwrap_or_default(),
                timeout: cx.positive(c.get_ref().timeout.as_ref(), DEFAULT_EVIDENCE_TIMEOUT),
            }
        }
        Some(_) => {
            let w = s.wait_for_log.as_ref().expect("given").get_ref();
            cx.absolute(&w.file, "file");
            StepKind::WaitForLog {
                file: w.file.get_ref().clone(),
                pattern: cx.pattern(&w.pattern),
                timeout: cx.positive(w.timeout.as_ref(), DEFAULT_TIMEOUT),
            }
        }
        None => StepKind::Wait {
            duration: Duration::ZERO,
        },
    };
    let background = s.background.as_ref().is_some_and(|b| *b.get_ref());
    if let (true, StepKind::Imap(sess) | StepKind::Pop3(sess)) = (background, &kind) {
        if matches!(sess.stop, Some(SessionStop::OnLog { .. })) {
            cx.at(
                s.background.as_ref().expect("given"),
                "a session stopped by a log line runs in the foreground: leave out background",
            );
        }
    }
    Step {
        name: s.name.get_ref().clone(),
        guest,
        background,
        kind,
    }
}

fn build_session(cx: &mut Cx, s: &RawSession, imap: bool, guest: Option<&str>, guests: &Names) -> Session {
    let (protocol, default_port, own, bye): (&str, u16, &[&str], &str) = if imap {
        ("IMAP", 143, &["LOGIN", "LOGOUT", "AUTHENTICATE"], "LOGOUT")
    } else {
        ("POP3", 110, &["USER", "PASS", "APOP", "QUIT"], "QUIT")
    };
    if let Some(server) = &s.server {
        guests.refer(cx, server);
    }
    let port = match &s.port {
        None => default_port,
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(n) if n > 0 => n,
            _ => {
                cx.at(p, "a port is 1 to 65535");
                default_port
            }
        },
    };
    cx.nonblank(&s.user, "user");
    for c in &s.commands {
        cx.line_text(c, &format!("an {protocol} command"));
        let verb = c
            .get_ref()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if own.contains(&verb.as_str()) {
            cx.at(
                c,
                format!(
                    "the session logs in and out by itself: leave out {verb} (close = \"fin\" ends it without {bye})"
                ),
            );
        }
    }
    let (close, stop, hold) = session_end(cx, &s.end(), bye, !s.commands.is_empty(), &s.user, guests);
    Session {
        server: s
            .server
            .as_ref()
            .map(|v| v.get_ref().as_str())
            .or(guest)
            .unwrap_or_default()
            .to_string(),
        port,
        user: s.user.get_ref().clone(),
        password: s.password.get_ref().clone(),
        commands: s.commands.iter().map(|c| c.get_ref().clone()).collect(),
        close,
        stop,
        hold,
        timeout: cx.positive(s.timeout.as_ref(), DEFAULT_TIMEOUT),
        connections: match &s.connections {
            None => 1,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => n,
                _ => {
                    cx.at(n, format!("connections is 1 to {MAX_CONNECTIONS}"));
                    1
                }
            },
        },
    }
}

/// How a session ends: its close mode, stop and hold, validated. `at` is where to point an
/// error about the session as a whole.
fn session_end(
    cx: &mut Cx,
    e: &RawEndRef<'_>,
    bye: &str,
    has_commands: bool,
    at: &Str,
    guests: &Names,
) -> (CloseMode, Option<SessionStop>, Option<Duration>) {
    let stops = [
        ("stop_after_lines", e.stop_after_lines.map(|v| v.span())),
        ("stop_after", e.stop_after.map(|v| v.span())),
        ("stop_on_log", e.stop_on_log.map(|v| v.span())),
    ];
    let given: Vec<_> = stops.iter().filter(|(_, sp)| sp.is_some()).collect();
    let stop = match given.as_slice() {
        [] => None,
        [(k, _)] => Some(match *k {
            "stop_after_lines" => {
                let v = e.stop_after_lines.expect("given");
                SessionStop::AfterLines(
                    u32::try_from(*v.get_ref())
                        .ok()
                        .filter(|n| *n > 0)
                        .unwrap_or_else(|| {
                            cx.at(v, "stop_after_lines is a number of lines, at least 1");
                            1
                        }),
                )
            }
            "stop_after" => SessionStop::After(cx.positive(e.stop_after, Duration::from_secs(1))),
            _ => {
                let l = e.stop_on_log.expect("given").get_ref();
                guests.refer(cx, &l.guest);
                cx.absolute(&l.file, "file");
                SessionStop::OnLog {
                    guest: l.guest.get_ref().clone(),
                    file: l.file.get_ref().clone(),
                    pattern: cx.pattern(&l.pattern),
                }
            }
        }),
        [_, (k, Some(sp)), ..] => {
            cx.err(
                sp.clone(),
                format!("a session stops one way: `{k}` and another stop key are both given"),
            );
            None
        }
        _ => None,
    };
    let close = match e.close.map(|c| c.get_ref().as_str()) {
        None if stop.is_some() => CloseMode::Fin,
        None | Some("quit") => CloseMode::Quit,
        Some("fin") => CloseMode::Fin,
        Some("rst") => CloseMode::Rst,
        Some("silent") => CloseMode::Silent,
        Some(other) => {
            cx.at(
                e.close.expect("given"),
                format!("close must be \"quit\", \"fin\", \"rst\" or \"silent\", not {other:?}"),
            );
            CloseMode::Quit
        }
    };
    if stop.is_some() {
        if close == CloseMode::Quit {
            cx.at(
                e.close.expect("quit is only explicit here"),
                format!("a stopped session cannot end with {bye}: close with \"fin\", \"rst\" or \"silent\""),
            );
        }
        if !has_commands {
            cx.at(at, "a session with a stop key needs a command to stop in");
        }
    }
    let hold = e.hold.map(|h| cx.positive(Some(h), Duration::from_secs(1)));
    (close, stop, hold)
}

// ---- faults --------------------------------------------------------------------------------

fn build_start(
    cx: &mut Cx,
    start: &S<RawStart>,
    guests: &Names,
    steps: &Names,
    segments: &Names,
    members: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Trigger {
    let t = start.get_ref();
    let which = cx.one_of(
        start.span(),
        "`start`",
        &[
            ("at", t.at.as_ref().map(|v| v.span())),
            ("after_step", t.after_step.as_ref().map(|v| v.span())),
            ("on_log", t.on_log.as_ref().map(|v| v.span())),
            ("on_frame", t.on_frame.as_ref().map(|v| v.span())),
        ],
    );
    match which {
        Some("at") => Trigger::At {
            offset: cx.duration(t.at.as_ref().expect("given")).unwrap_or_default(),
        },
        Some("after_step") => {
            let s = t.after_step.as_ref().expect("given");
            steps.refer(cx, s);
            Trigger::AfterStep {
                step: s.get_ref().clone(),
            }
        }
        Some("on_log") => {
            let l = t.on_log.as_ref().expect("given").get_ref();
            guests.refer(cx, &l.guest);
            cx.absolute(&l.file, "file");
            Trigger::OnLog {
                guest: l.guest.get_ref().clone(),
                file: l.file.get_ref().clone(),
                pattern: cx.pattern(&l.pattern),
            }
        }
        Some(_) => {
            let f = t.on_frame.as_ref().expect("given").get_ref();
            let on = segments
                .refer(cx, &f.segment)
                .then(|| members(f.segment.get_ref()))
                .flatten();
            Trigger::OnFrame {
                segment: f.segment.get_ref().clone(),
                matcher: frame_match(cx, &f.matcher(), guests, &f.segment, on.as_deref()),
            }
        }
        None => Trigger::At {
            offset: Duration::ZERO,
        },
    }
}

fn build_end(cx: &mut Cx, end: Option<&S<RawEnd>>, steps: &Names) -> End {
    let Some(end) = end else { return End::Never };
    let RawEnd::Table(t) = end.get_ref() else {
        return End::Never;
    };
    let which = cx.one_of(
        end.span(),
        "`end`",
        &[
            ("duration", t.duration.as_ref().map(|v| v.span())),
            ("until_step", t.until_step.as_ref().map(|v| v.span())),
            ("heal_step", t.heal_step.as_ref().map(|v| v.span())),
        ],
    );
    match which {
        Some("duration") => End::Duration {
            duration: cx.positive(t.duration.as_ref(), Duration::from_secs(1)),
        },
        Some(k) => {
            let s = if k == "until_step" {
                t.until_step.as_ref()
            } else {
                t.heal_step.as_ref()
            }
            .expect("given");
            steps.refer(cx, s);
            let step = s.get_ref().clone();
            if k == "until_step" {
                End::UntilStep { step }
            } else {
                End::HealStep { step }
            }
        }
        None => End::Never,
    }
}

#[allow(clippy::too_many_arguments)]
fn build_fault_kind(
    cx: &mut Cx,
    name: &Str,
    f: &RawFault,
    end: &End,
    guests: &Names,
    segments: &Names,
    disk_names: &Names,
    disks: &[Disk],
    members: &dyn Fn(&str) -> Option<Vec<String>>,
) -> FaultKind {
    let what = format!("fault `{}`", name.get_ref());
    let which = cx.one_of(
        name.span(),
        &what,
        &[
            ("wire", f.wire.as_ref().map(|v| v.span())),
            ("guest_nft", f.guest_nft.as_ref().map(|v| v.span())),
            ("guest_exec", f.guest_exec.as_ref().map(|v| v.span())),
            ("service", f.service.as_ref().map(|v| v.span())),
            ("disk_error", f.disk_error.as_ref().map(|v| v.span())),
        ],
    );
    // The span of the `end` value (for errors about the end as a whole) and of a heal_step.
    let end_span = f.end.as_ref().map(|e| e.span());
    let heal_step = match f.end.as_ref().map(|e| e.get_ref()) {
        Some(RawEnd::Table(t)) => t.heal_step.as_ref(),
        _ => None,
    };
    let harness_heals = |cx: &mut Cx, kind: &str| {
        if let Some(h) = heal_step {
            cx.at(
                h,
                format!("a {kind} fault is removed by the harness, not by a step: use until_step"),
            );
        }
    };
    match which {
        Some("wire") => {
            harness_heals(cx, "wire");
            let w = f.wire.as_ref().expect("given").get_ref();
            let on = segments
                .refer(cx, &w.segment)
                .then(|| members(w.segment.get_ref()))
                .flatten();
            let matcher = frame_match(cx, &w.matcher(), guests, &w.segment, on.as_deref());
            let action = wire_action(cx, w, guests, on.as_deref());
            FaultKind::Wire {
                segment: w.segment.get_ref().clone(),
                matcher,
                action,
            }
        }
        Some("guest_nft") => {
            let n = f.guest_nft.as_ref().expect("given").get_ref();
            guests.refer(cx, &n.guest);
            let tables = nft_tables(n.ruleset.get_ref());
            if tables.is_empty() {
                cx.at(
                    &n.ruleset,
                    "the ruleset declares no table: write `table inet NAME { ... }`, so that the harness can delete it to heal the fault",
                );
            }
            FaultKind::GuestNft {
                guest: n.guest.get_ref().clone(),
                ruleset: n.ruleset.get_ref().clone(),
                tables,
            }
        }
        Some("guest_exec") => {
            let g = f.guest_exec.as_ref().expect("given").get_ref();
            guests.refer(cx, &g.guest);
            cx.nonblank(&g.command, "command");
            let harness_ends = matches!(end, End::Duration { .. } | End::UntilStep { .. });
            match (&g.heal, harness_ends) {
                (Some(h), true) => cx.nonblank(h, "heal"),
                (Some(h), false) => cx.at(
                    h,
                    "`heal` runs only when the harness ends the fault (end.duration or end.until_step)",
                ),
                (None, true) => cx.err(
                    end_span.clone().unwrap_or_else(|| name.span()),
                    format!("{what} is ended by the harness, so its guest_exec needs a `heal` command"),
                ),
                (None, false) => {}
            }
            FaultKind::GuestExec {
                guest: g.guest.get_ref().clone(),
                command: g.command.get_ref().clone(),
                heal: g.heal.as_ref().map(|h| h.get_ref().clone()),
                timeout: cx.positive(g.timeout.as_ref(), DEFAULT_TIMEOUT),
            }
        }
        Some("service") => {
            let s = f.service.as_ref().expect("given").get_ref();
            guests.refer(cx, &s.guest);
            let action = match s.action.get_ref().as_str() {
                "stop" => ServiceAction::Stop,
                "kill" => ServiceAction::Kill,
                "restart" => ServiceAction::Restart,
                "reboot" => ServiceAction::Reboot,
                other => {
                    cx.at(
                        &s.action,
                        format!(
                            "action must be \"stop\", \"kill\", \"restart\" or \"reboot\", not {other:?}"
                        ),
                    );
                    ServiceAction::Stop
                }
            };
            match (&s.unit, action) {
                (Some(u), ServiceAction::Reboot) => {
                    cx.at(u, "a reboot takes no unit: it restarts the whole guest")
                }
                (None, ServiceAction::Reboot) => {}
                (None, _) => cx.at(
                    &s.action,
                    format!("a {} needs the `unit` to act on", s.action.get_ref()),
                ),
                (Some(u), _) => {
                    if !is_unit_name(u.get_ref()) {
                        cx.at(
                            u,
                            format!(
                                "{:?} is not a systemd unit name (e.g. nfs-server.service)",
                                u.get_ref()
                            ),
                        );
                    }
                }
            }
            if action.instant() && *end != End::Never {
                if let Some(span) = end_span.clone() {
                    cx.err(
                        span,
                        format!("a {} is over at once: it takes no `end`", s.action.get_ref()),
                    );
                }
            }
            FaultKind::Service {
                guest: s.guest.get_ref().clone(),
                unit: s.unit.as_ref().map(|u| u.get_ref().clone()),
                action,
            }
        }
        Some(_) => {
            harness_heals(cx, "disk_error");
            let d = f.disk_error.as_ref().expect("given").get_ref();
            if disk_names.refer(cx, &d.disk) {
                let disk = disks
                    .iter()
                    .find(|x| x.name == *d.disk.get_ref())
                    .expect("known disk");
                if !disk.nbdkit_filters.iter().any(|f| f == "error") {
                    cx.at(
                        &d.disk,
                        format!(
                            "disk `{}` has no `error` filter: add \"error\" to its nbdkit_filters",
                            d.disk.get_ref()
                        ),
                    );
                }
            }
            FaultKind::DiskError {
                disk: d.disk.get_ref().clone(),
            }
        }
        None => FaultKind::DiskError { disk: String::new() },
    }
}

/// `"FAMILY NAME"` of every `table FAMILY NAME` line of an nft ruleset.
fn nft_tables(ruleset: &str) -> Vec<String> {
    const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];
    let mut out = Vec::new();
    for line in ruleset.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("table") {
            continue;
        }
        let (Some(family), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let name = name.trim_end_matches('{');
        if FAMILIES.contains(&family) && !name.is_empty() {
            let t = format!("{family} {name}");
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

fn wire_action(cx: &mut Cx, w: &RawWire, guests: &Names, on: Option<&[String]>) -> WireAction {
    let action = w.action.get_ref().as_str();
    let only = |cx: &mut Cx, v: &Option<Str>, key: &str, with: &str| {
        if let Some(v) = v {
            cx.at(v, format!("`{key}` only goes with action = \"{with}\""));
        }
    };
    if action != "delay" {
        only(cx, &w.delay, "delay", "delay");
        only(cx, &w.jitter, "jitter", "delay");
    }
    if action != "partition" {
        if let Some(g) = &w.groups {
            cx.at(g, "`groups` only goes with action = \"partition\"");
        }
    }
    match action {
        "drop" => WireAction::Drop,
        "duplicate" => WireAction::Duplicate,
        "delay" => {
            let delay = match &w.delay {
                Some(d) => cx.duration(d).unwrap_or_default(),
                None => {
                    cx.at(&w.action, "a delay action needs `delay` (e.g. \"200ms\")");
                    Duration::ZERO
                }
            };
            let jitter = w.jitter.as_ref().and_then(|j| cx.duration(j)).unwrap_or_default();
            if let (Some(d), true) = (&w.delay, delay.is_zero() && jitter.is_zero()) {
                cx.at(d, "a delay of 0 with no jitter does nothing");
            }
            WireAction::Delay { delay, jitter }
        }
        "partition" => {
            let mut groups = Vec::new();
            match &w.groups {
                None => cx.at(
                    &w.action,
                    "a partition needs `groups`, e.g. [[\"filer\"], [\"imap1\", \"imap2\"]]",
                ),
                Some(gs) => {
                    if gs.get_ref().is_empty() {
                        cx.at(gs, "`groups` needs at least one group");
                    }
                    let mut seen: Vec<String> = Vec::new();
                    for g in gs.get_ref() {
                        if g.get_ref().is_empty() {
                            cx.at(g, "a group needs at least one guest");
                        }
                        let mut members = Vec::new();
                        for m in g.get_ref() {
                            if !guests.refer(cx, m) || !on_segment(cx, m, &w.segment, on) {
                                continue;
                            }
                            if seen.contains(m.get_ref()) {
                                cx.at(m, format!("guest `{}` is in two groups", m.get_ref()));
                                continue;
                            }
                            seen.push(m.get_ref().clone());
                            members.push(m.get_ref().clone());
                        }
                        groups.push(members);
                    }
                }
            }
            WireAction::Partition { groups }
        }
        other => {
            cx.at(
                &w.action,
                format!("action must be \"drop\", \"delay\", \"duplicate\" or \"partition\", not {other:?}"),
            );
            WireAction::Drop
        }
    }
}

/// Whether guest `g` has a port on the segment (when the segment is known).
fn on_segment(cx: &mut Cx, g: &Str, segment: &Str, on: Option<&[String]>) -> bool {
    match on {
        Some(members) if !members.contains(g.get_ref()) => {
            cx.at(
                g,
                format!(
                    "guest `{}` is not on segment `{}`",
                    g.get_ref(),
                    segment.get_ref()
                ),
            );
            false
        }
        _ => true,
    }
}

// ---- frame matches -------------------------------------------------------------------------

/// ONC RPC programs by the names a case may use.
const PROGRAMS: [(&str, u32); 10] = [
    ("nlm", program::NLM),
    ("nlockmgr", program::NLM),
    ("nsm", program::NSM),
    ("status", program::NSM),
    ("nfs", program::NFS),
    ("mount", program::MOUNT),
    ("mountd", program::MOUNT),
    ("portmap", program::PORTMAP),
    ("portmapper", program::PORTMAP),
    ("rpcbind", program::PORTMAP),
];

fn frame_match(cx: &mut Cx, m: &RawMatch, guests: &Names, segment: &Str, on: Option<&[String]>) -> Match {
    let port_of = |g: Option<&Str>, cx: &mut Cx| -> Option<String> {
        let g = g?;
        if guests.refer(cx, g) {
            on_segment(cx, g, segment, on);
        }
        Some(g.get_ref().clone())
    };
    let from = port_of(m.from, cx);
    let to = port_of(m.to, cx);
    let ethertype = m.ethertype.map(|v| {
        number_or_name(
            cx,
            v,
            0xffff,
            &[
                ("ipv4", frame::ethertype::IPV4 as u64),
                ("ipv6", frame::ethertype::IPV6 as u64),
                ("arp", frame::ethertype::ARP as u64),
                ("vlan", frame::ethertype::VLAN as u64),
            ],
            "ethertype",
        ) as u16
    });
    let ip_proto = m.ip_proto.map(|v| {
        number_or_name(
            cx,
            v,
            0xff,
            &[
                ("tcp", frame::ip_proto::TCP as u64),
                ("udp", frame::ip_proto::UDP as u64),
                ("icmp", frame::ip_proto::ICMP as u64),
                ("icmpv6", frame::ip_proto::ICMPV6 as u64),
            ],
            "ip_proto",
        ) as u8
    });
    let ip = |cx: &mut Cx, v: Option<&Str>| -> Option<IpAddr> {
        let v = v?;
        v.get_ref().parse().map_or_else(
            |_| {
                cx.at(v, format!("{:?} is not an IP address", v.get_ref()));
                None
            },
            Some,
        )
    };
    let src_ip = ip(cx, m.src_ip);
    let dst_ip = ip(cx, m.dst_ip);
    let port = |cx: &mut Cx, v: Option<&S<i64>>| -> Option<u16> {
        let v = v?;
        match u16::try_from(*v.get_ref()) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                cx.at(v, "a port is 1 to 65535");
                None
            }
        }
    };
    let src_port = port(cx, m.src_port);
    let dst_port = port(cx, m.dst_port);
    let tcp_flags = m.tcp_flags.map(|v| tcp_flag_bits(cx, v));

    let mut rpc = RpcMatch::default();
    let mut program_number = m.rpc_program.map(|v| {
        let names: Vec<(&str, u64)> = PROGRAMS.iter().map(|(n, p)| (*n, u64::from(*p))).collect();
        number_or_name(cx, v, u64::from(u32::MAX), &names, "rpc_program") as u32
    });
    let mut version = m.rpc_version.map(|v| {
        u32::try_from(*v.get_ref()).unwrap_or_else(|_| {
            cx.at(v, "rpc_version is a number from 0 to 4294967295");
            0
        })
    });
    let procedure = m.rpc_procedure.and_then(|v| match v.get_ref() {
        toml::Value::Integer(n) => u32::try_from(*n).ok().or_else(|| {
            cx.at(
                v,
                "rpc_procedure is a number from 0 to 4294967295, or a name like \"NLM4_GRANTED_MSG\"",
            );
            None
        }),
        toml::Value::String(name) => {
            let (p, ver, n) = procedure_by_name(cx, v, name, program_number, version)?;
            program_number = Some(p);
            version = Some(ver);
            Some(n)
        }
        _ => {
            cx.at(
                v,
                "rpc_procedure is a number, or a name like \"NLM4_GRANTED_MSG\"",
            );
            None
        }
    });
    rpc.program = program_number;
    rpc.version = version;
    rpc.procedure = procedure;
    rpc.kind = m.rpc_kind.and_then(|k| match k.get_ref().as_str() {
        "call" => Some(RpcKind::Call),
        "reply" => Some(RpcKind::Reply),
        other => {
            cx.at(
                k,
                format!("rpc_kind must be \"call\" or \"reply\", not {other:?}"),
            );
            None
        }
    });
    rpc.reclaim = m.nlm_reclaim.map(|v| *v.get_ref());
    rpc.nlm_stat = m.nlm_stat.map(|v| {
        number_or_name(
            cx,
            v,
            u64::from(u32::MAX),
            &[
                ("granted", 0),
                ("denied", 1),
                ("denied_nolocks", 2),
                ("blocked", 3),
                ("denied_grace_period", 4),
                ("deadlck", 5),
                ("rofs", 6),
                ("stale_fh", 7),
                ("fbig", 8),
                ("failed", 9),
            ],
            "nlm_stat",
        ) as u32
    });
    let any_rpc = m.rpc_program.is_some()
        || m.rpc_version.is_some()
        || m.rpc_procedure.is_some()
        || m.rpc_kind.is_some()
        || m.nlm_reclaim.is_some()
        || m.nlm_stat.is_some();
    Match {
        from,
        to,
        ethertype,
        ip_proto,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        tcp_flags,
        rpc: any_rpc.then_some(rpc),
    }
}

/// A number up to `max`, or one of `names` (case-insensitive).
fn number_or_name(cx: &mut Cx, v: &S<toml::Value>, max: u64, names: &[(&str, u64)], key: &str) -> u64 {
    let listed = names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let complain = |cx: &mut Cx| {
        cx.at(
            v,
            format!("{key} is a number from 0 to {max:#x} or one of {listed}"),
        );
        0
    };
    match v.get_ref() {
        toml::Value::Integer(n) => match u64::try_from(*n) {
            Ok(n) if n <= max => n,
            _ => complain(cx),
        },
        toml::Value::String(s) => {
            let s = s.to_ascii_lowercase();
            names
                .iter()
                .find(|(n, _)| *n == s)
                .map(|(_, x)| *x)
                .unwrap_or_else(|| complain(cx))
        }
        _ => complain(cx),
    }
}

fn tcp_flag_bits(cx: &mut Cx, v: &S<toml::Value>) -> u8 {
    const NAMES: [(&str, u8); 8] = [
        ("fin", 0x01),
        ("syn", 0x02),
        ("rst", 0x04),
        ("psh", 0x08),
        ("ack", 0x10),
        ("urg", 0x20),
        ("ece", 0x40),
        ("cwr", 0x80),
    ];
    let hint = "tcp_flags is a number from 1 to 255 or names joined by '|', e.g. \"syn|ack\" (fin, syn, rst, psh, ack, urg, ece, cwr)";
    let bits = match v.get_ref() {
        toml::Value::Integer(n) => u8::try_from(*n).ok(),
        toml::Value::String(s) => s.split('|').try_fold(0u8, |acc, part| {
            let part = part.trim().to_ascii_lowercase();
            NAMES.iter().find(|(n, _)| *n == part).map(|(_, b)| acc | b)
        }),
        _ => None,
    };
    match bits {
        Some(b) if b > 0 => b,
        _ => {
            cx.at(v, hint);
            0
        }
    }
}

/// (program, version, procedure) for a procedure name, narrowed by a given program and
/// version; an error unless exactly one (program, version) has it.
fn procedure_by_name(
    cx: &mut Cx,
    at: &S<toml::Value>,
    name: &str,
    program: Option<u32>,
    version: Option<u32>,
) -> Option<(u32, u32, u32)> {
    let name = name.to_ascii_uppercase();
    let programs: Vec<u32> = match program {
        Some(p) => vec![p],
        None => vec![
            program::NLM,
            program::NSM,
            program::NFS,
            program::MOUNT,
            program::PORTMAP,
        ],
    };
    let versions: Vec<u32> = match version {
        Some(v) => vec![v],
        None => (0..=4).collect(),
    };
    let mut found = Vec::new();
    for &p in &programs {
        for &v in &versions {
            if let Some(n) = frame::procedure_number(p, v, &name) {
                found.push((p, v, n));
            }
        }
    }
    let program_label = |p: u32| frame::program_name(p).map_or(p.to_string(), |n| format!("{n} ({p})"));
    match found.as_slice() {
        [one] => Some(*one),
        [] => {
            let scope = match (program, version) {
                (Some(p), Some(v)) => format!(" in version {v} of {}", program_label(p)),
                (Some(p), None) => format!(" in {}", program_label(p)),
                (None, Some(v)) => format!(" in version {v} of any program"),
                (None, None) => String::new(),
            };
            cx.at(
                at,
                format!(
                    "unknown RPC procedure `{name}`{scope}: names are as the frame decoder prints them, e.g. NLM4_GRANTED_MSG, NFS3_WRITE, SM_NOTIFY"
                ),
            );
            None
        }
        [(p, _, _), ..] if found.iter().all(|(q, _, _)| q == p) => {
            let vs: Vec<String> = found.iter().map(|(_, v, _)| v.to_string()).collect();
            cx.at(
                at,
                format!(
                    "procedure `{name}` is in versions {} of {}: set rpc_version",
                    vs.join(" and "),
                    program_label(*p)
                ),
            );
            None
        }
        _ => {
            cx.at(
                at,
                format!("procedure `{name}` is in several programs: set rpc_program and rpc_version"),
            );
            None
        }
    }
}

// ---- checks --------------------------------------------------------------------------------

struct CheckCx<'a> {
    guests: &'a Names,
    steps: &'a Names,
    segments: &'a Names,
    evidence: &'a Names,
    step_list: &'a [Step],
}

fn text_expect(
    cx: &mut Cx,
    owner: Range<usize>,
    what: &str,
    equals: &Option<Str>,
    contains: &Option<Str>,
    matches: &Option<Str>,
) -> TextExpect {
    let which = cx.one_of(
        owner,
        what,
        &[
            ("equals", equals.as_ref().map(|v| v.span())),
            ("contains", contains.as_ref().map(|v| v.span())),
            ("matches", matches.as_ref().map(|v| v.span())),
        ],
    );
    match which {
        Some("equals") => TextExpect::Equals(equals.as_ref().expect("given").get_ref().clone()),
        Some("contains") => {
            let c = contains.as_ref().expect("given");
            if c.get_ref().is_empty() {
                cx.at(c, "`contains = \"\"` always holds");
            }
            TextExpect::Contains(c.get_ref().clone())
        }
        Some(_) => TextExpect::Matches(cx.pattern(matches.as_ref().expect("given"))),
        None => TextExpect::Contains(String::new()),
    }
}

/// Where an exec_output or log_absent check reads its text: a named evidence item, or an inline
/// `guest` with a `command` (or `file`), which becomes an after-evidence item `check:<name>`.
#[allow(clippy::too_many_arguments)]
fn check_source(
    cx: &mut Cx,
    check: &Str,
    owner: Range<usize>,
    kind: &str,
    evidence: &Option<Str>,
    guest: &Option<Str>,
    inline: Option<&Str>,
    inline_key: &str,
    timeout: Option<&Str>,
    ctx: &CheckCx,
) -> (String, Option<EvidenceItem>) {
    match (evidence, guest, inline) {
        (Some(e), None, None) => {
            ctx.evidence.refer(cx, e);
            if let Some(t) = timeout {
                cx.at(t, "`timeout` only goes with `command`");
            }
            (e.get_ref().clone(), None)
        }
        (Some(_), Some(extra), _) | (Some(_), None, Some(extra)) => {
            cx.at(
                extra,
                format!("give either `evidence` or `guest` and `{inline_key}`, not both"),
            );
            (String::new(), None)
        }
        (None, Some(g), Some(x)) => {
            ctx.guests.refer(cx, g);
            let source = if inline_key == "command" {
                cx.nonblank(x, "command");
                EvidenceSource::Command {
                    command: x.get_ref().clone(),
                    timeout: cx.positive(timeout, DEFAULT_EVIDENCE_TIMEOUT),
                }
            } else {
                cx.absolute(x, "file");
                EvidenceSource::File {
                    path: x.get_ref().clone(),
                }
            };
            let name = format!("check:{}", check.get_ref());
            let item = EvidenceItem {
                name: name.clone(),
                guest: g.get_ref().clone(),
                source,
            };
            (name, Some(item))
        }
        (None, Some(g), None) => {
            cx.at(g, format!("`guest` needs a `{inline_key}` to go with it"));
            (String::new(), None)
        }
        (None, None, Some(x)) => {
            cx.at(x, format!("`{inline_key}` needs a `guest` to go with it"));
            (String::new(), None)
        }
        (None, None, None) => {
            cx.err(
                owner,
                format!("`{kind}` needs `evidence`, or `guest` and `{inline_key}`"),
            );
            (String::new(), None)
        }
    }
}

fn build_check_kind(
    cx: &mut Cx,
    name: &Str,
    c: &RawCheck,
    ctx: &CheckCx,
    members: &dyn Fn(&str) -> Option<Vec<String>>,
) -> (CheckKind, Option<EvidenceItem>) {
    let what = format!("check `{}`", name.get_ref());
    let which = cx.one_of(
        name.span(),
        &what,
        &[
            ("step_ok", c.step_ok.as_ref().map(|v| v.span())),
            ("step_failed", c.step_failed.as_ref().map(|v| v.span())),
            ("step_output", c.step_output.as_ref().map(|v| v.span())),
            ("exec_output", c.exec_output.as_ref().map(|v| v.span())),
            ("duration_at_most", c.duration_at_most.as_ref().map(|v| v.span())),
            ("log_absent", c.log_absent.as_ref().map(|v| v.span())),
            ("frames", c.frames.as_ref().map(|v| v.span())),
            ("faster", c.faster.as_ref().map(|v| v.span())),
        ],
    );
    let placeholder = CheckKind::StepOk { step: String::new() };
    let kind = match which {
        Some(k @ ("step_ok" | "step_failed")) => {
            let r = if k == "step_ok" {
                &c.step_ok
            } else {
                &c.step_failed
            };
            let step = &r.as_ref().expect("given").get_ref().step;
            ctx.steps.refer(cx, step);
            let step = step.get_ref().clone();
            if k == "step_ok" {
                CheckKind::StepOk { step }
            } else {
                CheckKind::StepFailed { step }
            }
        }
        Some("step_output") => {
            let o = c.step_output.as_ref().expect("given");
            let r = o.get_ref();
            if ctx.steps.refer(cx, &r.step) {
                let step = ctx.step_list.iter().find(|s| s.name == *r.step.get_ref());
                if let Some(Step {
                    kind: StepKind::Wait { .. },
                    ..
                }) = step
                {
                    cx.at(
                        &r.step,
                        format!("step `{}` is a wait: it has no output", r.step.get_ref()),
                    );
                }
            }
            let expect = text_expect(cx, o.span(), "`step_output`", &r.equals, &r.contains, &r.matches);
            CheckKind::StepOutput {
                step: r.step.get_ref().clone(),
                expect,
            }
        }
        Some("exec_output") => {
            let o = c.exec_output.as_ref().expect("given");
            let r = o.get_ref();
            let (evidence, item) = check_source(
                cx,
                name,
                o.span(),
                "exec_output",
                &r.evidence,
                &r.guest,
                r.command.as_ref(),
                "command",
                r.timeout.as_ref(),
                ctx,
            );
            let expect = text_expect(cx, o.span(), "`exec_output`", &r.equals, &r.contains, &r.matches);
            return (CheckKind::ExecOutput { evidence, expect }, item);
        }
        Some("faster") => {
            let r = c.faster.as_ref().expect("given").get_ref();
            ctx.steps.refer(cx, &r.step);
            ctx.steps.refer(cx, &r.than);
            let factor = match r.factor.get_ref() {
                toml::Value::Integer(n) if *n >= 1 => *n as f64,
                toml::Value::Float(f) if *f >= 1.0 && f.is_finite() => *f,
                _ => {
                    cx.at(
                        &r.factor,
                        "factor is a number, at least 1 (how many times faster)",
                    );
                    1.0
                }
            };
            CheckKind::Faster {
                step: r.step.get_ref().clone(),
                than: r.than.get_ref().clone(),
                factor_milli: (factor * 1000.0).round() as u64,
            }
        }
        Some("duration_at_most") => {
            let r = c.duration_at_most.as_ref().expect("given").get_ref();
            ctx.steps.refer(cx, &r.step);
            if let Some(other) = &r.since_end_of {
                ctx.steps.refer(cx, other);
            }
            CheckKind::DurationAtMost {
                step: r.step.get_ref().clone(),
                limit: cx.positive(Some(&r.limit), Duration::from_secs(1)),
                since_end_of: r.since_end_of.as_ref().map(|s| s.get_ref().clone()),
            }
        }
        Some("log_absent") => {
            let o = c.log_absent.as_ref().expect("given");
            let r = o.get_ref();
            let (evidence, item) = check_source(
                cx,
                name,
                o.span(),
                "log_absent",
                &r.evidence,
                &r.guest,
                r.file.as_ref(),
                "file",
                None,
                ctx,
            );
            let pattern = cx.pattern(&r.pattern);
            return (CheckKind::LogAbsent { evidence, pattern }, item);
        }
        Some(_) => {
            let o = c.frames.as_ref().expect("given");
            let r = o.get_ref();
            let on = ctx
                .segments
                .refer(cx, &r.segment)
                .then(|| members(r.segment.get_ref()))
                .flatten();
            let matcher = frame_match(cx, &r.matcher(), ctx.guests, &r.segment, on.as_deref());
            let which = cx.one_of(
                o.span(),
                "`frames`",
                &[
                    ("count_at_least", r.count_at_least.as_ref().map(|v| v.span())),
                    ("count_equals", r.count_equals.as_ref().map(|v| v.span())),
                ],
            );
            let count_of = |cx: &mut Cx, v: &S<i64>| -> u64 {
                u64::try_from(*v.get_ref()).unwrap_or_else(|_| {
                    cx.at(v, "a count cannot be negative");
                    0
                })
            };
            let count = match which {
                Some("count_at_least") => {
                    let v = r.count_at_least.as_ref().expect("given");
                    let n = count_of(cx, v);
                    if *v.get_ref() == 0 {
                        cx.at(v, "count_at_least = 0 always holds: use 1 or more");
                    }
                    Count::AtLeast(n)
                }
                Some(_) => Count::Equals(count_of(cx, r.count_equals.as_ref().expect("given"))),
                None => Count::AtLeast(1),
            };
            if let Some(d) = &r.during {
                ctx.steps.refer(cx, d);
            }
            CheckKind::Frames {
                segment: r.segment.get_ref().clone(),
                matcher,
                count,
                during: r.during.as_ref().map(|d| d.get_ref().clone()),
            }
        }
        None => placeholder,
    };
    (kind, None)
}

/// Prose from a case file (possibly a multi-line string) as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
