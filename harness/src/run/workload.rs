//! The workload: steps in file order (background ones overlapping), the arm's faults started
//! by their triggers and ended as their `end` says, all in one task taking turns on the guest
//! agents ([`Guests`]).
//!
//! Invariants: every wait has a deadline (a step's own timeout, scaled for TCG) or ends with
//! the workload; a fault the harness ends is healed before the workload returns; a fault
//! whose trigger never happened is reported as not fired, with the trigger it waited for.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::accel::Accel;
use crate::case::{
    Arm, Case, CloseMode, End, Fault, FaultKind, LockMode, ServiceAction, SessionStop, Step, StepKind,
    Trigger,
};
use crate::qemu::agent::{AgentError, ExecOutput};
use crate::results::EventKind;
use crate::run::guests::{Guests, Running};
use crate::run::history::{unix_now, History};
use crate::run::record::{snippet, StepOutcome, StepRecord};
use crate::shquote::sh_quote;
use crate::wire::rules::{Action, Rule, RuleId};
use crate::wire::switch::Switch;

/// Where the harness's helper scripts go in every guest.
const GUEST_DIR: &str = "/run/faultline";
const LOCKPROBE: &[u8] = include_bytes!("guest/lockprobe.pl");
const MAILCLIENT: &[u8] = include_bytes!("guest/mailclient.pl");

pub struct Ctx<'a> {
    pub case: &'a Case,
    pub arm: &'a Arm,
    pub guests: &'a Guests<'a>,
    pub switch: &'a Switch,
    pub accel: Accel,
    pub history: &'a History,
    /// The arm's results folder (capture steps write under `evidence/`).
    pub dir: &'a std::path::Path,
    /// The lab's extra disks (what `disk_error` faults turn on and off).
    pub disks: &'a [crate::disks::Disk],
}

/// What happened to one fault of the arm.
#[derive(Debug, Clone, Default)]
pub struct FaultRun {
    pub name: String,
    pub started_s: Option<f64>,
    pub ended_s: Option<f64>,
    /// Whether the start action provably took effect (a wire rule's proof comes later, from
    /// its frame count).
    pub started_ok: bool,
    /// Sentences of proof, or of why there is none.
    pub evidence: Vec<String>,
    /// A wire fault's switch rule.
    pub rule: Option<RuleId>,
    /// Counted things seen by a guest nft ruleset (packets), when it has counters.
    pub nft_packets: Option<u64>,
    /// A disk fault: QEMU's failed-request count on the device when it started, and how many
    /// more failed while it was on.
    pub disk_base: Option<u64>,
    pub disk_failed: Option<u64>,
}

/// What the workload left.
pub struct Outcome {
    pub steps: BTreeMap<String, StepRecord>,
    pub faults: Vec<FaultRun>,
    pub duration: Duration,
}

struct State {
    steps: Mutex<BTreeMap<String, StepRecord>>,
    /// Bumped whenever a step record changes.
    changed: watch::Sender<u64>,
    /// True once every step has finished.
    done: watch::Sender<bool>,
    /// Byte offsets of log files at the workload's start: lines before them do not count.
    log_base: BTreeMap<(String, String), usize>,
    /// Background steps started and not yet reaped.
    pending: Mutex<Vec<Pending>>,
}

struct Pending {
    step: String,
    run: Running,
    prep: Prepared,
}

impl State {
    fn update(&self, step: &str, f: impl FnOnce(&mut StepRecord)) {
        {
            let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = steps.get_mut(step) {
                f(r);
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn ended(&self, step: &str) -> Option<f64> {
        self.steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(step)
            .and_then(|r| r.ended_s)
    }

    async fn wait_step_end(&self, step: &str) -> f64 {
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(t) = self.ended(step) {
                return t;
            }
            if rx.changed().await.is_err() {
                return f64::NAN;
            }
        }
    }

    async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}

/// Run the arm's workload and faults; returns when every step has finished and every fault
/// the harness ends has been healed.
pub async fn run(ctx: &Ctx<'_>) -> Outcome {
    let start = Instant::now();
    let log_base = prepare_guests(ctx).await;
    let st = State {
        steps: Mutex::new(
            ctx.case
                .steps
                .iter()
                .map(|s| (s.name.clone(), StepRecord::new(&s.name, s.guest.as_deref())))
                .collect(),
        ),
        changed: watch::channel(0).0,
        done: watch::channel(false).0,
        log_base,
        pending: Mutex::new(Vec::new()),
    };
    ctx.history.start_workload();

    // Faults due at 0 s are in place before the first step.
    let mut early: BTreeMap<String, FaultRun> = BTreeMap::new();
    for f in ctx.case.faults_of(ctx.arm) {
        if matches!(f.start, Trigger::At { offset } if offset.is_zero()) {
            early.insert(f.name.clone(), start_fault(ctx, f, None).await);
        }
    }
    let faults = ctx
        .case
        .faults_of(ctx.arm)
        .map(|f| {
            let begun = early.remove(&f.name);
            let st = &st;
            async move { run_fault(ctx, st, f, begun).await }
        })
        .collect::<Vec<_>>();
    let steps = async {
        futures::join!(run_steps(ctx, &st), reap(ctx, &st));
        st.done.send_replace(true);
    };
    let (_, faults) = futures::join!(steps, futures::future::join_all(faults));
    ctx.history
        .event(EventKind::WorkloadEnd, "workload", None, None, None);
    Outcome {
        steps: st.steps.into_inner().unwrap_or_else(|p| p.into_inner()),
        faults,
        duration: start.elapsed(),
    }
}

/// Put the helper scripts in every guest and note where the watched logs end now.
async fn prepare_guests(ctx: &Ctx<'_>) -> BTreeMap<(String, String), usize> {
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
            script.push_str(&format!("; stat -c %s {} 2>/dev/null || echo 0", sh_quote(f)));
        }
        let limit = ctx.accel.scale(Duration::from_secs(10));
        if let Ok(out) = ctx.guests.exec(&g.name, &script, limit).await {
            for (f, size) in files.iter().zip(out.stdout.lines()) {
                base.insert((g.name.clone(), f.clone()), size.trim().parse().unwrap_or(0));
            }
        }
        for (name, body) in [("lockprobe.pl", LOCKPROBE), ("mailclient.pl", MAILCLIENT)] {
            let _ = ctx
                .guests
                .write_file(&g.name, &format!("{GUEST_DIR}/{name}"), body)
                .await;
        }
    }
    base
}

