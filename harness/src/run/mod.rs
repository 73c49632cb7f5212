//! The scenario runner: one arm of one case, end to end — lab from saved state, evidence
//! before, the workload with the arm's faults, evidence after, guest logs, the trace, checks,
//! the arm's verdict, and its folder of results.
//!
//! Architecture invariants:
//! - Nothing here decides a verdict by itself: checks are judged by [`checks`] (pure), faults
//!   by [`proof`] (pure), and both combined by [`crate::case::verdict`] (pure); this module
//!   only gathers what they read.
//! - Every guest wait has a deadline; a lab that breaks yields an arm with verdict `error`
//!   and `lab_broke`, never a hang or a pass.
//! - The arm's folder is written as the arm goes (history as events happen, evidence as it
//!   is taken), so an arm cut short leaves what it had.

pub mod checks;
pub(crate) mod context;
pub mod disks;
pub mod faults;
pub mod guests;
pub mod history;
pub mod measures;
pub mod proof;
pub mod record;
pub mod sampler;
pub mod steps;
pub mod sweep;
pub mod trace;
pub mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::accel::Accel;
use crate::case::{
    arm_outcome, measured_outcome, Arm, Case, CheckResult, EvidenceItem, EvidenceSource, FaultProof, Verdict,
};
use crate::disks::DiskSpec;
use crate::images::{self, Image};
use crate::lab::{GuestSpec, Lab, LabSpec};
use crate::recipe::Recipe;
use crate::results::{ArmRecord, ArmVariant, CheckRecord, EventKind, FaultRecord, GuestImage, TraceRecord};
use crate::run::context::Ctx;
use crate::run::guests::Guests;
use crate::run::history::History;
use crate::run::record::{snippet, EvidenceRecord, Observed};

/// What every arm of a run shares.
#[derive(Debug, Clone)]
pub struct Env {
    pub cache_root: PathBuf,
    pub accel: Accel,
    /// Keep the lab up after the arm (for `faultline shell`): returned in [`ArmRun::kept`].
    pub keep: bool,
}

pub struct ArmRun {
    pub record: ArmRecord,
    /// The lab could not be started or broke under the arm (exit code 3).
    pub lab_broke: bool,
    /// The lab, still running, when [`Env::keep`] asked for it.
    pub kept: Option<Lab>,
}

/// The image each guest of the arm runs (the arm's `setup.images` replacing the case's),
/// building those not in the cache when `build` is set.
pub fn arm_images(
    case: &Case,
    arm: &Arm,
    recipes: &[Recipe],
    cache_root: &Path,
    build: bool,
    say: &mut dyn FnMut(&str),
) -> Result<BTreeMap<String, Image>, String> {
    let names = case
        .guests
        .iter()
        .map(|g| {
            let image = arm.setup.images.get(&g.name).unwrap_or(&g.image);
            (g.name.clone(), image.clone())
        })
        .collect();
    images_named(&names, recipes, cache_root, build, say)
}

/// The image of each guest in `names` (guest → recipe name), building those not in the
/// cache when `build` is set (what `faultline run` does with an image it has not built).
pub fn images_named(
    names: &BTreeMap<String, String>,
    recipes: &[Recipe],
    cache_root: &Path,
    build: bool,
    say: &mut dyn FnMut(&str),
) -> Result<BTreeMap<String, Image>, String> {
    let mut out = BTreeMap::new();
    for (guest, name) in names {
        let recipe = recipes
            .iter()
            .find(|r| &r.name == name)
            .ok_or_else(|| format!("guest {guest}: no image recipe named {name}"))?;
        let image = match images::lookup(recipe, cache_root) {
            Ok(i) => i,
            Err(e) if !build => return Err(e.to_string()),
            Err(_) => {
                images::build(recipe, cache_root, say)
                    .map_err(|e| e.to_string())?
                    .image
            }
        };
        out.insert(guest.clone(), image);
    }
    Ok(out)
}

/// An arm's record named for the images it runs on: `images` recorded (guest → recipe name
/// and hash), and with `variant` (one of several image variants of the arm) the record and
/// its folder called `<arm>@<variant>`.
pub fn on_images(
    mut record: ArmRecord,
    variant: Option<&str>,
    images: &BTreeMap<String, Image>,
) -> ArmRecord {
    record.images = images
        .iter()
        .map(|(g, i)| {
            let image = GuestImage {
                image: i.manifest.name.clone(),
                recipe: i.manifest.recipe_hash.clone(),
            };
            (g.clone(), image)
        })
        .collect();
    if let Some(v) = variant {
        let base = std::mem::take(&mut record.arm);
        record.arm = format!("{base}@{v}");
        record.dir = format!("{}/{}", record.case, record.arm);
        record.variant = Some(ArmVariant {
            arm: base,
            image: v.to_string(),
        });
    }
    record
}

