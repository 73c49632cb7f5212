//! A segment's pcapng read back for checks: every frame with its number, time, the port it
//! came in on, the ports it went to, and the facts rules match on.
//!
//! Pure: bytes in, frames out. Egress ports are worked out by the switch's own rule
//! ([`MacTable::forward`], on the frame's bytes as the switch read them, runts included): a
//! destination MAC seen earlier as a source goes to that port; anything else (broadcast,
//! multicast, not yet learnt) is flooded. The pcapng does not record when guests connected,
//! so a trace counts every port as connected: a frame flooded while a guest was away lists
//! that guest's port, where the switch did not send it.
//!
//! `to` is where the switch sent a frame *toward* (addressed to, by the learning rule), even
//! when a fault rule then dropped it there; the pcapng comment of such a frame names each
//! port it was dropped toward, and [`TraceFrame::delivered_to`] leaves those out.
//!
//! A trace proves an absence only when it is complete: [`completeness`] compares it with the
//! switch's own counts.

use crate::wire::classify::Classifier;
use crate::wire::learning::MacTable;
use crate::wire::pcapng::{self, Block};
use crate::wire::rules::{Facts, Match};
use crate::wire::switch::SegmentStats;

/// One frame of a trace.
#[derive(Debug, Clone)]
pub struct TraceFrame {
    /// 1-based, as Wireshark and tshark number frames.
    pub number: u64,
    pub timestamp_ns: u64,
    /// The port (guest) it came in on.
    pub from: String,
    /// The ports the switch sent it toward (addressed to), fault rules aside.
    pub to: Vec<String>,
    /// The ports of `to` a fault rule dropped it toward (from the frame's pcapng comment).
    pub dropped_to: Vec<String>,
    pub facts: Facts,
}

impl TraceFrame {
    /// Whether `m` matches this frame toward any port it was sent toward — with `delivered`,
    /// only toward a port no rule dropped it at. A frame with no egress port still matches a
    /// `to`-less match unless `delivered` is asked for.
    pub fn matches(&self, m: &Match, delivered: bool) -> bool {
        if self.to.is_empty() {
            return !delivered && m.to.is_none() && m.matches(&self.facts, &self.from, "");
        }
        self.to
            .iter()
            .filter(|to| !delivered || !self.dropped_to.contains(to))
            .any(|to| m.matches(&self.facts, &self.from, to))
    }

    /// The ports it went on to: `to` without those a rule dropped it toward.
    pub fn delivered_to(&self) -> impl Iterator<Item = &String> {
        self.to.iter().filter(|p| !self.dropped_to.contains(p))
    }
}

/// The ports a frame's pcapng comment says a rule dropped it toward: the switch writes one
/// clause per rule and port, "dropped toward imap1 by rule grant-lost (#1)" or "dropped
/// (partition) toward imap1 by …", joined by "; " (wire::rules::RuleSet::decide).
fn dropped_toward(comment: Option<&str>) -> Vec<String> {
    let Some(comment) = comment else {
        return Vec::new();
    };
    comment
        .split("; ")
        .filter(|c| c.starts_with("dropped"))
        .filter_map(|c| {
            c.split_once(" toward ")?
                .1
                .split_once(" by rule ")
                .map(|(p, _)| p.to_string())
        })
        .collect()
}

/// Read every frame of a pcapng written by the switch.
pub fn read(bytes: &[u8]) -> Result<Vec<TraceFrame>, pcapng::ReadError> {
    let blocks = pcapng::read_blocks(bytes)?;
    let mut ports: Vec<String> = Vec::new();
    let mut macs = MacTable::default();
    let mut classifier = Classifier::default();
    let mut frames = Vec::new();
    for block in blocks {
        match block {
            Block::Interface(i) => ports.push(i.name.unwrap_or("?").to_string()),
            Block::Packet(p) => {
                let from = p.interface as usize;
                let (facts, _) = classifier.facts(p.data);
                let to: Vec<String> = macs
                    .forward(from, p.data, ports.len(), |_| true)
                    .into_iter()
                    .map(|port| ports.get(port).cloned().unwrap_or_default())
                    .collect();
                frames.push(TraceFrame {
                    number: frames.len() as u64 + 1,
                    timestamp_ns: p.timestamp_ns,
                    from: ports.get(from).cloned().unwrap_or_else(|| "?".into()),
                    to,
                    dropped_to: dropped_toward(p.comment),
                    facts,
                });
            }
            _ => {}
        }
    }
    Ok(frames)
}

/// The numbers of the frames `m` matches (only where delivered, with `delivered`).
pub fn matching<'a>(
    frames: impl IntoIterator<Item = &'a TraceFrame>,
    m: &Match,
    delivered: bool,
) -> Vec<u64> {
    frames
        .into_iter()
        .filter(|f| f.matches(m, delivered))
        .map(|f| f.number)
        .collect()
}