// ---- steps ---------------------------------------------------------------------------------

/// A step ready to start as a guest process.
#[derive(Debug, Clone)]
struct Prepared {
    script: String,
    /// The file the process creates when it is ready (`None`: ready once started).
    ready_file: Option<String>,
    /// Start to killed.
    limit: Duration,
    expect_exit: i64,
    kind: ProcKind,
    /// A mail session the harness stops when a log line appears (by creating `stop_file`).
    stop_on_log: Option<StopOnLog>,
}

#[derive(Debug, Clone)]
struct StopOnLog {
    guest: String,
    file: String,
    pattern: crate::case::Pattern,
    stop_file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcKind {
    Exec,
    LockProbe,
    Mail,
}

fn prepare(ctx: &Ctx<'_>, step: &Step) -> Option<Prepared> {
    let guest = step.guest.as_deref()?;
    let ready = format!("{GUEST_DIR}/ready/{}", step.name);
    let margin = ctx.accel.scale(Duration::from_secs(10));
    Some(match &step.kind {
        StepKind::Exec {
            command,
            timeout,
            expect_exit,
        } => Prepared {
            script: command.clone(),
            ready_file: None,
            limit: ctx.accel.scale(*timeout),
            expect_exit: i64::from(*expect_exit),
            kind: ProcKind::Exec,
            stop_on_log: None,
        },
        StepKind::LockProbe { path, mode, seconds } => {
            let (mode, most) = match mode {
                LockMode::Hold => ("hold", 60 + u64::from(*seconds)),
                LockMode::Wait => ("wait", u64::from(*seconds)),
            };
            Prepared {
                script: format!(
                    "exec perl {GUEST_DIR}/lockprobe.pl {} {mode} {seconds} {}",
                    sh_quote(path),
                    sh_quote(&ready)
                ),
                ready_file: Some(ready),
                limit: Duration::from_secs(most) + margin,
                expect_exit: 0,
                kind: ProcKind::LockProbe,
                stop_on_log: None,
            }
        }
        StepKind::Imap(s) | StepKind::Pop3(s) => {
            let s = &ctx.arm.session(&step.name, s);
            let proto = if matches!(step.kind, StepKind::Imap(_)) {
                "imap"
            } else {
                "pop3"
            };
            let host = if s.server == guest {
                "localhost"
            } else {
                s.server.as_str()
            };
            let timeout = ctx.accel.scale(s.timeout);
            let mut script = format!(
                "exec perl {GUEST_DIR}/mailclient.pl {proto} {host} {} {} {} {} {}",
                s.port,
                sh_quote(&s.user),
                sh_quote(&s.password),
                sh_quote(&ready),
                timeout.as_secs().max(1)
            );
            let close = match s.close {
                CloseMode::Quit => "quit",
                CloseMode::Fin => "fin",
                CloseMode::Rst => "rst",
                CloseMode::Silent => "silent",
            };
            script.push_str(&format!(" --close {close}"));
            if s.connections > 1 {
                script.push_str(&format!(" --connections {}", s.connections));
            }
            let mut stop_on_log = None;
            match &s.stop {
                None => {}
                Some(SessionStop::AfterLines(n)) => script.push_str(&format!(" --stop-lines {n}")),
                Some(SessionStop::After(d)) => script.push_str(&format!(" --stop-ms {}", d.as_millis())),
                Some(SessionStop::OnLog {
                    guest: g,
                    file,
                    pattern,
                }) => {
                    let stop_file = format!("{ready}.stop");
                    script.push_str(&format!(" --stop-file {}", sh_quote(&stop_file)));
                    stop_on_log = Some(StopOnLog {
                        guest: g.clone(),
                        file: file.clone(),
                        pattern: pattern.clone(),
                        stop_file,
                    });
                }
            }
            if let Some(h) = s.hold {
                script.push_str(&format!(" --hold-ms {}", h.as_millis()));
            }
            script.push_str(" --");
            for c in &s.commands {
                script.push(' ');
                script.push_str(&sh_quote(c));
            }
            Prepared {
                script,
                ready_file: Some(ready),
                // The client's own last resort (its parent kills straggling connections 20 s
                // past the session's deadline) comes before the harness's.
                limit: timeout + s.hold.unwrap_or_default() + Duration::from_secs(20) + margin,
                expect_exit: 0,
                kind: ProcKind::Mail,
                stop_on_log,
            }
        }
        StepKind::Wait { .. } | StepKind::WaitForLog { .. } | StepKind::Capture { .. } => return None,
    })
}

async fn run_steps(ctx: &Ctx<'_>, st: &State) {
    for step in &ctx.case.steps {
        let guest = step.guest.as_deref();
        if ctx.arm.setup.skip_steps.contains(&step.name) {
            let t = ctx.history.t();
            st.update(&step.name, |r| {
                r.outcome = StepOutcome::Skipped;
                r.started_s = Some(t);
                r.ended_s = Some(t);
                r.started_unix = Some(unix_now());
                r.ended_unix = r.started_unix;
            });
            ctx.history.event(
                EventKind::StepEnd,
                &step.name,
                guest,
                None,
                Some("skipped in this arm".into()),
            );
            continue;
        }
        match &step.kind {
            StepKind::Wait { duration } => {
                let t = begin(ctx, st, step, format!("wait {duration:?}"));
                tokio::time::sleep(*duration).await;
                finish(
                    ctx,
                    st,
                    step,
                    t,
                    StepOutcome::Ok,
                    None,
                    String::new(),
                    String::new(),
                    None,
                );
            }
            StepKind::WaitForLog {
                file,
                pattern,
                timeout,
            } => {
                let g = guest.unwrap_or_default();
                let t = begin(
                    ctx,
                    st,
                    step,
                    format!("wait for \"{}\" in {file}", pattern.as_str()),
                );
                let limit = ctx.accel.scale(*timeout);
                let base = st
                    .log_base
                    .get(&(g.to_string(), file.clone()))
                    .copied()
                    .unwrap_or(0);
                let found = tokio::time::timeout(limit, watch_log(ctx, g, file, base, pattern)).await;
                let (outcome, out) = match found {
                    Ok(line) => (StepOutcome::Ok, line),
                    Err(_) => (
                        StepOutcome::Failed(format!(
                            "no line matching \"{}\" appeared in {file} within {:.0} s",
                            pattern.as_str(),
                            limit.as_secs_f64()
                        )),
                        String::new(),
                    ),
                };
                finish(ctx, st, step, t, outcome, None, out, String::new(), None);
            }
            StepKind::Capture {
                command,
                files,
                timeout,
            } => {
                let g = guest.unwrap_or_default();
                let detail = match command {
                    Some(c) => snippet(c, 200),
                    None => format!("copy {}", files.join(" ")),
                };
                let t = begin(ctx, st, step, detail);
                let limit = ctx.accel.scale(*timeout);
                let (mut outcome, code, out, err) = match command {
                    None => (StepOutcome::Ok, None, String::new(), String::new()),
                    Some(c) => outcome_of(ctx.guests.exec(g, c, limit).await, 0, ProcKind::Exec),
                };
                let rel_dir = format!("evidence/steps/{}", step.name);
                let _ = std::fs::create_dir_all(ctx.dir.join(&rel_dir));
                let mut copied = Vec::new();
                if command.is_some() {
                    // The command's output is evidence too (a `doveadm dump` of 2,000 records
                    // is read in a file, not in steps.json). Its name is then taken.
                    let rel = format!("{rel_dir}/command.out");
                    if std::fs::write(ctx.dir.join(&rel), &out).is_ok() {
                        copied.push(rel);
                    }
                }
                let problems = copy_files(ctx, g, &rel_dir, files, limit, &mut copied).await;
                if !problems.is_empty() && outcome == StepOutcome::Ok {
                    outcome = StepOutcome::Failed(snippet(&problems.join("; "), 300));
                }
                st.update(&step.name, |r| r.files = copied);
                finish(ctx, st, step, t, outcome, code, out, err, None);
            }
            _ => {
                let Some(prep) = prepare(ctx, step) else { continue };
                let g = guest.unwrap_or_default();
                let t = begin(ctx, st, step, snippet(&prep.script, 200));
                let run = match ctx.guests.spawn(g, &prep.script).await {
                    Ok(r) => r,
                    Err(e) => {
                        let why = format!("could not start it: {e}");
                        finish(
                            ctx,
                            st,
                            step,
                            t,
                            StepOutcome::Error(why),
                            None,
                            String::new(),
                            String::new(),
                            None,
                        );
                        continue;
                    }
                };
                if step.background {
                    // Ready when its ready file appears (or at once); the next step starts
                    // then, and the reaper collects its end.
                    let ready = wait_ready(ctx, &run, &prep).await;
                    match ready {
                        Ready::Yes => {
                            let tr = ctx
                                .history
                                .event(EventKind::StepReady, &step.name, guest, None, None);
                            st.update(&step.name, |r| r.ready_s = Some(tr));
                            st.pending
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(Pending {
                                    step: step.name.clone(),
                                    run,
                                    prep,
                                });
                        }
                        Ready::Ended(result) => complete(ctx, st, step, t, &prep, result),
                    }
                } else {
                    let result = match &prep.stop_on_log {
                        None => ctx.guests.wait(&run, prep.limit).await,
                        Some(stop) => {
                            let base = st
                                .log_base
                                .get(&(stop.guest.clone(), stop.file.clone()))
                                .copied()
                                .unwrap_or(0);
                            // The line appears: tell the client (it polls for the file), then
                            // keep waiting for it to end.
                            let signal = async {
                                let line = watch_log(ctx, &stop.guest, &stop.file, base, &stop.pattern).await;
                                let _ = ctx.guests.write_file(g, &stop.stop_file, line.as_bytes()).await;
                                ctx.history.event(
                                    EventKind::Op,
                                    &step.name,
                                    Some(g),
                                    None,
                                    Some(format!(
                                        "stop: {}:{} logged: {}",
                                        stop.guest,
                                        stop.file,
                                        snippet(&line, 120)
                                    )),
                                );
                                std::future::pending::<()>().await
                            };
                            tokio::select! {
                                r = ctx.guests.wait(&run, prep.limit) => r,
                                _ = signal => unreachable!("the signal future never ends"),
                            }
                        }
                    };
                    complete(ctx, st, step, t, &prep, result);
                }
            }
        }
    }
    // Background steps end on their own; the reaper stops once none is left.
    let mut rx = st.changed.subscribe();
    while !st.pending.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        let _ = rx.changed().await;
    }
}

