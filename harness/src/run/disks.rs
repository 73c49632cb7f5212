//! The lab's disks in one arm, and the disk faults at run time.
//!
//! [`specs`] (pure) serves each disk of the case with the filters the arm's faults need: the
//! error filter at the rate of the arm's error faults on it, the delay filter with the arm's
//! delay, the pause filter when a pause acts on it, its write cache, and QEMU's
//! reconnect-delay from a power cut's `hold`. A filter an arm does not use is not there, so a
//! baseline arm's disks are plain.
//!
//! A fault on a shelf acts on every disk of it at once: the error triggers are created one
//! after the other (microseconds apart), the pause commands sent together, the SIGKILLs sent
//! before any is reaped. Not atomic across disks — each disk is its own nbdkit — as a real
//! controller's disks do not fail at one instant either.
//!
//! Invariants: this module gathers proof data into [`FaultRun`] and judges none of it
//! ([`crate::run::proof`] does); a fault whose start failed half-way is undone for the disks
//! it reached (a half-paused shelf is resumed, a half-cut one powered on), since the harness
//! heals only faults that started.

use std::time::Duration;

use crate::case::{Arm, Case, DiskTarget, End, Fault, FaultKind};
use crate::disks::{blockstats, pause, BlockStats, Delay, Disk, DiskSpec, ErrorRate};
use crate::run::context::Ctx;
use crate::run::record::FaultRun;

/// Every disk of the case as the arm serves it.
pub fn specs(case: &Case, arm: &Arm) -> Vec<DiskSpec> {
    case.disks
        .iter()
        .map(|d| {
            let mut s = DiskSpec::plain(&d.name, &d.guest, d.size_bytes);
            s.write_cache = d.write_cache;
            if d.nbdkit_filters.iter().any(|f| f == "error") {
                s.error_rate = Some(ErrorRate::EVERY);
            }
            for f in case.faults_of(arm) {
                if !case.fault_disks(&f.kind).iter().any(|x| x.name == d.name) {
                    continue;
                }
                // case::resolve sees to it that an arm's faults agree on each disk.
                match &f.kind {
                    FaultKind::DiskError { rate, .. } => {
                        s.error_rate = Some(rate.unwrap_or(ErrorRate::EVERY))
                    }
                    FaultKind::DiskDelay { read, write, .. } => {
                        s.delay = Some(Delay {
                            read: *read,
                            write: *write,
                        })
                    }
                    FaultKind::DiskPause { .. } => s.pause = true,
                    FaultKind::PowerCut { hold, .. } => {
                        s.reconnect_delay_s = u32::try_from(hold.as_secs()).unwrap_or(u32::MAX)
                    }
                    _ => {}
                }
            }
            s
        })
        .collect()
}

/// A request that took this long while a pause was on was held by it: healthy requests on
/// these disks take milliseconds. Half the pause when it lasts less than 2 s.
pub fn pause_threshold(end: &End) -> Duration {
    const HELD: Duration = Duration::from_secs(1);
    match end {
        End::Duration { duration } => HELD.min(*duration / 2),
        _ => HELD,
    }
}

/// The fault's disks in the lab, in the shelf's order.
fn lab_disks<'a>(ctx: &Ctx<'a>, f: &Fault) -> Result<Vec<&'a Disk>, String> {
    let names = ctx.case.fault_disks(&f.kind);
    if names.is_empty() {
        let on = f.kind.disk_target().map(|t| t.to_string()).unwrap_or_default();
        return Err(format!("{on} has no disk in the case"));
    }
    names
        .iter()
        .map(|n| {
            ctx.disks
                .iter()
                .find(|d| d.spec.name == n.name)
                .ok_or_else(|| format!("disk {} is not in the lab", n.name))
        })
        .collect()
}

