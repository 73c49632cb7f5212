//! Fault rules on the wire: what they match, what they do, and how many frames they acted on.
//!
//! Pure: the switch turns each frame into [`Facts`] (from the frame classifier) and asks the
//! [`RuleSet`] what to do for each port the frame would leave by. A rule's count is the fault's
//! proof of firing, so a frame is counted once per rule, even when it is flooded to several
//! ports.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

/// What the switch knows about one frame, as far as rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub ethertype: u16,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP).
    pub ip_proto: Option<u8>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
    pub tcp_flags: Option<u8>,
    /// Every ONC RPC message in the frame.
    pub rpc: Vec<RpcFacts>,
    /// The first bytes of the TCP or UDP payload (a mail client's `QUIT`, `a5 LOGOUT`).
    pub payload: PayloadHead,
}

/// How many bytes of a frame's TCP or UDP payload a `payload_contains` match looks at: enough
/// for a mail command's verb after its tag, and a fixed size, so the switch's facts about a
/// frame stay as cheap to make as its ports and flags.
pub const PAYLOAD_HEAD: usize = 32;

/// The first [`PAYLOAD_HEAD`] bytes of a payload, held inline.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadHead {
    len: u8,
    bytes: [u8; PAYLOAD_HEAD],
}

impl PayloadHead {
    /// The head of `payload` (all of it when shorter than [`PAYLOAD_HEAD`]).
    pub fn new(payload: &[u8]) -> PayloadHead {
        let n = payload.len().min(PAYLOAD_HEAD);
        let mut bytes = [0; PAYLOAD_HEAD];
        bytes[..n].copy_from_slice(&payload[..n]);
        PayloadHead { len: n as u8, bytes }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether `needle` (non-empty) occurs within the head.
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.as_bytes().windows(needle.len()).any(|w| w == needle)
    }
}

impl std::fmt::Debug for PayloadHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PayloadHead({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One ONC RPC message. Replies carry their call's program, version and procedure when the
/// classifier saw the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcFacts {
    pub xid: u32,
    pub call: bool,
    pub program: Option<u32>,
    pub version: Option<u32>,
    pub procedure: Option<u32>,
    /// An NLM LOCK call's `reclaim` flag.
    pub reclaim: Option<bool>,
    /// The NLM status of a reply or of a `*_RES` call.
    pub nlm_stat: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RpcKind {
    Call,
    Reply,
}

/// Which RPC messages a rule matches; unset fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RpcMatch {
    pub program: Option<u32>,
    pub version: Option<u32>,
    pub procedure: Option<u32>,
    pub kind: Option<RpcKind>,
    /// Only NLM LOCK calls with this `reclaim` flag (lock recovery after a server reboot).
    pub reclaim: Option<bool>,
    /// Only NLM messages with this status (0 granted, 3 blocked, 4 denied in grace period...).
    pub nlm_stat: Option<u32>,
}

impl RpcMatch {
    /// Calls of one procedure of one program (any version).
    pub fn call(program: u32, procedure: u32) -> RpcMatch {
        RpcMatch {
            program: Some(program),
            procedure: Some(procedure),
            kind: Some(RpcKind::Call),
            version: None,
            reclaim: None,
            nlm_stat: None,
        }
    }

    fn matches(&self, m: &RpcFacts) -> bool {
        let field = |want: Option<u32>, got: Option<u32>| want.is_none() || want == got;
        field(self.program, m.program)
            && field(self.version, m.version)
            && field(self.procedure, m.procedure)
            && match self.kind {
                None => true,
                Some(RpcKind::Call) => m.call,
                Some(RpcKind::Reply) => !m.call,
            }
            && (self.reclaim.is_none() || self.reclaim == m.reclaim)
            && (self.nlm_stat.is_none() || self.nlm_stat == m.nlm_stat)
    }
}

/// What a rule matches. Every field that is set must hold; an empty match matches every frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Match {
    /// The port (guest name) the frame came in on.
    pub from: Option<String>,
    /// The port (guest name) the frame would leave by.
    pub to: Option<String>,
    pub ethertype: Option<u16>,
    pub ip_proto: Option<u8>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// All of these TCP flag bits set (e.g. 0x04 for RST).
    pub tcp_flags: Option<u8>,
    /// At least one RPC message in the frame matches.
    pub rpc: Option<RpcMatch>,
    /// These bytes occur within the first [`PAYLOAD_HEAD`] bytes of the TCP or UDP payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_contains: Option<String>,
}

