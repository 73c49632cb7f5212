//! One size of a case's sweep, read from its arm's step records: its scaled populations'
//! attempts (through [`crate::metrics::population`]) measured by
//! [`crate::metrics::sweep::measure`], and the `login` and `rebuild` steps' durations, the
//! samples of the model's S0 and Sr. Pure.

use std::collections::BTreeMap;

use crate::case::{Arm, Case};
use crate::metrics::population::parse;
use crate::metrics::sweep::{measure, PopulationRun};
use crate::results::sweep::SweepPoint;
use crate::run::record::{snippet, StepOutcome, StepRecord};

/// What the arm measured, when it is one size of its case's sweep.
pub fn point(case: &Case, arm: &Arm, steps: &BTreeMap<String, StepRecord>) -> Option<SweepPoint> {
    let size = arm.sweep.as_ref()?;
    let runs: Vec<PopulationRun> = size
        .users
        .iter()
        .map(|(step, &users)| PopulationRun {
            step: step.clone(),
            users,
            transcript: steps
                .get(step)
                .ok_or_else(|| "the step has no record".to_string())
                .and_then(|rec| whole(rec).map(|()| rec))
                .and_then(|rec| {
                    let started = rec.started_s.ok_or("the step never started")?;
                    parse(&rec.output, started).map_err(|e| e.to_string())
                }),
        })
        .collect();
    let m = measure(&runs);
    let mut notes = Vec::new();
    let mut duration = |which: &str, step: Option<&str>| {
        let step = step?;
        let rec = steps.get(step);
        match rec.map(|r| (&r.outcome, session_s(&r.output).or(r.duration_s))) {
            Some((StepOutcome::Ok, Some(d))) if d.is_finite() => Some(d),
            _ => {
                let why = rec.map_or("it has no record".to_string(), |r| {
                    format!("{} did not succeed", r.describe())
                });
                notes.push(format!("no {which} sample: {why}"));
                None
            }
        }
    };
    let model = case.sweep.as_ref().map(|s| &s.model);
    let login_s = duration("S0", model.map(|m| m.login.as_str()));
    let rebuild_s = duration("Sr", model.map(|m| m.rebuild.as_str()));
    Some(SweepPoint {
        arm: size.arm.clone(),
        scale: size.scale.get(),
        populations: size.users.clone(),
        users: m.users,
        measured: m.measured,
        users_ok: m.users_ok,
        problem: m.problem,
        login_s,
        rebuild_s,
        notes,
    })
}

/// A sweep size an arm did not get to measure (interrupted, or its lab did not start).
pub fn unmeasured(arm: &Arm, why: &str) -> Option<SweepPoint> {
    let size = arm.sweep.as_ref()?;
    Some(SweepPoint {
        arm: size.arm.clone(),
        scale: size.scale.get(),
        populations: size.users.clone(),
        users: size.users.values().sum(),
        measured: None,
        users_ok: None,
        problem: Some(why.to_string()),
        login_s: None,
        rebuild_s: None,
        notes: Vec::new(),
    })
}

/// A population's record is whole: the client ran to its end and its output was not cut.
fn whole(rec: &StepRecord) -> Result<(), String> {
    match &rec.outcome {
        StepOutcome::Ok if rec.truncated => Err("the guest agent cut its output short".into()),
        StepOutcome::Ok => Ok(()),
        StepOutcome::Skipped => Err("the step was skipped in this arm".into()),
        StepOutcome::Failed(why) | StepOutcome::TimedOut(why) | StepOutcome::Error(why) => {
            Err(format!("its client did not run whole ({})", snippet(why, 160)))
        }
    }
}