/// "disk shelf" or "shelf a (disks a1, a2)".
fn target(f: &Fault, disks: &[&Disk]) -> String {
    match f.kind.disk_target() {
        Some(DiskTarget::Shelf(s)) => format!(
            "shelf {s} (disks {})",
            disks
                .iter()
                .map(|d| d.spec.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(t) => t.to_string(),
        None => String::new(),
    }
}

fn guest<'a>(disks: &[&'a Disk]) -> &'a str {
    disks.first().map(|d| d.spec.guest.as_str()).unwrap_or_default()
}

/// QEMU's counters summed over `disks`; `None` when any could not be read.
async fn stats(ctx: &Ctx<'_>, disks: &[&Disk]) -> Option<BlockStats> {
    let mut all = Vec::new();
    let mut answers: Vec<(&str, serde_json::Value)> = Vec::new();
    for d in disks {
        let g = d.spec.guest.as_str();
        if !answers.iter().any(|(a, _)| *a == g) {
            let v = ctx.guests.qmp(g, "query-blockstats", None).await.ok()?;
            answers.push((g, v));
        }
        let (_, v) = answers.iter().find(|(a, _)| *a == g)?;
        all.push(BlockStats::of(v, &d.spec.device_id())?);
    }
    Some(BlockStats::sum(&all))
}

/// Requests on `disks` that took at least `threshold` since their histograms were set;
/// `None` when some disk's could not be read.
async fn slow(ctx: &Ctx<'_>, disks: &[&Disk], threshold: Duration) -> Option<u64> {
    let mut n = 0;
    for d in disks {
        let v = ctx
            .guests
            .qmp(&d.spec.guest, "query-blockstats", None)
            .await
            .ok()?;
        n += blockstats::slow_requests(&v, &d.spec.device_id(), threshold)?;
    }
    Some(n)
}

fn ms(d: Duration) -> String {
    crate::case::duration::format(d)
}

/// Send `command` to every disk's pause filter at once; the failures, by disk.
async fn pause_all(disks: &[&Disk], command: pause::Command, limit: Duration) -> Vec<String> {
    let replies = futures::future::join_all(disks.iter().map(|d| d.pause(command, limit))).await;
    disks
        .iter()
        .zip(replies)
        .filter_map(|(d, r)| r.err().map(|e| format!("{}: {e}", d.spec.name)))
        .collect()
}

/// Power every disk on; a clause per disk.
async fn power_on_all(disks: &[&Disk]) -> (bool, Vec<String>) {
    let started = futures::future::join_all(disks.iter().map(|d| d.power_on())).await;
    let ok = started.iter().all(Result::is_ok);
    let said = disks
        .iter()
        .zip(started)
        .map(|(d, r)| match r {
            Ok(pid) => format!("{} (pid {pid})", d.spec.name),
            Err(e) => format!("{}: not served: {e}", d.spec.name),
        })
        .collect();
    (ok, said)
}

