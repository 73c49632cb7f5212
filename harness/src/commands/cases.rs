//! `faultline list` and `faultline run`: cases from names, their arms selected, and (for
//! `run`) every selected arm through a [`Runner`] into one run folder. `run --sweep` runs each
//! case's sweep arms (`Case::sweep_case`) instead, and the run folder makes the sweeps' records.
//!
//! Architecture invariant: `run` starts nothing before every case is valid, every selected
//! arm's image exists (built if missing) and the host tools are there: a bad case or name is
//! exit 2 with no run folder, a run never starts half its arms and then finds one cannot be
//! built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::case::Case;
use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::images::{self, Image};
use crate::results::ArmRecord;
use crate::suite::{self, overrides, Interrupted, Jobs, Partition, Runner, Turn, Variant};
use crate::{hosttools, run};

/// Load the named cases; a bad one is its `file:line:column: message`.
fn load(names: &[String], cases_dir: &Path) -> Result<Vec<Case>, CommandError> {
    let files = suite::case_files(names, cases_dir).map_err(CommandError::Input)?;
    Ok(suite::load_cases(&files)?)
}

/// `faultline list`: every case::arm with its expected verdict and faults.
pub fn list(names: &[String], cases_dir: &Path, console: &dyn Console) -> Result<Exit, CommandError> {
    for c in &load(names, cases_dir)? {
        for arm in &c.arms {
            let faults = if arm.faults.is_empty() {
                "no faults".to_string()
            } else {
                arm.faults.join(", ")
            };
            console.out(&format!(
                "{}::{}\texpect {}\t{faults}",
                c.name,
                arm.name,
                arm.expect.verdict()
            ));
        }
    }
    Ok(Exit::Ok)
}

/// What `faultline run` was asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub common: super::Common,
    /// Case files, folders or names (none: every case in `cases_dir`).
    pub cases: Vec<String>,
    pub cases_dir: PathBuf,
    /// Only arms of this name.
    pub arm: Option<String>,
    /// Keep the last arm's lab up afterwards for `faultline shell` (until SIGINT/SIGTERM).
    pub keep: bool,
    pub partition: Option<Partition>,
    /// How many arms at once, each in a lab of its own.
    pub jobs: Jobs,
    /// Where run folders go.
    pub results: PathBuf,
    /// `--image NAME=IMAGE[,IMAGE…]` as given: other images than the case files name, each
    /// arm run once per listed image.
    pub images: Vec<String>,
    /// Run each selected case's `[sweep]` (its arm once per scale) instead of its arms.
    pub sweep: bool,
}

