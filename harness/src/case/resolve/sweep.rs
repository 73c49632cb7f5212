//! `[sweep]`: one arm of the case run at several population sizes, and `[sweep.model]`, the
//! cascade model's inputs the case states. Refers to the steps and the arms, so it comes last.

use std::time::Duration;

use super::population::MAX_USERS;
use super::steps::Steps;
use super::{no_repeats, Cx, Names};
use crate::case::raw::{RawSweep, Str, S};
use crate::case::{scaled_users, AbandonedWork, Arm, Milli, StepKind, Sweep, SweepModel};

/// The seed of the model's back-off jitter when the case gives none.
const DEFAULT_SEED: u64 = 16;

pub(super) fn build(cx: &mut Cx, raw: &S<RawSweep>, steps: &Steps, arms: &[Arm]) -> Sweep {
    let r = raw.get_ref();
    let arm_names = Names::new("arm", arms.iter().map(|a| a.name.clone()));
    let arm = arm_names
        .refer(cx, &r.arm)
        .then(|| arms.iter().find(|a| a.name == *r.arm.get_ref()))
        .flatten();

    // A step the sweep reads must run in its arm.
    let runs_in_arm = |cx: &mut Cx, s: &Str| {
        if let Some(a) = arm {
            if a.setup.skip_steps.contains(s.get_ref()) {
                cx.at(
                    s,
                    format!(
                        "arm `{}` skips step `{}`: the sweep could not read it",
                        a.name,
                        s.get_ref()
                    ),
                );
            }
        }
    };

    let list = r.populations.get_ref();
    if list.is_empty() {
        cx.at(
            &r.populations,
            "populations must name at least one population step",
        );
    }
    // Each population as the arm runs it (its users before scaling), where known.
    let mut base_users: Vec<Option<u32>> = Vec::new();
    for p in list {
        let mut users = None;
        if steps.names.refer(cx, p) {
            match steps.get(p.get_ref()).map(|s| &s.kind) {
                Some(StepKind::Population(pop)) => {
                    users = Some(arm.map_or(pop.users, |a| a.population(p.get_ref(), pop).users));
                    runs_in_arm(cx, p);
                }
                _ => cx.at(p, format!("step `{}` is not a population", p.get_ref())),
            }
        }
        base_users.push(users);
    }
    no_repeats(cx, list, "population");
    if !list.is_empty() && !list.iter().any(|p| p.get_ref() == r.damaged.get_ref()) {
        cx.at(
            &r.damaged,
            format!(
                "damaged must be one of the sweep's populations ({}), not `{}`",
                list.iter()
                    .map(|p| p.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                r.damaged.get_ref()
            ),
        );
    }

    let scale = scales(cx, r, list, &base_users);

    let m = r.model.get_ref();
    let slots = match u32::try_from(*m.slots.get_ref()) {
        Ok(n) if n >= 1 => n,
        _ => {
            cx.at(
                &m.slots,
                "slots is a whole number of at least 1 (the sessions the server runs at once)",
            );
            1
        }
    };
    let cpus = m.cpus.as_ref().map(|c| {
        milli(c, "cpus").unwrap_or_else(|why| {
            cx.at(c, format!("cpus {why}"));
            Milli(1000)
        })
    });
    for s in [&m.login, &m.rebuild] {
        if steps.names.refer(cx, s) {
            runs_in_arm(cx, s);
        }
    }
    let abandoned_work = match m.abandoned_work.get_ref().as_str() {
        "lost" => AbandonedWork::Lost,
        "kept" => AbandonedWork::Kept,
        other => {
            cx.at(
                &m.abandoned_work,
                format!("abandoned_work must be \"lost\" or \"kept\", not {other:?}"),
            );
            AbandonedWork::Lost
        }
    };
    let notice = m
        .notice
        .as_ref()
        .map(|n| cx.positive(Some(n), Duration::from_secs(1)));
    let seed = match &m.seed {
        None => DEFAULT_SEED,
        Some(s) => u64::try_from(*s.get_ref()).unwrap_or_else(|_| {
            cx.at(s, "seed is a whole number, 0 or more");
            DEFAULT_SEED
        }),
    };
    Sweep {
        arm: r.arm.get_ref().clone(),
        populations: list.iter().map(|p| p.get_ref().clone()).collect(),
        scale,
        damaged: r.damaged.get_ref().clone(),
        model: SweepModel {
            slots,
            cpus,
            login: m.login.get_ref().clone(),
            rebuild: m.rebuild.get_ref().clone(),
            abandoned_work,
            notice,
            seed,
        },
    }
}

/// `scale`: positive numbers, strictly ascending, each giving populations of at most
/// [`MAX_USERS`] and sizes different from the one before.
fn scales(cx: &mut Cx, r: &RawSweep, populations: &[Str], base_users: &[Option<u32>]) -> Vec<Milli> {
    if r.scale.get_ref().is_empty() {
        cx.at(&r.scale, "scale must list at least one factor");
    }
    let mut out: Vec<Milli> = Vec::new();
    let mut last: Option<(Milli, Vec<u32>)> = None;
    for v in r.scale.get_ref() {
        let s = match milli(v, "scale") {
            Ok(s) => s,
            Err(why) => {
                cx.at(v, format!("scale {why}"));
                continue;
            }
        };
        let sizes: Vec<u32> = base_users
            .iter()
            .map(|u| u.map_or(0, |u| scaled_users(u, s)))
            .collect();
        if let Some((p, n)) = populations.iter().zip(&sizes).find(|(_, n)| **n > MAX_USERS) {
            cx.at(
                v,
                format!(
                    "scale {s} makes population `{}` {n} users, more than a population may have ({MAX_USERS})",
                    p.get_ref()
                ),
            );
        }
        match &last {
            Some((prev, _)) if s <= *prev => cx.at(
                v,
                format!("scale {s} comes after {prev}: the factors go in ascending order, each once"),
            ),
            Some((prev, n)) if *n == sizes => cx.at(
                v,
                format!("scale {s} gives the populations the same users as scale {prev}"),
            ),
            _ => {}
        }
        last = Some((s, sizes));
        out.push(s);
    }
    out
}

/// A positive number with at most three decimals, in thousandths; the error completes "`what`
/// …".
fn milli(v: &S<toml::Value>, what: &str) -> Result<Milli, String> {
    let x = match v.get_ref() {
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(f) if f.is_finite() => *f,
        other => return Err(format!("must be a positive number, not {other}")),
    };
    let thousandths = (x * 1000.0).round();
    if x <= 0.0 || thousandths < 1.0 {
        return Err(format!("must be a positive number, not {x}"));
    }
    if (thousandths - x * 1000.0).abs() > 1e-6 * thousandths.max(1.0) {
        return Err(format!(
            "{x} has more than three decimals ({what} is read in thousandths)"
        ));
    }
    Ok(Milli(thousandths as u64))
}
