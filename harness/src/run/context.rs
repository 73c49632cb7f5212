//! What the steps ([`crate::run::steps`]) and the faults ([`crate::run::faults`]) of one arm
//! share while its workload runs: the context they work with, the step records and their
//! change signals, and where watched logs ended at the workload's start. Both sides import
//! this; neither imports the workload that joins them.
//!
//! Invariant: a log whose start offset could not be read is never watched from 0 — lines
//! written before the workload would count as new.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::accel::Accel;
use crate::case::{Arm, Case};
use crate::run::guests::Guests;
use crate::run::history::History;
use crate::run::record::StepRecord;
use crate::shquote::sh_quote;
use crate::wire::switch::Switch;

/// Where the harness's helper scripts go in every guest.
pub(crate) const GUEST_DIR: &str = "/run/faultline";

/// What the steps and faults of one arm work with.
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

/// What steps and faults share while the workload runs.
pub(crate) struct State {
    steps: Mutex<BTreeMap<String, StepRecord>>,
    /// Bumped whenever a step record changes.
    pub(crate) changed: watch::Sender<u64>,
    /// True once every step has finished.
    done: watch::Sender<bool>,
    /// Byte offsets of log files at the workload's start: lines before them do not count.
    /// An offset that could not be read is the reason why: such a log is never matched.
    log_base: BTreeMap<(String, String), Result<usize, String>>,
}

impl State {
    /// A record for every step of the case, none started; `log_base` is where each watched
    /// log ended at the workload's start, or why that is not known.
    pub(crate) fn new(case: &Case, log_base: BTreeMap<(String, String), Result<usize, String>>) -> State {
        State {
            steps: Mutex::new(
                case.steps
                    .iter()
                    .map(|s| (s.name.clone(), StepRecord::new(&s.name, s.guest.as_deref())))
                    .collect(),
            ),
            changed: watch::channel(0).0,
            done: watch::channel(false).0,
            log_base,
        }
    }

    /// The step loop has finished: every step ended and background ones reaped.
    pub(crate) fn mark_done(&self) {
        self.done.send_replace(true);
    }

    /// The step records, once nothing else holds the state.
    pub(crate) fn into_steps(self) -> BTreeMap<String, StepRecord> {
        self.steps.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn update(&self, step: &str, f: impl FnOnce(&mut StepRecord)) {
        {
            let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = steps.get_mut(step) {
                f(r);
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// A copy of one step's record field, read under the lock.
    pub(crate) fn read<T>(&self, step: &str, f: impl FnOnce(&StepRecord) -> Option<T>) -> Option<T> {
        self.steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(step)
            .and_then(f)
    }

    fn ended(&self, step: &str) -> Option<f64> {
        self.read(step, |r| r.ended_s)
    }

    /// Whether every step of the case has ended (so nothing more can start).
    pub(crate) fn all_ended(&self, case: &Case) -> bool {
        let steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        case.steps
            .iter()
            .all(|s| steps.get(&s.name).is_some_and(|r| r.ended_s.is_some()))
    }

    /// Whether the step loop has finished (every step ended, background ones reaped).
    pub(crate) fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    pub(crate) async fn wait_step_end(&self, step: &str) -> f64 {
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

    pub(crate) async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}

/// The shell that prints where `file` ends: its size, 0 when it does not exist yet (all of it
/// will be new), and `?` when it exists but its size cannot be read.
pub(super) fn offset_script(file: &str) -> String {
    let f = sh_quote(file);
    format!("if [ -e {f} ]; then stat -c %s -- {f} 2>/dev/null || echo '?'; else echo 0; fi")
}

/// Where each of `files` ended, from the output of their [`offset_script`]s in order. An
/// offset that cannot be read is an error, never 0: from 0, lines written before the workload
/// would count as new.
pub(super) fn log_offsets(files: &[String], stdout: &str) -> Vec<(String, Result<usize, String>)> {
    let mut lines = stdout.lines();
    files
        .iter()
        .map(|f| {
            let offset = match lines.next().map(str::trim) {
                None => Err("its size at the workload's start is missing".to_string()),
                Some(l) => l
                    .parse::<usize>()
                    .map_err(|_| format!("its size at the workload's start could not be read ({l:?})")),
            };
            (f.clone(), offset)
        })
        .collect()
}

/// Where `guest`'s `file` ended at the workload's start, or why that is not known.
pub(crate) fn log_base(st: &State, guest: &str, file: &str) -> Result<usize, String> {
    match st.log_base.get(&(guest.to_string(), file.to_string())) {
        Some(Ok(n)) => Ok(*n),
        Some(Err(why)) => Err(format!("cannot watch {guest}:{file}: {why}")),
        None => Err(format!(
            "cannot watch {guest}:{file}: where it ended at the workload's start was not noted"
        )),
    }
}

/// Wait until a line matching `pattern` is written to `guest`'s `file` after where it ended at
/// the workload's start; returns it. When that offset is not known, returns why at once:
/// matching from 0 could take a line written before the workload for the trigger.
pub(crate) async fn watch_log(
    ctx: &Ctx<'_>,
    st: &State,
    guest: &str,
    file: &str,
    pattern: &crate::case::Pattern,
) -> Result<String, String> {
    let base = log_base(st, guest, file)?;
    loop {
        if let Ok(bytes) = ctx.guests.read_file(guest, file).await {
            // A file that shrank was rotated or truncated: all of it is new.
            let from = if bytes.len() < base { 0 } else { base };
            let text = String::from_utf8_lossy(&bytes[from..]);
            if let Some(line) = text.lines().find(|l| pattern.matches_line(l)) {
                return Ok(line.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("/var/log/f{i}")).collect()
    }

    #[test]
    fn an_offset_that_could_not_be_read_is_an_error_never_zero() {
        let got = log_offsets(&files(4), "1234\n0\n?\n");
        assert_eq!(got[0].1, Ok(1234));
        assert_eq!(
            got[1].1,
            Ok(0),
            "a file that does not exist yet: all of it is new"
        );
        assert!(
            got[2].1.as_ref().is_err_and(|e| e.contains("could not be read")),
            "{got:?}"
        );
        assert!(got[3].1.as_ref().is_err_and(|e| e.contains("missing")), "{got:?}");
    }

    #[test]
    fn the_offset_script_tells_a_missing_file_from_an_unreadable_one() {
        let s = offset_script("/var/log/mail.log");
        assert!(s.contains("echo '?'") && s.contains("else echo 0"), "{s}");
    }
}