/// Whether the trace `frames` (read back from `file`) holds every frame the switch received:
/// no pcapng write failed, and for every port at least as many frames as the switch counted
/// (more is fine: a trace read while the lab still runs may have grown since the count).
/// `Err` says what is missing, for every check that would count on it.
pub fn completeness(frames: &[TraceFrame], stats: &SegmentStats, file: &str) -> Result<(), String> {
    if stats.pcap_errors > 0 {
        return Err(format!(
            "the switch could not write all of {file} ({} failed write(s) or flush(es), the first: {}): it may lack frames",
            stats.pcap_errors,
            stats.pcap_error.as_deref().unwrap_or("no detail")
        ));
    }
    let short: Vec<String> = stats
        .ports
        .iter()
        .filter_map(|p| {
            let traced = frames.iter().filter(|f| f.from == p.name).count() as u64;
            (traced < p.rx_frames).then(|| format!("{} of {} from {}", traced, p.rx_frames, p.name))
        })
        .collect();
    if short.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{file} holds fewer frames than the switch received ({}): it may lack the frames a check looks for",
            short.join(", ")
        ))
    }
}

/// Frame numbers for an explanation: the first few, then how many more.
pub fn list_frames(numbers: &[u64]) -> String {
    const SHOWN: usize = 12;
    let mut s = numbers
        .iter()
        .take(SHOWN)
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if numbers.len() > SHOWN {
        s.push_str(&format!(" and {} more", numbers.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::pcapng::{Direction, Writer};
    use crate::wire::switch::{Listen, SegmentConfig, Switch, TestPort};
    use std::time::Duration;

    fn eth(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.extend_from_slice(&[0u8; 46]);
        f
    }

    #[test]
    fn egress_is_learnt_like_the_switch_does() {
        let a = [0x52, 0x54, 0, 0xfa, 0, 10];
        let b = [0x52, 0x54, 0, 0xfa, 0, 11];
        let mut w = Writer::new(Vec::new(), "test").unwrap();
        for p in ["filer", "imap1", "imap2"] {
            w.add_interface(p, p).unwrap();
        }
        // filer → broadcast (flooded), imap1 → filer (learnt), filer → imap1 (learnt).
        w.write_frame(0, 1, &eth([0xff; 6], a), Direction::Inbound, None)
            .unwrap();
        w.write_frame(1, 2, &eth(a, b), Direction::Inbound, None).unwrap();
        w.write_frame(0, 3, &eth(b, a), Direction::Inbound, None).unwrap();
        let bytes = w.into_inner();
        let frames = read(&bytes).unwrap();
        let to: Vec<Vec<String>> = frames.iter().map(|f| f.to.clone()).collect();
        assert_eq!(
            to,
            vec![
                vec!["imap1".to_string(), "imap2".to_string()],
                vec!["filer".to_string()],
                vec!["imap1".to_string()]
            ]
        );
        let to_imap2 = Match {
            to: Some("imap2".into()),
            ..Match::default()
        };
        assert_eq!(matching(&frames, &to_imap2, false), vec![1]);
        assert_eq!(
            list_frames(&(1..=14).collect::<Vec<_>>()),
            "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 2 more"
        );
    }

    /// `to` means addressed to: a frame a rule dropped toward imap1 still counts for
    /// `to = imap1`; `delivered` counts it only where the switch sent it on. The comment is
    /// the one the switch's own rules write.
    #[test]
    fn to_means_addressed_to_and_delivered_leaves_out_what_a_rule_dropped() {
        use crate::wire::rules::{Action, Rule, RuleSet};
        let a = [0x52, 0x54, 0, 0xfa, 0, 10];
        let mut rules = RuleSet::default();
        rules.add(Rule {
            name: "cut-imap1".into(),
            matcher: Match {
                to: Some("imap1".into()),
                ..Match::default()
            },
            action: Action::Drop,
        });
        let decision = rules.decide(&Facts::default(), 1, "filer", &["imap1", "imap2"], &mut || 0.0);
        let mut w = Writer::new(Vec::new(), "test").unwrap();
        for p in ["filer", "imap1", "imap2"] {
            w.add_interface(p, p).unwrap();
        }
        // A broadcast from the filer: toward imap1 (dropped there) and imap2.
        w.write_frame(
            0,
            1,
            &eth([0xff; 6], a),
            Direction::Inbound,
            decision.comment.as_deref(),
        )
        .unwrap();
        let frames = read(&w.into_inner()).unwrap();
        assert_eq!(frames[0].dropped_to, vec!["imap1".to_string()]);
        let to = |p: &str| Match {
            to: Some(p.into()),
            ..Match::default()
        };
        assert_eq!(matching(&frames, &to("imap1"), false), vec![1]);
        assert_eq!(matching(&frames, &to("imap1"), true), Vec::<u64>::new());
        assert_eq!(matching(&frames, &to("imap2"), true), vec![1]);
        assert_eq!(frames[0].delivered_to().collect::<Vec<_>>(), ["imap2"]);
        // Partition drops say so too.
        assert_eq!(
            dropped_toward(Some(
                "delayed toward filer by rule slow (#2); dropped (partition) toward imap2 by rule split (#3)"
            )),
            vec!["imap2".to_string()]
        );
    }

    /// A trace that lacks frames the switch received, or whose writes failed, is not complete.
    #[test]
    fn a_trace_with_fewer_frames_than_the_switch_received_is_incomplete() {
        use crate::wire::switch::{PortStats, SegmentStats};
        let frame = |from: &str| TraceFrame {
            number: 1,
            timestamp_ns: 0,
            from: from.into(),
            to: Vec::new(),
            dropped_to: Vec::new(),
            facts: Facts::default(),
        };
        let port = |name: &str, rx: u64| PortStats {
            name: name.into(),
            rx_frames: rx,
            ..PortStats::default()
        };
        let mut stats = SegmentStats {
            frames: 3,
            ports: vec![port("filer", 2), port("imap1", 1)],
            pcap_frames: 3,
            ..SegmentStats::default()
        };
        let frames = vec![frame("filer"), frame("filer"), frame("imap1")];
        assert_eq!(completeness(&frames, &stats, "wire/lan.pcapng"), Ok(()));
        assert_eq!(
            completeness(&frames[..2], &stats, "wire/lan.pcapng"),
            Err("wire/lan.pcapng holds fewer frames than the switch received (0 of 1 from imap1): it may lack the frames a check looks for".into())
        );
        stats.pcap_errors = 1;
        stats.pcap_error = Some("flushing wire/lan.pcapng: No space left on device (os error 28)".into());
        let why = completeness(&frames, &stats, "wire/lan.pcapng").unwrap_err();
        assert!(why.contains("No space left"), "{why}");
    }

    /// The live switch and a trace of it agree on where every frame went: frames sent through
    /// a switch (every guest connected, no rules) arrive on exactly the ports the trace read
    /// back from its pcapng lists.
    #[tokio::test]
    async fn a_trace_sends_frames_where_the_live_switch_did() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["filer", "imap1", "imap2"];
        let sw = Switch::start(SegmentConfig {
            name: "lan".into(),
            ports: names.map(String::from).to_vec(),
            socket_dir: dir.path().to_path_buf(),
            listen: Listen::Unix,
            pcap: dir.path().join("lan.pcapng"),
        })
        .await
        .unwrap();
        let mut guests = Vec::new();
        for n in names {
            guests.push(TestPort::connect(sw.socket(n).unwrap()).await.unwrap());
        }
        for _ in 0..200 {
            if sw.stats().await.ports.iter().all(|p| p.connected) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let a = [0x52, 0x54, 0, 0xfa, 0, 10];
        let b = [0x52, 0x54, 0, 0xfa, 0, 11];
        let c = [0x52, 0x54, 0, 0xfa, 0, 12];
        let sent = [
            (0, eth([0xff; 6], a)),                // flooded
            (1, eth(a, b)),                        // a learnt: filer
            (0, eth(c, a)),                        // c not yet learnt: flooded
            (2, eth(b, c)),                        // b learnt: imap1
            (0, eth(c, a)),                        // c learnt: imap2
            (1, eth(b, b)),                        // to its own port: nowhere
            (2, eth([0x33, 0x33, 0, 0, 0, 1], c)), // multicast: flooded
            (0, eth(b, [0u8; 6])[..12].to_vec()),  // a runt: b learnt, imap1
        ];
        let mut went = Vec::new();
        for (from, f) in &sent {
            guests[*from].send(f).await.unwrap();
            let mut to = Vec::new();
            for (i, g) in guests.iter_mut().enumerate() {
                if i == *from {
                    continue;
                }
                if let Some(got) = g.recv(Duration::from_millis(200)).await.unwrap() {
                    assert_eq!(&got, f, "frame {} on {}", went.len() + 1, names[i]);
                    to.push(names[i].to_string());
                }
            }
            went.push(to);
        }
        let stats = sw.stop().await;
        let frames = read(&std::fs::read(&stats.pcap).unwrap()).unwrap();
        let traced: Vec<Vec<String>> = frames.iter().map(|f| f.to.clone()).collect();
        assert_eq!(traced, went);
    }
}
