//! `[measures.*]`: figures every arm reports (a step's output, a step's duration), never
//! judged.

use super::steps::Steps;
use super::Cx;
use crate::case::raw::{Named, RawMeasure};
use crate::case::{Measure, MeasureSource, StepKind};

pub(super) fn build(cx: &mut Cx, raw: &Named<RawMeasure>, steps: &Steps) -> Vec<Measure> {
    let mut measures = Vec::new();
    for (name, m) in &raw.0 {
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
                if steps.names.refer(cx, s)
                    && matches!(
                        steps.get(s.get_ref()).map(|x| &x.kind),
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
                steps.names.refer(cx, s);
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
    measures
}
