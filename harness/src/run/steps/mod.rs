//! The steps of a workload (Jepsen's generator): run in file order, a background step letting
//! the next one start once it is ready (its ready file appeared) while the reaper
//! ([`reap`]) collects its end. Each step's start, readiness and end go to `history.jsonl` as
//! they happen, and its record (outcome, output, times) to the shared [`State`].
//!
//! Kinds: `exec`, `lock_probe`, `imap`/`pop3` sessions and client populations
//! ([`population`]) are guest processes (started in one
//! agent exchange, polled in others); `wait` and `wait_for_log` are the harness's own waits;
//! `capture` copies evidence out mid-workload ([`capture`]).
//!
//! Invariant: every guest process has a limit (its timeout scaled for TCG, plus a margin) past
//! which it is killed and the step `timed-out` (not failed: why it did not end is unknown);
//! nothing here waits without one.

mod capture;
mod population;
mod session;

use std::sync::Mutex;
use std::time::Duration;

use crate::case::{CloseMode, LockMode, SessionStop, Step, StepKind};
use crate::qemu::agent::{AgentError, ExecOutput};
use crate::results::EventKind;
use crate::run::context::{log_base, watch_log, Ctx, State, GUEST_DIR};
use crate::run::guests::Running;
use crate::run::history::unix_now;
use crate::run::record::{snippet, StepOutcome};
use crate::shquote::sh_quote;

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
pub(crate) enum ProcKind {
    Exec,
    LockProbe,
    Mail,
    Population,
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
        StepKind::Population(p) => {
            let p = &ctx.arm.population(&step.name, p);
            let host = if p.server == guest {
                "localhost"
            } else {
                p.server.as_str()
            };
            Prepared {
                script: population::script(p, host, &ready),
                ready_file: Some(ready),
                limit: population::limit(p, ctx.accel.scale(Duration::from_secs(60))),
                expect_exit: 0,
                kind: ProcKind::Population,
                stop_on_log: None,
            }
        }
        StepKind::Wait { .. } | StepKind::WaitForLog { .. } | StepKind::Capture { .. } => return None,
    })
}

/// Background steps started and not yet reaped.
#[derive(Default)]
pub(crate) struct Background(Mutex<Vec<Pending>>);

struct Pending {
    step: String,
    run: Running,
    prep: Prepared,
}

