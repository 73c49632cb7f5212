//! Following ONC RPC across frames: [`RpcTracker`] pairs replies with the calls they answer
//! and follows TCP streams by sequence number so RPC records are found wherever their
//! boundaries fall.
//!
//! Invariant: pure and total: no I/O, no clocks, no panic, bounded memory on any sequence of
//! frames. It remembers at most a fixed number of calls and TCP directions (oldest evicted),
//! and each direction buffers at most [`HEAD_CAP`] bytes of the message in progress.
//!
//! [`HEAD_CAP`]: crate::wire::rpc::HEAD_CAP

use serde::Serialize;
use std::collections::{HashMap, VecDeque};

use crate::wire::frame::{classify_headers, rpc_in_datagram, tcp_flags, FlowKey, FrameInfo, Tcp, L4};
use crate::wire::rpc::{find_record_start, CallId, Desync, Emit, Lookup, RpcBody, Stream};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tshark;

/// Counters a switch may want to expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TrackerStats {
    /// Calls remembered now / TCP streams followed now.
    pub calls: usize,
    pub flows: usize,
    /// Replies whose call was found.
    pub replies_matched: u64,
    /// Replies seen without their call (evicted, seen before the tracker started, or bogus).
    pub replies_unmatched: u64,
    /// TCP streams picked up mid-stream by finding a plausible record mark.
    pub resyncs: u64,
    /// RPC streams given up on: a record that was not RPC where one was expected, or a gap
    /// across a record boundary. (A connection whose first bytes are not RPC, followed from
    /// its SYN, is dropped without counting.)
    pub desyncs: u64,
    /// Segments that repeated only bytes already parsed (parsed on their own, state untouched).
    pub retransmissions: u64,
    /// Lost bytes skipped inside a record body.
    pub gaps: u64,
    pub calls_evicted: u64,
    pub flows_evicted: u64,
}

#[derive(Debug, Clone)]
struct TcpFlow {
    /// Sequence number of the next byte `stream` expects.
    next_seq: u32,
    stream: Stream,
    last_seen: u64,
}

/// Follows ONC RPC across frames. Pure state, no I/O; the switch calls [`RpcTracker::observe`]
/// once per frame, in the order frames cross the switch.
///
/// **Replies.** Calls are remembered by (flow in the call's direction, xid), at most
/// `max_calls` of them (oldest evicted first; a call seen again is refreshed). A reply is looked
/// up on its flow reversed, annotated with its call's program, version and procedure
/// ([`RpcReply::call`]) and, if accepted with SUCCESS, its results are decoded (NLM
/// `nlm_res`/`nlm_testres`, NSM `sm_stat_res`, portmap GETPORT's port, rpcbind GETADDR's
/// address). Entries stay after their reply, so duplicated replies are annotated too. NLM's
/// `*_MSG`/`*_RES` pairs are separate calls, matched by cookie by whoever cares.
///
/// **TCP.** Per direction (at most `max_flows`, least recently used evicted), the tracker keeps
/// the sequence number of the next byte and where the parser is: inside a record mark, inside a
/// fragment (how much is left), and the first [`HEAD_CAP`] bytes of the message in progress.
/// So it handles segments carrying several records, records spanning segments (the segment
/// where the header becomes decodable reports the message with `partial`, later segments report
/// `continuation`s, and the segment completing it reports the message decoded from the buffered
/// bytes, arguments included), and record marks split across segments.
///
/// What it cannot see, by design:
/// - A stream picked up in the middle (no SYN seen, flow evicted, after a desync) is resynced
///   by scanning the segment for a last-fragment record mark followed by a decodable header of
///   a call to a known program (portmap, NFS, MOUNT, NLM, NSM) or a reply to a remembered call.
///   Records before that point are lost; a stream of replies to forgotten calls never resyncs.
/// - Before the first message decodes, records must be single-fragment (Linux never sends
///   anything else), so a stream starting with a multi-fragment record is not followed.
/// - A retransmission of bytes already parsed is parsed on its own, as if it started with a
///   record mark (true for Linux's retransmissions of small RPCs), without touching the state;
///   the overlapping part of a segment that also carries new bytes is not reported again.
/// - Lost bytes inside a record body are skipped (the message is then `partial`); a gap that
///   crosses a record boundary drops the stream (and it resyncs).
/// - Out-of-order segments: an early one is a gap, the late one a retransmission.
/// - IP fragments after the first, and TCP segments in them, are not seen at all.
///
/// [`HEAD_CAP`]: crate::wire::rpc::HEAD_CAP
/// [`RpcReply::call`]: crate::wire::rpc::RpcReply::call
#[derive(Debug, Clone)]
pub struct RpcTracker {
    max_calls: usize,
    max_flows: usize,
    /// (flow in the call's direction, xid) → (call, insertion tick)
    calls: HashMap<(FlowKey, u32), (CallId, u64)>,
    /// Insertion order of `calls`, with stale entries skipped lazily.
    call_order: VecDeque<((FlowKey, u32), u64)>,
    flows: HashMap<FlowKey, TcpFlow>,
    tick: u64,
    stats: TrackerStats,
}