/// Turn a disk fault on: whether it took effect, and a clause saying how.
pub(crate) async fn start(ctx: &Ctx<'_>, f: &Fault, run: &mut FaultRun) -> (bool, String) {
    let disks = match lab_disks(ctx, f) {
        Ok(d) => d,
        Err(e) => return (false, e),
    };
    let on = target(f, &disks);
    let what = format!("{on} on {}", guest(&disks));
    run.disk_before = stats(ctx, &disks).await;
    run.disk_base = run.disk_before.map(|s| s.failed());
    let limit = ctx.accel.scale(Duration::from_secs(30));
    match &f.kind {
        FaultKind::DiskError { rate, .. } => {
            let armed: Vec<String> = disks
                .iter()
                .filter_map(|d| d.set_failing(true).err().map(|e| format!("{}: {e}", d.spec.name)))
                .collect();
            if !armed.is_empty() {
                for d in &disks {
                    let _ = d.set_failing(false);
                }
                return (
                    false,
                    format!("{on}: could not arm the error filter ({})", armed.join("; ")),
                );
            }
            let share = match rate {
                Some(r) if !r.is_every() => format!("{r} of requests"),
                _ => "every request".to_string(),
            };
            (
                true,
                format!("{what} fails {share} from now on (nbdkit error filter, EIO)"),
            )
        }
        FaultKind::DiskDelay { read, write, .. } => {
            let mut parts = Vec::new();
            if let Some(r) = read {
                parts.push(format!("reads by {}", ms(*r)));
            }
            if let Some(w) = write {
                parts.push(format!("writes, zeroes and trims by {}", ms(*w)));
            }
            (
                true,
                format!(
                    "{what} delays {} (nbdkit delay filter, in place since the disk was served)",
                    parts.join(" and ")
                ),
            )
        }
        FaultKind::DiskPause { .. } => {
            let threshold = pause_threshold(&f.end);
            let mut unset = Vec::new();
            for d in &disks {
                let args = blockstats::histogram_args(&d.spec.device_id(), threshold);
                if let Err(e) = ctx
                    .guests
                    .qmp(&d.spec.guest, "block-latency-histogram-set", Some(args))
                    .await
                {
                    unset.push(format!("{}: {e}", d.spec.name));
                }
            }
            let failed = pause_all(&disks, pause::Command::Pause, limit).await;
            if !failed.is_empty() {
                let undone = pause_all(&disks, pause::Command::Resume, limit).await;
                let undone = if undone.is_empty() {
                    "every disk was resumed".to_string()
                } else {
                    format!("resuming failed too ({})", undone.join("; "))
                };
                return (
                    false,
                    format!("{on}: the pause did not take ({}); {undone}", failed.join("; ")),
                );
            }
            let histograms = if unset.is_empty() {
                format!("QEMU counts requests that take {} or more", ms(threshold))
            } else {
                format!(
                    "QEMU's latency histograms could not be set ({}), so held requests cannot be counted",
                    unset.join("; ")
                )
            };
            (
                true,
                format!(
                    "{what} stalled: every disk's pause filter answered P, and new requests hang ({histograms})"
                ),
            )
        }
        FaultKind::PowerCut { hold, .. } => {
            let limit = ctx.accel.scale(Duration::from_secs(10));
            let killed = futures::future::join_all(disks.iter().map(|d| d.power_off(limit))).await;
            if killed.iter().any(Result::is_err) {
                let why: Vec<String> = disks
                    .iter()
                    .zip(&killed)
                    .filter_map(|(d, r)| r.as_ref().err().map(|e| format!("{}: {e}", d.spec.name)))
                    .collect();
                let down: Vec<&Disk> = disks
                    .iter()
                    .zip(&killed)
                    .filter(|(_, r)| r.is_ok())
                    .map(|(d, _)| *d)
                    .collect();
                let (_, back) = power_on_all(&down).await;
                return (
                    false,
                    format!(
                        "{on}: the power cut did not take ({}); the disks that went down were served again: {}",
                        why.join("; "),
                        if back.is_empty() { "none".to_string() } else { back.join(", ") }
                    ),
                );
            }
            let pids: Vec<String> = disks
                .iter()
                .zip(&killed)
                .filter_map(|(d, r)| r.as_ref().ok().map(|pid| format!("{} (pid {pid})", d.spec.name)))
                .collect();
            let requests = if hold.is_zero() {
                "requests fail at once until it is back (QEMU reconnect-delay 0)".to_string()
            } else {
                format!(
                    "QEMU holds requests up to {} for it to come back, then fails them",
                    ms(*hold)
                )
            };
            (
                true,
                format!(
                    "{what} lost power: nbdkit SIGKILLed for {}, with whatever its write cache held; {requests}",
                    pids.join(", ")
                ),
            )
        }
        _ => (false, "not a disk fault".to_string()),
    }
}

