//! `history.jsonl`: the arm's operations and fault intervals as they happen.
//!
//! Times are seconds since the workload started on a monotonic clock; events from before
//! the start (the before-evidence) are held until it is known and then written with negative
//! times. Each event is written and flushed as it happens, so a run cut short keeps them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::results::{Event, EventKind};

pub struct History {
    inner: Mutex<Inner>,
}

struct Inner {
    out: BufWriter<File>,
    /// The workload's start, once it has started.
    t0: Option<(Instant, f64)>,
    /// Events from before the start: (when, unix time, event without `t`).
    early: Vec<(Instant, Event)>,
}

/// Wall-clock time now, in seconds: what the switch stamps frames with.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl History {
    pub fn create(path: &Path) -> std::io::Result<History> {
        Ok(History {
            inner: Mutex::new(Inner {
                out: BufWriter::new(File::create(path)?),
                t0: None,
                early: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mark now as t = 0, write what came before, and record the workload start.
    pub fn start_workload(&self) -> Instant {
        let now = Instant::now();
        {
            let mut g = self.lock();
            g.t0 = Some((now, unix_now()));
            let early = std::mem::take(&mut g.early);
            for (at, mut e) in early {
                e.t = -(now.duration_since(at).as_secs_f64());
                write(&mut g.out, &e);
            }
        }
        self.event(EventKind::WorkloadStart, "workload", None, None, None);
        now
    }

    /// Seconds since the workload started (0 before it has).
    pub fn t(&self) -> f64 {
        self.lock()
            .t0
            .map(|(t0, _)| t0.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    /// The workload's start in unix seconds (what `t` counts from), once it has started.
    pub fn started_unix(&self) -> Option<f64> {
        self.lock().t0.map(|(_, unix)| unix)
    }

    /// The `t` of an instant.
    pub fn t_of(&self, at: Instant) -> f64 {
        match self.lock().t0 {
            Some((t0, _)) if at >= t0 => at.duration_since(t0).as_secs_f64(),
            Some((t0, _)) => -(t0.duration_since(at).as_secs_f64()),
            None => 0.0,
        }
    }

    /// Record an event now; returns its `t`.
    pub fn event(
        &self,
        kind: EventKind,
        name: &str,
        guest: Option<&str>,
        ok: Option<bool>,
        detail: Option<String>,
    ) -> f64 {
        self.event_at(None, kind, name, guest, ok, detail)
    }

    /// Record an event at `t` (seconds since the start; `None`: now).
    pub fn event_at(
        &self,
        t: Option<f64>,
        kind: EventKind,
        name: &str,
        guest: Option<&str>,
        ok: Option<bool>,
        detail: Option<String>,
    ) -> f64 {
        let mut g = self.lock();
        let mut e = Event {
            t: 0.0,
            unix: unix_now(),
            kind,
            name: name.to_string(),
            guest: guest.map(str::to_string),
            ok,
            detail,
        };
        match g.t0 {
            None => {
                g.early.push((Instant::now(), e));
                0.0
            }
            Some((t0, unix0)) => {
                e.t = t.unwrap_or_else(|| t0.elapsed().as_secs_f64());
                if t.is_some() {
                    e.unix = unix0 + e.t;
                }
                write(&mut g.out, &e);
                e.t
            }
        }
    }
}

fn write(out: &mut BufWriter<File>, e: &Event) {
    // A history that cannot be written must not stop the arm: the verdicts do not depend on
    // it, and the report says when it is empty.
    let _ = serde_json::to_writer(&mut *out, e);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}