impl Default for RpcTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcTracker {
    pub const DEFAULT_MAX_CALLS: usize = 4096;
    pub const DEFAULT_MAX_FLOWS: usize = 1024;

    pub fn new() -> Self {
        Self::with_limits(Self::DEFAULT_MAX_CALLS, Self::DEFAULT_MAX_FLOWS)
    }

    /// At most `max_calls` calls and `max_flows` TCP directions remembered (each at least 1).
    pub fn with_limits(max_calls: usize, max_flows: usize) -> Self {
        RpcTracker {
            max_calls: max_calls.max(1),
            max_flows: max_flows.max(1),
            calls: HashMap::new(),
            call_order: VecDeque::new(),
            flows: HashMap::new(),
            tick: 0,
            stats: TrackerStats::default(),
        }
    }

    pub fn stats(&self) -> TrackerStats {
        TrackerStats {
            calls: self.calls.len(),
            flows: self.flows.len(),
            ..self.stats
        }
    }

    /// [`classify`](crate::wire::frame::classify) then [`RpcTracker::observe`] (which finds the RPC messages itself, so only
    /// the headers are classified first).
    pub fn classify(&mut self, frame: &[u8]) -> FrameInfo {
        let mut info = classify_headers(frame);
        self.observe(frame, &mut info);
        info
    }

    /// Update the state with `frame` and rewrite `info.rpc` with what the state shows: replies
    /// annotated, TCP records found by sequence number. `info` must be `classify(frame)` or
    /// [`classify_headers`]`(frame)` (the RPC messages of a frame with a flow are found here
    /// again either way).
    pub fn observe(&mut self, frame: &[u8], info: &mut FrameInfo) {
        let Some(flow) = info.flow() else { return };
        self.tick = self.tick.wrapping_add(1);
        let rev = flow.reversed();
        let calls = &self.calls;
        let lookup = |xid: u32| calls.get(&(rev, xid)).map(|e| e.0);
        let mut emit = Emit::default();
        match &info.l4 {
            Some(L4::Udp(u)) => rpc_in_datagram(frame, u, &lookup, &mut emit),
            Some(L4::Tcp(t)) => {
                let p = frame.get(t.payload.clone()).unwrap_or_default();
                let mut segment = Segment {
                    flows: &mut self.flows,
                    max_flows: self.max_flows,
                    tick: self.tick,
                    stats: &mut self.stats,
                };
                segment.observe(flow, t, p, &lookup, &mut emit);
            }
            _ => {}
        }
        for m in &emit.msgs {
            match &m.body {
                RpcBody::Call(c) => self.remember((flow, m.xid), c.id()),
                RpcBody::Reply(r) if !m.continuation => {
                    if r.call.is_some() {
                        self.stats.replies_matched += 1;
                    } else {
                        self.stats.replies_unmatched += 1;
                    }
                }
                RpcBody::Reply(_) => {}
            }
        }
        info.rpc = emit.msgs;
        info.rpc_omitted = emit.omitted;
    }

    fn remember(&mut self, key: (FlowKey, u32), id: CallId) {
        let tick = self.tick;
        self.calls.insert(key, (id, tick));
        self.call_order.push_back((key, tick));
        while self.calls.len() > self.max_calls {
            let Some((old, t)) = self.call_order.pop_front() else {
                break;
            };
            if self.calls.get(&old).is_some_and(|e| e.1 == t) {
                self.calls.remove(&old);
                self.stats.calls_evicted += 1;
            }
        }
        if self.call_order.len() > self.max_calls.saturating_mul(2).saturating_add(16) {
            let calls = &self.calls;
            self.call_order
                .retain(|(k, t)| calls.get(k).is_some_and(|e| e.1 == *t));
        }
    }
}

