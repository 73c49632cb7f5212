//! `[arms.*]`: the variants of a case — the faults each turns on, what it expects, the checks it
//! skips or only reports, how its setup differs (steps skipped, images, session ends).

use std::collections::BTreeMap;

use super::checks::Checks;
use super::faults::Faults;
use super::guests::Lab;
use super::steps::{session_end, Steps};
use super::{key_offset, no_repeats, Cx};
use crate::case::raw::{Named, RawArm};
use crate::case::{Arm, ArmExpectation, End, Fault, Need, SessionEnd, SessionStop, Setup, StepKind, Trigger};

pub(super) fn build(
    cx: &mut Cx,
    raw: &Named<RawArm>,
    lab: &Lab,
    steps: &Steps,
    faults: &Faults,
    checks: &Checks,
) -> Vec<Arm> {
    let mut arms = Vec::new();
    if raw.0.is_empty() {
        cx.err(key_offset(cx.sources, "arms"), "a case needs at least one arm");
    }
    for (name, a) in &raw.0 {
        cx.name(name, "arm");
        for f in &a.faults {
            faults.names.refer(cx, f);
        }
        no_repeats(cx, &a.faults, "fault");
        disk_settings_agree(cx, a.faults.as_slice(), faults, lab);
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
                    if !checks.names.refer(cx, c) {
                        continue;
                    }
                    // A check whose premise fails is judged unknown, never fail.
                    let requires = checks
                        .list
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
            if !steps.names.refer(cx, s) {
                continue;
            }
            let skipped = s.get_ref();
            // A check the arm skips too is not judged, so its step may go with it.
            if let Some(c) = checks.list.iter().find(|c| {
                c.needs
                    .iter()
                    .any(|n| matches!(n, Need::Step { step } if step == skipped))
                    && !a.skip_checks.iter().any(|k| k.get_ref() == &c.name)
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
                .filter_map(|n| faults.list.iter().find(|f| f.name == *n.get_ref()))
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
                if !checks.names.refer(cx, c) {
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
            if let Some(user) = checks.list.iter().find(|k| {
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
        // A pass arm that leaves a check out of its verdict must say why: otherwise a pass
        // with the check failing beside it reads as all clear.
        if expect == ArmExpectation::Pass && a.finding.is_none() {
            if let Some(first) = a.report_only.first() {
                cx.at(
                    first,
                    format!(
                        "arm `{}` expects pass but only reports check `{}`: give it a `finding` saying why that check is left out of the verdict",
                        name.get_ref(),
                        first.get_ref()
                    ),
                );
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
            if !steps.names.refer(cx, step_name) {
                continue;
            }
            let Some(step) = steps.get(step_name.get_ref()) else {
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
                &lab.guest_names,
            );
            if step.background && matches!(stop, Some(SessionStop::OnLog { .. })) {
                cx.at(
                    step_name,
                    "a session stopped by a log line runs in the foreground",
                );
            }
            sessions.insert(step_name.get_ref().clone(), SessionEnd { close, stop, hold });
        }
        let mut populations = BTreeMap::new();
        for (step_name, change) in &a.setup.populations.0 {
            if !steps.names.refer(cx, step_name) {
                continue;
            }
            match steps.get(step_name.get_ref()).map(|s| &s.kind) {
                Some(StepKind::Population(base)) => {
                    populations.insert(
                        step_name.get_ref().clone(),
                        super::population::change(cx, change.get_ref(), base),
                    );
                }
                _ => cx.at(
                    step_name,
                    format!("step `{}` is not a population", step_name.get_ref()),
                ),
            }
        }
        let mut images = BTreeMap::new();
        for (g, image) in &a.setup.images.0 {
            lab.guest_names.refer(cx, g);
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
                populations,
            },
            sweep: None,
        });
    }

    arms
}

/// Prose from a case file (possibly a multi-line string) as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An arm's disk faults that set what is fixed for a disk's life (an error rate, a delay, a
/// hold) agree on each disk: an error at the later fault of a pair that does not.
fn disk_settings_agree(cx: &mut Cx, names: &[crate::case::raw::Str], faults: &Faults, lab: &Lab) {
    let find = |n: &str| faults.list.iter().find(|f| f.name == n);
    for (i, later) in names.iter().enumerate() {
        let Some(b) = find(later.get_ref()) else { continue };
        let clash = names[..i]
            .iter()
            .filter_map(|n| find(n.get_ref()))
            .find_map(|a| super::faults::disk_conflict(lab, a, b));
        if let Some(why) = clash {
            cx.at(later, why);
        }
    }
}
