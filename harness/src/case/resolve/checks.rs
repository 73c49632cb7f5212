//! `[checks.*]`: what an arm is judged on — a step's outcome, output or duration, an evidence
//! item's text (declared or inline), frames on a segment — with each check's premises
//! (`requires`) and the evidence it needs.

use std::ops::Range;
use std::time::Duration;

use super::guests::Lab;
use super::matches::frame_match;
use super::steps::Steps;
use super::{key_offset, no_repeats, Cx, Names, DEFAULT_EVIDENCE_TIMEOUT};
use crate::case::raw::{Named, RawCheck, RawReasonRef, Str, S};
use crate::case::{
    Check, CheckKind, Count, EvidenceItem, EvidencePlan, EvidenceSource, FailureReason, Need, Step, StepKind,
    TextExpect,
};

/// The checks of a case, and every check name (for references, even to later checks).
pub(super) struct Checks {
    pub list: Vec<Check>,
    pub names: Names,
}

/// The checks; inline evidence (`check:<name>`) is added to `evidence.after`.
pub(super) fn build(
    cx: &mut Cx,
    raw: &Named<RawCheck>,
    lab: &Lab,
    steps: &Steps,
    evidence_names: &Names,
    evidence: &mut EvidencePlan,
) -> Checks {
    let mut checks: Vec<Check> = Vec::new();
    if raw.0.is_empty() {
        cx.err(
            key_offset(cx.sources, "checks"),
            "a case needs at least one check: an arm with no checks can only be unknown",
        );
    }
    let all_checks = Names::new("check", raw.0.iter().map(|(n, _)| n.get_ref().clone()));
    // Evidence that is a command's output: an absence in it needs a control line.
    let commands: Vec<String> = evidence
        .before
        .iter()
        .chain(&evidence.after)
        .filter(|e| matches!(e.source, EvidenceSource::Command { .. }))
        .map(|e| e.name.clone())
        .collect();
    for (name, c) in &raw.0 {
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
            lab,
            steps,
            evidence: evidence_names,
            commands: &commands,
        };
        let (kind, inline) = build_check_kind(cx, name, c, &ctx);
        if let Some(item) = inline {
            evidence.after.push(item);
        }
        let fail_when = c.fail_when.as_ref().map(|f| fail_when(cx, f, &kind));
        let needs = match &kind {
            CheckKind::StepOk { step }
            | CheckKind::StepFailed { step, .. }
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
            CheckKind::SuccessRate { population, .. } | CheckKind::DrainsWithin { population, .. } => {
                vec![Need::Step {
                    step: population.clone(),
                }]
            }
            CheckKind::SeriesPeak { during, .. } => {
                during.iter().map(|s| Need::Step { step: s.clone() }).collect()
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
            fail_when,
        });
    }
    Checks {
        list: checks,
        names: all_checks,
    }
}

/// What a check may refer to.
struct CheckCx<'a> {
    lab: &'a Lab,
    steps: &'a Steps,
    evidence: &'a Names,
    /// The evidence items that are a command's output.
    commands: &'a [String],
}

/// A check's `fail_when`: only for checks whose failure is a step's or an evidence item's
/// (`step_ok`, `step_output`, `exec_output`), with at least one key; an evidence item keeps no
/// stderr.
fn fail_when(cx: &mut Cx, raw: &S<crate::case::raw::RawReason>, kind: &CheckKind) -> FailureReason {
    let keys = raw.get_ref().reason();
    match kind {
        CheckKind::StepOk { .. } | CheckKind::StepOutput { .. } => {}
        CheckKind::ExecOutput { .. } => {
            if let Some(s) = keys.stderr.iter().find_map(|k| k.as_ref()) {
                cx.at(
                    s,
                    "an evidence item keeps no stderr: `fail_when` on `exec_output` takes `exit` and `output_*`",
                );
            }
        }
        _ => cx.at(
            raw,
            "`fail_when` goes with `step_ok`, `step_output` or `exec_output`: what their step's or evidence item's failure must look like",
        ),
    }
    let reason = failure_reason(cx, &keys);
    if keys.exit.is_none() && keys.output.iter().chain(keys.stderr.iter()).all(|k| k.is_none()) {
        cx.at(
            raw,
            "`fail_when` needs at least one of exit, output_equals, output_contains, output_matches, stderr_equals, stderr_contains, stderr_matches",
        );
    }
    reason
}