/// The TCP part of [`RpcTracker::observe`], borrowing what it needs so the call table can be
/// read by the lookup at the same time.
struct Segment<'t> {
    flows: &'t mut HashMap<FlowKey, TcpFlow>,
    max_flows: usize,
    tick: u64,
    stats: &'t mut TrackerStats,
}

enum Outcome {
    /// Parsed in sequence; the flow's next byte is now this.
    Advanced(u32),
    /// Old bytes: parsed on their own, state untouched.
    Retransmission,
    /// Not RPC where RPC was expected: forget the flow (`verified`: it had been RPC).
    Desync { verified: bool },
    /// Bytes missing across a record boundary: forget the flow and look for a record.
    Lost,
}

impl Segment<'_> {
    fn observe(&mut self, key: FlowKey, t: &Tcp, p: &[u8], lookup: Lookup<'_>, emit: &mut Emit) {
        if t.has(tcp_flags::RST) {
            self.flows.remove(&key);
            return;
        }
        let syn = t.has(tcp_flags::SYN);
        let seq = if syn { t.seq.wrapping_add(1) } else { t.seq };
        if syn {
            self.flows.remove(&key);
            if p.is_empty() {
                self.insert(
                    key,
                    TcpFlow {
                        next_seq: seq,
                        stream: Stream::default(),
                        last_seen: self.tick,
                    },
                );
                return;
            }
        }
        if p.is_empty() {
            if t.has(tcp_flags::FIN) {
                self.flows.remove(&key);
            }
            return;
        }
        let end_seq = seq.wrapping_add(p.len() as u32);
        let base = t.payload.start;
        let outcome = self.flows.get_mut(&key).map(|f| {
            f.last_seen = self.tick;
            let d = seq.wrapping_sub(f.next_seq) as i32;
            let fed = if d == 0 {
                f.stream.feed(p, base, lookup, emit)
            } else if d < 0 {
                let overlap = d.unsigned_abs() as usize;
                if overlap >= p.len() {
                    let _ = Stream::default().feed(p, base, lookup, emit);
                    return Outcome::Retransmission;
                }
                f.stream
                    .feed(p.get(overlap..).unwrap_or_default(), base + overlap, lookup, emit)
            } else if f.stream.skip(d.unsigned_abs()) {
                self.stats.gaps += 1;
                f.stream.feed(p, base, lookup, emit)
            } else {
                return Outcome::Lost;
            };
            match fed {
                Ok(()) => Outcome::Advanced(end_seq),
                Err(Desync) => Outcome::Desync {
                    verified: f.stream.verified,
                },
            }
        });
        let resync = match outcome {
            Some(Outcome::Advanced(next)) => {
                if let Some(f) = self.flows.get_mut(&key) {
                    f.next_seq = next;
                }
                false
            }
            Some(Outcome::Retransmission) => {
                self.stats.retransmissions += 1;
                false
            }
            Some(Outcome::Desync { verified }) => {
                self.flows.remove(&key);
                if verified {
                    self.stats.desyncs += 1;
                }
                false
            }
            Some(Outcome::Lost) => {
                self.flows.remove(&key);
                self.stats.desyncs += 1;
                true
            }
            None => true,
        };
        if resync {
            if let Some(k) = find_record_start(p, lookup) {
                let mut stream = Stream::default();
                let rest = p.get(k..).unwrap_or_default();
                if stream.feed(rest, base + k, lookup, emit).is_ok() {
                    self.stats.resyncs += 1;
                    self.insert(
                        key,
                        TcpFlow {
                            next_seq: end_seq,
                            stream,
                            last_seen: self.tick,
                        },
                    );
                }
            }
        }
        if t.has(tcp_flags::FIN) {
            self.flows.remove(&key);
        }
    }

    fn insert(&mut self, key: FlowKey, flow: TcpFlow) {
        if self.flows.len() >= self.max_flows && !self.flows.contains_key(&key) {
            let oldest = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last_seen)
                .map(|(k, _)| *k);
            if let Some(old) = oldest {
                self.flows.remove(&old);
                self.stats.flows_evicted += 1;
            }
        }
        self.flows.insert(key, flow);
    }
}