/// Collect background steps as they end.
async fn reap(ctx: &Ctx<'_>, st: &State) {
    let mut steps_rx = st.changed.subscribe();
    loop {
        let pending: Vec<(String, Running, Prepared)> = st
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|p| (p.step.clone(), p.run.clone(), p.prep.clone()))
            .collect();
        if pending.is_empty() {
            // Nothing pending: wait for the step loop to add some or to finish.
            if *st.done.borrow() || all_ended(ctx, st) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), steps_rx.changed()).await;
            continue;
        }
        for (name, run, prep) in pending {
            let result = match ctx.guests.status(&run).await {
                Ok(None) if run.started.elapsed() < prep.limit => continue,
                Ok(None) => {
                    ctx.guests.kill(&run).await;
                    Err(AgentError::ExecTimeout {
                        command: prep.script.clone(),
                        limit: prep.limit,
                    })
                }
                Ok(Some(out)) => Ok(out),
                Err(e) => Err(e),
            };
            st.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|p| p.step != name);
            let step = ctx.case.step(&name).expect("pending steps are the case's");
            let started = st
                .steps
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .and_then(|r| r.started_s)
                .unwrap_or(0.0);
            complete(ctx, st, step, started, &prep, result);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether every step has ended (so nothing more can become pending).
fn all_ended(ctx: &Ctx<'_>, st: &State) -> bool {
    let steps = st.steps.lock().unwrap_or_else(|p| p.into_inner());
    ctx.case
        .steps
        .iter()
        .all(|s| steps.get(&s.name).is_some_and(|r| r.ended_s.is_some()))
}

