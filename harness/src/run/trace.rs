//! A segment's pcapng read back for checks: every frame with its number, time, the port it
//! came in on, the ports it went to, and the facts rules match on.
//!
//! Pure: bytes in, frames out. Egress ports are worked out by the switch's own rule
//! ([`MacTable::forward`], on the frame's bytes as the switch read them, runts included): a
//! destination MAC seen earlier as a source goes to that port; anything else (broadcast,
//! multicast, not yet learnt) is flooded. The pcapng does not record when guests connected,
//! so a trace counts every port as connected: a frame flooded while a guest was away lists
//! that guest's port, where the switch did not send it.

use crate::wire::classify::Classifier;
use crate::wire::learning::MacTable;
use crate::wire::pcapng::{self, Block};
use crate::wire::rules::{Facts, Match};

/// One frame of a trace.
#[derive(Debug, Clone)]
pub struct TraceFrame {
    /// 1-based, as Wireshark and tshark number frames.
    pub number: u64,
    pub timestamp_ns: u64,
    /// The port (guest) it came in on.
    pub from: String,
    /// The ports it left by.
    pub to: Vec<String>,
    pub facts: Facts,
}

impl TraceFrame {
    /// Whether `m` matches this frame toward any port it left by (a frame with no egress port
    /// still matches a `to`-less match).
    pub fn matches(&self, m: &Match) -> bool {
        if self.to.is_empty() {
            return m.to.is_none() && m.matches(&self.facts, &self.from, "");
        }
        self.to.iter().any(|to| m.matches(&self.facts, &self.from, to))
    }
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
                    facts,
                });
            }
            _ => {}
        }
    }
    Ok(frames)
}

/// The numbers of the frames `m` matches.
pub fn matching<'a>(frames: impl IntoIterator<Item = &'a TraceFrame>, m: &Match) -> Vec<u64> {
    frames
        .into_iter()
        .filter(|f| f.matches(m))
        .map(|f| f.number)
        .collect()
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
    use crate::wire::switch::{SegmentConfig, Switch, TestPort};
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
        assert_eq!(matching(&frames, &to_imap2), vec![1]);
        assert_eq!(
            list_frames(&(1..=14).collect::<Vec<_>>()),
            "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 2 more"
        );
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
