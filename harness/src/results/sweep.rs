//! `run.json`'s `sweeps`: a case's `[sweep]` as the run measured it, beside what the cascade
//! model (`metrics::model`) predicts for the same sizes from inputs the run measured or the
//! case states — the inputs with where each came from, each size measured and predicted,
//! their comparison and the closed-form estimates.
//!
//! Each sweep arm's record carries its own size's measurement ([`SweepPoint`], made when the
//! arm ran); [`build`] makes the sweep's record from those records and the case alone, so it
//! can be made again after every arm, and a run with some sizes missing or unmeasured still
//! gets one (partial results are always written).
//!
//! Architecture invariant: pure. A size that was not measured is listed with why, and is
//! never compared; the model runs only when both service times were measured.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ArmRecord;
use crate::case::{self, Case, Population, RetryPolicy, StepKind, Verdict};
use crate::metrics::model::{self, ClosedForm, Comparison, Measured, Params, Prediction};

/// An arm record's `sweep`: what one size of its case's sweep measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The case's arm this is a size of.
    pub arm: String,
    pub scale: f64,
    /// Each scaled population's users at this size.
    pub populations: BTreeMap<String, u32>,
    /// U: those users together.
    pub users: u32,
    /// `None` when the size was not measured (`problem` says why).
    pub measured: Option<Measured>,
    /// Users with at least one `ok` attempt.
    pub users_ok: Option<u32>,
    pub problem: Option<String>,
    /// The sweep's `login` and `rebuild` steps' durations in this arm (samples of S0 and Sr),
    /// when they succeeded.
    pub login_s: Option<f64>,
    pub rebuild_s: Option<f64>,
    /// Why a duration is missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One entry of `run.json`'s `sweeps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub case: String,
    /// The case's arm that was swept.
    pub arm: String,
    /// The scaled populations, and which of them holds the damaged mailboxes.
    pub populations: Vec<String>,
    pub damaged: String,
    /// Every scale of the case's sweep (`measured` lists those that ran).
    pub scale: Vec<f64>,
    /// The model's inputs; `None` when S0 or Sr could not be measured (`problems`).
    pub params: Option<Params>,
    /// The inputs as the report shows them: symbol, value and where each came from.
    pub inputs: Vec<SweepInput>,
    /// Each size that ran, smallest first.
    pub measured: Vec<SweepSize>,
    /// The model at each size that ran.
    pub predictions: Vec<Prediction>,
    /// Measured against predicted, over the measured sizes.
    pub comparison: Option<Comparison>,
    pub closed_form: Option<ClosedForm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One size of a sweep, as its arm ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSize {
    pub scale: f64,
    /// The arm's name in the run (`<arm>@x<scale>`) and its folder.
    pub arm: String,
    pub dir: String,
    /// The arm's verdict: recorded, not judged.
    pub verdict: Verdict,
    pub users: u32,
    pub measured: Option<Measured>,
    pub users_ok: Option<u32>,
    pub problem: Option<String>,
}

/// A model input: its symbol (`N`, `S0`, …), its value as shown, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepInput {
    pub symbol: String,
    pub value: String,
    pub source: String,
}

/// The sweeps of `cases` that have at least one size among `arms`.
pub fn records(cases: &[Case], arms: &[ArmRecord]) -> Vec<SweepRecord> {
    cases.iter().filter_map(|c| build(c, arms)).collect()
}