enum Ready {
    Yes,
    Ended(Result<ExecOutput, AgentError>),
}

async fn wait_ready(ctx: &Ctx<'_>, run: &Running, prep: &Prepared) -> Ready {
    let Some(file) = &prep.ready_file else {
        return Ready::Yes;
    };
    loop {
        if ctx.guests.exists(&run.guest, file).await {
            return Ready::Yes;
        }
        match ctx.guests.status(run).await {
            Ok(Some(out)) => return Ready::Ended(Ok(out)),
            Err(e) => return Ready::Ended(Err(e)),
            Ok(None) => {}
        }
        if run.started.elapsed() >= prep.limit {
            ctx.guests.kill(run).await;
            return Ready::Ended(Err(AgentError::ExecTimeout {
                command: prep.script.clone(),
                limit: prep.limit,
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn begin(ctx: &Ctx<'_>, st: &State, step: &Step, detail: String) -> f64 {
    let t = ctx.history.event(
        EventKind::StepStart,
        &step.name,
        step.guest.as_deref(),
        None,
        Some(detail),
    );
    let unix = unix_now();
    st.update(&step.name, |r| {
        r.started_s = Some(t);
        r.started_unix = Some(unix);
    });
    t
}

/// Turn a guest process's end into the step's record.
fn complete(
    ctx: &Ctx<'_>,
    st: &State,
    step: &Step,
    started: f64,
    prep: &Prepared,
    result: Result<ExecOutput, AgentError>,
) {
    let (outcome, code, out, err) = outcome_of(result, prep.expect_exit, prep.kind);
    let duration = match prep.kind {
        ProcKind::LockProbe | ProcKind::Mail => out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("faultline-duration "))
            .and_then(|d| d.trim().parse().ok()),
        _ => None,
    };
    if prep.kind == ProcKind::Mail {
        session_ops(ctx, step, started, &out);
    }
    finish(ctx, st, step, started, outcome, code, out, err, duration);
}

/// The most bytes a capture step copies of one guest file: the guest controls what is there.
const CAPTURE_MAX: u64 = 64 << 20;

/// Copy every regular file matching `patterns` out of the guest into `<rel_dir>/<file name>`
/// (`rel_dir` relative to the arm's folder, already made), adding each copy to `copied`
/// (whose names are taken); returns what could not be copied. A pattern matching nothing is
/// not a problem: "no index yet" is state.
async fn copy_files(
    ctx: &Ctx<'_>,
    guest: &str,
    rel_dir: &str,
    patterns: &[String],
    limit: Duration,
    copied: &mut Vec<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if patterns.is_empty() {
        return problems;
    }
    // The patterns are checked to hold no shell syntax but globs (case::resolve), so they go
    // unquoted for the shell to expand. Sizes first: a huge file is refused, not read.
    let script = format!(
        "for f in {}; do [ -f \"$f\" ] && printf '%s %s\\n' \"$(stat -c %s -- \"$f\")\" \"$f\"; done; true",
        patterns.join(" ")
    );
    let listing = match ctx.guests.exec(guest, &script, limit).await {
        Ok(o) => o.stdout,
        Err(e) => {
            problems.push(format!("listing {}: {e}", patterns.join(" ")));
            return problems;
        }
    };
    for line in listing.lines() {
        let Some((size, path)) = line.split_once(' ') else {
            continue;
        };
        let base = std::path::Path::new(path)
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        if base.is_empty() || copied.iter().any(|c: &String| c.ends_with(&format!("/{base}"))) {
            problems.push(format!("{path}: a second file named {base:?}"));
            continue;
        }
        if size.parse::<u64>().map_or(true, |n| n > CAPTURE_MAX) {
            problems.push(format!(
                "{path}: {size} bytes, more than the {} MiB a capture copies",
                CAPTURE_MAX >> 20
            ));
            continue;
        }
        match ctx.guests.read_file(guest, path).await {
            Ok(bytes) => {
                let rel = format!("{rel_dir}/{base}");
                match std::fs::write(ctx.dir.join(&rel), &bytes) {
                    Ok(()) => copied.push(rel),
                    Err(e) => problems.push(format!("writing {rel}: {e}")),
                }
            }
            Err(e) => problems.push(format!("{path}: {e}")),
        }
    }
    problems
}

/// A guest process's end as a step's outcome, exit code, stdout and stderr.
fn outcome_of(
    result: Result<ExecOutput, AgentError>,
    expect_exit: i64,
    kind: ProcKind,
) -> (StepOutcome, Option<i64>, String, String) {
    match result {
        Err(AgentError::ExecTimeout { limit, .. }) => (
            StepOutcome::Failed(format!(
                "still running after {:.0} s, killed",
                limit.as_secs_f64()
            )),
            None,
            String::new(),
            String::new(),
        ),
        Err(e) => (
            StepOutcome::Error(e.to_string()),
            None,
            String::new(),
            String::new(),
        ),
        Ok(o) => {
            let outcome = if o.exit_code == expect_exit {
                StepOutcome::Ok
            } else {
                let said = last_words(&o);
                StepOutcome::Failed(match kind {
                    ProcKind::Exec => format!("exited {} (expected {}){said}", o.exit_code, expect_exit),
                    ProcKind::LockProbe => format!("the lock probe exited {}{said}", o.exit_code),
                    ProcKind::Mail => format!("the session exited {}{said}", o.exit_code),
                })
            };
            (outcome, Some(o.exit_code), o.stdout, o.stderr)
        }
    }
}

/// ": <last line of stderr, else stdout>" for a failure sentence.
fn last_words(o: &ExecOutput) -> String {
    // A mail session's own summary lines ("faultline-duration …") say nothing of why.
    let pick = |s: &str| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with("faultline-"))
            .map(str::to_string)
    };
    match pick(&o.stderr).or_else(|| pick(&o.stdout)) {
        Some(l) => format!(": {}", snippet(&l, 200)),
        None => String::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    ctx: &Ctx<'_>,
    st: &State,
    step: &Step,
    started: f64,
    outcome: StepOutcome,
    exit_code: Option<i64>,
    output: String,
    stderr: String,
    duration: Option<f64>,
) {
    let ok = outcome == StepOutcome::Ok;
    let detail = match &outcome {
        StepOutcome::Ok => None,
        StepOutcome::Failed(w) | StepOutcome::Error(w) => Some(w.clone()),
        StepOutcome::Skipped => Some("skipped".into()),
    };
    let unix = unix_now();
    let t = ctx.history.event(
        EventKind::StepEnd,
        &step.name,
        step.guest.as_deref(),
        Some(ok),
        detail,
    );
    st.update(&step.name, |r| {
        r.ended_s = Some(t);
        r.ended_unix = Some(unix);
        r.duration_s = duration.or(Some(t - started));
        r.outcome = outcome;
        r.exit_code = exit_code;
        r.output = output;
        r.stderr = stderr;
    });
}

/// One history event per command a mail session sent, timed by the guest's clock relative
/// to the session's first line, with the answer's status line.
fn session_ops(ctx: &Ctx<'_>, step: &Step, started: f64, transcript: &str) {
    for (at, detail) in pair_session_ops(transcript) {
        ctx.history.event_at(
            Some(started + at),
            EventKind::Op,
            &step.name,
            step.guest.as_deref(),
            None,
            Some(detail),
        );
    }
}

/// A mail transcript's commands paired with their answers' status lines: (seconds since the
/// first line, "CMD → answer (ms)"). With several connections (lines tagged "#i"), each
/// connection's commands are paired with its own answers. Pure: the transcript is guest
/// output, so lines that fit no pattern are skipped, never trusted.
fn pair_session_ops(transcript: &str) -> Vec<(f64, String)> {
    let mut ops = Vec::new();
    let mut first: Option<f64> = None;
    let mut open: BTreeMap<&str, (f64, String)> = BTreeMap::new();
    let mut emit = |conn: &str, (at, cmd): (f64, String), answer: Option<(f64, &str)>| {
        let who = if conn.is_empty() {
            String::new()
        } else {
            format!("{conn} ")
        };
        let detail = match answer {
            Some((t, a)) => format!("{who}{cmd} → {} ({:.0} ms)", snippet(a, 120), (t - at) * 1000.0),
            None => format!("{who}{cmd} → (no answer)"),
        };
        ops.push((at, detail));
    };
    for line in transcript.lines() {
        let Some((up, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(up) = up.parse::<f64>() else { continue };
        if !up.is_finite() {
            continue;
        }
        let rel = up - *first.get_or_insert(up);
        let (conn, rest) = match rest.strip_prefix('#').and_then(|r| r.split_once(' ')) {
            Some((n, r)) if n.bytes().all(|b| b.is_ascii_digit()) => (&rest[..n.len() + 1], r),
            _ => ("", rest),
        };
        if let Some(c) = rest.strip_prefix("C: ") {
            if let Some(o) = open.remove(conn) {
                emit(conn, o, None);
            }
            open.insert(conn, (rel, c.to_string()));
        } else if let Some(s) = rest.strip_prefix("S: ") {
            let done = open.get(conn).is_some_and(|(_, c)| {
                let tag = c.split(' ').next().unwrap_or_default();
                s.starts_with(&format!("{tag} ")) || s.starts_with("+OK") || s.starts_with("-ERR")
            });
            if done {
                let o = open.remove(conn).expect("checked above");
                emit(conn, o, Some((rel, s)));
            }
        }
    }
    for (conn, o) in std::mem::take(&mut open) {
        emit(conn, o, None);
    }
    ops
}

/// Wait until a line matching `pattern` is written to `file` after byte `base`; returns it.
async fn watch_log(
    ctx: &Ctx<'_>,
    guest: &str,
    file: &str,
    base: usize,
    pattern: &crate::case::Pattern,
) -> String {
    loop {
        if let Ok(bytes) = ctx.guests.read_file(guest, file).await {
            // A file that shrank was rotated or truncated: all of it is new.
            let from = if bytes.len() < base { 0 } else { base };
            let text = String::from_utf8_lossy(&bytes[from..]);
            if let Some(line) = text.lines().find(|l| pattern.matches_line(l)) {
                return line.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---- faults --------------------------------------------------------------------------------

async fn run_fault(ctx: &Ctx<'_>, st: &State, f: &Fault, begun: Option<FaultRun>) -> FaultRun {
    let mut run = match begun {
        Some(r) => r,
        None => {
            let fired = tokio::select! {
                why = trigger(ctx, st, f) => Some(why),
                _ = st.wait_done() => None,
            };
            match fired {
                Some(why) => start_fault(ctx, f, Some(why)).await,
                None => {
                    return FaultRun {
                        name: f.name.clone(),
                        evidence: vec![format!(
                            "its trigger ({}) did not happen before the workload ended",
                            describe_trigger(&f.start)
                        )],
                        ..FaultRun::default()
                    }
                }
            }
        }
    };
    if !run.started_ok && run.rule.is_none() {
        return run;
    }
    match &f.end {
        End::Never => {}
        End::Duration { duration } => {
            tokio::select! {
                _ = tokio::time::sleep(*duration) => {}
                _ = st.wait_done() => run.evidence.push("healed early: the workload ended first".into()),
            }
            heal(ctx, f, &mut run).await;
        }
        End::UntilStep { step } => {
            tokio::select! {
                _ = st.wait_step_end(step) => {}
                _ = st.wait_done() => {}
            }
            heal(ctx, f, &mut run).await;
        }
        End::HealStep { step } => {
            let t = st.wait_step_end(step).await;
            run.ended_s = Some(t);
            ctx.history.event(
                EventKind::FaultEnd,
                &f.name,
                f.kind.guest(),
                None,
                Some(format!("healed by step {step}")),
            );
        }
    }
    run
}

/// Wait for the fault's trigger; returns a sentence saying what happened.
async fn trigger(ctx: &Ctx<'_>, st: &State, f: &Fault) -> String {
    match &f.start {
        Trigger::At { offset } => {
            tokio::time::sleep(offset.saturating_sub(Duration::from_secs_f64(ctx.history.t()))).await;
            format!("at t={:.1} s as planned", offset.as_secs_f64())
        }
        Trigger::AfterStep { step } => {
            let t = st.wait_step_end(step).await;
            format!("after step {step} ended at t={t:.1} s")
        }
        Trigger::OnLog { guest, file, pattern } => {
            let base = st
                .log_base
                .get(&(guest.clone(), file.clone()))
                .copied()
                .unwrap_or(0);
            let line = watch_log(ctx, guest, file, base, pattern).await;
            format!("on {guest}:{file} line: {}", snippet(&line, 160))
        }
        Trigger::OnFrame { segment, matcher } => {
            let id = ctx
                .switch
                .add_rule(Rule {
                    name: format!("trigger:{}", f.name),
                    matcher: matcher.clone(),
                    action: Action::Observe,
                })
                .await;
            loop {
                let stats = ctx.switch.stats().await;
                if let Some(first) = stats
                    .rules
                    .iter()
                    .find(|r| r.id == id && r.matched > 0)
                    .and_then(|r| r.frames.first().copied())
                {
                    ctx.switch.remove_rule(id).await;
                    return format!("on {segment}.pcapng frame {first}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn describe_trigger(t: &Trigger) -> String {
    match t {
        Trigger::At { offset } => format!("at {:.1} s", offset.as_secs_f64()),
        Trigger::AfterStep { step } => format!("after step {step}"),
        Trigger::OnLog { guest, file, pattern } => {
            format!("a line matching \"{}\" in {guest}:{file}", pattern.as_str())
        }
        Trigger::OnFrame { segment, matcher } => {
            format!("{} on {segment}", crate::run::checks::describe_match(matcher))
        }
    }
}

/// Turn the fault on.
async fn start_fault(ctx: &Ctx<'_>, f: &Fault, why: Option<String>) -> FaultRun {
    let mut run = FaultRun {
        name: f.name.clone(),
        ..FaultRun::default()
    };
    let t = ctx.history.t();
    run.started_s = Some(t);
    let limit = ctx.accel.scale(Duration::from_secs(30));
    let (ok, said) = match &f.kind {
        FaultKind::Wire { segment, .. } => {
            let rule = crate::case::wire_rule(f).expect("a wire fault has a rule");
            run.rule = Some(ctx.switch.add_rule(rule).await);
            (true, format!("rule added on segment {segment}"))
        }
        FaultKind::GuestNft { guest, ruleset, .. } => {
            let path = format!("{GUEST_DIR}/fault-{}.nft", f.name);
            match ctx.guests.write_file(guest, &path, ruleset.as_bytes()).await {
                Err(e) => (false, format!("could not put the ruleset in {guest}: {e}")),
                Ok(()) => exec_said(ctx, guest, &format!("nft -f {path}"), limit).await,
            }
        }
        FaultKind::GuestExec {
            guest,
            command,
            timeout,
            ..
        } => exec_said(ctx, guest, command, ctx.accel.scale(*timeout)).await,
        FaultKind::Service { guest, unit, action } => {
            let unit = unit.as_deref().unwrap_or_default();
            let script = match action {
                ServiceAction::Stop => format!(
                    "systemctl stop {unit}; rc=$?; echo \"now $(systemctl is-active {unit})\"; \
                     [ $rc = 0 ] && ! systemctl is-active --quiet {unit}"
                ),
                ServiceAction::Kill => format!(
                    "systemctl kill -s KILL {unit}; rc=$?; sleep 1; \
                     echo \"now $(systemctl is-active {unit})\"; [ $rc = 0 ]"
                ),
                ServiceAction::Restart => {
                    format!("systemctl restart {unit} && echo \"now $(systemctl is-active {unit})\"")
                }
                ServiceAction::Reboot => String::new(),
            };
            if *action == ServiceAction::Reboot {
                (
                    false,
                    "rebooting a guest is not supported by the runner yet".to_string(),
                )
            } else {
                exec_said(ctx, guest, &script, limit).await
            }
        }
        FaultKind::DiskError { disk } => match ctx.disks.iter().find(|d| &d.spec.name == disk) {
            None => (false, format!("disk {disk} is not in the lab")),
            Some(d) => {
                run.disk_base = failed_requests(ctx, d).await;
                match d.set_failing(true) {
                    Ok(()) => (
                        true,
                        format!(
                            "disk {disk} on {} fails every request from now on (nbdkit error filter, EIO)",
                            d.spec.guest
                        ),
                    ),
                    Err(e) => (false, format!("disk {disk}: could not arm the error filter: {e}")),
                }
            }
        },
    };
    run.started_ok = ok;
    let mut sentence = String::new();
    if let Some(w) = why {
        sentence.push_str(&format!("started {w}; "));
    } else {
        sentence.push_str("in place before the first step; ");
    }
    sentence.push_str(&said);
    run.evidence.push(sentence);
    ctx.history.event(
        EventKind::FaultStart,
        &f.name,
        f.kind.guest(),
        Some(ok),
        Some(said),
    );
    if f.kind.instant_end() {
        run.ended_s = Some(ctx.history.t());
    }
    run
}

/// Turn a fault off (a fault the harness ends).
async fn heal(ctx: &Ctx<'_>, f: &Fault, run: &mut FaultRun) {
    let limit = ctx.accel.scale(Duration::from_secs(30));
    let said = match &f.kind {
        FaultKind::Wire { .. } => {
            if let Some(id) = run.rule {
                ctx.switch.remove_rule(id).await;
            }
            "rule removed".to_string()
        }
        FaultKind::GuestNft { guest, tables, .. } => {
            counters(ctx, f, run).await;
            let script = tables
                .iter()
                .map(|t| format!("nft delete table {t}"))
                .collect::<Vec<_>>()
                .join(" && ");
            exec_said(ctx, guest, &script, limit).await.1
        }
        FaultKind::GuestExec {
            guest,
            heal: Some(h),
            timeout,
            ..
        } => exec_said(ctx, guest, h, ctx.accel.scale(*timeout)).await.1,
        FaultKind::Service {
            guest, unit: Some(u), ..
        } => {
            exec_said(ctx, guest, &format!("systemctl start {u}"), limit)
                .await
                .1
        }
        FaultKind::DiskError { disk } => match ctx.disks.iter().find(|d| &d.spec.name == disk) {
            None => "nothing to heal".to_string(),
            Some(d) => {
                let said = match d.set_failing(false) {
                    Ok(()) => format!("disk {disk} serves requests again"),
                    Err(e) => format!("disk {disk}: could not disarm the error filter: {e}"),
                };
                counters(ctx, f, run).await;
                said
            }
        },
        _ => "nothing to heal".to_string(),
    };
    run.ended_s = Some(ctx.history.t());
    run.evidence
        .push(format!("healed at t={:.1} s: {said}", ctx.history.t()));
    ctx.history
        .event(EventKind::FaultEnd, &f.name, f.kind.guest(), None, Some(said));
}

/// Read a guest ruleset's counters (before it is deleted, or at the end of the arm).
/// QEMU's count of failed requests on the disk's device, if it can tell.
async fn failed_requests(ctx: &Ctx<'_>, d: &crate::disks::Disk) -> Option<u64> {
    let stats = ctx
        .guests
        .qmp(&d.spec.guest, "query-blockstats", None)
        .await
        .ok()?;
    crate::disks::failed_requests(&stats, &d.spec.device_id())
}

/// What a fault's own counters say it did (nft rules' packets, a disk's failed requests),
/// read once: when it is healed, or after the workload for one that stays on.
pub async fn counters(ctx: &Ctx<'_>, f: &Fault, run: &mut FaultRun) {
    if let FaultKind::DiskError { disk } = &f.kind {
        if run.disk_failed.is_some() || !run.started_ok {
            return;
        }
        let Some(d) = ctx.disks.iter().find(|d| &d.spec.name == disk) else {
            return;
        };
        match (run.disk_base, failed_requests(ctx, d).await) {
            (Some(before), Some(now)) => {
                let n = now.saturating_sub(before);
                run.disk_failed = Some(n);
                run.evidence.push(format!(
                    "QEMU counted {n} failed request(s) on {}'s disk {disk} while the fault was on (query-blockstats: {before} → {now})",
                    d.spec.guest
                ));
            }
            _ => run.evidence.push(format!(
                "QEMU's block statistics for disk {disk} could not be read"
            )),
        }
        return;
    }
    let FaultKind::GuestNft { guest, tables, .. } = &f.kind else {
        return;
    };
    if run.nft_packets.is_some() || !run.started_ok {
        return;
    }
    let script = tables
        .iter()
        .map(|t| format!("nft list table {t}"))
        .collect::<Vec<_>>()
        .join("; ");
    if let Ok(out) = ctx
        .guests
        .exec(guest, &script, ctx.accel.scale(Duration::from_secs(10)))
        .await
    {
        let counters = nft_packet_counts(&out.stdout);
        if !counters.is_empty() {
            let total: u64 = counters.iter().sum();
            run.nft_packets = Some(total);
            run.evidence.push(format!(
                "{guest}'s nft counters: {total} packets ({})",
                counters.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
    }
}

/// The `counter packets N` values of an `nft list` output.
pub fn nft_packet_counts(listing: &str) -> Vec<u64> {
    let words: Vec<&str> = listing.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[0] == "counter" && w[1] == "packets")
        .filter_map(|w| w[2].parse().ok())
        .collect()
}

/// Run a fault's command; (it exited 0, a clause saying how it went).
async fn exec_said(ctx: &Ctx<'_>, guest: &str, script: &str, limit: Duration) -> (bool, String) {
    match ctx.guests.exec(guest, script, limit).await {
        Ok(o) => {
            let out = format!("{} {}", o.stdout.trim(), o.stderr.trim());
            let out = snippet(out.trim(), 160);
            let tail = if out.is_empty() {
                String::new()
            } else {
                format!(" ({out})")
            };
            (
                o.ok(),
                format!(
                    "`{}` on {guest} exited {}{tail}",
                    snippet(script, 120),
                    o.exit_code
                ),
            )
        }
        Err(e) => (false, format!("`{}` on {guest}: {e}", snippet(script, 120))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ops_pair_each_connection_with_its_own_answers() {
        let transcript = "\
10.00 #1 S: * OK ready
10.00 #1 C: a1 LOGIN \"user1\" ***
10.10 #2 C: a1 LOGIN \"user2\" ***
10.25 #2 S: a1 OK Logged in
10.30 #1 S: a1 NO [LIMIT] too many
#1 login refused
10.40 #2 C: a2 SELECT INBOX
10.41 #2 S: * 1 EXISTS
nonsense without a time
NaN #2 S: a2 OK forged
10.90 #2 S: a2 OK [READ-WRITE] Select completed
11.00 C: STAT
11.50 S: +OK 2 20
12.00 #3 C: a1 LOGIN \"user3\" ***
";
        let ops = pair_session_ops(transcript);
        let shown: Vec<String> = ops.iter().map(|(at, d)| format!("{at:.2} {d}")).collect();
        assert_eq!(
            shown,
            [
                "0.10 #2 a1 LOGIN \"user2\" *** → a1 OK Logged in (150 ms)",
                "0.00 #1 a1 LOGIN \"user1\" *** → a1 NO [LIMIT] too many (300 ms)",
                "0.40 #2 a2 SELECT INBOX → a2 OK [READ-WRITE] Select completed (500 ms)",
                "1.00 STAT → +OK 2 20 (500 ms)",
                "2.00 #3 a1 LOGIN \"user3\" *** → (no answer)",
            ]
        );
    }

    #[test]
    fn nft_counters_are_read() {
        let listing = "table inet x {\n chain in {\n udp dport 4045 counter packets 3 bytes 180 drop\n \
                       counter packets 0 bytes 0\n }\n}\n";
        assert_eq!(nft_packet_counts(listing), vec![3, 0]);
    }
}
