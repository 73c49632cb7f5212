//! Verdicts: what each check says, how they combine into an arm's verdict, and whether the arm
//! met its expectation. Pure: the runner evaluates checks against evidence and hands the results
//! here.
//!
//! The rules (also in docs/cases.md):
//!
//! - A check is `pass`, `fail`, `unknown` (its evidence is missing or incomplete: never `pass`)
//!   or `error` (the harness could not evaluate it). Anything but `pass` carries a one-line
//!   explanation pointing into the evidence; [`CheckResult`]'s constructors enforce that.
//! - Verdicts combine by severity: fail > error > unknown > pass. An arm with no check results
//!   is `unknown`, never `pass`.
//! - A fault that did not provably fire caps the arm at `unknown`: a pass proves nothing about a
//!   fault that never happened. It does not hide a `fail` or `error`, which are real
//!   observations whether or not the fault fired; but such an arm never *meets* its
//!   expectation, because its outcome cannot be attributed to its faults.
//! - An arm meets `expect = "pass"` when its verdict is pass; `expect = "unknown"` when it is
//!   unknown; `expect = "fail"` when its verdict is fail, every fault fired, every named
//!   failing check failed, and no other check failed or errored (it fails for its stated reason
//!   only; other checks may be unknown, e.g. those whose `requires` did not pass).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One verdict. The order is severity: `Pass < Unknown < Error < Fail`, so combining is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Unknown,
    Error,
    Fail,
}

impl Verdict {
    /// The more severe of two verdicts.
    pub fn and(self, other: Verdict) -> Verdict {
        self.max(other)
    }

    /// The most severe of some verdicts; `None` for none at all (which callers must not take
    /// for a pass).
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Option<Verdict> {
        verdicts.into_iter().max()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Unknown => "unknown",
            Verdict::Error => "error",
            Verdict::Fail => "fail",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a [`CheckResult`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplanationError {
    #[error("check {name}: a {verdict} result needs an explanation")]
    Missing { name: String, verdict: Verdict },
    #[error("check {name}: an explanation is one line")]
    MultiLine { name: String },
}

/// A check's verdict. Fields are private so that every value went through [`CheckResult::new`]:
/// a `fail`, `unknown` or `error` always has a non-blank, one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    name: String,
    verdict: Verdict,
    explanation: Option<String>,
}

impl CheckResult {
    /// A result; `explanation` is optional for a pass and required (non-blank) otherwise, and
    /// is one line either way.
    pub fn new(
        name: impl Into<String>,
        verdict: Verdict,
        explanation: Option<String>,
    ) -> Result<CheckResult, ExplanationError> {
        let name = name.into();
        let explanation = explanation.filter(|e| !e.trim().is_empty());
        if explanation.as_deref().is_some_and(|e| e.contains(['\n', '\r'])) {
            return Err(ExplanationError::MultiLine { name });
        }
        if verdict != Verdict::Pass && explanation.is_none() {
            return Err(ExplanationError::Missing { name, verdict });
        }
        Ok(CheckResult {
            name,
            verdict,
            explanation,
        })
    }

    pub fn pass(name: impl Into<String>) -> CheckResult {
        CheckResult {
            name: name.into(),
            verdict: Verdict::Pass,
            explanation: None,
        }
    }

    /// # Panics
    /// If `why` is blank or not one line: a result without a reason is a harness bug.
    pub fn fail(name: impl Into<String>, why: impl Into<String>) -> CheckResult {
        Self::explained(name, Verdict::Fail, why)
    }

    /// # Panics
    /// As [`CheckResult::fail`].
    pub fn unknown(name: impl Into<String>, why: impl Into<String>) -> CheckResult {
        Self::explained(name, Verdict::Unknown, why)
    }

    /// # Panics
    /// As [`CheckResult::fail`].
    pub fn error(name: impl Into<String>, why: impl Into<String>) -> CheckResult {
        Self::explained(name, Verdict::Error, why)
    }

    fn explained(name: impl Into<String>, verdict: Verdict, why: impl Into<String>) -> CheckResult {
        match CheckResult::new(name, verdict, Some(why.into())) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    pub fn explanation(&self) -> Option<&str> {
        self.explanation.as_deref()
    }
}

/// Whether a fault of the arm happened, and the evidence either way (rule counts and pcap frame
/// numbers, the command's exit status, the log line, times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultProof {
    pub name: String,
    pub fired: bool,
    pub evidence: String,
}

/// What an arm expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum ArmExpectation {
    Pass,
    /// Fail, and for these checks (at least one, every one of them failing).
    Fail {
        failing_checks: Vec<String>,
    },
    Unknown,
}

impl ArmExpectation {
    pub fn verdict(&self) -> Verdict {
        match self {
            ArmExpectation::Pass => Verdict::Pass,
            ArmExpectation::Fail { .. } => Verdict::Fail,
            ArmExpectation::Unknown => Verdict::Unknown,
        }
    }
}

/// An arm's verdict, whether it met its expectation, and one sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArmOutcome {
    pub verdict: Verdict,
    pub met: bool,
    pub explanation: String,
}