impl Match {
    pub fn matches(&self, f: &Facts, from: &str, to: &str) -> bool {
        fn eq<T: PartialEq>(want: &Option<T>, got: Option<T>) -> bool {
            want.as_ref().is_none_or(|w| got.as_ref() == Some(w))
        }
        self.from.as_deref().is_none_or(|p| p == from)
            && self.to.as_deref().is_none_or(|p| p == to)
            && eq(&self.ethertype, Some(f.ethertype))
            && eq(&self.ip_proto, f.ip_proto)
            && eq(&self.src_ip, f.src_ip)
            && eq(&self.dst_ip, f.dst_ip)
            && eq(&self.src_port, f.src_port)
            && eq(&self.dst_port, f.dst_port)
            && self
                .tcp_flags
                .is_none_or(|bits| f.tcp_flags.is_some_and(|got| got & bits == bits))
            && self
                .rpc
                .as_ref()
                .is_none_or(|r| f.rpc.iter().any(|m| r.matches(m)))
            && self
                .payload_contains
                .as_ref()
                .is_none_or(|p| f.payload.contains(p.as_bytes()))
    }
}

/// What a rule does to the frames it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    Drop,
    /// Hold the frame `fixed` plus up to `jitter` (uniform) before sending it on.
    Delay {
        fixed: Duration,
        jitter: Duration,
    },
    /// Send the frame twice.
    Duplicate,
    /// Drop frames between ports in different groups (ports in no group are cut off from all
    /// grouped ports); the rule's match narrows which frames it applies to.
    Partition {
        groups: Vec<BTreeSet<String>>,
    },
    /// Only count (and number) the frames it matches; they go on untouched and later rules
    /// still decide their fate. What a fault's `on_frame` trigger watches.
    Observe,
}

impl Action {
    /// What the action does to a frame, as the pcapng comments and fault proofs say it.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Drop => "dropped",
            Action::Delay { .. } => "delayed",
            Action::Duplicate => "duplicated",
            Action::Partition { .. } => "dropped (partition)",
            Action::Observe => "seen",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: Match,
    pub action: Action,
}

impl Rule {
    /// Whether this rule acts on a frame from `from` to `to`.
    fn applies(&self, f: &Facts, from: &str, to: &str) -> bool {
        if !self.matcher.matches(f, from, to) {
            return false;
        }
        match &self.action {
            Action::Partition { groups } => {
                let group_of = |p: &str| groups.iter().position(|g| g.contains(p));
                group_of(from) != group_of(to)
            }
            _ => true,
        }
    }
}

/// A handle for removing a rule later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RuleId(pub u64);

/// How many frames a rule acted on, and which: the proof that a fault fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    pub id: RuleId,
    pub name: String,
    pub matched: u64,
    /// pcapng frame numbers (1-based, per segment file) of the first frames it acted on.
    pub frames: Vec<u64>,
    pub active: bool,
}

/// Frame numbers kept per rule (the count goes on past it).
const FRAMES_KEPT: usize = 1000;

/// What to do with one frame toward one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Drop,
    Delay(Duration),
    Duplicate,
}

/// The rules of one segment, in the order they were added; the first rule that applies to a
/// (frame, egress port) pair decides.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<(RuleId, Rule)>,
    stats: Vec<RuleStats>,
    next: u64,
}

/// The outcome for one frame: a verdict per egress port, and a pcapng comment when any rule
/// acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdicts: Vec<Verdict>,
    pub comment: Option<String>,
}

impl RuleSet {
    pub fn add(&mut self, rule: Rule) -> RuleId {
        self.next += 1;
        let id = RuleId(self.next);
        self.stats.push(RuleStats {
            id,
            name: rule.name.clone(),
            matched: 0,
            frames: Vec::new(),
            active: true,
        });
        self.rules.push((id, rule));
        id
    }