/// Turn a disk fault off (one the harness ends); the clause saying how it went.
pub(crate) async fn heal(ctx: &Ctx<'_>, f: &Fault, run: &mut FaultRun) -> String {
    let disks = match lab_disks(ctx, f) {
        Ok(d) => d,
        Err(_) => return "nothing to heal".to_string(),
    };
    let on = target(f, &disks);
    let limit = ctx.accel.scale(Duration::from_secs(30));
    let said = match &f.kind {
        FaultKind::DiskError { .. } => {
            let failed: Vec<String> = disks
                .iter()
                .filter_map(|d| {
                    d.set_failing(false)
                        .err()
                        .map(|e| format!("{}: {e}", d.spec.name))
                })
                .collect();
            match (&f.kind.disk_target(), failed.is_empty()) {
                (_, false) => format!("{on}: could not disarm the error filter ({})", failed.join("; ")),
                (Some(DiskTarget::Shelf(_)), true) => format!("{on} serve requests again"),
                _ => format!("{on} serves requests again"),
            }
        }
        FaultKind::DiskPause { .. } => {
            let failed = pause_all(&disks, pause::Command::Resume, limit).await;
            let said = if failed.is_empty() {
                format!("{on} resumed: every disk's pause filter answered R")
            } else {
                format!("{on}: resuming failed ({})", failed.join("; "))
            };
            // The held requests complete now; give QEMU a moment to count them.
            let threshold = pause_threshold(&f.end);
            let settle = ctx.accel.scale(Duration::from_secs(5));
            let t0 = tokio::time::Instant::now();
            let mut held = slow(ctx, &disks, threshold).await;
            while held == Some(0) && t0.elapsed() < settle {
                tokio::time::sleep(Duration::from_millis(200)).await;
                held = slow(ctx, &disks, threshold).await;
            }
            run.disk_held = held;
            run.evidence.push(match held {
                Some(n) => format!(
                    "QEMU saw {n} request(s) on {}'s {on} take {} or more (latency histograms)",
                    guest(&disks),
                    ms(threshold)
                ),
                None => format!("QEMU's latency histograms for {on} could not be read"),
            });
            said
        }
        FaultKind::PowerCut { .. } => {
            let (ok, back) = power_on_all(&disks).await;
            if ok {
                format!(
                    "{on} powered on: nbdkit serves {} again from the image, as persisted",
                    back.join(", ")
                )
            } else {
                format!("{on}: not all served again: {}", back.join(", "))
            }
        }
        _ => "nothing to heal".to_string(),
    };
    counters(ctx, f, run).await;
    said
}

