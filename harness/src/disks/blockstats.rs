//! QEMU's own counts of a disk's requests (`query-blockstats`), the proof of disk faults:
//! failed requests (an error), request latency (a delay), requests held past a threshold (a
//! pause, from the latency histograms `block-latency-histogram-set` turns on). Pure.
//!
//! A disk added with `device_add` has `device` "" in the answer, so its entry is found by its
//! `qdev` path, which ends in the device's id (then `/virtio-backend`).

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

/// One device's counters, or several devices' summed (a shelf).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlockStats {
    pub rd_operations: u64,
    pub wr_operations: u64,
    pub flush_operations: u64,
    pub failed_rd_operations: u64,
    pub failed_wr_operations: u64,
    pub failed_flush_operations: u64,
    pub rd_total_time_ns: u64,
    pub wr_total_time_ns: u64,
    pub flush_total_time_ns: u64,
}

/// The `query-blockstats` entry of `device` (a qdev id such as `disk-a1`).
fn entry<'a>(blockstats: &'a Value, device: &str) -> Option<&'a Value> {
    blockstats.as_array()?.iter().find(|e| {
        e["device"].as_str() == Some(device)
            || e["qdev"].as_str().is_some_and(|q| {
                q.trim_end_matches("/virtio-backend")
                    .ends_with(&format!("/{device}"))
            })
    })
}

impl BlockStats {
    /// `device`'s counters in a `query-blockstats` answer; `None` when it is not there. A
    /// counter QEMU leaves out is 0.
    pub fn of(blockstats: &Value, device: &str) -> Option<BlockStats> {
        let s = &entry(blockstats, device)?["stats"];
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        Some(BlockStats {
            rd_operations: n("rd_operations"),
            wr_operations: n("wr_operations"),
            flush_operations: n("flush_operations"),
            failed_rd_operations: n("failed_rd_operations"),
            failed_wr_operations: n("failed_wr_operations"),
            failed_flush_operations: n("failed_flush_operations"),
            rd_total_time_ns: n("rd_total_time_ns"),
            wr_total_time_ns: n("wr_total_time_ns"),
            flush_total_time_ns: n("flush_total_time_ns"),
        })
    }

    /// Failed reads, writes and flushes.
    pub fn failed(&self) -> u64 {
        self.failed_rd_operations + self.failed_wr_operations + self.failed_flush_operations
    }

    /// Reads, writes and flushes that succeeded.
    pub fn done(&self) -> u64 {
        self.rd_operations + self.wr_operations + self.flush_operations
    }

    /// What happened between `before` and `self` (counters never go back; a restarted QEMU
    /// would read as 0, not as a negative count).
    pub fn since(&self, before: &BlockStats) -> BlockStats {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        BlockStats {
            rd_operations: d(self.rd_operations, before.rd_operations),
            wr_operations: d(self.wr_operations, before.wr_operations),
            flush_operations: d(self.flush_operations, before.flush_operations),
            failed_rd_operations: d(self.failed_rd_operations, before.failed_rd_operations),
            failed_wr_operations: d(self.failed_wr_operations, before.failed_wr_operations),
            failed_flush_operations: d(self.failed_flush_operations, before.failed_flush_operations),
            rd_total_time_ns: d(self.rd_total_time_ns, before.rd_total_time_ns),
            wr_total_time_ns: d(self.wr_total_time_ns, before.wr_total_time_ns),
            flush_total_time_ns: d(self.flush_total_time_ns, before.flush_total_time_ns),
        }
    }

    /// The sum of several devices' counters (a shelf's disks).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a BlockStats>) -> BlockStats {
        all.into_iter().fold(BlockStats::default(), |a, b| BlockStats {
            rd_operations: a.rd_operations + b.rd_operations,
            wr_operations: a.wr_operations + b.wr_operations,
            flush_operations: a.flush_operations + b.flush_operations,
            failed_rd_operations: a.failed_rd_operations + b.failed_rd_operations,
            failed_wr_operations: a.failed_wr_operations + b.failed_wr_operations,
            failed_flush_operations: a.failed_flush_operations + b.failed_flush_operations,
            rd_total_time_ns: a.rd_total_time_ns + b.rd_total_time_ns,
            wr_total_time_ns: a.wr_total_time_ns + b.wr_total_time_ns,
            flush_total_time_ns: a.flush_total_time_ns + b.flush_total_time_ns,
        })
    }

    /// Mean latency of the reads; `None` without any.
    pub fn mean_read(&self) -> Option<Duration> {
        mean(self.rd_total_time_ns, self.rd_operations)
    }

    /// Mean latency of the writes; `None` without any.
    pub fn mean_write(&self) -> Option<Duration> {
        mean(self.wr_total_time_ns, self.wr_operations)
    }
}