/// Run one arm; its results go to `<run_dir>/<case>/<arm>/` (`<arm>@<variant>/` for one of
/// several image variants of the arm, see [`on_images`]).
#[allow(clippy::too_many_arguments)]
pub async fn run_arm(
    env: &Env,
    case: &Case,
    arm: &Arm,
    variant: Option<&str>,
    images: &BTreeMap<String, Image>,
    run_dir: &Path,
    rerun: String,
    say: &mut dyn FnMut(&str),
) -> ArmRun {
    let started = Instant::now();
    let mut record = on_images(unfinished(case, arm, rerun), variant, images);
    let dir = run_dir.join(&record.dir);
    let id = record.arm.clone();
    let broke = |mut record: ArmRecord, why: String| {
        record.explanation = why;
        record.duration_s = started.elapsed().as_secs_f64();
        ArmRun {
            record,
            lab_broke: true,
            kept: None,
        }
    };
    if let Err(e) = std::fs::create_dir_all(dir.join("evidence")) {
        return broke(record, format!("could not create {}: {e}", dir.display()));
    }
    let undriven = case.disks.iter().find_map(|d| {
        d.nbdkit_filters
            .iter()
            .find(|f| !crate::disks::DRIVEN_FILTERS.contains(&f.as_str()))
            .map(|f| {
                format!(
                    "disk {} asks for nbdkit's {f} filter, which the runner does not drive yet",
                    d.name
                )
            })
    });
    if case.segments.len() != 1 || undriven.is_some() {
        record.explanation =
            undriven.unwrap_or_else(|| "the runner supports one segment so far; this case needs more".into());
        record.duration_s = started.elapsed().as_secs_f64();
        return ArmRun {
            record,
            lab_broke: false,
            kept: None,
        };
    }
    let history = match History::create(&dir.join("history.jsonl")) {
        Ok(h) => h,
        Err(e) => return broke(record, format!("could not create the history: {e}")),
    };
    let segment = &case.segments[0];
    let spec = LabSpec {
        segment: segment.name.clone(),
        guests: case
            .guests
            .iter()
            .map(|g| GuestSpec {
                name: g.name.clone(),
                image: images[&g.name].clone(),
            })
            .collect(),
        accel: env.accel,
        dir: dir.clone(),
        cache_root: env.cache_root.clone(),
    };
    let names: Vec<&str> = case.guests.iter().map(|g| g.name.as_str()).collect();
    let mut lab = match Lab::start_prepared(spec, &crate::lab::statd_running(&names), say).await {
        Ok(l) => l,
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            let _ = std::fs::write(dir.join("lab-error.txt"), e.to_string());
            return broke(record, format!("the lab did not start: {first} (lab-error.txt)"));
        }
    };
    if !case.disks.is_empty() {
        let specs: Vec<DiskSpec> = disks::specs(case, arm);
        if let Err(e) = lab.add_disks(&specs).await {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            let _ = std::fs::write(dir.join("lab-error.txt"), e.to_string());
            lab.stop().await;
            return broke(
                record,
                format!("the lab's disks did not come up: {first} (lab-error.txt)"),
            );
        }
        say(&format!(
            "{}::{}: {} disk(s) served by nbdkit and plugged in",
            case.name,
            id,
            specs.len()
        ));
    }
    record.lab_ready_s = lab.ready_s;
    say(&format!(
        "{}::{}: lab ready in {:.1} s",
        case.name, id, lab.ready_s
    ));

    let (mut observed, mut fault_runs, workload, samples) = {
        let Lab {
            switch,
            guests: machines,
            disks,
            ..
        } = &mut lab;
        let guests = Guests::new(
            machines
                .iter_mut()
                .map(|m| (m.name.clone(), &mut m.agent, &mut m.qmp)),
            env.accel,
        );
        let ctx = Ctx {
            case,
            arm,
            guests: &guests,
            switch,
            accel: env.accel,
            history: &history,
            dir: &dir,
            disks,
        };
        let mut observed = Observed::default();
        capture(&ctx, &dir, "before", &case.evidence.before, &mut observed).await;
        say(&format!("{}::{id}: workload", case.name));
        let mut outcome = workload::run(&ctx).await;
        for f in case.faults_of(arm) {
            if let Some(run) = outcome.faults.iter_mut().find(|r| r.name == f.name) {
                faults::counters(&ctx, f, run).await;
            }
        }
        capture(&ctx, &dir, "after", &case.evidence.after, &mut observed).await;
        guest_logs(&ctx, &dir).await;
        observed.steps = outcome.steps;
        (observed, outcome.faults, outcome.duration, outcome.samples)
    };
    record.workload_s = workload.as_secs_f64();
    let _ = std::fs::write(
        dir.join("steps.json"),
        serde_json::to_string_pretty(&observed.steps.values().collect::<Vec<_>>()).unwrap_or_default(),
    );
    let _ = std::fs::write(
        dir.join("evidence").join("index.json"),
        serde_json::to_string_pretty(&observed.evidence.values().collect::<Vec<_>>()).unwrap_or_default(),
    );

    let (stats, kept) = if env.keep {
        (lab.switch.stats().await, Some(lab))
    } else {
        let stats = lab.stop().await;
        (stats, None)
    };
    faults::rule_counts(&mut fault_runs, &stats.rules);
    let mut traces = checks::Traces::new();
    let pcap = dir.join("wire").join(format!("{}.pcapng", segment.name));
    let file = format!("wire/{}.pcapng", segment.name);
    let read = std::fs::read(&pcap)
        .map_err(|e| format!("{}: {e}", pcap.display()))
        .and_then(|b| trace::read(&b).map_err(|e| format!("{file}: {e}")));
    // Only a complete trace is evidence (of absence above all): checks see an incomplete one
    // as an Err saying what it lacks.
    let judged = read.and_then(|frames| trace::completeness(&frames, &stats, &file).map(|()| frames));
    record.traces.push(TraceRecord {
        segment: segment.name.clone(),
        file,
        switch_frames: stats.frames,
        written_frames: stats.pcap_frames,
        read_frames: judged.as_ref().ok().map(|f| f.len() as u64),
        write_errors: stats.pcap_errors,
        first_write_error: stats.pcap_error.clone(),
        problem: judged.as_ref().err().cloned(),
    });
    traces.insert(segment.name.clone(), judged);
    let populations = population_series(case, &observed.steps);
    let (metrics, arm_metrics) = series(&dir, &history, &samples, &traces, record.workload_s, populations);
    record.metrics = metrics;
    observed.metrics = arm_metrics;
    let results: Vec<CheckResult> = checks::judge(case, &observed, &traces)
        .into_iter()
        .filter(|r| !arm.skip_checks.iter().any(|s| s == r.name()))
        .collect();
    let counted: Vec<CheckResult> = results
        .iter()
        .filter(|r| !arm.report_only.iter().any(|s| s == r.name()))
        .cloned()
        .collect();
    let proofs: Vec<FaultProof> = case
        .faults_of(arm)
        .map(|f| proof::fault_proof(f, fault_runs.iter().find(|r| r.name == f.name), &segment.name))
        .collect();
    // A size of a sweep is a measurement: its verdict is recorded, not judged.
    let outcome = match &arm.sweep {
        Some(_) => measured_outcome(&counted, &proofs),
        None => arm_outcome(&arm.expect, &counted, &proofs),
    };
    record.verdict = outcome.verdict;
    record.met = outcome.met;
    record.explanation = outcome.explanation;
    record.sweep = sweep::point(case, arm, &observed.steps);
    if let Some(why) = record.sweep.as_ref().and_then(|p| p.problem.as_ref()) {
        record.met = false;
        let sentence = record.explanation.trim_end_matches('.');
        record.explanation = format!("{sentence}; the size was not measured ({why}).");
    }
    record.checks = results
        .iter()
        .map(|r| CheckRecord {
            counted: !arm.report_only.iter().any(|s| s == r.name()),
            ..check_record(r)
        })
        .collect();
    record.measures = measures::take(case, &observed);
    record.skipped_checks = arm.skip_checks.clone();
    record.faults = proofs
        .iter()
        .map(|p| {
            let run = fault_runs.iter().find(|r| r.name == p.name);
            FaultRecord {
                name: p.name.clone(),
                fired: p.fired,
                evidence: p.evidence.clone(),
                started_s: run.and_then(|r| r.started_s),
                ended_s: run.and_then(|r| r.ended_s),
            }
        })
        .collect();
    if kept.is_none() {
        tidy(&dir);
    }
    record.duration_s = started.elapsed().as_secs_f64();
    ArmRun {
        record,
        lab_broke: false,
        kept,
    }
}

