//! ONC RPC over TCP: record marking (RFC 5531 §11). A [`Stream`] parses one direction of a
//! connection, segment by segment in sequence order, into RPC messages; [`find_record_start`]
//! looks for a plausible record in a segment picked up mid-stream.
//!
//! Invariant: pure and total; work is linear in the bytes fed; a stream keeps at most
//! [`HEAD_CAP`] bytes of the message in progress and believes no fragment longer than
//! `MAX_FRAGMENT`.

use serde::Serialize;

use super::{decode_message, program, Emit, Lookup, RpcBody, RpcMessage, Undecodable};
use crate::wire::bytes::Reader;

/// Bytes of an RPC message's start the TCP parser keeps to decode a message split across
/// segments. Header and NLM/NSM/portmap arguments fit; bulk NFS data does not need to.
pub const HEAD_CAP: usize = 2048;
/// Largest record fragment believed: bigger marks mean the stream is not RPC or we are lost.
const MAX_FRAGMENT: u32 = 1 << 24;
/// Smallest whole RPC message (a denied reply with an auth error: five words).
const MIN_MESSAGE: u32 = 20;
const LAST_FRAGMENT: u32 = 0x8000_0000;

/// TCP record mark (RFC 5531 §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordMark {
    pub last: bool,
    pub len: u32,
}

/// Programs a resyncing TCP parser accepts a call for (see
/// [`RpcTracker`](crate::wire::tracker::RpcTracker)).
fn is_known_program(p: u32) -> bool {
    matches!(
        p,
        program::PORTMAP | program::NFS | program::MOUNT | program::NLM | program::NSM
    )
}

/// The end of a stream: the bytes cannot be RPC records where we thought they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desync;

#[derive(Debug, Clone, Copy)]
struct Frag {
    remaining: u32,
    last: bool,
}

/// The message a TCP stream is in the middle of.
#[derive(Debug, Clone)]
struct MsgState {
    /// The message's first bytes (fragment data, marks removed), at most [`HEAD_CAP`].
    head: Vec<u8>,
    /// Message bytes gone by, skipped ones included.
    seen: u64,
    /// Bytes were skipped (a lost segment): `head` stops being the message's prefix after that.
    gap: bool,
    first: RecordMark,
    /// What an earlier frame reported of this message.
    reported: Option<RpcMessage>,
}

impl MsgState {
    fn new(first: RecordMark) -> Self {
        MsgState {
            head: Vec::new(),
            seen: 0,
            gap: false,
            first,
            reported: None,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.seen = self.seen.saturating_add(chunk.len() as u64);
        if !self.gap {
            let room = HEAD_CAP.saturating_sub(self.head.len()).min(chunk.len());
            self.head.extend_from_slice(chunk.get(..room).unwrap_or_default());
        }
    }

    fn whole(&self) -> bool {
        !self.gap && self.seen == self.head.len() as u64
    }
}

/// Record-marking parser for one direction of a TCP connection, fed segment by segment in
/// sequence order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stream {
    /// A message decoded on this stream: until then the first record must look like a
    /// single-fragment RPC message (last bit, length ≥ 20) and decode as one.
    pub(crate) verified: bool,
    mark: [u8; 4],
    mark_len: usize,
    frag: Option<Frag>,
    msg: Option<MsgState>,
}

