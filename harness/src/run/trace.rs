//! A segment's pcapng read back for checks: every frame with its number, time, the port it
//! came in on, the ports it went to, and the facts rules match on.
//!
//! Pure: bytes in, frames out. Egress ports are worked out as the switch does it — a learning
//! switch: a destination MAC seen earlier as a source goes to that port; anything else
//! (broadcast, multicast, not yet learnt) is flooded to every other port.

use std::collections::HashMap;

use crate::wire::classify::Classifier;
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
    let mut learnt: HashMap<[u8; 6], usize> = HashMap::new();
    let mut classifier = Classifier::default();
    let mut frames = Vec::new();
    for block in blocks {
        match block {
            Block::Interface(i) => ports.push(i.name.unwrap_or("?").to_string()),
            Block::Packet(p) => {
                let from = p.interface as usize;
                let (facts, _) = classifier.facts(p.data);
                if facts.src_mac[0] & 1 == 0 {
                    learnt.insert(facts.src_mac, from);
                }
                let to: Vec<String> = match learnt.get(&facts.dst_mac) {
                    Some(&port) if facts.dst_mac[0] & 1 == 0 => {
                        if port == from {
                            Vec::new()
                        } else {
                            vec![ports.get(port).cloned().unwrap_or_default()]
                        }
                    }
                    _ => (0..ports.len())
                        .filter(|&i| i != from)
                        .map(|i| ports[i].clone())
                        .collect(),
                };
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
}