/// Every series of the arm into `metrics.json`; their summary for run.json (`None` when the
/// workload never started, so nothing was sampled), and the series for series checks.
fn series(
    dir: &Path,
    history: &History,
    samples: &BTreeMap<String, Result<String, String>>,
    traces: &checks::Traces,
    workload_s: f64,
    populations: (Vec<crate::metrics::Series>, Vec<String>),
) -> (
    Option<crate::metrics::summary::MetricsRecord>,
    crate::metrics::ArmMetrics,
) {
    let Some(unix0) = history.started_unix() else {
        return (None, crate::metrics::ArmMetrics::default());
    };
    let frames = traces
        .iter()
        .map(|(s, t)| (s.clone(), t.as_ref().map(Vec::as_slice).map_err(Clone::clone)))
        .collect();
    let (series, problems) = populations;
    let (m, mut rec) = sampler::assemble(samples, &frames, unix0, workload_s, series);
    rec.problems.extend(problems);
    let json = serde_json::to_vec(&m).unwrap_or_default();
    if let Err(e) = crate::results::write_atomic(&dir.join(&rec.file), &json) {
        rec.problems.push(format!("could not write {}: {e}", rec.file));
    }
    (Some(rec), m)
}

/// The per-second series of every population step that ran to its end (a client cut short
/// left a partial count, which series checks must not read as whole), and why others have none.
fn population_series(
    case: &Case,
    steps: &BTreeMap<String, crate::run::record::StepRecord>,
) -> (Vec<crate::metrics::Series>, Vec<String>) {
    use crate::run::record::StepOutcome;
    let mut series = Vec::new();
    let mut problems = Vec::new();
    for step in case
        .steps
        .iter()
        .filter(|s| matches!(s.kind, crate::case::StepKind::Population(_)))
    {
        let Some(rec) = steps.get(&step.name) else {
            continue;
        };
        match (&rec.outcome, rec.started_s) {
            (StepOutcome::Skipped, _) => {}
            (StepOutcome::Ok, Some(started)) if !rec.truncated => {
                match crate::metrics::population::series(&step.name, &rec.output, started) {
                    Ok(s) => series.extend(s),
                    Err(e) => problems.push(format!("population `{}`: {e}", step.name)),
                }
            }
            _ => problems.push(format!(
                "population `{}`: no series, its client did not run whole ({})",
                step.name,
                rec.describe()
            )),
        }
    }
    (series, problems)
}

