//! Whether a fault provably fired, judged from what the runner gathered about it
//! ([`FaultRun`]): the switch's rule count and frame numbers, a guest ruleset's nft counters,
//! a disk's failed requests, latencies and held requests, whether its start command took
//! effect. Pure: data in, a [`FaultProof`] out, which [`crate::case::verdict`] combines with
//! the checks.
//!
//! Invariant: a fault with nothing to show for it did not fire — a wire rule that matched no
//! frame (or that the switch did not report), a disk error during which no request failed, a
//! delay no request waited for, a pause that held no request, a fault the runner has no record
//! of. A power cut fired when every disk's nbdkit was killed: what it did (a lost cache, an
//! outage) is there whether or not the guest asked for anything meanwhile.

use crate::case::{Fault, FaultKind, FaultProof};
use crate::run::record::FaultRun;
use crate::run::trace;

/// Whether `f` provably fired, and the evidence (`run`'s sentences, with the rule's count for
/// a wire fault). `segment` names the pcapng the rule's frame numbers point into.
pub fn fault_proof(f: &Fault, run: Option<&FaultRun>, segment: &str) -> FaultProof {
    let Some(run) = run else {
        return FaultProof {
            name: f.name.clone(),
            fired: false,
            evidence: "the runner has no record of it".into(),
        };
    };
    let mut evidence = run.evidence.clone();
    let fired = match &f.kind {
        FaultKind::Wire { .. } => match run.wire.as_ref().and_then(|w| Some((w.verb, w.stats.as_ref()?))) {
            Some((verb, s)) if s.matched > 0 => {
                evidence.push(format!(
                    "the switch {verb} {} frame(s): wire/{segment}.pcapng frames {}",
                    s.matched,
                    trace::list_frames(&s.frames)
                ));
                true
            }
            Some(_) => {
                evidence.push("no frame matched the rule while it was in place".into());
                false
            }
            None => false,
        },
        // A loaded ruleset proves nothing: only a packet its counters counted does (every
        // ruleset has one, case::resolve sees to it). Unreadable counters are no proof.
        FaultKind::GuestNft { .. } => run.started_ok && run.nft_packets.is_some_and(|n| n > 0),
        // Requests fail while it is on, but only a request that failed then proves it.
        FaultKind::DiskError { .. } => run.started_ok && run.disk_failed.is_some_and(|n| n > 0),
        // Every delayed request waits at least the delay: the mean latency shows it.
        FaultKind::DiskDelay { read, write, .. } => match (run.started_ok, run.disk_delta) {
            (true, Some(delta)) => {
                let (shown, said) = crate::disks::blockstats::delay_shown(&delta, *read, *write);
                evidence.push(said);
                shown
            }
            _ => false,
        },
        // A pause that answered P and held a request until it ended.
        FaultKind::DiskPause { .. } => run.started_ok && run.disk_held.is_some_and(|n| n > 0),
        _ => run.started_ok,
    };
    FaultProof {
        name: f.name.clone(),
        fired,
        evidence: evidence.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::case::{DiskTarget, End, ServiceAction, Trigger};
    use crate::disks::BlockStats;
    use crate::run::record::WireRun;
    use crate::wire::rules::{Action, Match, RuleId, RuleStats};

    fn fault(name: &str, kind: FaultKind) -> Fault {
        Fault {
            name: name.into(),
            kind,
            start: Trigger::At {
                offset: Duration::from_secs(12),
            },
            end: End::Duration {
                duration: Duration::from_secs(60),
            },
        }
    }

    fn wire() -> Fault {
        fault(
            "grant-lost",
            FaultKind::Wire {
                segment: "lan".into(),
                matcher: Match::default(),
                action: Action::Drop,
            },
        )
    }

    fn nft() -> Fault {
        fault(
            "nlm-blocked",
            FaultKind::GuestNft {
                guest: "imap2".into(),
                ruleset: "table inet fl { chain c { counter drop } }".into(),
                tables: vec!["inet fl".into()],
            },
        )
    }

    fn disk() -> Fault {
        fault(
            "shelf-error",
            FaultKind::DiskError {
                on: DiskTarget::Disk("shelf".into()),
                rate: None,
            },
        )
    }

    fn service() -> Fault {
        fault(
            "statd-down",
            FaultKind::Service {
                guest: "imap1".into(),
                unit: Some("rpc-statd".into()),
                action: ServiceAction::Stop,
            },
        )
    }

    fn gathered(started_ok: bool, evidence: &[&str]) -> FaultRun {
        FaultRun {
            name: "f".into(),
            started_s: Some(12.0),
            ended_s: Some(72.0),
            started_ok,
            evidence: evidence.iter().map(|s| s.to_string()).collect(),
            ..FaultRun::default()
        }
    }

    /// A wire fault's run: its rule, and what the switch reported for it (`None`: nothing).
    fn wire_run(matched: Option<(u64, Vec<u64>)>) -> FaultRun {
        FaultRun {
            wire: Some(WireRun {
                rule: RuleId(7),
                verb: "dropped",
                stats: matched.map(|(matched, frames)| RuleStats {
                    id: RuleId(7),
                    name: "grant-lost".into(),
                    matched,
                    frames,
                    active: false,
                }),
            }),
            ..gathered(
                true,
                &[
                    "started at t=12.0 s as planned; rule added on segment lan",
                    "healed at t=72.0 s: rule removed",
                ],
            )
        }
    }

    fn proof(f: &Fault, run: Option<&FaultRun>) -> (bool, String) {
        let p = fault_proof(f, run, "lan");
        assert_eq!(p.name, f.name);
        (p.fired, p.evidence)
    }

    #[test]
    fn a_wire_fault_fired_when_its_rule_acted_on_frames() {
        let run = wire_run(Some((3, vec![41, 57, 90])));
        assert_eq!(
            proof(&wire(), Some(&run)),
            (
                true,
                "started at t=12.0 s as planned; rule added on segment lan; healed at t=72.0 s: rule removed; \
                 the switch dropped 3 frame(s): wire/lan.pcapng frames 41, 57, 90"
                    .into()
            )
        );
    }

    #[test]
    fn a_wire_fault_whose_rule_matched_nothing_did_not_fire() {
        let run = wire_run(Some((0, vec![])));
        assert_eq!(
            proof(&wire(), Some(&run)),
            (
                false,
                "started at t=12.0 s as planned; rule added on segment lan; healed at t=72.0 s: rule removed; \
                 no frame matched the rule while it was in place"
                    .into()
            )
        );
    }

    #[test]
    fn a_wire_rule_the_switch_did_not_report_is_not_proof() {
        let run = wire_run(None);
        assert_eq!(
            proof(&wire(), Some(&run)),
            (
                false,
                "started at t=12.0 s as planned; rule added on segment lan; healed at t=72.0 s: rule removed"
                    .into()
            )
        );
    }

    #[test]
    fn a_fault_whose_trigger_never_came_or_that_has_no_record_did_not_fire() {
        let never = FaultRun {
            name: "grant-lost".into(),
            evidence: vec!["its trigger (after step lock) did not happen before the workload ended".into()],
            ..FaultRun::default()
        };
        assert_eq!(
            proof(&wire(), Some(&never)),
            (
                false,
                "its trigger (after step lock) did not happen before the workload ended".into()
            )
        );
        assert_eq!(
            proof(&service(), None),
            (false, "the runner has no record of it".into())
        );
    }

    #[test]
    fn a_guest_ruleset_whose_counters_could_not_be_read_did_not_fire() {
        let loaded = "started at t=12.0 s as planned; `nft -f /run/faultline/fault-nlm-blocked.nft` on imap2 exited 0; imap2's nft counters could not be read";
        let run = FaultRun {
            nft_packets: None,
            ..gathered(true, &[loaded])
        };
        assert_eq!(proof(&nft(), Some(&run)), (false, loaded.into()));
    }

    #[test]
    fn a_guest_ruleset_fired_only_when_its_counters_counted_a_packet() {
        let said =
            "started at t=12.0 s as planned; `nft -f /run/faultline/fault-nlm-blocked.nft` on imap2 exited 0";
        let counted = |n: Option<u64>| FaultRun {
            nft_packets: n,
            ..gathered(true, &[said])
        };
        assert_eq!(proof(&nft(), Some(&counted(Some(3)))), (true, said.into()));
        assert_eq!(proof(&nft(), Some(&counted(Some(0)))), (false, said.into()));
        let refused =
            "started at t=12.0 s as planned; `nft -f /run/faultline/fault-nlm-blocked.nft` on imap2 exited 1";
        assert_eq!(
            proof(&nft(), Some(&gathered(false, &[refused]))),
            (false, refused.into())
        );
    }

    #[test]
    fn a_disk_fault_fired_only_if_a_request_failed_while_it_was_on() {
        let on = "in place before the first step; disk shelf on filer fails every request from now on \
                  (nbdkit error filter, EIO)";
        let failed = |n: u64, line: &str| FaultRun {
            disk_base: Some(4),
            disk_failed: Some(n),
            ..gathered(true, &[on, line])
        };
        let two = "QEMU counted 2 failed request(s) on filer's disk shelf while the fault was on \
                   (query-blockstats: 4 → 6)";
        assert_eq!(
            proof(&disk(), Some(&failed(2, two))),
            (true, format!("{on}; {two}"))
        );
        let none = "QEMU counted 0 failed request(s) on filer's disk shelf while the fault was on \
                    (query-blockstats: 4 → 4)";
        assert_eq!(
            proof(&disk(), Some(&failed(0, none))),
            (false, format!("{on}; {none}"))
        );
        let unreadable = "QEMU's block statistics for disk shelf could not be read";
        assert_eq!(
            proof(&disk(), Some(&gathered(true, &[on, unreadable]))),
            (false, format!("{on}; {unreadable}"))
        );
    }

    #[test]
    fn a_delay_fired_when_the_requests_it_delays_took_as_long() {
        let f = fault(
            "a-slow",
            FaultKind::DiskDelay {
                on: DiskTarget::Shelf("a".into()),
                read: Some(Duration::from_millis(200)),
                write: None,
            },
        );
        let on = "in place before the first step; shelf a (disks a1, a2) on filer delays reads by 200ms \
                  (nbdkit delay filter, in place since the disk was served)";
        let counted = |reads: u64, ms: u64| FaultRun {
            disk_delta: Some(BlockStats {
                rd_operations: reads,
                rd_total_time_ns: reads * ms * 1_000_000,
                wr_operations: 40,
                wr_total_time_ns: 40_000_000,
                ..BlockStats::default()
            }),
            ..gathered(true, &[on])
        };
        assert_eq!(
            proof(&f, Some(&counted(12, 230))),
            (
                true,
                format!(
                    "{on}; QEMU's block statistics: 12 read(s) took 230 ms on average (at least 90 % of the 200 ms delay)"
                )
            )
        );
        assert_eq!(
            proof(&f, Some(&counted(12, 3))),
            (
                false,
                format!(
                    "{on}; QEMU's block statistics: 12 read(s) took 3 ms on average (less than 90 % of the 200 ms delay)"
                )
            )
        );
        assert_eq!(
            proof(&f, Some(&counted(0, 0))),
            (false, format!("{on}; QEMU's block statistics: no read was made"))
        );
        let unread = "QEMU's block statistics for shelf a (disks a1, a2) could not be read";
        assert_eq!(
            proof(&f, Some(&gathered(true, &[on, unread]))),
            (false, format!("{on}; {unread}"))
        );
    }

    #[test]
    fn a_pause_fired_when_it_held_a_request() {
        let f = fault(
            "b-stall",
            FaultKind::DiskPause {
                on: DiskTarget::Disk("b1".into()),
            },
        );
        let on = "started at t=12.0 s as planned; disk b1 on filer stalled: every disk's pause filter answered P, \
                  and new requests hang (QEMU counts requests that take 1s or more)";
        let held = |n: Option<u64>, ok: bool| FaultRun {
            disk_held: n,
            ..gathered(ok, &[on])
        };
        assert!(proof(&f, Some(&held(Some(3), true))).0);
        assert!(!proof(&f, Some(&held(Some(0), true))).0, "nothing was held");
        assert!(!proof(&f, Some(&held(None, true))).0, "histograms unread");
        assert!(
            !proof(&f, Some(&held(Some(3), false))).0,
            "the pause did not take"
        );
    }

    #[test]
    fn a_power_cut_fired_when_every_disk_was_killed() {
        let f = fault(
            "a-dark",
            FaultKind::PowerCut {
                on: DiskTarget::Shelf("a".into()),
                hold: Duration::ZERO,
            },
        );
        let cut = "started after step x ended at t=3.0 s; shelf a (disks a1, a2) on filer lost power: nbdkit \
                   SIGKILLed for a1 (pid 10), a2 (pid 11), with whatever its write cache held; requests fail at \
                   once until it is back (QEMU reconnect-delay 0)";
        assert_eq!(proof(&f, Some(&gathered(true, &[cut]))), (true, cut.into()));
        assert!(
            !proof(
                &f,
                Some(&gathered(false, &["shelf a: the power cut did not take"]))
            )
            .0
        );
    }

    #[test]
    fn other_faults_fired_when_their_start_took_effect() {
        let stopped =
            "started after step mount ended at t=3.2 s; `systemctl stop rpc-statd` on imap1 exited 0 \
                       (now inactive)";
        assert_eq!(
            proof(&service(), Some(&gathered(true, &[stopped]))),
            (true, stopped.into())
        );
        assert_eq!(
            proof(&service(), Some(&gathered(false, &[stopped]))),
            (false, stopped.into())
        );
    }
}