/// The verdict of some check results and fault proofs, and the reasons it is not simply
/// "everything passed", most severe first.
fn verdict_and_reasons(checks: &[CheckResult], faults: &[FaultProof]) -> (Verdict, Vec<String>) {
    let unfired: Vec<&FaultProof> = faults.iter().filter(|f| !f.fired).collect();
    let verdict = match Verdict::combine(checks.iter().map(|c| c.verdict)) {
        None => Verdict::Unknown,
        Some(v) if !unfired.is_empty() => v.and(Verdict::Unknown),
        Some(v) => v,
    };

    // Reasons the arm is not simply "everything passed", most severe first.
    let mut reasons: Vec<String> = Vec::new();
    if checks.is_empty() {
        reasons.push("no check was evaluated".into());
    }
    for level in [Verdict::Fail, Verdict::Error, Verdict::Unknown] {
        for c in checks.iter().filter(|c| c.verdict == level) {
            let how = match level {
                Verdict::Fail => "failed",
                Verdict::Error => "could not be evaluated",
                _ => "is unknown",
            };
            reasons.push(format!(
                "{} {how} ({})",
                c.name,
                clause(c.explanation.as_deref().unwrap_or_default())
            ));
        }
    }
    for f in &unfired {
        reasons.push(format!(
            "fault {} did not provably fire ({})",
            f.name,
            clause(&f.evidence)
        ));
    }

    (verdict, reasons)
}

/// Combine an arm's check results and fault proofs (those of the faults the arm turns on) into
/// its outcome, by the rules in the module documentation.
pub fn arm_outcome(expected: &ArmExpectation, checks: &[CheckResult], faults: &[FaultProof]) -> ArmOutcome {
    let unfired: Vec<&FaultProof> = faults.iter().filter(|f| !f.fired).collect();
    let (verdict, reasons) = verdict_and_reasons(checks, faults);

    let mut met = verdict == expected.verdict() && unfired.is_empty();
    let mut misses: Vec<String> = Vec::new();
    if let ArmExpectation::Fail { failing_checks } = expected {
        for want in failing_checks {
            match checks.iter().find(|c| &c.name == want) {
                None => misses.push(format!("{want} was not evaluated")),
                Some(c) if c.verdict != Verdict::Fail => misses.push(format!("{want} was {}", c.verdict)),
                Some(_) => {}
            }
        }
        let stray: Vec<&str> = checks
            .iter()
            .filter(|c| {
                matches!(c.verdict, Verdict::Fail | Verdict::Error) && !failing_checks.contains(&c.name)
            })
            .map(|c| c.name.as_str())
            .collect();
        if !stray.is_empty() {
            misses.push(format!("{} also went wrong", stray.join(", ")));
        }
        met &= misses.is_empty();
    }
    if !unfired.is_empty() && verdict == expected.verdict() {
        misses.push("the outcome cannot be put down to faults that did not fire".into());
    }

    let mut sentence = if met {
        format!("{verdict} as expected")
    } else if verdict == expected.verdict() {
        format!("{verdict}, but not as expected")
    } else {
        format!("expected {} but got {verdict}", expected.verdict())
    };
    if !misses.is_empty() {
        sentence.push_str(&format!(" ({})", misses.join("; ")));
    }
    finish(&mut sentence, checks, faults, &reasons);
    ArmOutcome {
        verdict,
        met,
        explanation: sentence,
    }
}

/// The outcome of one size of a sweep: a measurement, not a test. Its verdict is made as any
/// arm's and recorded, but judged against no expectation (a storm that does not drain is a
/// result, not a failure). The measurement stands (`met`) only when the verdict is not `error`
/// and every fault provably fired: otherwise the size is not the storm the case describes.
pub fn measured_outcome(checks: &[CheckResult], faults: &[FaultProof]) -> ArmOutcome {
    let (verdict, reasons) = verdict_and_reasons(checks, faults);
    let unfired = faults.iter().any(|f| !f.fired);
    let met = verdict != Verdict::Error && !unfired;
    let mut sentence = format!("{verdict}, measured (a sweep size is not judged)");
    if verdict == Verdict::Error {
        sentence.push_str(" (the measurement does not stand: the harness could not evaluate it)");
    } else if unfired {
        sentence.push_str(" (the measurement does not stand: a fault did not provably fire)");
    }
    finish(&mut sentence, checks, faults, &reasons);
    ArmOutcome {
        verdict,
        met,
        explanation: sentence,
    }
}