/// An arm's record before it has a verdict: `error`, not met, with no explanation yet (what an
/// interrupted arm is left as).
pub fn unfinished(case: &Case, arm: &Arm, rerun: String) -> ArmRecord {
    ArmRecord {
        case: case.name.clone(),
        arm: arm.name.clone(),
        summary: case.summary.clone(),
        expected: arm.expect.verdict(),
        // A sweep size is not judged: no check of it is expected to fail.
        failing_checks: match &arm.expect {
            crate::case::ArmExpectation::Fail { failing_checks } if arm.sweep.is_none() => {
                failing_checks.clone()
            }
            _ => Vec::new(),
        },
        verdict: Verdict::Error,
        met: false,
        explanation: String::new(),
        finding: arm.finding.clone(),
        story: arm.story.clone(),
        skipped_checks: Vec::new(),
        duration_s: 0.0,
        lab_ready_s: 0.0,
        workload_s: 0.0,
        checks: Vec::new(),
        measures: Vec::new(),
        faults: Vec::new(),
        traces: Vec::new(),
        dir: format!("{}/{}", case.name, arm.name),
        rerun,
        images: BTreeMap::new(),
        variant: None,
        metrics: None,
        healthy_arm: case.healthy_arm.clone(),
        warnings: None,
        sweep: sweep::unmeasured(arm, "the arm did not finish"),
    }
}

fn check_record(r: &CheckResult) -> CheckRecord {
    CheckRecord {
        name: r.name().to_string(),
        verdict: r.verdict(),
        explanation: r.explanation().map(str::to_string),
        counted: true,
    }
}