impl Background {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Run the case's steps in order; returns once every step has ended, background ones too.
pub(crate) async fn run(ctx: &Ctx<'_>, st: &State, background: &Background) {
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
                finish(ctx, st, step, t, StepEnd::default());
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
                let found = tokio::time::timeout(limit, watch_log(ctx, st, g, file, pattern)).await;
                let (outcome, out) = match found {
                    Ok(Ok(line)) => (StepOutcome::Ok, line),
                    // Where the file ended at the start is unknown: no line can be told new.
                    Ok(Err(why)) => (StepOutcome::Error(why), String::new()),
                    Err(_) => (
                        StepOutcome::Failed(format!(
                            "no line matching \"{}\" appeared in {file} within {:.0} s",
                            pattern.as_str(),
                            limit.as_secs_f64()
                        )),
                        String::new(),
                    ),
                };
                let end = StepEnd {
                    outcome,
                    output: out,
                    ..StepEnd::default()
                };
                finish(ctx, st, step, t, end);
            }
            StepKind::Capture {
                command,
                files,
                timeout,
            } => {
                let g = guest.unwrap_or_default();
                capture::run(ctx, st, step, g, command.as_deref(), files, *timeout).await;
            }
            _ => {
                let Some(prep) = prepare(ctx, step) else { continue };
                let g = guest.unwrap_or_default();
                let t = begin(ctx, st, step, snippet(&prep.script, 200));
                // A session stopped by a log line whose start offset is unknown could be
                // stopped by a line written before the workload: not run.
                if let Some(Err(why)) = prep.stop_on_log.as_ref().map(|s| log_base(st, &s.guest, &s.file)) {
                    not_run(ctx, st, step, t, why);
                    continue;
                }
                let run = match ctx.guests.spawn(g, &prep.script).await {
                    Ok(r) => r,
                    Err(e) => {
                        not_run(ctx, st, step, t, format!("could not start it: {e}"));
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
                            background.lock().push(Pending {
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
                            // The line appears: tell the client (it polls for the file), then
                            // keep waiting for it to end.
                            let signal = async {
                                // Its offset was checked before the start: an error here
                                // cannot happen, and would leave the session to its timeout.
                                let Ok(line) =
                                    watch_log(ctx, st, &stop.guest, &stop.file, &stop.pattern).await
                                else {
                                    return std::future::pending::<()>().await;
                                };
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
    while !background.lock().is_empty() {
        let _ = rx.changed().await;
    }
}

/// Collect background steps as they end.
pub(crate) async fn reap(ctx: &Ctx<'_>, st: &State, background: &Background) {
    let mut steps_rx = st.changed.subscribe();
    loop {
        let pending: Vec<(String, Running, Prepared)> = background
            .lock()
            .iter()
            .map(|p| (p.step.clone(), p.run.clone(), p.prep.clone()))
            .collect();
        if pending.is_empty() {
            // Nothing pending: wait for the step loop to add some or to finish.
            if st.is_done() || st.all_ended(ctx.case) {
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
            background.lock().retain(|p| p.step != name);
            let step = ctx.case.step(&name).expect("pending steps are the case's");
            let started = st.read(&name, |r| r.started_s).unwrap_or(0.0);
            complete(ctx, st, step, started, &prep, result);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

pub(crate) fn begin(ctx: &Ctx<'_>, st: &State, step: &Step, detail: String) -> f64 {
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
    let truncated = result.as_ref().is_ok_and(|o| o.truncated);
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
        session::session_ops(ctx, step, started, &out);
    }
    // Its attempts, on the workload's clock, beside the step's record.
    let kept = (prep.kind == ProcKind::Population)
        .then(|| population::keep_attempts(ctx.dir, &step.name, &out, started));
    if let Some(Err(why)) = &kept {
        ctx.history.event(
            EventKind::Op,
            &step.name,
            step.guest.as_deref(),
            None,
            Some(format!("no attempt records: {why}")),
        );
    }
    let end = StepEnd {
        outcome,
        exit_code: code,
        output: out,
        stderr: err,
        duration,
    };
    finish(ctx, st, step, started, end);
    if truncated {
        st.update(&step.name, |r| r.truncated = true);
    }
    if let Some(Ok(file)) = kept {
        st.update(&step.name, |r| r.files.push(file));
    }
}

/// A guest process's end as a step's outcome, exit code, stdout and stderr.
pub(crate) fn outcome_of(
    result: Result<ExecOutput, AgentError>,
    expect_exit: i64,
    kind: ProcKind,
) -> (StepOutcome, Option<i64>, String, String) {
    match result {
        Err(AgentError::ExecTimeout { limit, .. }) => (
            StepOutcome::TimedOut(format!(
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
                    ProcKind::Population => format!("the population's client exited {}{said}", o.exit_code),
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

/// End a step the harness could not run (no output, no exit status): `error`, with why.
fn not_run(ctx: &Ctx<'_>, st: &State, step: &Step, started: f64, why: String) {
    let end = StepEnd {
        outcome: StepOutcome::Error(why),
        ..StepEnd::default()
    };
    finish(ctx, st, step, started, end);
}

/// How a step ended: what `finish` records beside the time.
pub(crate) struct StepEnd {
    pub outcome: StepOutcome,
    pub exit_code: Option<i64>,
    pub output: String,
    pub stderr: String,
    /// The step's own measure of its duration, when it has one (else end − start).
    pub duration: Option<f64>,
}

impl Default for StepEnd {
    /// Ended well, with nothing to say.
    fn default() -> StepEnd {
        StepEnd {
            outcome: StepOutcome::Ok,
            exit_code: None,
            output: String::new(),
            stderr: String::new(),
            duration: None,
        }
    }
}

pub(crate) fn finish(ctx: &Ctx<'_>, st: &State, step: &Step, started: f64, end: StepEnd) {
    let StepEnd {
        outcome,
        exit_code,
        output,
        stderr,
        duration,
    } = end;
    let ok = outcome == StepOutcome::Ok;
    let detail = match &outcome {
        StepOutcome::Ok => None,
        StepOutcome::Failed(w) | StepOutcome::Error(w) => Some(w.clone()),
        StepOutcome::TimedOut(w) => Some(format!("timed out: {w}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_killed_at_its_limit_timed_out_and_one_that_exited_failed() {
        let killed = outcome_of(
            Err(AgentError::ExecTimeout {
                command: "dd if=/dev/urandom of=/mnt/shelf/during".into(),
                limit: Duration::from_secs(70),
            }),
            0,
            ProcKind::Exec,
        );
        assert_eq!(
            killed.0,
            StepOutcome::TimedOut("still running after 70 s, killed".into())
        );
        // flock -w giving up is the command's own failure, not the harness's timeout.
        let gave_up = outcome_of(
            Ok(ExecOutput {
                exit_code: 1,
                stdout: String::new(),
                stderr: String::new(),
                truncated: false,
            }),
            0,
            ProcKind::Exec,
        );
        assert_eq!(gave_up.0, StepOutcome::Failed("exited 1 (expected 0)".into()));
        assert_eq!(gave_up.1, Some(1));
    }
}