/// The end of an outcome's sentence: what passed and fired, or the reasons it did not.
fn finish(sentence: &mut String, checks: &[CheckResult], faults: &[FaultProof], reasons: &[String]) {
    if reasons.is_empty() {
        let fired: Vec<String> = faults
            .iter()
            .map(|f| format!("{} fired ({})", f.name, clause(&f.evidence)))
            .collect();
        match checks.len() {
            1 => sentence.push_str(": its one check passed"),
            n => sentence.push_str(&format!(": all {n} checks passed")),
        }
        if !fired.is_empty() {
            sentence.push_str(&format!(" and {}", fired.join(", ")));
        }
    } else {
        sentence.push_str(": ");
        sentence.push_str(&reasons.join("; "));
    }
    sentence.push('.');
}

/// Turn check `requires` into verdicts: a check some of whose required checks did not pass is
/// `unknown` (its premise does not hold, so neither its pass nor its fail means anything).
/// `requires` gives, per check name, the checks it requires; results keep their order.
pub fn apply_requires(requires: &[(String, Vec<String>)], results: &[CheckResult]) -> Vec<CheckResult> {
    results
        .iter()
        .map(|r| {
            let needed = requires
                .iter()
                .find(|(n, _)| *n == r.name)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            let broken: Vec<String> = needed
                .iter()
                .filter_map(|n| match results.iter().find(|x| &x.name == n) {
                    Some(x) if x.verdict == Verdict::Pass => None,
                    Some(x) => Some(format!("{n} was {}", x.verdict)),
                    None => Some(format!("{n} was not evaluated")),
                })
                .collect();
            if broken.is_empty() {
                r.clone()
            } else {
                CheckResult::unknown(
                    r.name.clone(),
                    format!(
                        "not judged: it requires checks that did not pass ({})",
                        broken.join(", ")
                    ),
                )
            }
        })
        .collect()
}

