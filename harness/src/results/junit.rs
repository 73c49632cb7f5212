//! `junit.xml`: one test suite per case, one test case per arm.
//!
//! An arm "passes" in JUnit terms when it met its expectation, so an expected failure that
//! failed for its stated reason is green in CI; its finding still shows in `<system-out>`. A
//! size of a sweep is a measurement: it passes when the measurement stands, whatever its
//! verdict (a storm that does not drain is a result).
//! Everything written here may hold guest-derived text, so every piece of it goes through
//! [`attr`] or [`text`].

use super::escape::{xml_attr as attr, xml_text as text};
use super::{ArmRecord, RunRecord};
use crate::case::Verdict;

pub fn render(run: &RunRecord) -> String {
    let cases = by_case(&run.arms);
    let (failures, errors) = tally(&run.arms);
    let total: f64 = run.arms.iter().map(|a| a.duration_s).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"faultline\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{}\">\n",
        run.arms.len(),
        seconds(total),
    ));
    for (case, arms) in &cases {
        let (failures, errors) = tally(arms.iter().copied());
        let time: f64 = arms.iter().map(|a| a.duration_s).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{}\">\n",
            attr(case),
            arms.len(),
            seconds(time),
        ));
        for arm in arms {
            testcase(&mut out, arm);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// How an arm shows in JUnit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failure,
    /// The harness could not judge the arm: CI tools tell these apart from real failures.
    Error,
}

fn outcome(arm: &ArmRecord) -> Outcome {
    match (arm.met, arm.verdict) {
        (true, _) => Outcome::Passed,
        (false, Verdict::Error) => Outcome::Error,
        (false, _) => Outcome::Failure,
    }
}

/// (failures, errors).
fn tally<'a>(arms: impl IntoIterator<Item = &'a ArmRecord>) -> (usize, usize) {
    arms.into_iter().fold((0, 0), |(f, e), arm| match outcome(arm) {
        Outcome::Passed => (f, e),
        Outcome::Failure => (f + 1, e),
        Outcome::Error => (f, e + 1),
    })
}

/// Arms grouped by case, cases in the order they first appear (a rerun of a single arm may
/// interleave them, and JUnit readers expect one suite per name).
fn by_case(arms: &[ArmRecord]) -> Vec<(&str, Vec<&ArmRecord>)> {
    let mut cases: Vec<(&str, Vec<&ArmRecord>)> = Vec::new();
    for arm in arms {
        match cases.iter_mut().find(|(c, _)| *c == arm.case) {
            Some((_, list)) => list.push(arm),
            None => cases.push((&arm.case, vec![arm])),
        }
    }
    cases
}