/// `faultline run`: exit 0 when every arm met its expectation, 1 when one did not, 3 when a
/// lab broke or a signal stopped the run.
pub fn run(o: &RunOptions, console: &dyn Console) -> Result<Exit, CommandError> {
    let mut cases = load(&o.cases, &o.cases_dir)?;
    let asked = overrides::parse(&o.images).map_err(CommandError::Input)?;
    let mut swept: Vec<Case> = Vec::new();
    if o.sweep {
        // Each case's sweep arms in place of its own arms. The sweeps' records are made from the cases as written: their swept arm is the base
        // every size scales.
        swept = cases.iter().filter(|c| c.sweep.is_some()).cloned().collect();
        cases = cases.iter().filter_map(Case::sweep_case).collect();
        if cases.is_empty() {
            return Err(CommandError::Input(
                "--sweep: no selected case has a [sweep]".into(),
            ));
        }
        if let Some(list) = asked.iter().find(|a| a.images.len() > 1) {
            return Err(CommandError::Input(format!(
                "--image {list}: a sweep runs each size on one image; give one image per NAME"
            )));
        }
    }
    if let Some(arms) = &o.arm {
        for arm in arms.split(',') {
            if !cases
                .iter()
                .any(|c| c.arms.iter().any(|a| suite::arm_matches(a, arm)))
            {
                let what = if o.sweep {
                    "a sweep size or swept arm"
                } else {
                    "an arm"
                };
                return Err(CommandError::Input(format!(
                    "no case here has {what} named {arm}"
                )));
            }
        }
    }
    let chosen = suite::select(&cases, o.arm.as_deref(), o.partition);
    let recipes = images::load_recipes(&o.common.recipes, &[])?;
    let selected: Vec<_> = chosen
        .iter()
        .map(|(ci, arm)| (&cases[*ci], cases[*ci].arm(arm).expect("selected arms exist")))
        .collect();
    let names: Vec<&str> = recipes.iter().map(|r| r.name.as_str()).collect();
    overrides::check(&asked, &selected, &names).map_err(CommandError::Input)?;
    hosttools::require(&[hosttools::QEMU_SYSTEM, hosttools::QEMU_IMG])?;
    let cache = &o.common.cache;
    let variants = overrides::expand(&asked);
    // Images first (built if missing): a run never starts half its arms and then finds one
    // cannot be built. Each arm runs once per variant, its variants one after another.
    let mut planned: Vec<(usize, &Variant)> = Vec::new();
    let mut arm_images = Vec::new();
    for (k, (case, arm)) in selected.iter().enumerate() {
        for v in &variants {
            let named = overrides::apply(case, arm, &v.picks);
            let found = run::images_named(&named, &recipes, cache, true, &mut |l| console.progress(l))
                .map_err(|e| CommandError::Broken(format!("{}::{}: {e}", case.name, v.arm_id(&arm.name))))?;
            planned.push((k, v));
            arm_images.push(found);
        }
    }
    let probe = arm_images.first().and_then(|m| m.values().next());
    let decision = suite::decide_accel(o.common.accel, probe, console);
    let image_args: String = asked.iter().map(|a| format!(" --image {a}")).collect();
    let mut rerun =
        suite::rerun_selection(&o.cases, o.arm.as_deref(), o.partition, decision.accel) + &image_args;
    if o.sweep {
        rerun.push_str(" --sweep");
    }
    // Read before the new run folder becomes `latest`.
    let last_time = previous_durations(&o.results);
    let mut runner = Runner::create(&o.results, "", decision.accel, cache.clone(), rerun).map_err(|e| {
        CommandError::Broken(format!("creating the run folder in {}: {e}", o.results.display()))
    })?;
    runner.add_versions(&distinct(&arm_images));
    runner.run_dir.record.images = asked.iter().map(ToString::to_string).collect();
    if o.sweep {
        runner.run_dir.sweep_cases = swept;
    }
    console.note(&format!("results: {}", runner.run_dir.dir.display()));
    let total = planned.len();
    let turns: Vec<Turn> = planned
        .iter()
        .zip(&arm_images)
        .map(|(&(k, variant), images)| {
            let (case, arm) = selected[k];
            Turn {
                case,
                arm,
                variant,
                images,
                expected_s: last_time
                    .get(&(case.name.clone(), variant.arm_id(&arm.name)))
                    .copied(),
            }
        })
        .collect();
    // A kept lab must live on this thread (its guests die with the thread that started
    // them), so with --keep the last arm runs here after the others.
    let (parallel, last) = match turns.split_last() {
        Some((last, rest)) if o.keep => (rest, Some(last)),
        _ => (&turns[..], None),
    };
    let jobs = o.jobs.here().min(parallel.len()).max(1);
    if parallel.len() > 1 {
        console.note(&format!("{jobs} arm(s) at once"));
    }
    let interrupted = |signal: &str, runner: &Runner| {
        console.note(&format!(
            "\ninterrupted by {signal}: partial results in {}",
            runner.run_dir.dir.display()
        ));
        Ok(Exit::Broken)
    };
    let say = |i: usize, l: &str| console.progress(&format!("[{}/{total}] {l}", i + 1));
    let stopped = runner.run_parallel(parallel, jobs, &say, &mut |_, record| {
        console.done(&outcome(record))
    })?;
    if let Some(signal) = stopped {
        return interrupted(signal, &runner);
    }
    let rt = suite::runtime();
    let mut kept = None;
    if let Some(t) = last {
        let mut say = |l: &str| console.progress(&format!("[{total}/{total}] {l}"));
        say(&format!("{}::{}", t.case.name, t.variant.arm_id(&t.arm.name)));
        let stop = suite::stop_signal();
        let ran = match rt.block_on(runner.arm(t.case, t.arm, t.variant, t.images, true, stop, &mut say)) {
            Ok(r) => r,
            Err(Interrupted(signal)) => return interrupted(signal, &runner),
        };
        console.done(&outcome(&ran.record));
        kept = runner.record(ran)?;
    }
    console.out(&format!(
        "{} of {total} arms met their expectation; report: {}",
        total - runner.unmet,
        runner.run_dir.dir.join("report.html").display()
    ));
    if let Some(lab) = kept {
        rt.block_on(suite::serve_kept(
            lab,
            &runner.run_dir.dir,
            decision.accel,
            console,
        ));
    }
    Ok(runner.exit())
}

/// How long each case::arm took in the newest run in `results` (none when there is none):
/// arms at once start longest first.
fn previous_durations(results: &Path) -> BTreeMap<(String, String), f64> {
    let Ok(last) = crate::results::RunRecord::load(&results.join("latest")) else {
        return BTreeMap::new();
    };
    last.arms
        .into_iter()
        .filter(|a| a.duration_s > 0.0)
        .map(|a| ((a.case, a.arm), a.duration_s))
        .collect()
}

/// Every image the arms use, once (by recipe hash).
fn distinct(arm_images: &[BTreeMap<String, Image>]) -> Vec<&Image> {
    let mut seen = BTreeMap::new();
    for m in arm_images {
        for i in m.values() {
            seen.insert(i.manifest.recipe_hash.clone(), i);
        }
    }
    seen.into_values().collect()
}

/// An arm's line in `faultline run`'s output, with the explanation when it was not met.
fn outcome(r: &ArmRecord) -> String {
    if let Some(p) = &r.sweep {
        let what = match &p.measured {
            Some(m) if m.drained => format!(
                "{} users drained in {:.1} s",
                m.users,
                m.drain_time_s.unwrap_or_default()
            ),
            Some(m) => format!(
                "{} users did not drain ({} logged in)",
                m.users,
                p.users_ok.unwrap_or_default()
            ),
            None => format!("{} users, not measured", p.users),
        };
        return format!(
            "{}::{}  {} (measured: {what}){}  {:.1} s{}",
            r.case,
            r.arm,
            r.verdict,
            if r.met { "" } else { " DOES NOT STAND" },
            r.duration_s,
            if r.met {
                String::new()
            } else {
                format!("\n    {}", r.explanation)
            }
        );
    }
    format!(
        "{}::{}  {} (expected {}) {}  {:.1} s{}",
        r.case,
        r.arm,
        r.verdict,
        r.expected,
        if r.met { "met" } else { "NOT MET" },
        r.duration_s,
        if r.met {
            String::new()
        } else {
            format!("\n    {}", r.explanation)
        }
    )
}