/// The reason keys of `step_failed` or `fail_when`: an exit status (0–255), and at most one
/// of `_equals` / `_contains` / `_matches` each for the output and for stderr, none of them
/// empty (an empty text says nothing of why a step failed).
fn failure_reason(cx: &mut Cx, keys: &RawReasonRef) -> FailureReason {
    let exit = keys.exit.and_then(|e| {
        let v = *e.get_ref();
        if (0..=255).contains(&v) {
            Some(v)
        } else {
            cx.at(e, format!("exit {v} is not an exit status (0–255)"));
            None
        }
    });
    let mut text = |which: &str, ks: &[&Option<Str>; 3]| -> Option<TextExpect> {
        let names = [
            format!("{which}_equals"),
            format!("{which}_contains"),
            format!("{which}_matches"),
        ];
        let mut given: Vec<(usize, &Str)> = ks
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.as_ref().map(|v| (i, v)))
            .collect();
        given.sort_by_key(|(_, v)| v.span().start);
        let (i, v) = match given.as_slice() {
            [] => return None,
            [one] => *one,
            [(a, _), (b, v), ..] => {
                cx.at(
                    v,
                    format!(
                        "give one of {}, not both `{}` and `{}`",
                        names.join(", "),
                        names[*a],
                        names[*b]
                    ),
                );
                return None;
            }
        };
        if i < 2 && v.get_ref().is_empty() {
            cx.at(
                v,
                format!("`{} = \"\"` says nothing of why the step failed", names[i]),
            );
        }
        Some(match i {
            0 => TextExpect::Equals(v.get_ref().clone()),
            1 => TextExpect::Contains(v.get_ref().clone()),
            _ => TextExpect::Matches(cx.pattern(v)),
        })
    };
    let output = text("output", &keys.output);
    let stderr = text("stderr", &keys.stderr);
    FailureReason { exit, output, stderr }
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
        Some("equals") => {
            let e = equals.as_ref().expect("given");
            if e.get_ref().trim_end().is_empty() {
                cx.at(
                    e,
                    "`equals = \"\"` holds for a command that printed nothing because it failed: print a count and compare it (`equals = \"0\"`), or use `log_absent` with a `control`",
                );
            }
            TextExpect::Equals(e.get_ref().clone())
        }
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
            ctx.lab.guest_names.refer(cx, g);
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
            ("success_rate", c.success_rate.as_ref().map(|v| v.span())),
            ("drains_within", c.drains_within.as_ref().map(|v| v.span())),
            ("series_peak", c.series_peak.as_ref().map(|v| v.span())),
        ],
    );
    let placeholder = CheckKind::StepOk { step: String::new() };
    let kind = match which {
        Some("step_ok") => {
            let step = &c.step_ok.as_ref().expect("given").get_ref().step;
            ctx.steps.names.refer(cx, step);
            CheckKind::StepOk {
                step: step.get_ref().clone(),
            }
        }
        Some("step_failed") => {
            let r = c.step_failed.as_ref().expect("given").get_ref();
            ctx.steps.names.refer(cx, &r.step);
            CheckKind::StepFailed {
                step: r.step.get_ref().clone(),
                reason: failure_reason(cx, &r.reason()),
            }
        }
        Some("step_output") => {
            let o = c.step_output.as_ref().expect("given");
            let r = o.get_ref();
            if ctx.steps.names.refer(cx, &r.step) {
                let step = ctx.steps.get(r.step.get_ref());
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
            ctx.steps.names.refer(cx, &r.step);
            ctx.steps.names.refer(cx, &r.than);
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
        Some("success_rate") => {
            let r = c.success_rate.as_ref().expect("given").get_ref();
            population_step(cx, ctx, &r.population);
            let from = match &r.from {
                Some(f) => cx.duration(f).unwrap_or_default(),
                None => Duration::ZERO,
            };
            let to = r.to.as_ref().and_then(|t| cx.duration(t));
            if let (Some(t), Some(raw)) = (to, &r.to) {
                if t <= from {
                    cx.at(
                        raw,
                        "`to` must come after `from`: the window would hold no attempt",
                    );
                }
            }
            CheckKind::SuccessRate {
                population: r.population.get_ref().clone(),
                at_least_milli: fraction_milli(cx, &r.at_least),
                from,
                to,
            }
        }
        Some("drains_within") => {
            let r = c.drains_within.as_ref().expect("given").get_ref();
            population_step(cx, ctx, &r.population);
            let below = fraction_milli(cx, &r.failure_rate_below);
            if below == 0 {
                cx.at(
                    &r.failure_rate_below,
                    "a failure rate below 0 % never holds: give a bound above 0 (e.g. \"5%\")",
                );
            }
            CheckKind::DrainsWithin {
                population: r.population.get_ref().clone(),
                within: cx.positive(Some(&r.within), Duration::from_secs(1)),
                below_milli: below,
                window: cx.positive(r.window.as_ref(), Duration::from_secs(10)),
            }
        }
        Some("series_peak") => {
            let r = c.series_peak.as_ref().expect("given").get_ref();
            let name = r.series.get_ref();
            if !name.contains('.') || name.starts_with('.') || name.ends_with('.') {
                cx.at(
                    &r.series,
                    format!("a series is named `<guest, segment or step>.<metric>` (e.g. `imap1.procs.imap-login`), not `{name}`"),
                );
            }
            if let Some(d) = &r.during {
                ctx.steps.names.refer(cx, d);
            }
            let at_most = match r.at_most.get_ref() {
                toml::Value::Integer(n) => (*n as f64 * 1000.0) as i64,
                toml::Value::Float(f) if f.is_finite() => (f * 1000.0).round() as i64,
                _ => {
                    cx.at(&r.at_most, "at_most is a number");
                    0
                }
            };
            CheckKind::SeriesPeak {
                series: name.clone(),
                at_most_milli: at_most,
                during: r.during.as_ref().map(|d| d.get_ref().clone()),
            }
        }
        Some("duration_at_most") => {
            let r = c.duration_at_most.as_ref().expect("given").get_ref();
            ctx.steps.names.refer(cx, &r.step);
            if let Some(other) = &r.since_end_of {
                ctx.steps.names.refer(cx, other);
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
            let control = r.control.as_ref().map(|c| cx.pattern(c));
            // A command's output that lacks a line proves nothing when the command failed
            // early (`journalctl … | grep … || true` exits 0 either way): a line that is always
            // there must be there too. A file read whole is its own proof (unreadable is
            // unknown).
            if control.is_none() && ctx.commands.contains(&evidence) {
                if let Some(e) = &r.evidence {
                    cx.at(
                        e,
                        format!(
                            "evidence `{evidence}` is a command's output: `log_absent` on it needs a `control`, a pattern of a line that is always in that output (the service's start line, the kernel's banner), so that an empty or cut-short output cannot pass"
                        ),
                    );
                }
            }
            return (
                CheckKind::LogAbsent {
                    evidence,
                    pattern,
                    control,
                },
                item,
            );
        }
        Some(_) => {
            let o = c.frames.as_ref().expect("given");
            let r = o.get_ref();
            let on = ctx
                .lab
                .segment_names
                .refer(cx, &r.segment)
                .then(|| ctx.lab.members(r.segment.get_ref()))
                .flatten();
            let matcher = frame_match(cx, &r.matcher(), &ctx.lab.guest_names, &r.segment, on.as_deref());
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
                ctx.steps.names.refer(cx, d);
            }
            CheckKind::Frames {
                segment: r.segment.get_ref().clone(),
                matcher,
                count,
                during: r.during.as_ref().map(|d| d.get_ref().clone()),
                delivered: r.delivered.as_ref().is_some_and(|d| *d.get_ref()),
            }
        }
        None => placeholder,
    };
    (kind, None)
}

/// A share as case files write it: `"95%"`, or a number from 0 to 1; in thousandths.
fn fraction_milli(cx: &mut Cx, v: &S<toml::Value>) -> u64 {
    const HOW: &str = "a share is a percentage (\"95%\", \"99.5%\") or a number from 0 to 1";
    let share = match v.get_ref() {
        toml::Value::String(t) => t
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|p| p.is_finite())
            .map(|p| p / 100.0),
        toml::Value::Float(f) if f.is_finite() => Some(*f),
        toml::Value::Integer(n) => Some(*n as f64),
        _ => None,
    };
    match share {
        Some(f) if (0.0..=1.0).contains(&f) => (f * 1000.0).round() as u64,
        _ => {
            cx.at(v, HOW);
            0
        }
    }
}

/// A series check's `population`: a step, and a population step.
fn population_step(cx: &mut Cx, ctx: &CheckCx, name: &Str) {
    if ctx.steps.names.refer(cx, name) {
        if let Some(step) = ctx.steps.get(name.get_ref()) {
            if !matches!(step.kind, StepKind::Population(_)) {
                cx.at(
                    name,
                    format!(
                        "step `{}` is not a `population`: only a population's attempts have a rate",
                        name.get_ref()
                    ),
                );
            }
        }
    }
}