/// Take evidence items, writing each under `evidence/<phase>/`.
async fn capture(ctx: &Ctx<'_>, dir: &Path, phase: &'static str, items: &[EvidenceItem], obs: &mut Observed) {
    let folder = dir.join("evidence").join(phase);
    let _ = std::fs::create_dir_all(&folder);
    for item in items {
        let mut rec = EvidenceRecord {
            name: item.name.clone(),
            guest: item.guest.clone(),
            phase,
            file: String::new(),
            text: None,
            exit_code: None,
            problem: None,
            truncated: false,
        };
        let file_name = item.name.replace(':', "_");
        match &item.source {
            EvidenceSource::Command { command, timeout } => {
                rec.file = format!("evidence/{phase}/{file_name}.out");
                match ctx
                    .guests
                    .exec(&item.guest, command, ctx.accel.scale(*timeout))
                    .await
                {
                    Ok(o) => {
                        let _ = std::fs::write(dir.join(&rec.file), &o.stdout);
                        if !o.stderr.is_empty() {
                            let _ = std::fs::write(folder.join(format!("{file_name}.err")), &o.stderr);
                        }
                        rec.exit_code = Some(o.exit_code);
                        rec.truncated = o.truncated;
                        if !o.ok() {
                            rec.problem = Some(format!("`{command}` exited {}", o.exit_code));
                        }
                        rec.text = Some(o.stdout);
                    }
                    Err(e) => rec.problem = Some(e.to_string()),
                }
            }
            EvidenceSource::File { path } => {
                let base = Path::new(path)
                    .file_name()
                    .map(|b| b.to_string_lossy().into_owned())
                    .unwrap_or_default();
                rec.file = format!("evidence/{phase}/{file_name}--{base}");
                match ctx.guests.read_file(&item.guest, path).await {
                    Ok(bytes) => {
                        let _ = std::fs::write(dir.join(&rec.file), &bytes);
                        rec.text = Some(String::from_utf8_lossy(&bytes).into_owned());
                    }
                    Err(e) => rec.problem = Some(format!("{path}: {e}")),
                }
            }
        }
        ctx.history.event(
            EventKind::Evidence,
            &item.name,
            Some(&item.guest),
            Some(rec.text.is_some()),
            Some(match &rec.problem {
                Some(p) => format!("{phase}: {}", snippet(p, 160)),
                None => format!("{phase}: {}", rec.file),
            }),
        );
        obs.evidence.insert(item.name.clone(), rec);
    }
}

/// Each guest's journal and kernel log, and Dovecot's log where there is one.
async fn guest_logs(ctx: &Ctx<'_>, dir: &Path) {
    let limit = ctx.accel.scale(Duration::from_secs(20));
    for g in &ctx.case.guests {
        let gdir = dir.join("guests").join(&g.name);
        let _ = std::fs::create_dir_all(&gdir);
        for (file, script) in [
            // Without the agent's own line per status poll: thousands of them, all the harness's.
            (
                "journal.log",
                "journalctl -b --no-pager -o short-precise | grep -v 'qemu-ga.*: info: guest-exec-status called'",
            ),
            ("dmesg.log", "dmesg"),
            ("dovecot.log", "cat /var/log/dovecot.log 2>/dev/null || true"),
        ] {
            if let Ok(o) = ctx.guests.exec(&g.name, script, limit).await {
                if !o.stdout.is_empty() {
                    let _ = std::fs::write(gdir.join(file), o.stdout);
                }
            }
        }
    }
}

/// Remove what only a running lab needs: disk overlays (hundreds of MiB each) and sockets.
fn tidy(dir: &Path) {
    let walk = |d: PathBuf| std::fs::read_dir(d).into_iter().flatten().flatten();
    for g in walk(dir.join("guests")) {
        for f in walk(g.path()) {
            let p = f.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".qcow2") || name.ends_with(".sock") {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    // Disk images are sparse but may be large; what happened to them is in the evidence.
    for f in walk(dir.join("disks")) {
        if f.path().extension().is_some_and(|e| e == "img") {
            let _ = std::fs::remove_file(f.path());
        }
    }
    for f in walk(dir.join("wire")) {
        if f.path().extension().is_some_and(|e| e == "sock") {
            let _ = std::fs::remove_file(f.path());
        }
    }
}
