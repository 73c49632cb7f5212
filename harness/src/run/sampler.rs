//! The samplers' runner side and an arm's series put together: a sampler
//! (`run/guest/sampler.pl`) started in every guest as the workload starts, one agent exchange
//! each, sampling into a file on its own; stopped at the workload's end by a stop file, its
//! file read back (size-capped) into `guests/<guest>/sampler.txt`; then, with the segment's
//! trace counted per second ([`crate::metrics::wire`]), every series of the arm in
//! `metrics.json` and their summary for run.json.
//!
//! Architecture invariant: no agent round trip per sample (a busy guest under TCG answers
//! slowly; the sampler must not wait on the harness), every wait has a deadline, and a guest
//! whose samples could not be had says why in the record's `problems` instead of contributing
//! zeros. [`assemble`] is pure.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::metrics::summary::{summarise, MetricsRecord, FILE};
use crate::metrics::{self, ArmMetrics, Series};
use crate::run::context::{Ctx, GUEST_DIR};
use crate::run::guests::Running;
use crate::run::record::snippet;
use crate::run::trace::TraceFrame;

const SCRIPT: &[u8] = include_bytes!("guest/sampler.pl");
/// The sampling interval, seconds.
pub const INTERVAL_S: f64 = 1.0;
/// Most bytes of samples a guest writes and the harness reads back: about 700 bytes a second
/// is an hour in 2.5 MB.
pub const MAX_BYTES: usize = 8 << 20;
/// A sampler nobody stopped ends on its own after this long.
const MAX_SECONDS: u64 = 6 * 3600;

fn out_path() -> String {
    format!("{GUEST_DIR}/sampler.out")
}

fn stop_path() -> String {
    format!("{GUEST_DIR}/sampler.stop")
}

/// The samplers of an arm's guests, running (or why one is not).
pub struct Samplers {
    running: Vec<(String, Result<Running, String>)>,
}

/// Start a sampler in every guest (`GUEST_DIR` must exist: the workload made it).
pub async fn start(ctx: &Ctx<'_>) -> Samplers {
    let starts = ctx.case.guests.iter().map(|g| async move {
        let path = format!("{GUEST_DIR}/sampler.pl");
        let started = async {
            ctx.guests
                .write_file(&g.name, &path, SCRIPT)
                .await
                .map_err(|e| format!("installing the sampler: {e}"))?;
            let script = format!(
                "rm -f {out} {stop}; exec perl {path} {out} {stop} {INTERVAL_S} {MAX_SECONDS} {MAX_BYTES}",
                out = out_path(),
                stop = stop_path(),
            );
            ctx.guests
                .spawn(&g.name, &script)
                .await
                .map_err(|e| format!("starting the sampler: {e}"))
        };
        (g.name.clone(), started.await)
    });
    Samplers {
        running: futures::future::join_all(starts).await,
    }
}

/// Stop every sampler and read its samples back, writing each to `guests/<guest>/sampler.txt`
/// under `dir`. Guest → its samples' text, or why there are none.
pub async fn stop(ctx: &Ctx<'_>, samplers: Samplers, dir: &Path) -> BTreeMap<String, Result<String, String>> {
    let stops = samplers.running.into_iter().map(|(guest, running)| async move {
        let text = async {
            let guest = guest.as_str();
            let r = running?;
            // The sampler checks for the stop file after every sample and every sleep.
            let _ = ctx.guests.write_file(guest, &stop_path(), b"").await;
            let limit = r.started.elapsed() + ctx.accel.scale(Duration::from_secs(3));
            let ended = match ctx.guests.wait(&r, limit).await {
                Ok(o) if o.ok() => None,
                Ok(o) => Some(format!(
                    "the sampler exited {}: {}",
                    o.exit_code,
                    snippet(&o.stderr, 160)
                )),
                Err(e) => Some(format!("the sampler did not stop: {e}")),
            };
            let read = ctx
                .guests
                .read_file_upto(
                    guest,
                    &out_path(),
                    MAX_BYTES + 4096,
                    ctx.accel.scale(Duration::from_secs(20)),
                )
                .await
                .map_err(|e| {
                    format!(
                        "reading the samples back: {e}{}",
                        ended.map(|w| format!(" ({w})")).unwrap_or_default()
                    )
                })?;
            let text = String::from_utf8_lossy(&read.data).into_owned();
            let gdir = dir.join("guests").join(guest);
            let _ = std::fs::create_dir_all(&gdir);
            let _ = std::fs::write(gdir.join("sampler.txt"), &text);
            Ok(text)
        };
        let text = text.await;
        (guest, text)
    });
    futures::future::join_all(stops).await.into_iter().collect()
}

