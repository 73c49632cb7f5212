//! One size of a sweep as the lab measured it: whether the storm of its scaled populations
//! drained, and when — the lab's side of [`super::model::compare`].
//!
//! A size's users U are the scaled populations' users together. It drained when every one of
//! them had an `ok` attempt by the end of its population; its drain time is the latest of those
//! users' first `ok` attempts' end times, counted from the earliest start of the populations.
//!
//! Architecture invariant: pure. A size is measured only from whole evidence: a population
//! whose output is missing, unreadable, or cut short (its client never printed its summary
//! line) leaves the size unmeasured, saying why — never "drained", and never "did not drain"
//! either (a cut-short count would read as a storm that ended early).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Measured;
use super::population::{AttemptOutcome, Transcript};

/// One scaled population as its arm ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationRun {
    pub step: String,
    /// Its users at this size (numbered 1..=users).
    pub users: u32,
    /// Its output, read (`population::parse`, placed at the step's start); `Err`: why there
    /// is none to read.
    pub transcript: Result<Transcript, String>,
}

/// What one size measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeMeasure {
    /// U: the scaled populations' users together.
    pub users: u32,
    /// `None` when the size could not be measured (`problem` says why).
    pub measured: Option<Measured>,
    /// Users with at least one `ok` attempt (when measured).
    pub users_ok: Option<u32>,
    /// Why the size is not measured.
    pub problem: Option<String>,
}

/// The size made of `populations` (module docs).
pub fn measure(populations: &[PopulationRun]) -> SizeMeasure {
    let users: u32 = populations.iter().map(|p| p.users).sum();
    let unmeasured = |problem: String| SizeMeasure {
        users,
        measured: None,
        users_ok: None,
        problem: Some(problem),
    };
    if populations.is_empty() {
        return unmeasured("no population to measure".into());
    }
    let mut start = f64::INFINITY;
    let mut ok_users = 0u32;
    let mut last_first_ok = f64::NEG_INFINITY;
    for p in populations {
        let tr = match &p.transcript {
            Ok(tr) => tr,
            Err(why) => return unmeasured(format!("population `{}`: {why}", p.step)),
        };
        if tr.summary.is_none() {
            return unmeasured(format!(
                "population `{}`: its client did not get to its end (no summary line), so who \
                 never logged in is not known",
                p.step
            ));
        }
        start = start.min(tr.start);
        // Each user's first success.
        let mut first_ok: BTreeMap<u32, f64> = BTreeMap::new();
        for a in tr
            .attempts
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Ok && (1..=p.users).contains(&a.user))
        {
            let t = first_ok.entry(a.user).or_insert(a.t);
            *t = t.min(a.t);
        }
        ok_users += first_ok.len() as u32;
        if let Some(t) = first_ok.values().copied().reduce(f64::max) {
            last_first_ok = last_first_ok.max(t);
        }
    }
    let drained = ok_users == users;
    SizeMeasure {
        users,
        measured: Some(Measured {
            users,
            drained,
            drain_time_s: drained.then(|| ((last_first_ok - start) * 1000.0).round() / 1000.0),
        }),
        users_ok: Some(ok_users),
        problem: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::population::parse;

    /// Population `d`: 3 users from t=10; user 2 times out twice and logs in at 31.5 s, user 3
    /// at 12.25 s; a garbage line and an attempt of a user the population does not have.
    const DAMAGED: &str = "\
500.000 population start users=3 workers=1
500.400 attempt 1 1 ok 350 command2
501.000 open 0 3 0.01
505.000 attempt 2 1 timeout 5000 command2
502.250 attempt 3 1 ok 2000 command2
garbage
510.100 attempt 2 2 timeout 5000 login
521.500 attempt 2 3 ok 800 command2
522.000 attempt 9 1 ok 10 command2
525.000 attempt 1 1 ok 300 command2
530.000 population end attempts=6 ok=4 timeout=2 refused=0 error=0 users=3 never_ok=0 peak_open=3 cpu_pct=1.0 wall_s=30.0
";

    /// Population `h`: 2 users from t=30; user 2 never logs in.
    const HEALTHY: &str = "\
700.000 population start users=2 workers=1
700.100 attempt 1 1 ok 100 command2
705.000 attempt 2 1 refused 3 greeting connection closed by the server
710.000 attempt 2 2 timeout 5000 login
720.000 population end attempts=3 ok=1 timeout=1 refused=1 error=0 users=2 never_ok=1 peak_open=2 cpu_pct=1.0 wall_s=20.0
";

    fn run(step: &str, users: u32, text: &str, started: f64) -> PopulationRun {
        PopulationRun {
            step: step.into(),
            users,
            transcript: parse(text, started).map_err(|e| e.to_string()),
        }
    }

    #[test]
    fn a_storm_drains_when_every_user_logged_in_and_not_before_the_last() {
        let got = measure(&[run("d", 3, DAMAGED, 10.0)]);
        assert_eq!(
            got.measured,
            Some(Measured {
                users: 3,
                drained: true,
                drain_time_s: Some(21.5)
            })
        );
        assert_eq!(got.users_ok, Some(3));
    }

    #[test]
    fn one_user_who_never_logged_in_keeps_the_storm_undrained() {
        let got = measure(&[run("d", 3, DAMAGED, 10.0), run("h", 2, HEALTHY, 30.0)]);
        insta::assert_json_snapshot!(got, @r#"
        {
          "users": 5,
          "measured": {
            "users": 5,
            "drained": false,
            "drain_time_s": null
          },
          "users_ok": 4,
          "problem": null
        }
        "#);
    }

    #[test]
    fn the_drain_time_counts_from_the_earliest_population_start() {
        // The healthy users all log in; the damaged ones start 20 s before them.
        let all_ok = HEALTHY.replace(
            "710.000 attempt 2 2 timeout 5000 login",
            "710.000 attempt 2 2 ok 900 command2",
        );
        let got = measure(&[run("h", 2, &all_ok, 30.0), run("d", 3, DAMAGED, 10.0)]);
        let m = got.measured.unwrap();
        assert!(m.drained);
        // The last first success: healthy user 2 at 30 + 10 = 40 s, from the start at 10 s.
        assert_eq!(m.drain_time_s, Some(30.0));
    }

    #[test]
    fn missing_or_cut_short_output_is_not_measured_and_says_why() {
        let cut = DAMAGED.lines().take(5).collect::<Vec<_>>().join("\n");
        let rows = [
            measure(&[run("d", 3, &cut, 10.0)]),
            measure(&[
                run("d", 3, DAMAGED, 10.0),
                PopulationRun {
                    step: "h".into(),
                    users: 2,
                    transcript: Err("the step was skipped in this arm".into()),
                },
            ]),
            measure(&[run("d", 3, "no start line here\n", 10.0)]),
            measure(&[]),
        ];
        for r in &rows {
            assert_eq!(r.measured, None, "{r:?}");
            assert_eq!(r.users_ok, None);
        }
        insta::assert_json_snapshot!(rows.iter().map(|r| (r.users, r.problem.clone())).collect::<Vec<_>>(), @r#"
        [
          [
            3,
            "population `d`: its client did not get to its end (no summary line), so who never logged in is not known"
          ],
          [
            5,
            "population `h`: the step was skipped in this arm"
          ],
          [
            3,
            "population `d`: the client printed no `population start` line: its times cannot be placed on the workload's clock"
          ],
          [
            0,
            "no population to measure"
          ]
        ]
        "#);
    }
}