/// What QEMU counted on the fault's disks while it was on, read once: when it is healed, or
/// after the workload for one that stays on.
pub(crate) async fn counters(ctx: &Ctx<'_>, f: &Fault, run: &mut FaultRun) {
    if run.disk_delta.is_some() || run.disk_failed.is_some() || !run.started_ok {
        return;
    }
    let Ok(disks) = lab_disks(ctx, f) else { return };
    let on = target(f, &disks);
    let g = guest(&disks);
    let (Some(before), Some(now)) = (run.disk_before, stats(ctx, &disks).await) else {
        run.evidence
            .push(format!("QEMU's block statistics for {on} could not be read"));
        return;
    };
    let delta = now.since(&before);
    run.disk_delta = Some(delta);
    match &f.kind {
        FaultKind::DiskError { .. } => {
            let n = delta.failed();
            run.disk_failed = Some(n);
            run.evidence.push(format!(
                "QEMU counted {n} failed request(s) on {g}'s {on} while the fault was on (query-blockstats: {} → {})",
                before.failed(),
                now.failed()
            ));
        }
        FaultKind::PowerCut { .. } => run.evidence.push(format!(
            "QEMU counted {} failed and {} completed request(s) on {g}'s {on} from the cut to now (query-blockstats)",
            delta.failed(),
            delta.done()
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::disks::WriteCache;

    /// A case with two shelves on the filer and a disk on imap1, and arms turning on each
    /// kind of disk fault.
    const CASE: &str = r#"
name = "t"
summary = "s"
[guests.filer]
image = "filer"
[guests.imap1]
image = "frontend"
[disks.a1]
guest = "filer"
size = "64M"
[disks.a2]
guest = "filer"
size = "64M"
[disks.b1]
guest = "filer"
size = "64M"
write_cache = "honest"
[disks.spare]
guest = "imap1"
size = "64M"
nbdkit_filters = ["error"]
[shelves.a]
disks = ["a1", "a2"]
write_cache = "lying"
[shelves.b]
disks = ["b1"]
[[steps]]
name = "x"
guest = "filer"
exec = { command = "true" }
[faults.a-flaky]
start = { at = "1s" }
end = { until_step = "x" }
disk_error = { shelf = "a", rate = "5%" }
[faults.a-slow]
start = { at = "0s" }
disk_delay = { shelf = "a", read = "200ms" }
[faults.b-stall]
start = { at = "1s" }
end = { duration = "1s" }
disk_pause = { disk = "b1" }
[faults.a-dark]
start = { after_step = "x" }
end = { duration = "30s" }
power_cut = { shelf = "a", hold = "10s" }
[faults.spare-dies]
start = { at = "1s" }
disk_error = { disk = "spare" }
[checks.ok]
step_ok = { step = "x" }
[arms.baseline]
expect = "pass"
[arms.all]
faults = ["a-flaky", "a-slow", "b-stall", "a-dark", "spare-dies"]
expect = "unknown"
"#;

    fn case() -> Case {
        crate::case::parse(Path::new("t.toml"), CASE).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_baseline_serves_plain_disks_with_their_caches_and_listed_filters() {
        let c = case();
        let specs = specs(&c, c.arm("baseline").unwrap());
        let plain = |n: &str, g: &str, cache| DiskSpec {
            write_cache: cache,
            ..DiskSpec::plain(n, g, 64 << 20)
        };
        assert_eq!(
            specs,
            [
                plain("a1", "filer", WriteCache::Lying),
                plain("a2", "filer", WriteCache::Lying),
                plain("b1", "filer", WriteCache::Honest),
                DiskSpec {
                    error_rate: Some(ErrorRate::EVERY),
                    ..plain("spare", "imap1", WriteCache::None)
                },
            ]
        );
    }

    #[test]
    fn an_arms_faults_give_each_disk_its_filters() {
        let c = case();
        let specs = specs(&c, c.arm("all").unwrap());
        let a1 = DiskSpec {
            error_rate: Some(ErrorRate::parse("5%").unwrap()),
            delay: Some(Delay {
                read: Some(Duration::from_millis(200)),
                write: None,
            }),
            write_cache: WriteCache::Lying,
            reconnect_delay_s: 10,
            ..DiskSpec::plain("a1", "filer", 64 << 20)
        };
        assert_eq!(specs[0], a1);
        assert_eq!(
            specs[1],
            DiskSpec {
                name: "a2".into(),
                ..a1
            }
        );
        assert_eq!(
            specs[2],
            DiskSpec {
                pause: true,
                write_cache: WriteCache::Honest,
                ..DiskSpec::plain("b1", "filer", 64 << 20)
            }
        );
        assert_eq!(specs[3].error_rate, Some(ErrorRate::EVERY));
    }

    #[test]
    fn a_pause_counts_requests_held_a_second_or_half_a_short_pause() {
        let d = |ms| End::Duration {
            duration: Duration::from_millis(ms),
        };
        assert_eq!(pause_threshold(&d(30_000)), Duration::from_secs(1));
        assert_eq!(pause_threshold(&d(1_000)), Duration::from_millis(500));
        assert_eq!(
            pause_threshold(&End::UntilStep { step: "x".into() }),
            Duration::from_secs(1)
        );
    }
}
