//! `[[evidence.before]]` and `[[evidence.after]]`: what is captured before the workload starts
//! and after it ends (a command's output or a file).

use std::collections::BTreeMap;

use super::{Cx, Names, DEFAULT_EVIDENCE_TIMEOUT};
use crate::case::raw::RawEvidence;
use crate::case::{EvidenceItem, EvidencePlan, EvidenceSource};

/// The evidence plan, and the names of its items for references.
pub(super) fn build(cx: &mut Cx, raw: &RawEvidence, guest_names: &Names) -> (EvidencePlan, Names) {
    let mut evidence = EvidencePlan::default();
    let mut evidence_at: BTreeMap<String, usize> = BTreeMap::new();
    for (list, out) in [
        (&raw.before, &mut evidence.before),
        (&raw.after, &mut evidence.after),
    ] {
        for e in list {
            cx.name(&e.name, "evidence");
            if let Some(first) = evidence_at.get(e.name.get_ref()) {
                let line = cx.line(*first, e.name.span().start);
                cx.at(
                    &e.name,
                    format!("evidence `{}` is already defined on {line}", e.name.get_ref()),
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
    (evidence, evidence_names)
}