/// Every series of an arm: each guest's samples (guest → text or why missing) and the
/// segments' complete traces (segment → frames, or why not counted); times from
/// `workload_unix`, the wire series at least to `workload_s`. Also run.json's summary.
pub fn assemble(
    samples: &BTreeMap<String, Result<String, String>>,
    traces: &BTreeMap<String, Result<&[TraceFrame], String>>,
    workload_unix: f64,
    workload_s: f64,
    populations: Vec<Series>,
) -> (ArmMetrics, MetricsRecord) {
    let mut series: Vec<Series> = Vec::new();
    let mut record = MetricsRecord {
        file: FILE.to_string(),
        ..MetricsRecord::default()
    };
    for (guest, text) in samples {
        match text {
            Ok(text) => {
                let read = metrics::sampler::parse(text, guest, workload_unix);
                series.extend(read.series);
                if let Some(pct) = read.overhead_pct {
                    record.sampler_overhead_pct.insert(guest.clone(), pct);
                }
                record.problems.extend(read.problems);
            }
            Err(why) => record.problems.push(format!("{guest}: no samples: {why}")),
        }
    }
    for (segment, frames) in traces {
        match frames {
            Ok(frames) => series.extend(metrics::wire::count(
                segment,
                frames.iter().map(|f| (f.timestamp_ns, &f.facts)),
                workload_unix,
                workload_s,
            )),
            Err(why) => record.problems.push(format!(
                "{segment}: no wire series (the trace is not complete: {})",
                snippet(why, 160)
            )),
        }
    }
    series.extend(populations);
    let m = ArmMetrics {
        interval_s: INTERVAL_S,
        series,
    };
    record.series = summarise(&m);
    record.first_user_failure_s = metrics::first_user_failure(&m);
    (m, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arm_s_series_come_from_every_sampler_and_trace_and_what_is_missing_says_why() {
        let mut samples = BTreeMap::new();
        samples.insert(
            "imap1".to_string(),
            Ok(
                "faultline-sampler 1 clk_tck=100\ns 101 load1=1\ns 102 load1=2\nend 102 ticks=1 age=2\n"
                    .to_string(),
            ),
        );
        samples.insert(
            "filer".to_string(),
            Err("starting the sampler: agent gone".to_string()),
        );
        let mut traces = BTreeMap::new();
        traces.insert("lan".to_string(), Ok(&[][..]));
        traces.insert(
            "san".to_string(),
            Err("fewer frames than the switch received".to_string()),
        );
        let (m, rec) = assemble(&samples, &traces, 100.0, 2.0, Vec::new());
        assert_eq!(m.get("imap1.load1").map(|s| s.points.len()), Some(2));
        assert_eq!(m.get("lan.syn").map(|s| s.points.len()), Some(2));
        assert_eq!(rec.sampler_overhead_pct.get("imap1"), Some(&0.5));
        assert_eq!(rec.series.len(), m.series.len());
        assert_eq!(rec.file, "metrics.json");
        assert_eq!(
            rec.problems,
            [
                "filer: no samples: starting the sampler: agent gone",
                "san: no wire series (the trace is not complete: fewer frames than the switch received)"
            ]
        );
    }
}