impl Stream {
    /// Parse the next bytes of the stream, `p`, found at frame offset `base`, emitting one
    /// [`RpcMessage`] per message completed in `p` and one for a message still in progress at
    /// its end (once its header can be decoded). Work is linear in `p`.
    pub(crate) fn feed(
        &mut self,
        p: &[u8],
        base: usize,
        lookup: Lookup<'_>,
        emit: &mut Emit,
    ) -> Result<(), Desync> {
        let mut pos = 0usize;
        let mut started_at: Option<usize> = None;
        loop {
            let frag = match self.frag {
                Some(f) => f,
                None => {
                    while self.mark_len < 4 {
                        let (Some(&b), Some(slot)) = (p.get(pos), self.mark.get_mut(self.mark_len)) else {
                            break;
                        };
                        *slot = b;
                        self.mark_len += 1;
                        pos += 1;
                    }
                    if self.mark_len < 4 {
                        break;
                    }
                    self.mark_len = 0;
                    let word = u32::from_be_bytes(self.mark);
                    let mark = RecordMark {
                        last: word & LAST_FRAGMENT != 0,
                        len: word & !LAST_FRAGMENT,
                    };
                    if mark.len > MAX_FRAGMENT {
                        return Err(Desync);
                    }
                    if self.msg.is_none() {
                        if (!self.verified && !mark.last) || (mark.last && mark.len < MIN_MESSAGE) {
                            return Err(Desync);
                        }
                        self.msg = Some(MsgState::new(mark));
                        started_at = Some(base + pos);
                    }
                    let f = Frag {
                        remaining: mark.len,
                        last: mark.last,
                    };
                    self.frag = Some(f);
                    f
                }
            };
            let take = p.len().saturating_sub(pos).min(frag.remaining as usize);
            if let Some(msg) = self.msg.as_mut() {
                msg.push(p.get(pos..pos + take).unwrap_or_default());
            }
            pos += take;
            let remaining = frag.remaining.saturating_sub(take as u32);
            if remaining > 0 {
                self.frag = Some(Frag { remaining, ..frag });
                break;
            }
            self.frag = None;
            if !frag.last {
                continue;
            }
            let Some(msg) = self.msg.take() else { continue };
            let mut m = decode_message(&msg.head, msg.whole(), lookup, true).map_err(|_| Desync)?;
            m.offset = started_at.take();
            m.record = Some(msg.first);
            m.continuation = msg.reported.is_some();
            self.verified = true;
            emit.push(m);
        }
        if let Some(msg) = self.msg.as_mut() {
            if let Some(seen) = &msg.reported {
                let mut m = seen.clone();
                m.offset = None;
                m.continuation = true;
                emit.push(m);
            } else {
                match decode_message(&msg.head, false, lookup, true) {
                    Ok(mut m) => {
                        m.offset = started_at;
                        m.record = Some(msg.first);
                        self.verified = true;
                        msg.reported = Some(m.clone());
                        emit.push(m);
                    }
                    Err(Undecodable::NeedMore) => {}
                    Err(Undecodable::NotRpc) => return Err(Desync),
                }
            }
        }
        Ok(())
    }

    /// Account for `n` lost bytes. Possible only inside a fragment that goes on past them.
    pub(crate) fn skip(&mut self, n: u32) -> bool {
        match (self.frag.as_mut(), self.msg.as_mut()) {
            (Some(f), Some(m)) if f.remaining > n => {
                f.remaining -= n;
                m.seen = m.seen.saturating_add(u64::from(n));
                m.gap = true;
                true
            }
            _ => false,
        }
    }
}

/// Where in `p` a plausible RPC record starts: a last-fragment mark of a sane length followed by a
/// header that decodes, and is either a call to a known program or a reply to a remembered call.
/// Linear in `p` (header-only decode per candidate).
pub(crate) fn find_record_start(p: &[u8], lookup: Lookup<'_>) -> Option<usize> {
    (0..p.len()).find(|&k| {
        // The mark's first byte alone rules out almost every offset (the last-fragment bit set,
        // a length no longer than MAX_FRAGMENT): a TCP stream that is not RPC is scanned at
        // every segment, so this is the switch's per-frame cost for bulk traffic.
        let first = u32::from(p[k]);
        if first & 0x80 == 0 || (first & 0x7f) << 24 > MAX_FRAGMENT {
            return false;
        }
        let mut r = Reader::new(p);
        r.pos = k;
        let Some(word) = r.be32() else { return false };
        let len = word & !LAST_FRAGMENT;
        if word & LAST_FRAGMENT == 0 || !(MIN_MESSAGE..=MAX_FRAGMENT).contains(&len) {
            return false;
        }
        let start = k + 4;
        let end = start.saturating_add(len as usize);
        let body = p.get(start..end.min(p.len())).unwrap_or_default();
        match decode_message(body, end <= p.len(), lookup, false) {
            Ok(m) => match &m.body {
                RpcBody::Call(c) => is_known_program(c.program),
                RpcBody::Reply(r) => r.call.is_some(),
            },
            Err(_) => false,
        }
    })
}