fn mean(total_ns: u64, ops: u64) -> Option<Duration> {
    (ops > 0).then(|| Duration::from_nanos(total_ns / ops))
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Whether a delay shows in QEMU's latencies while it was on, and the sentence saying so:
/// the delay filter sleeps before every request it delays, so each direction it delays that
/// had requests has a mean latency of at least its delay (90 % of it is allowed for clock
/// rounding). At least one delayed direction must have had requests: a delay nobody waited
/// for proves nothing.
pub fn delay_shown(delta: &BlockStats, read: Option<Duration>, write: Option<Duration>) -> (bool, String) {
    let mut parts = Vec::new();
    let mut seen = false;
    let mut short = false;
    for (what, delay, ops, mean) in [
        ("read", read, delta.rd_operations, delta.mean_read()),
        ("write", write, delta.wr_operations, delta.mean_write()),
    ] {
        let Some(delay) = delay else { continue };
        match mean {
            None => parts.push(format!("no {what} was made")),
            Some(m) => {
                seen = true;
                let enough = m.as_nanos() * 10 >= delay.as_nanos() * 9;
                short |= !enough;
                let cmp = if enough { "at least" } else { "less than" };
                parts.push(format!(
                    "{ops} {what}(s) took {} on average ({cmp} 90 % of the {} delay)",
                    ms(m),
                    ms(delay)
                ));
            }
        }
    }
    let fired = seen && !short;
    (fired, format!("QEMU's block statistics: {}", parts.join("; ")))
}

/// The QMP arguments that give `device` latency histograms with one boundary, `threshold`:
/// every request then counts in the bin below it or the bin at or above it.
pub fn histogram_args(device: &str, threshold: Duration) -> Value {
    json!({"id": device, "boundaries": [threshold.as_nanos() as u64]})
}

/// How many of `device`'s reads, writes and flushes took at least `threshold`, from the
/// latency histograms [`histogram_args`] set. `None` when the device or every histogram with
/// that boundary is missing (it was not set, or was reset by another).
pub fn slow_requests(blockstats: &Value, device: &str, threshold: Duration) -> Option<u64> {
    let s = &entry(blockstats, device)?["stats"];
    let bound = threshold.as_nanos() as u64;
    let mut found = false;
    let mut n = 0;
    for h in [
        "rd_latency_histogram",
        "wr_latency_histogram",
        "flush_latency_histogram",
    ] {
        let (Some(bounds), Some(bins)) = (s[h]["boundaries"].as_array(), s[h]["bins"].as_array()) else {
            continue;
        };
        let Some(i) = bounds.iter().position(|b| b.as_u64() == Some(bound)) else {
            continue;
        };
        if bins.len() != bounds.len() + 1 {
            continue;
        }
        found = true;
        n += bins[i + 1..].iter().filter_map(Value::as_u64).sum::<u64>();
    }
    found.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `query-blockstats` answer as QEMU 7.2 gives it: the root disk (a `-drive`, named) and
    /// two hot-plugged disks (no name, found by qdev).
    fn answer() -> Value {
        json!([
            {"device": "root", "qdev": "/machine/peripheral-anon/device[1]/virtio-backend",
             "stats": {"rd_operations": 900, "wr_operations": 90, "failed_rd_operations": 9,
                       "rd_total_time_ns": 1_000_000, "idle_time_ns": 5}},
            {"device": "", "qdev": "/machine/peripheral/disk-a1/virtio-backend",
             "stats": {"rd_operations": 10, "wr_operations": 4, "flush_operations": 2,
                       "failed_rd_operations": 2, "failed_wr_operations": 5, "failed_flush_operations": 1,
                       "rd_total_time_ns": 2_100_000_000u64, "wr_total_time_ns": 800_000_000u64,
                       "flush_total_time_ns": 1_000,
                       "rd_latency_histogram": {"boundaries": [1_000_000_000u64], "bins": [8, 2]},
                       "wr_latency_histogram": {"boundaries": [1_000_000_000u64], "bins": [3, 1]}}},
            {"device": "", "qdev": "/machine/peripheral/disk-a2/virtio-backend",
             "stats": {"rd_operations": 1, "wr_operations": 1}}
        ])
    }

    #[test]
    fn a_devices_counters_are_found_by_qdev() {
        let a1 = BlockStats::of(&answer(), "disk-a1").unwrap();
        assert_eq!(a1.failed(), 8);
        assert_eq!(a1.done(), 16);
        assert_eq!(a1.mean_read(), Some(Duration::from_millis(210)));
        assert_eq!(a1.mean_write(), Some(Duration::from_millis(200)));
        assert_eq!(BlockStats::of(&answer(), "root").unwrap().failed(), 9);
        assert_eq!(
            BlockStats::of(&answer(), "disk-a"),
            None,
            "a prefix is not the device"
        );
        assert_eq!(BlockStats::of(&answer(), "disk-b1"), None);
        assert_eq!(BlockStats::of(&json!({"no": "array"}), "disk-a1"), None);
        let a2 = BlockStats::of(&answer(), "disk-a2").unwrap();
        assert_eq!((a2.failed(), a2.mean_read()), (0, Some(Duration::ZERO)));
    }

    #[test]
    fn a_shelf_sums_its_disks_and_deltas_never_go_negative() {
        let a1 = BlockStats::of(&answer(), "disk-a1").unwrap();
        let a2 = BlockStats::of(&answer(), "disk-a2").unwrap();
        let shelf = BlockStats::sum([&a1, &a2]);
        assert_eq!((shelf.rd_operations, shelf.failed()), (11, 8));
        let d = shelf.since(&a2);
        assert_eq!(d, a1);
        assert_eq!(a2.since(&shelf), BlockStats::default());
    }

    #[test]
    fn a_delay_shows_as_mean_latency_in_every_delayed_direction() {
        let a1 = BlockStats::of(&answer(), "disk-a1").unwrap();
        let d = |ms| Some(Duration::from_millis(ms));
        assert_eq!(
            delay_shown(&a1, d(200), d(200)),
            (
                true,
                "QEMU's block statistics: 10 read(s) took 210 ms on average (at least 90 % of the 200 ms delay); \
                 4 write(s) took 200 ms on average (at least 90 % of the 200 ms delay)"
                    .into()
            )
        );
        // Writes faster than the write delay: the filter did not act on them.
        let (fired, said) = delay_shown(&a1, d(200), d(500));
        assert!(!fired);
        assert!(
            said.ends_with("4 write(s) took 200 ms on average (less than 90 % of the 500 ms delay)"),
            "{said}"
        );
        // Only writes are delayed and none was made: nothing shows it.
        let reads_only = BlockStats {
            wr_operations: 0,
            wr_total_time_ns: 0,
            ..a1
        };
        assert_eq!(
            delay_shown(&reads_only, None, d(100)),
            (false, "QEMU's block statistics: no write was made".into())
        );
        // Rounding: 181 ms against 200 ms is within 90 %.
        let close = BlockStats {
            rd_operations: 1,
            rd_total_time_ns: 181_000_000,
            ..BlockStats::default()
        };
        assert!(delay_shown(&close, d(200), None).0);
    }

    #[test]
    fn slow_requests_come_from_the_histograms_with_the_threshold() {
        let s = Duration::from_secs(1);
        assert_eq!(slow_requests(&answer(), "disk-a1", s), Some(3));
        assert_eq!(
            slow_requests(&answer(), "disk-a1", Duration::from_millis(500)),
            None
        );
        assert_eq!(slow_requests(&answer(), "disk-a2", s), None, "no histogram set");
        assert_eq!(
            histogram_args("disk-a1", s),
            json!({"id": "disk-a1", "boundaries": [1_000_000_000u64]})
        );
    }
}