    /// Stop applying a rule; its counts stay in [`RuleSet::stats`]. False if it was not active.
    pub fn remove(&mut self, id: RuleId) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(i, _)| *i != id);
        if let Some(s) = self.stats.iter_mut().find(|s| s.id == id) {
            s.active = false;
        }
        before != self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn stats(&self) -> &[RuleStats] {
        &self.stats
    }

    /// Decide what happens to frame number `frame_no` (its facts `f`) coming from port `from`
    /// and leaving by each of `to`. `jitter` draws a value in [0, 1) for delay jitter.
    pub fn decide(
        &mut self,
        f: &Facts,
        frame_no: u64,
        from: &str,
        to: &[&str],
        jitter: &mut dyn FnMut() -> f64,
    ) -> Decision {
        let mut verdicts = Vec::with_capacity(to.len());
        if self.rules.is_empty() {
            verdicts.resize(to.len(), Verdict::Forward);
            return Decision {
                verdicts,
                comment: None,
            };
        }
        let mut acted: Vec<(usize, &str)> = Vec::new();
        for (i, (_, r)) in self.rules.iter().enumerate() {
            if r.action == Action::Observe {
                if let Some(port) = to.iter().find(|p| r.applies(f, from, p)) {
                    acted.push((i, port));
                }
            }
        }
        for &port in to {
            let hit = self
                .rules
                .iter()
                .position(|(_, r)| r.action != Action::Observe && r.applies(f, from, port));
            let verdict = match hit {
                None => Verdict::Forward,
                Some(i) => {
                    acted.push((i, port));
                    match &self.rules[i].1.action {
                        Action::Observe => Verdict::Forward,
                        Action::Drop | Action::Partition { .. } => Verdict::Drop,
                        Action::Duplicate => Verdict::Duplicate,
                        Action::Delay { fixed, jitter: j } => {
                            Verdict::Delay(*fixed + j.mul_f64(jitter().clamp(0.0, 1.0)))
                        }
                    }
                }
            };
            verdicts.push(verdict);
        }
        if acted.is_empty() {
            return Decision {
                verdicts,
                comment: None,
            };
        }
        let mut parts = Vec::new();
        let mut counted = BTreeSet::new();
        for (i, port) in &acted {
            let (id, rule) = &self.rules[*i];
            parts.push(format!(
                "{} toward {port} by rule {} (#{})",
                rule.action.verb(),
                rule.name,
                id.0
            ));
            if counted.insert(*id) {
                if let Some(s) = self.stats.iter_mut().find(|s| s.id == *id) {
                    s.matched += 1;
                    if s.frames.len() < FRAMES_KEPT {
                        s.frames.push(frame_no);
                    }
                }
            }
        }
        Decision {
            verdicts,
            comment: Some(parts.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted_msg() -> Facts {
        Facts {
            ethertype: 0x0800,
            ip_proto: Some(6),
            src_port: Some(700),
            dst_port: Some(4045),
            rpc: vec![RpcFacts {
                xid: 7,
                call: true,
                program: Some(100021),
                version: Some(4),
                procedure: Some(10),
                reclaim: None,
                nlm_stat: None,
            }],
            ..Facts::default()
        }
    }

    fn drop_grants_to(port: &str) -> Rule {
        Rule {
            name: "grant-lost".into(),
            matcher: Match {
                to: Some(port.into()),
                rpc: Some(RpcMatch::call(100021, 10)),
                ..Match::default()
            },
            action: Action::Drop,
        }
    }

    #[test]
    fn a_granted_msg_toward_a_is_dropped_and_counted() {
        let mut rs = RuleSet::default();
        let id = rs.add(drop_grants_to("imap1"));
        let d = rs.decide(&granted_msg(), 12, "filer", &["imap1", "imap2"], &mut || 0.0);
        assert_eq!(d.verdicts, [Verdict::Drop, Verdict::Forward]);
        assert_eq!(
            d.comment.as_deref(),
            Some("dropped toward imap1 by rule grant-lost (#1)")
        );
        assert_eq!(rs.stats()[0].matched, 1);
        assert_eq!(rs.stats()[0].frames, [12]);
        // Other NLM procedures and replies pass.
        let mut lock = granted_msg();
        lock.rpc[0].procedure = Some(2);
        assert_eq!(
            rs.decide(&lock, 13, "filer", &["imap1"], &mut || 0.0).verdicts,
            [Verdict::Forward]
        );
        let mut reply = granted_msg();
        reply.rpc[0].call = false;
        assert_eq!(
            rs.decide(&reply, 14, "filer", &["imap1"], &mut || 0.0).verdicts,
            [Verdict::Forward]
        );
        assert_eq!(rs.stats()[0].matched, 1);
        assert!(rs.remove(id));
        assert_eq!(
            rs.decide(&granted_msg(), 15, "filer", &["imap1"], &mut || 0.0)
                .verdicts,
            [Verdict::Forward]
        );
        assert!(!rs.stats()[0].active);
        assert_eq!(rs.stats()[0].matched, 1);
    }

    #[test]
    fn a_flooded_frame_counts_once_per_rule() {
        let mut rs = RuleSet::default();
        rs.add(Rule {
            name: "all".into(),
            matcher: Match::default(),
            action: Action::Drop,
        });
        let d = rs.decide(&Facts::default(), 1, "a", &["b", "c", "d"], &mut || 0.0);
        assert_eq!(d.verdicts, [Verdict::Drop, Verdict::Drop, Verdict::Drop]);
        assert_eq!(rs.stats()[0].matched, 1);
    }

    #[test]
    fn partitions_cut_between_groups_only() {
        let mut rs = RuleSet::default();
        let groups = vec![
            BTreeSet::from(["filer".to_string()]),
            BTreeSet::from(["imap1".to_string(), "imap2".to_string()]),
        ];
        rs.add(Rule {
            name: "split".into(),
            matcher: Match::default(),
            action: Action::Partition { groups },
        });
        let d = rs.decide(&Facts::default(), 1, "imap1", &["filer", "imap2"], &mut || 0.0);
        assert_eq!(d.verdicts, [Verdict::Drop, Verdict::Forward]);
    }

    #[test]
    fn delays_add_jitter_and_first_rule_wins() {
        let mut rs = RuleSet::default();
        rs.add(Rule {
            name: "slow".into(),
            matcher: Match {
                from: Some("filer".into()),
                ..Match::default()
            },
            action: Action::Delay {
                fixed: Duration::from_millis(100),
                jitter: Duration::from_millis(50),
            },
        });
        rs.add(Rule {
            name: "never".into(),
            matcher: Match::default(),
            action: Action::Drop,
        });
        let d = rs.decide(&Facts::default(), 1, "filer", &["imap1"], &mut || 0.5);
        assert_eq!(d.verdicts, [Verdict::Delay(Duration::from_millis(125))]);
        assert_eq!(rs.stats()[1].matched, 0);
        let d = rs.decide(&Facts::default(), 2, "imap1", &["filer"], &mut || 0.5);
        assert_eq!(d.verdicts, [Verdict::Drop]);
    }

    #[test]
    fn tcp_flag_bits_must_all_be_set() {
        let m = Match {
            tcp_flags: Some(0x04),
            ..Match::default()
        };
        let rst_ack = Facts {
            tcp_flags: Some(0x14),
            ..Facts::default()
        };
        let ack = Facts {
            tcp_flags: Some(0x10),
            ..Facts::default()
        };
        assert!(m.matches(&rst_ack, "a", "b"));
        assert!(!m.matches(&ack, "a", "b"));
        assert!(!m.matches(&Facts::default(), "a", "b"));
    }

    #[test]
    fn an_observer_counts_without_deciding() {
        let mut rs = RuleSet::default();
        let seen = rs.add(Rule {
            name: "watch".into(),
            matcher: Match {
                rpc: Some(RpcMatch::call(100021, 10)),
                ..Match::default()
            },
            action: Action::Observe,
        });
        let drop = rs.add(drop_grants_to("imap1"));
        let d = rs.decide(&granted_msg(), 4, "filer", &["imap1", "imap2"], &mut || 0.0);
        assert_eq!(d.verdicts, vec![Verdict::Drop, Verdict::Forward]);
        let stats = |id: RuleId| rs.stats().iter().find(|s| s.id == id).unwrap().clone();
        assert_eq!((stats(seen).matched, stats(seen).frames), (1, vec![4]));
        assert_eq!(stats(drop).matched, 1);
    }
}