/// A mail session's whole time at the server, connect to last answer (the client's
/// `faultline-session` line): the model's service time is a session's, not its last command's.
fn session_s(output: &str) -> Option<f64> {
    output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("faultline-session "))
        .and_then(|d| d.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn case() -> Case {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/case/testdata/sweep-storm.toml");
        crate::case::load(&file).unwrap()
    }

    fn rec(name: &str, outcome: StepOutcome, started: f64, duration: f64, output: &str) -> StepRecord {
        StepRecord {
            started_s: Some(started),
            ended_s: Some(started + duration),
            outcome,
            duration_s: Some(duration),
            output: output.into(),
            ..StepRecord::new(name, Some("client"))
        }
    }

    /// Users 1..=n, user i logging in at i/10 s.
    fn all_ok(n: u32) -> String {
        let mut s = String::from("100.000 population start users=0 workers=1\n");
        for i in 1..=n {
            s.push_str(&format!(
                "{:.3} attempt {i} 1 ok 100 command2\n",
                100.0 + f64::from(i) / 10.0
            ));
        }
        s.push_str("150.000 population end attempts=0 ok=0 timeout=0 refused=0 error=0 users=0 never_ok=0 peak_open=0 cpu_pct=1.0 wall_s=50.0\n");
        s
    }

    #[test]
    fn a_size_is_read_from_its_populations_and_its_service_time_steps() {
        let c = case();
        let arm = &c.sweep_arms()[1];
        assert_eq!(arm.name, "storm@x2");
        let d = arm.sweep.as_ref().unwrap().users["damaged"];
        let h = arm.sweep.as_ref().unwrap().users["healthy"];
        let steps: BTreeMap<String, StepRecord> = [
            rec("one-login", StepOutcome::Ok, 5.0, 0.12, ""),
            rec(
                "one-rebuild",
                StepOutcome::Failed("exited 1".into()),
                6.0,
                2.5,
                "",
            ),
            rec("damaged", StepOutcome::Ok, 10.0, 50.0, &all_ok(d)),
            rec("healthy", StepOutcome::Ok, 20.0, 50.0, &all_ok(h)),
        ]
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
        let p = point(&c, arm, &steps).unwrap();
        insta::assert_json_snapshot!(p);
        // A population that did not run whole leaves the size unmeasured.
        let mut cut = steps.clone();
        cut.get_mut("healthy").unwrap().truncated = true;
        let p = point(&c, arm, &cut).unwrap();
        assert_eq!(p.measured, None);
        assert_eq!(
            p.problem.as_deref(),
            Some("population `healthy`: the guest agent cut its output short")
        );
        // An arm of the case's own is no size.
        assert_eq!(point(&c, &c.arms[0], &steps), None);
    }

    #[test]
    fn a_mail_sessions_service_time_is_connect_to_last_answer_not_its_last_command() {
        let c = case();
        let arm = &c.sweep_arms()[0];
        let out = "1.0 C: a LOGIN x y\nfaultline-duration 0.120\nfaultline-session 0.480\nfaultline-local-port 4000\n";
        let steps: BTreeMap<String, StepRecord> = [rec("one-login", StepOutcome::Ok, 5.0, 0.12, out)]
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let p = point(&c, arm, &steps).unwrap();
        assert_eq!(p.login_s, Some(0.48));
    }

    #[test]
    fn a_size_unfinished_is_unmeasured_and_expects_no_check_to_fail() {
        let c = case();
        let arm = &c.sweep_arms()[0];
        let r = crate::run::unfinished(&c, arm, "faultline run x --sweep".into());
        assert_eq!(r.arm, "storm@x1");
        assert!(r.failing_checks.is_empty(), "a size is not judged");
        let p = r.sweep.unwrap();
        assert_eq!((p.users, p.measured), (11, None));
        assert_eq!(p.problem.as_deref(), Some("the arm did not finish"));
        // The case's own arm keeps its expectation.
        let own = crate::run::unfinished(&c, c.arm("storm").unwrap(), String::new());
        assert_eq!(own.failing_checks, ["drains"]);
        assert_eq!(own.sweep, None);
    }
}