/// The sweep of `case` (as written, with its swept arm: not [`Case::sweep_case`]) from the
/// run's arm records; `None` when the case has no sweep or none of its sizes is among `arms`.
pub fn build(case: &Case, arms: &[ArmRecord]) -> Option<SweepRecord> {
    let sweep = case.sweep.as_ref()?;
    let base = case.arm(&sweep.arm)?;
    let ran: Vec<(&ArmRecord, &SweepPoint)> = sweep
        .scale
        .iter()
        .filter_map(|&s| {
            let name = sweep.arm_name(s);
            let a = arms.iter().find(|a| a.case == case.name && a.arm == name)?;
            Some((a, a.sweep.as_ref()?))
        })
        .collect();
    if ran.is_empty() {
        return None;
    }
    let mut problems = Vec::new();
    let measured: Vec<SweepSize> = ran
        .iter()
        .map(|(a, p)| SweepSize {
            scale: p.scale,
            arm: a.arm.clone(),
            dir: a.dir.clone(),
            verdict: a.verdict,
            users: p.users,
            measured: p.measured,
            users_ok: p.users_ok,
            problem: p.problem.clone(),
        })
        .collect();
    for (a, p) in &ran {
        problems.extend(p.notes.iter().map(|n| format!("{}: {n}", a.arm)));
    }

    // The populations as the swept arm runs them, before scaling.
    let pops: Vec<(&str, Population)> = sweep
        .populations
        .iter()
        .filter_map(|name| match case.step(name).map(|s| &s.kind) {
            Some(StepKind::Population(p)) => Some((name.as_str(), base.population(name, p))),
            _ => None,
        })
        .collect();
    let total: u32 = pops.iter().map(|(_, p)| p.users).sum();
    let damaged = pops.iter().find(|(n, _)| *n == sweep.damaged).map(|(_, p)| p)?;
    let f = f64::from(damaged.users) / f64::from(total.max(1));
    let m = &sweep.model;
    let s0 = median_of(&ran, |p| p.login_s, &m.login);
    let sr = median_of(&ran, |p| p.rebuild_s, &m.rebuild);
    let (retry, retry_note) = retry(damaged);
    let d = &sweep.damaged;
    let mut inputs = vec![input("N", m.slots.to_string(), "[sweep.model] slots")];
    for (symbol, got) in [("S0", &s0), ("Sr", &sr)] {
        match got {
            Ok((v, source)) => inputs.push(input(symbol, format!("{v:.3} s"), source)),
            Err(why) => {
                inputs.push(input(symbol, "—".into(), why));
                problems.push(format!("no {symbol}: {why}; the model was not run"));
            }
        }
    }
    inputs.extend([
        input(
            "f",
            format!("{f:.3}"),
            &format!(
                "population `{d}`: {} of the {total} users of {}, as arm `{}` runs them",
                damaged.users,
                list(&sweep.populations),
                sweep.arm
            ),
        ),
        input(
            "T",
            secs(damaged.attempt_timeout),
            &format!("`{d}` attempt_timeout"),
        ),
        input(
            "retry",
            retry_text(retry),
            &format!(
                "`{d}` retry{}",
                retry_note.map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        ),
        input("A", secs(damaged.arrivals), &format!("`{d}` arrivals")),
        input(
            "H₁",
            secs(damaged.hold.unwrap_or_default()),
            &match damaged.hold {
                Some(_) => format!("`{d}` hold"),
                None => format!("`{d}` has no hold: it logs out at once"),
            },
        ),
        input(
            "poll",
            damaged.repeat_after.map_or("—".into(), secs),
            &match damaged.repeat_after {
                Some(_) => format!("`{d}` repeat_after: a user that logged in comes back"),
                None => format!("`{d}` has no repeat_after: a user is done after one login"),
            },
        ),
        input(
            "H",
            secs(damaged.duration),
            &format!("`{d}` duration (no attempt starts after it)"),
        ),
        input(
            "cpus",
            m.cpus.map_or("—".into(), |c| c.to_string()),
            if m.cpus.is_some() {
                "[sweep.model] cpus"
            } else {
                "not given: sessions never slow each other, only the slots limit them"
            },
        ),
        input(
            "notice",
            m.notice.map_or("—".into(), secs),
            if m.notice.is_some() {
                "[sweep.model] notice"
            } else {
                "not given: an abandoned session runs to its end"
            },
        ),
        input(
            "work",
            match m.abandoned_work {
                case::AbandonedWork::Kept => "kept".into(),
                case::AbandonedWork::Lost => "lost".into(),
            },
            "[sweep.model] abandoned_work: what becomes of a rebuild whose client left",
        ),
        input("seed", m.seed.to_string(), "[sweep.model] seed (back-off jitter)"),
    ]);

    let params = match (&s0, &sr) {
        (Ok((login_s, _)), Ok((rebuild_s, _))) => Some(Params {
            slots: m.slots,
            login_s: *login_s,
            rebuild_s: *rebuild_s,
            damaged_fraction: f,
            timeout_s: damaged.attempt_timeout.as_secs_f64(),
            retry,
            max_attempts: None,
            arrival_spread_s: damaged.arrivals.as_secs_f64(),
            after_login_s: damaged.hold.unwrap_or_default().as_secs_f64(),
            repeat_after_s: damaged.repeat_after.map(|r| r.as_secs_f64()),
            abandoned_work: match m.abandoned_work {
                case::AbandonedWork::Kept => model::AbandonedWork::Kept,
                case::AbandonedWork::Lost => model::AbandonedWork::Lost,
            },
            cpus: m.cpus.map(case::Milli::get),
            notice_s: m.notice.map(|n| n.as_secs_f64()),
            horizon_s: damaged.duration.as_secs_f64(),
            seed: m.seed,
        }),
        _ => None,
    };
    let sizes: Vec<u32> = measured.iter().map(|s| s.users).collect();
    let measured_rows: Vec<Measured> = measured.iter().filter_map(|s| s.measured).collect();
    if measured_rows.is_empty() {
        problems.push("no size was measured: nothing to compare".into());
    }
    let (predictions, comparison, closed_form) = match &params {
        Some(p) => {
            let predictions = model::sweep(p, &sizes);
            let comparison =
                (!measured_rows.is_empty()).then(|| model::compare(&measured_rows, &predictions));
            (predictions, comparison, Some(model::closed_form(p)))
        }
        None => (Vec::new(), None, None),
    };
    Some(SweepRecord {
        case: case.name.clone(),
        arm: sweep.arm.clone(),
        populations: sweep.populations.clone(),
        damaged: sweep.damaged.clone(),
        scale: sweep.scale.iter().map(|s| s.get()).collect(),
        params,
        inputs,
        measured,
        predictions,
        comparison,
        closed_form,
        problems,
    })
}

/// The median of a step's durations over the sizes that have one, and where it came from; or
/// why there is none.
fn median_of(
    ran: &[(&ArmRecord, &SweepPoint)],
    get: impl Fn(&SweepPoint) -> Option<f64>,
    step: &str,
) -> Result<(f64, String), String> {
    let mut v: Vec<f64> = ran
        .iter()
        .filter_map(|(_, p)| get(p))
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return Err(format!(
            "step `{step}` has no duration in any of the {} size{} that ran",
            ran.len(),
            if ran.len() == 1 { "" } else { "s" }
        ));
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    let spread = if v.len() > 1 {
        format!(", {:.3}–{:.3} s", v[0], v[v.len() - 1])
    } else {
        String::new()
    };
    Ok((
        median,
        format!(
            "median of step `{step}`'s duration over {} of {} size{}{spread}",
            v.len(),
            ran.len(),
            if ran.len() == 1 { "" } else { "s" }
        ),
    ))
}

/// The damaged population's retry policy as the model's, and what the model does differently.
fn retry(p: &Population) -> (model::Retry, Option<&'static str>) {
    let r = &p.retry;
    match r.policy {
        RetryPolicy::None => (model::Retry::None, None),
        RetryPolicy::Fixed => (
            model::Retry::Fixed {
                delay_s: r.delay.as_secs_f64(),
            },
            r.jitter.then_some("with jitter: the model waits the whole delay"),
        ),
        RetryPolicy::Exponential => (
            model::Retry::Exponential {
                base_s: r.delay.as_secs_f64(),
                max_s: r.max_delay.as_secs_f64(),
            },
            (!r.jitter).then_some("without jitter: the model always draws a random part of the delay"),
        ),
    }
}

fn retry_text(r: model::Retry) -> String {
    match r {
        model::Retry::None => "none".into(),
        model::Retry::Fixed { delay_s } => format!("fixed {delay_s} s"),
        model::Retry::Exponential { base_s, max_s } => {
            format!("exponential from {base_s} s up to {max_s} s (full jitter)")
        }
    }
}

fn input(symbol: &str, value: String, source: &str) -> SweepInput {
    SweepInput {
        symbol: symbol.into(),
        value,
        source: source.into(),
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;

    fn case() -> Case {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/case/testdata/sweep-storm.toml");
        crate::case::load(&file).unwrap()
    }

    /// A size of the fixture's sweep as its arm recorded it.
    fn size(
        case: &Case,
        k: usize,
        verdict: Verdict,
        measured: Option<(bool, Option<f64>, u32)>,
        login_s: Option<f64>,
        rebuild_s: Option<f64>,
    ) -> ArmRecord {
        let arm = &case.sweep_arms()[k];
        let s = arm.sweep.as_ref().unwrap();
        let users: u32 = s.users.values().sum();
        let mut a = crate::results::junit::tests::fixture().arms[0].clone();
        a.case = case.name.clone();
        a.arm = arm.name.clone();
        a.dir = format!("{}/{}", case.name, arm.name);
        a.verdict = verdict;
        a.sweep = Some(SweepPoint {
            arm: s.arm.clone(),
            scale: s.scale.get(),
            populations: s.users.clone(),
            users,
            measured: measured.map(|(drained, drain_time_s, _)| Measured {
                users,
                drained,
                drain_time_s,
            }),
            users_ok: measured.map(|m| m.2),
            problem: measured
                .is_none()
                .then(|| "population `healthy`: the guest agent cut its output short".to_string()),
            login_s,
            rebuild_s,
            notes: if login_s.is_none() {
                vec!["no S0 sample: step `one-login` on client (t=5.0–65.0 s) did not succeed".into()]
            } else {
                Vec::new()
            },
        });
        a
    }

    /// The fixture's three sizes: ×1 drained, ×2 not measured, ×3.5 did not drain.
    pub(crate) fn sized_arms(case: &Case) -> Vec<ArmRecord> {
        vec![
            size(
                case,
                0,
                Verdict::Pass,
                Some((true, Some(40.5), 11)),
                Some(0.1),
                Some(2.0),
            ),
            size(case, 1, Verdict::Unknown, None, Some(0.3), Some(2.4)),
            size(case, 2, Verdict::Fail, Some((false, None, 30)), None, Some(2.2)),
        ]
    }

    #[test]
    fn a_sweep_is_made_from_its_sizes_with_the_model_beside_them() {
        let c = case();
        let arms = sized_arms(&c);
        let sw = build(&c, &arms).unwrap();
        let p = sw.params.unwrap();
        // The model runs on what was measured and what the case says; its output is the
        // model's own (its snapshots are in metrics/model), so it is checked, not frozen here.
        let sizes: Vec<u32> = sw.measured.iter().map(|s| s.users).collect();
        assert_eq!(sizes, [11, 22, 39]);
        assert_eq!(sw.predictions, model::sweep(&p, &sizes));
        let measured: Vec<Measured> = sw.measured.iter().filter_map(|s| s.measured).collect();
        assert_eq!(measured.len(), 2, "the unmeasured size is not compared");
        assert_eq!(sw.comparison, Some(model::compare(&measured, &sw.predictions)));
        assert_eq!(sw.closed_form, Some(model::closed_form(&p)));
        let mut json = serde_json::to_value(&sw).unwrap();
        for k in ["predictions", "comparison", "closed_form"] {
            json.as_object_mut().unwrap().remove(k);
        }
        insta::assert_json_snapshot!("sweep_record", json);
    }

    #[test]
    fn without_both_service_times_the_model_does_not_run_and_says_why() {
        let c = case();
        let mut arms = sized_arms(&c);
        for a in &mut arms {
            a.sweep.as_mut().unwrap().rebuild_s = None;
        }
        let sw = build(&c, &arms).unwrap();
        assert_eq!(sw.params, None);
        assert!(sw.predictions.is_empty());
        assert_eq!(sw.comparison, None);
        assert_eq!(sw.closed_form, None);
        assert!(
            sw.problems
                .contains(&"no Sr: step `one-rebuild` has no duration in any of the 3 sizes that ran; the model was not run".to_string()),
            "{:?}",
            sw.problems
        );
        // Some sizes missing: those that ran are the sweep.
        let sw = build(&c, &sized_arms(&c)[2..]).unwrap();
        assert_eq!(sw.measured.len(), 1);
        assert_eq!(sw.measured[0].arm, "storm@x3.5");
        assert_eq!(sw.scale, [1.0, 2.0, 3.5]);
        // None ran, or another case: no sweep.
        assert_eq!(build(&c, &[]), None);
        let other = crate::results::junit::tests::fixture();
        assert_eq!(build(&c, &other.arms), None);
        assert!(records(std::slice::from_ref(&c), &other.arms).is_empty());
    }

    /// A run holding the fixture's sizes and their sweep, its model output fixed by hand (so
    /// that the report's tests do not follow the model's figures): the model drains 11 users
    /// in 38 s and 22 in 61.25 s, and 39 not at all.
    pub(crate) fn sweep_run() -> crate::results::RunRecord {
        let c = case();
        let arms = sized_arms(&c);
        let mut sw = build(&c, &arms).unwrap();
        for (p, t) in sw.predictions.iter_mut().zip([Some(38.0), Some(61.25), None]) {
            p.drains = t.is_some();
            p.drain_time_s = t;
            p.why = "by hand".into();
        }
        let measured: Vec<Measured> = sw.measured.iter().filter_map(|s| s.measured).collect();
        sw.comparison = Some(model::compare(&measured, &sw.predictions));
        if let Some(cf) = &mut sw.closed_form {
            cf.threshold_users = Some(30.0);
            cf.rule = "lost work: metastable above 30 users <by hand>".into();
        }
        crate::results::RunRecord {
            arms,
            sweeps: vec![sw],
            ..crate::results::junit::tests::fixture()
        }
    }
}