fn testcase(out: &mut String, arm: &ArmRecord) {
    out.push_str(&format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\">\n",
        attr(&arm.case),
        attr(&arm.arm),
        seconds(arm.duration_s),
    ));
    let element = match outcome(arm) {
        Outcome::Passed => None,
        Outcome::Failure => Some("failure"),
        Outcome::Error => Some("error"),
    };
    if let Some(element) = element {
        let message = match &arm.sweep {
            Some(_) => format!(
                "a sweep size whose measurement does not stand ({}): {}",
                arm.verdict, arm.explanation
            ),
            None => format!(
                "expected {}, got {}: {}",
                arm.expected, arm.verdict, arm.explanation
            ),
        };
        let open = format!(
            "      <{element} message=\"{}\" type=\"{}\"",
            attr(&message),
            arm.verdict
        );
        let body = failure_body(arm);
        if body.is_empty() {
            out.push_str(&format!("{open}/>\n"));
        } else {
            out.push_str(&format!("{open}>{}</{element}>\n", text(&body)));
        }
    }
    let judged = match &arm.sweep {
        Some(p) => format!(
            "a sweep size, measured and not judged: scale {} of arm {}, {} users, {}{}",
            p.scale,
            p.arm,
            p.users,
            match (&p.measured, &p.problem) {
                (Some(m), _) if m.drained =>
                    format!("drained in {:.1} s", m.drain_time_s.unwrap_or_default()),
                (Some(_), _) => "did not drain".to_string(),
                (None, why) => format!("not measured ({})", why.as_deref().unwrap_or("no measurement")),
            },
            if arm.met {
                "; the measurement stands"
            } else {
                "; the measurement does not stand"
            }
        ),
        None => format!(
            "expected {}{}",
            arm.expected,
            if arm.met { ", met" } else { ", not met" }
        ),
    };
    let mut system_out = format!(
        "verdict: {} ({judged})\n{}\ndir: {}\nrerun: {}\n",
        arm.verdict, arm.explanation, arm.dir, arm.rerun,
    );
    if let Some(story) = &arm.story {
        system_out.push_str(&format!("scenario: {story}\n"));
    }
    if let Some(finding) = &arm.finding {
        system_out.push_str(&format!("finding: {finding}\n"));
    }
    // Checks left out of the verdict still reach CI: a green arm may carry a failing one.
    for check in arm.checks.iter().filter(|c| !c.counted) {
        system_out.push_str(&format!(
            "report only (not counted): check {}: {}{}\n",
            check.name,
            check.verdict,
            check
                .explanation
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!("      <system-out>{}</system-out>\n", text(&system_out)));
    out.push_str("    </testcase>\n");
}

/// What went wrong, one line each: the checks that did not pass, the named failing checks that
/// were never evaluated, and the faults that did not fire (the arm's outcome cannot be put
/// down to those).
fn failure_body(arm: &ArmRecord) -> String {
    let mut lines = Vec::new();
    for check in arm.checks.iter().filter(|c| c.verdict != Verdict::Pass) {
        let why = check.explanation.as_deref().unwrap_or("no explanation");
        lines.push(format!("check {}: {}: {why}", check.name, check.verdict));
    }
    for name in &arm.failing_checks {
        if !arm.checks.iter().any(|c| &c.name == name) {
            lines.push(format!("check {name}: not evaluated (expected to fail)"));
        }
    }
    for fault in arm.faults.iter().filter(|f| !f.fired) {
        lines.push(format!("fault {} did not fire: {}", fault.name, fault.evidence));
    }
    if lines.is_empty() {
        return String::new();
    }
    lines.join("\n") + "\n"
}

/// Seconds as JUnit wants them; a non-finite or negative time (a clock gone wrong) is 0 rather
/// than something a CI parser chokes on.
fn seconds(s: f64) -> String {
    let s = if s.is_finite() && s > 0.0 { s } else { 0.0 };
    format!("{s:.3}")
}

#[cfg(test)]
pub(in crate::results) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::results::{CheckRecord, FaultRecord, MeasureRecord};

    fn check(name: &str, verdict: Verdict, explanation: Option<&str>) -> CheckRecord {
        CheckRecord {
            name: name.into(),
            verdict,
            explanation: explanation.map(String::from),
            counted: true,
        }
    }

    /// Two arms of one case (one met pass; one unmet fail with a finding, an unfired fault and
    /// hostile guest text) and an errored arm of another case. Shared with the HTML tests.
    pub(in crate::results) fn fixture() -> RunRecord {
        let baseline = ArmRecord {
            case: "nfs-lock".into(),
            arm: "baseline".into(),
            summary: "A POSIX lock survives a server restart.".into(),
            expected: Verdict::Pass,
            failing_checks: vec![],
            verdict: Verdict::Pass,
            met: true,
            explanation: "pass as expected: all 2 checks passed.".into(),
            finding: None,
            story: None,
            duration_s: 41.25,
            lab_ready_s: 20.5,
            workload_s: 12.0,
            skipped_checks: Vec::new(),
            checks: vec![
                check("locked", Verdict::Pass, None),
                check("released", Verdict::Pass, None),
            ],
            measures: vec![
                MeasureRecord {
                    name: "opened".into(),
                    what: "messages the second login opened".into(),
                    value: Some("0".into()),
                    number: Some(0.0),
                    unit: Some("messages".into()),
                    source: "step `opened-second` on imap1 (t=35.9–36.5 s)".into(),
                    problem: None,
                },
                MeasureRecord {
                    name: "stat".into(),
                    what: "the second STAT's latency <ms>".into(),
                    value: None,
                    number: None,
                    unit: Some("s".into()),
                    source: "step `second` on client".into(),
                    problem: Some("the step was skipped in this arm & so <none>".into()),
                },
            ],
            faults: vec![],
            traces: vec![],
            dir: "nfs-lock/baseline".into(),
            rerun: "faultline run --case nfs-lock --arm baseline".into(),
            images: BTreeMap::new(),
            variant: None,
            metrics: None,
            healthy_arm: None,
            warnings: None,
            sweep: None,
        };
        let grant_lost = ArmRecord {
            case: "nfs-lock".into(),
            arm: "grant-lost".into(),
            summary: "A POSIX lock survives a server restart.".into(),
            expected: Verdict::Fail,
            failing_checks: vec!["prompt".into(), "ghost".into()],
            verdict: Verdict::Fail,
            met: false,
            explanation: "fail, but not as expected: mounted failed (guest said <script>alert(1)</script> \
                          & \u{0}bye \"quoted\")."
                .into(),
            story: None,
            finding: Some("lockd drops a GRANTED callback & never retries it.".into()),
            duration_s: 63.5,
            lab_ready_s: 21.0,
            workload_s: 30.0,
            skipped_checks: Vec::new(),
            checks: vec![
                check(
                    "mounted",
                    Verdict::Fail,
                    Some("mount said <b>no</b> & gave up\u{7}"),
                ),
                check("prompt", Verdict::Pass, None),
                check("later", Verdict::Unknown, Some("not judged: it requires mounted")),
            ],
            measures: vec![],
            faults: vec![
                FaultRecord {
                    name: "grant-lost".into(),
                    fired: false,
                    evidence: "rule matched 0 frames on lan between 2.0 s and 8.0 s".into(),
                    started_s: Some(2.0),
                    ended_s: Some(8.0),
                },
                FaultRecord {
                    name: "slow-disk".into(),
                    fired: true,
                    evidence: "tc qdisc add exited 0 (steps.log line 3)".into(),
                    started_s: Some(1.0),
                    ended_s: None,
                },
            ],
            traces: vec![],
            dir: "nfs-lock/grant-lost".into(),
            rerun: "faultline run --case nfs-lock --arm grant-lost".into(),
            images: BTreeMap::new(),
            variant: None,
            metrics: None,
            healthy_arm: None,
            warnings: None,
            sweep: None,
        };
        let agent_gone = ArmRecord {
            case: "imap-idle".into(),
            arm: "partition".into(),
            summary: "IDLE notices a new message after a partition heals.".into(),
            expected: Verdict::Pass,
            failing_checks: vec![],
            verdict: Verdict::Error,
            met: false,
            explanation: "expected pass but got error: notified could not be evaluated (agent gone).".into(),
            finding: None,
            story: None,
            duration_s: 12.0,
            lab_ready_s: 11.0,
            workload_s: 0.5,
            skipped_checks: Vec::new(),
            checks: vec![check("notified", Verdict::Error, Some("agent gone"))],
            measures: vec![],
            faults: vec![],
            traces: vec![],
            dir: "imap-idle/partition".into(),
            rerun: "faultline run --case imap-idle --arm partition".into(),
            images: BTreeMap::new(),
            variant: None,
            metrics: None,
            healthy_arm: None,
            warnings: None,
            sweep: None,
        };
        RunRecord {
            run_id: "20261128-191530-ab12".into(),
            started_unix: 1_795_893_330.0,
            accel: "kvm".into(),
            arms: vec![baseline, grant_lost, agent_gone],
            versions: BTreeMap::from([
                ("faultline".to_string(), "0.1.0".to_string()),
                ("qemu".to_string(), "9.2.0".to_string()),
                ("filer kernel".to_string(), "6.12.5-amd64".to_string()),
            ]),
            rerun: "faultline run --case nfs-lock --case imap-idle".into(),
            merged: None,
            images: Vec::new(),
            variants: None,
            sweeps: Vec::new(),
        }
    }

    #[test]
    fn a_sweep_size_that_did_not_drain_passes_while_its_measurement_stands() {
        let mut run = crate::results::sweep::tests::sweep_run();
        let failed = run.arms.iter().position(|a| a.verdict == Verdict::Fail).unwrap();
        run.arms[failed].met = true;
        let xml = render(&run);
        let case = xml
            .split("<testcase ")
            .find(|t| t.contains("name=\"storm@x3.5\""))
            .unwrap();
        assert!(!case.contains("<failure"), "{case}");
        assert!(
            case.contains(
                "verdict: fail (a sweep size, measured and not judged: scale 3.5 of arm storm, 39 users, did not drain; the measurement stands)"
            ),
            "{case}"
        );
        run.arms[failed].met = false;
        let xml = render(&run);
        assert!(xml.contains("message=\"a sweep size whose measurement does not stand (fail): "));
    }

    #[test]
    fn junit_xml() {
        insta::assert_snapshot!(render(&fixture()));
    }

    #[test]
    fn hostile_text_is_escaped_and_forbidden_characters_replaced() {
        let xml = render(&fixture());
        assert!(!xml.contains("<script"));
        assert!(!xml.contains('\u{0}') && !xml.contains('\u{7}'));
        assert_eq!(attr("a\r\n\tb"), "a&#13;&#10;&#9;b");
        assert_eq!(text("a\r\n\tb"), "a&#13;\n\tb");
        assert_eq!(
            text("\u{1b}[31m\u{85}\u{fffe}\u{1fffe}ok"),
            "\u{fffd}[31m\u{fffd}\u{fffd}\u{fffd}ok"
        );
    }

    #[test]
    fn report_only_results_reach_ci_in_system_out() {
        let mut run = fixture();
        run.arms[0].finding = Some("stock software fails the first try".into());
        run.arms[0].checks.push(CheckRecord {
            counted: false,
            ..check("first-try", Verdict::Fail, Some("NO [SERVERBUG] & gave up"))
        });
        let xml = render(&run);
        assert!(
            xml.contains("report only (not counted): check first-try: fail: NO [SERVERBUG] &amp; gave up\n"),
            "{xml}"
        );
        // Still met, still green: only reported.
        assert_eq!(tally(&run.arms), (1, 1));
    }

    #[test]
    fn counts_and_grouping() {
        let mut run = fixture();
        // An arm of the first case run again after the second: still the first suite.
        let mut again = run.arms[0].clone();
        again.arm = "baseline-again".into();
        run.arms.push(again);
        let cases = by_case(&run.arms);
        let names: Vec<(&str, usize)> = cases.iter().map(|(c, a)| (*c, a.len())).collect();
        assert_eq!(names, [("nfs-lock", 3), ("imap-idle", 1)]);
        assert_eq!(tally(&run.arms), (1, 1));
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(-1.0), "0.000");
    }
}
