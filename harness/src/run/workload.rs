//! The workload: the steps ([`steps`], Jepsen's generator) and the arm's faults ([`faults`],
//! Jepsen's nemesis) joined in one task, taking turns on the guest agents. What both sides
//! share lives in [`crate::run::context`]; this file puts the helper scripts in the guests,
//! notes where watched logs end, and joins: faults due at 0 s, then the step loop, the reaper
//! of background steps and every fault as futures joined together.
//!
//! Invariants: every wait has a deadline (a step's own timeout, scaled for TCG) or ends with
//! the workload; a fault the harness ends is healed before the workload returns; a fault
//! whose trigger never happened is reported as not fired, with the trigger it waited for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::case::{SessionStop, StepKind, Trigger};
use crate::results::EventKind;
use crate::run::context::{log_offsets, offset_script, Ctx, State, GUEST_DIR};
use crate::run::faults;
use crate::run::record::{snippet, FaultRun, StepRecord};
use crate::run::sampler;
use crate::run::steps;

const LOCKPROBE: &[u8] = include_bytes!("guest/lockprobe.pl");
const MAILCLIENT: &[u8] = include_bytes!("guest/mailclient.pl");
const POPULATION: &[u8] = include_bytes!("guest/population.pl");

/// What the workload left.
pub struct Outcome {
    pub steps: BTreeMap<String, StepRecord>,
    pub faults: Vec<FaultRun>,
    pub duration: Duration,
    /// Each guest's sampler output, or why there is none.
    pub samples: BTreeMap<String, Result<String, String>>,
}

/// Run the arm's workload and faults; returns when every step has finished and every fault
/// the harness ends has been healed.
pub async fn run(ctx: &Ctx<'_>) -> Outcome {
    let start = Instant::now();
    let log_base = prepare_guests(ctx).await;
    let samplers = sampler::start(ctx).await;
    let st = State::new(ctx.case, log_base);
    ctx.history.start_workload();

    // Faults due at 0 s are in place before the first step.
    let mut early: BTreeMap<String, FaultRun> = BTreeMap::new();
    for f in ctx.case.faults_of(ctx.arm) {
        if matches!(f.start, Trigger::At { offset } if offset.is_zero()) {
            early.insert(f.name.clone(), faults::start(ctx, f, None).await);
        }
    }
    let faults = ctx
        .case
        .faults_of(ctx.arm)
        .map(|f| {
            let begun = early.remove(&f.name);
            let st = &st;
            async move { faults::run(ctx, st, f, begun).await }
        })
        .collect::<Vec<_>>();
    let background = steps::Background::default();
    let steps = async {
        futures::join!(
            steps::run(ctx, &st, &background),
            steps::reap(ctx, &st, &background)
        );
        st.mark_done();
    };
    let (_, faults) = futures::join!(steps, futures::future::join_all(faults));
    ctx.history
        .event(EventKind::WorkloadEnd, "workload", None, None, None);
    let duration = start.elapsed();
    Outcome {
        steps: st.into_steps(),
        faults,
        duration,
        samples: sampler::stop(ctx, samplers, ctx.dir).await,
    }
}

/// Put the helper scripts in every guest and note where the watched logs end now.
async fn prepare_guests(ctx: &Ctx<'_>) -> BTreeMap<(String, String), Result<usize, String>> {
    let mut watched: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &ctx.case.steps {
        if let (StepKind::WaitForLog { file, .. }, Some(g)) = (&s.kind, &s.guest) {
            watched.entry(g.clone()).or_default().push(file.clone());
        }
    }
    for f in ctx.case.faults_of(ctx.arm) {
        if let Trigger::OnLog { guest, file, .. } = &f.start {
            watched.entry(guest.clone()).or_default().push(file.clone());
        }
    }
    for s in &ctx.case.steps {
        if let StepKind::Imap(sess) | StepKind::Pop3(sess) = &s.kind {
            if let Some(SessionStop::OnLog { guest, file, .. }) = &sess.stop {
                watched.entry(guest.clone()).or_default().push(file.clone());
            }
        }
    }
    let mut base = BTreeMap::new();
    for g in &ctx.case.guests {
        let files = watched.remove(&g.name).unwrap_or_default();
        let mut script = format!("mkdir -p {GUEST_DIR}/ready && rm -f {GUEST_DIR}/ready/*");
        for f in &files {
            script.push_str(&format!("; {}", offset_script(f)));
        }
        let limit = ctx.accel.scale(Duration::from_secs(10));
        let offsets = match ctx.guests.exec(&g.name, &script, limit).await {
            Ok(out) if out.ok() => log_offsets(&files, &out.stdout),
            Ok(out) => files
                .iter()
                .map(|f| {
                    let why = format!(
                        "noting where it ended exited {}: {}",
                        out.exit_code,
                        snippet(&out.stderr, 120)
                    );
                    (f.clone(), Err(why))
                })
                .collect(),
            Err(e) => files
                .iter()
                .map(|f| (f.clone(), Err(format!("noting where it ended: {e}"))))
                .collect(),
        };
        for (f, offset) in offsets {
            base.insert((g.name.clone(), f), offset);
        }
        for (name, body) in [
            ("lockprobe.pl", LOCKPROBE),
            ("mailclient.pl", MAILCLIENT),
            ("population.pl", POPULATION),
        ] {
            let _ = ctx
                .guests
                .write_file(&g.name, &format!("{GUEST_DIR}/{name}"), body)
                .await;
        }
    }
    base
}
