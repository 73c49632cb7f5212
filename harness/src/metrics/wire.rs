//! Per-second counts out of a segment's trace: TCP SYNs (without ACK: connection attempts),
//! RSTs, and NLM and NSM calls by procedure (over UDP and over TCP's record marking, as the
//! classifier's RPC tracker finds them, several per frame).
//!
//! A series' point at `t` counts what the switch stamped in the second before `t` (seconds
//! since the workload started): the same reading as the sampler's per-second rates.
//!
//! Architecture invariant: pure (frame facts in, series out). Only a complete trace is counted
//! (the caller passes none otherwise), so a zero here is an observed zero; every second from
//! the first frame (or the workload's start) to the end is present. Frame timestamps are the
//! switch's own; a timestamp far outside the workload is left out rather than making a
//! series of millions of empty seconds.

use std::collections::BTreeMap;

use super::{Origin, Point, Series};
use crate::wire::rpc::{procedure_name, program};
use crate::wire::rules::Facts;

/// Frames further than this outside the workload are not counted (seconds).
const SLACK_S: f64 = 600.0;
/// At most this many seconds per series.
const MAX_SECONDS: i64 = 86_400;

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// The series of segment `segment` from its frames' (switch timestamp in ns, facts);
/// `workload_unix` is the workload's start in unix seconds, `until_s` its end (seconds since
/// the start): the series run at least to there.
pub fn count<'a>(
    segment: &str,
    frames: impl IntoIterator<Item = (u64, &'a Facts)>,
    workload_unix: f64,
    until_s: f64,
) -> Vec<Series> {
    // Second index → counts; metric → (second → n).
    let mut counts: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    for name in ["syn", "rst", "nlm.calls", "nsm.calls"] {
        counts.insert(name.to_string(), BTreeMap::new());
    }
    let until = if until_s.is_finite() {
        until_s.max(0.0)
    } else {
        0.0
    };
    let (mut first, mut last) = (0i64, until.ceil() as i64 - 1);
    for (ns, facts) in frames {
        let t = ns as f64 / 1e9 - workload_unix;
        if !t.is_finite() || t < -SLACK_S || t > until + SLACK_S {
            continue;
        }
        let sec = t.floor() as i64;
        first = first.min(sec);
        last = last.max(sec);
        let mut bump = |metric: String| *counts.entry(metric).or_default().entry(sec).or_insert(0) += 1;
        if let Some(flags) = facts.tcp_flags {
            if flags & (SYN | ACK) == SYN {
                bump("syn".into());
            }
            if flags & RST != 0 {
                bump("rst".into());
            }
        }
        for m in facts.rpc.iter().filter(|m| m.call) {
            let (Some(prog), Some(vers), Some(proc_)) = (m.program, m.version, m.procedure) else {
                continue;
            };
            let family = match prog {
                program::NLM => "nlm",
                program::NSM => "nsm",
                _ => continue,
            };
            bump(format!("{family}.calls"));
            bump(format!("{family}.{}", procedure_metric(prog, vers, proc_)));
        }
    }
    last = last.min(first + MAX_SECONDS - 1);
    counts
        .into_iter()
        .map(|(metric, per_sec)| Series {
            origin: Origin::Wire(segment.to_string()),
            unit: if metric.contains('.') {
                "calls/s"
            } else {
                "frames/s"
            }
            .to_string(),
            metric,
            limit: None,
            points: (first..=last)
                .map(|s| Point {
                    t: (s + 1) as f64,
                    v: per_sec.get(&s).copied().unwrap_or(0) as f64,
                })
                .collect(),
        })
        .collect()
}