/// Text made fit to sit inside a sentence: one line, no final full stop.
fn clause(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn verdicts_combine_by_severity() {
        let table: &[(&[Verdict], Option<Verdict>)] = &[
            (&[], None),
            (&[Pass], Some(Pass)),
            (&[Pass, Pass], Some(Pass)),
            (&[Pass, Unknown], Some(Unknown)),
            (&[Unknown, Pass], Some(Unknown)),
            (&[Unknown, Error], Some(Error)),
            (&[Error, Unknown, Pass], Some(Error)),
            (&[Error, Fail], Some(Fail)),
            (&[Fail, Error], Some(Fail)),
            (&[Pass, Fail, Unknown], Some(Fail)),
            (&[Fail, Pass], Some(Fail)),
        ];
        for (vs, want) in table {
            assert_eq!(Verdict::combine(vs.iter().copied()), *want, "{vs:?}");
        }
        for a in [Pass, Unknown, Error, Fail] {
            for b in [Pass, Unknown, Error, Fail] {
                assert_eq!(a.and(b), b.and(a));
            }
        }
        assert_eq!(serde_json::to_string(&Error).unwrap(), "\"error\"");
    }

    #[test]
    fn anything_but_pass_needs_a_one_line_explanation() {
        for v in [Fail, Unknown, Error] {
            assert_eq!(
                CheckResult::new("c", v, None),
                Err(ExplanationError::Missing {
                    name: "c".into(),
                    verdict: v
                })
            );
            assert!(CheckResult::new("c", v, Some("  ".into())).is_err());
            assert!(CheckResult::new("c", v, Some("a\nb".into())).is_err());
            assert_eq!(
                CheckResult::new("c", v, Some("why".into()))
                    .unwrap()
                    .explanation(),
                Some("why")
            );
        }
        assert!(CheckResult::new("c", Pass, None).is_ok());
        assert_eq!(
            CheckResult::new("c", Fail, None).unwrap_err().to_string(),
            "check c: a fail result needs an explanation"
        );
    }

    #[test]
    #[should_panic(expected = "check c: a unknown result needs an explanation")]
    fn the_shorthand_constructors_refuse_blank_reasons() {
        CheckResult::unknown("c", "");
    }

    fn fired(name: &str) -> FaultProof {
        FaultProof {
            name: name.into(),
            fired: true,
            evidence: "rule dropped 3 frames (lan.pcapng frames 41, 57, 90)".into(),
        }
    }

    fn fail_for(checks: &[&str]) -> ArmExpectation {
        ArmExpectation::Fail {
            failing_checks: checks.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn expected_pass_is_met_when_everything_passes_and_the_faults_fired() {
        let o = arm_outcome(
            &ArmExpectation::Pass,
            &[CheckResult::pass("a"), CheckResult::pass("b")],
            &[fired("slow")],
        );
        assert_eq!(o.verdict, Pass);
        assert!(o.met);
        assert_eq!(
            o.explanation,
            "pass as expected: all 2 checks passed and slow fired (rule dropped 3 frames (lan.pcapng frames 41, 57, 90))."
        );
        let o = arm_outcome(&ArmExpectation::Pass, &[CheckResult::pass("a")], &[]);
        assert_eq!(o.explanation, "pass as expected: its one check passed.");
    }

    #[test]
    fn expected_fail_is_met_when_the_named_checks_fail() {
        let checks = [
            CheckResult::pass("mounted"),
            CheckResult::fail("prompt", "wait-imap1 took 31.2 s, over 10 s (steps.log line 7)."),
            CheckResult::unknown(
                "later",
                "not judged: it requires checks that did not pass (x was fail)",
            ),
        ];
        let o = arm_outcome(&fail_for(&["prompt"]), &checks, &[fired("grant-lost")]);
        assert_eq!(o.verdict, Fail);
        assert!(o.met, "{}", o.explanation);
        assert_eq!(
            o.explanation,
            "fail as expected: prompt failed (wait-imap1 took 31.2 s, over 10 s (steps.log line 7)); \
             later is unknown (not judged: it requires checks that did not pass (x was fail))."
        );
    }

    #[test]
    fn expected_fail_for_another_check_is_not_met() {
        let checks = [
            CheckResult::fail("mounted", "mount exited 32 after 30 s"),
            CheckResult::pass("prompt"),
        ];
        let o = arm_outcome(&fail_for(&["prompt"]), &checks, &[fired("grant-lost")]);
        assert_eq!(o.verdict, Fail);
        assert!(!o.met);
        assert_eq!(
            o.explanation,
            "fail, but not as expected (prompt was pass; mounted also went wrong): \
             mounted failed (mount exited 32 after 30 s)."
        );
        // The named check failing too does not excuse a stray failure or error.
        let checks = [
            CheckResult::fail("prompt", "too slow"),
            CheckResult::error("other", "agent gone"),
        ];
        assert!(!arm_outcome(&fail_for(&["prompt"]), &checks, &[]).met);
        // A named check that was never evaluated is not a failure.
        let o = arm_outcome(
            &fail_for(&["prompt", "ghost"]),
            &[CheckResult::fail("prompt", "slow")],
            &[],
        );
        assert!(!o.met);
        assert!(
            o.explanation.contains("ghost was not evaluated"),
            "{}",
            o.explanation
        );
        // An expected failure that passed.
        let o = arm_outcome(&fail_for(&["prompt"]), &[CheckResult::pass("prompt")], &[]);
        assert_eq!((o.verdict, o.met), (Pass, false));
        assert_eq!(
            o.explanation,
            "expected fail but got pass (prompt was pass): its one check passed."
        );
    }

    #[test]
    fn a_fault_that_did_not_fire_makes_a_passing_arm_unknown_and_never_met() {
        let unfired = FaultProof {
            name: "grant-lost".into(),
            fired: false,
            evidence: "rule matched 0 frames on lan between 12.0 s and 72.0 s".into(),
        };
        let o = arm_outcome(
            &ArmExpectation::Pass,
            &[CheckResult::pass("a")],
            std::slice::from_ref(&unfired),
        );
        assert_eq!((o.verdict, o.met), (Unknown, false));
        assert_eq!(
            o.explanation,
            "expected pass but got unknown: fault grant-lost did not provably fire \
             (rule matched 0 frames on lan between 12.0 s and 72.0 s)."
        );
        // A failure stays a failure, but cannot meet an expected failure.
        let checks = [CheckResult::fail("prompt", "too slow")];
        let o = arm_outcome(&fail_for(&["prompt"]), &checks, std::slice::from_ref(&unfired));
        assert_eq!((o.verdict, o.met), (Fail, false));
        assert_eq!(
            o.explanation,
            "fail, but not as expected (the outcome cannot be put down to faults that did not fire): \
             prompt failed (too slow); fault grant-lost did not provably fire \
             (rule matched 0 frames on lan between 12.0 s and 72.0 s)."
        );
        // Expecting unknown is not met by an unfired fault either: that is not what was meant.
        let o = arm_outcome(&ArmExpectation::Unknown, &[CheckResult::pass("a")], &[unfired]);
        assert_eq!((o.verdict, o.met), (Unknown, false));
    }

    #[test]
    fn missing_evidence_and_no_checks_are_unknown_never_pass() {
        let checks = [
            CheckResult::pass("a"),
            CheckResult::unknown(
                "locks",
                "evidence locks-after is missing: the agent on filer timed out",
            ),
        ];
        let o = arm_outcome(&ArmExpectation::Pass, &checks, &[]);
        assert_eq!((o.verdict, o.met), (Unknown, false));
        assert_eq!(
            o.explanation,
            "expected pass but got unknown: locks is unknown \
             (evidence locks-after is missing: the agent on filer timed out)."
        );
        let o = arm_outcome(&ArmExpectation::Pass, &[], &[fired("f")]);
        assert_eq!((o.verdict, o.met), (Unknown, false));
        assert_eq!(
            o.explanation,
            "expected pass but got unknown: no check was evaluated."
        );
        let o = arm_outcome(&ArmExpectation::Unknown, &checks, &[]);
        assert_eq!((o.verdict, o.met), (Unknown, true));
    }

    #[test]
    fn errors_outrank_unknowns_and_fails_outrank_errors() {
        let checks = [
            CheckResult::unknown("u", "no trace"),
            CheckResult::error("e", "agent gone"),
        ];
        assert_eq!(arm_outcome(&ArmExpectation::Pass, &checks, &[]).verdict, Error);
        let checks = [
            checks[0].clone(),
            checks[1].clone(),
            CheckResult::fail("f", "bad"),
        ];
        let o = arm_outcome(&ArmExpectation::Pass, &checks, &[]);
        assert_eq!(o.verdict, Fail);
        assert_eq!(
            o.explanation,
            "expected pass but got fail: f failed (bad); e could not be evaluated (agent gone); u is unknown (no trace)."
        );
    }

    #[test]
    fn required_checks_that_did_not_pass_make_their_dependents_unknown() {
        let requires = vec![
            ("shared".to_string(), vec!["mounted".to_string()]),
            (
                "pop3".to_string(),
                vec!["mounted".to_string(), "ghost".to_string()],
            ),
        ];
        let results = [
            CheckResult::fail("mounted", "mount timed out"),
            CheckResult::fail("shared", "no file"),
            CheckResult::pass("pop3"),
            CheckResult::pass("other"),
        ];
        let out = apply_requires(&requires, &results);
        let got: Vec<(&str, Verdict, Option<&str>)> = out
            .iter()
            .map(|r| (r.name(), r.verdict(), r.explanation()))
            .collect();
        assert_eq!(
            got,
            [
                ("mounted", Fail, Some("mount timed out")),
                (
                    "shared",
                    Unknown,
                    Some("not judged: it requires checks that did not pass (mounted was fail)")
                ),
                (
                    "pop3",
                    Unknown,
                    Some("not judged: it requires checks that did not pass (mounted was fail, ghost was not evaluated)")
                ),
                ("other", Pass, None),
            ]
        );
        let ok = [
            CheckResult::pass("mounted"),
            CheckResult::fail("shared", "no file"),
        ];
        assert_eq!(apply_requires(&requires, &ok), ok);
    }

    #[test]
    fn a_sweep_size_is_measured_not_judged_and_stands_unless_it_errs_or_a_fault_did_not_fire() {
        let failing = [
            CheckResult::pass("mounted"),
            CheckResult::fail("damaged-drain", "never drained"),
        ];
        let o = measured_outcome(&failing, &[fired("damage")]);
        assert_eq!(o.verdict, Fail);
        assert!(o.met, "a storm that does not drain is a result");
        assert_eq!(
            o.explanation,
            "fail, measured (a sweep size is not judged): damaged-drain failed (never drained)."
        );
        let o = measured_outcome(&[CheckResult::pass("mounted")], &[fired("damage")]);
        assert_eq!((o.verdict, o.met), (Pass, true));
        let o = measured_outcome(&[CheckResult::error("mounted", "no agent")], &[fired("damage")]);
        assert_eq!((o.verdict, o.met), (Error, false));
        let unfired = FaultProof {
            name: "damage".into(),
            fired: false,
            evidence: "the command exited 1".into(),
        };
        let o = measured_outcome(&[CheckResult::pass("mounted")], &[unfired]);
        assert_eq!((o.verdict, o.met), (Unknown, false));
        assert_eq!(
            o.explanation,
            "unknown, measured (a sweep size is not judged) (the measurement does not stand: a fault \
             did not provably fire): fault damage did not provably fire (the command exited 1)."
        );
    }
}