/// A procedure's metric name within its family: the `.x` file's name without the program
/// prefix, lower case (`NLM4_LOCK` and `NLM_LOCK` → `lock`, `NLM4_GRANTED_MSG` →
/// `granted_msg`, `SM_NOTIFY` → `notify`, Linux's private NLM procedure 16 → `sm_notify`);
/// `proc<N>` for a number without a name.
fn procedure_metric(prog: u32, vers: u32, proc_: u32) -> String {
    match procedure_name(prog, vers, proc_) {
        Some(name) => {
            let bare = ["NLM4_", "NLM_", "SM_"]
                .iter()
                .find_map(|p| name.strip_prefix(p))
                .unwrap_or(name);
            bare.to_ascii_lowercase()
        }
        None => format!("proc{proc_}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::classify::Classifier;
    use crate::wire::frame::tcp_flags;
    use crate::wire::test_frames::{
        call, lock_call_v4, record, tcp4, udp4, unlockargs, TcpConn, FE1, FILER, NLM, NSM, X,
    };

    /// Frames at the given seconds after a workload that started at unix 10000.
    fn facts(frames: &[(f64, Vec<u8>)]) -> Vec<(u64, Facts)> {
        let mut c = Classifier::default();
        frames
            .iter()
            .map(|(t, f)| (((10_000.0 + t) * 1e9) as u64, c.facts(f).0))
            .collect()
    }

    fn series(frames: &[(u64, Facts)], until: f64) -> BTreeMap<String, Vec<(f64, f64)>> {
        count("lan", frames.iter().map(|(t, f)| (*t, f)), 10_000.0, until)
            .into_iter()
            .map(|s| {
                assert_eq!(s.origin, Origin::Wire("lan".into()));
                (s.metric, s.points.iter().map(|p| (p.t, p.v)).collect())
            })
            .collect()
    }

    #[test]
    fn syns_without_ack_and_rsts_are_counted_per_second() {
        let mut conn = TcpConn::new((FE1, 40000), (FILER, 143));
        let hs = conn.handshake();
        let rst = tcp4(FE1, 40000, FILER, 143, 5, 0, tcp_flags::RST | tcp_flags::ACK, &[]);
        let other_syn = tcp4(FE1, 40001, FILER, 143, 9, 0, tcp_flags::SYN, &[]);
        let frames = facts(&[
            (0.2, hs[0].clone()),
            (0.3, hs[1].clone()), // SYN+ACK: not an attempt
            (0.4, hs[2].clone()),
            (1.5, other_syn),
            (2.9, rst),
        ]);
        let s = series(&frames, 3.0);
        assert_eq!(s["syn"], [(1.0, 1.0), (2.0, 1.0), (3.0, 0.0)]);
        assert_eq!(s["rst"], [(1.0, 0.0), (2.0, 0.0), (3.0, 1.0)]);
        assert_eq!(s["nlm.calls"], [(1.0, 0.0), (2.0, 0.0), (3.0, 0.0)]);
    }

    #[test]
    fn nlm_and_nsm_calls_are_counted_by_procedure_over_udp_and_tcp() {
        let cookie = [1u8, 2, 3, 4];
        // Two NLM calls in one TCP segment (record marking), one over UDP.
        let mut conn = TcpConn::new((FE1, 700), (FILER, 4045));
        let hs = conn.handshake();
        let mut two = record(&lock_call_v4(7, &cookie, true, false));
        two.extend(record(&call(8, NLM, 4, 4, &unlockargs(&cookie))));
        let tcp_two = conn.a_to_b(&two);
        let granted_msg = udp4(FILER, 4045, FE1, 800, &call(9, NLM, 4, 10, &[]));
        let notify = udp4(
            FILER,
            900,
            FE1,
            801,
            &call(10, NSM, 1, 6, &X::new().string("filer").u32(3).0),
        );
        let sm_notify_v3 = udp4(FE1, 901, FE1, 4045, &call(11, NLM, 3, 16, &[]));
        let reply_like = udp4(FE1, 800, FILER, 4045, &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0]);
        let frames = facts(&[
            (0.1, hs[0].clone()),
            (0.2, hs[1].clone()),
            (0.3, hs[2].clone()),
            (0.5, tcp_two),
            (1.1, granted_msg),
            (1.2, reply_like),
            (1.3, notify),
            (1.4, sm_notify_v3),
        ]);
        let s = series(&frames, 2.0);
        assert_eq!(s["nlm.calls"], [(1.0, 2.0), (2.0, 2.0)]);
        assert_eq!(s["nlm.lock"], [(1.0, 1.0), (2.0, 0.0)]);
        assert_eq!(s["nlm.unlock"], [(1.0, 1.0), (2.0, 0.0)]);
        assert_eq!(s["nlm.granted_msg"], [(1.0, 0.0), (2.0, 1.0)]);
        assert_eq!(s["nlm.sm_notify"], [(1.0, 0.0), (2.0, 1.0)]);
        assert_eq!(s["nsm.notify"], [(1.0, 0.0), (2.0, 1.0)]);
        assert_eq!(s["nsm.calls"], [(1.0, 0.0), (2.0, 1.0)]);
        assert_eq!(procedure_metric(NLM, 4, 99), "proc99");
    }

    #[test]
    fn frames_before_the_start_widen_the_series_and_wild_times_are_left_out() {
        let syn = tcp4(FE1, 1, FILER, 2, 1, 0, tcp_flags::SYN, &[]);
        let frames = facts(&[(-1.5, syn.clone()), (1e7, syn.clone()), (-5000.0, syn)]);
        let s = series(&frames, 1.0);
        assert_eq!(s["syn"], [(-1.0, 1.0), (0.0, 0.0), (1.0, 0.0)]);
        // No workload length and no frame: no points, not a panic.
        assert!(series(&[], f64::NAN)["syn"].is_empty());
    }

    #[test]
    fn garbage_frames_are_counted_as_nothing_never_a_panic() {
        let mut c = Classifier::default();
        let junk: Vec<(u64, Facts)> = (0..300)
            .map(|len| {
                let f: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
                (10_000_000_000_000, c.facts(&f).0)
            })
            .collect();
        let s = series(&junk, 1.0);
        assert!(s.values().all(|p| p.len() == 1));
    }
}
