//! ONC RPC (RFC 5531) messages: what a call or a reply says ([`RpcMessage`]), how one is decoded
//! from its bytes, the arguments and results of the NLM, NSM (statd) and portmap/rpcbind
//! procedures (`args`), the procedure and program names (`names`), and TCP record marking
//! (`record`).
//!
//! Invariant: pure and total, like the frame parsers that call it: no I/O, no panic, bounded
//! memory on any bytes. Every read goes through `Xdr`; every length read from the wire is
//! bounded before it is used (opaques and strings at [`MAX_OPAQUE`], credentials at
//! `MAX_AUTH_BYTES`, record fragments at 16 MiB); a frame lists at most [`MAX_RPC_PER_FRAME`]
//! messages, and a TCP stream buffers at most [`HEAD_CAP`] bytes of the message in progress.
//!
//! This layer knows nothing about frames or flows: a reply answers a call only through the
//! `Lookup` its caller passes (the tracker's call table, or nothing).

use serde::Serialize;

use crate::wire::bytes::Xdr;

mod args;
mod names;
mod record;
#[cfg(test)]
mod tests;

use args::{decode_args, decode_results};
pub use args::{
    nlm_stat, Args, NlmCancelArgs, NlmHolder, NlmLock, NlmLockArgs, NlmReboot, NlmRes, NlmTestArgs,
    NlmTestRes, NlmUnlockArgs, NsmMon, NsmMyId, NsmNotify, PmapMapping, Res, Rpcb, MAX_OPAQUE,
};
pub use names::{nlm_stat_name, procedure_name, procedure_number, program_name};
pub(crate) use record::{find_record_start, Desync, Stream};
pub use record::{RecordMark, HEAD_CAP};

/// Most RPC messages listed for one frame; the rest are counted in
/// [`FrameInfo::rpc_omitted`](crate::wire::frame::FrameInfo::rpc_omitted).
pub const MAX_RPC_PER_FRAME: usize = 64;
/// Largest credential or verifier body (RFC 5531 `MAX_AUTH_BYTES`).
const MAX_AUTH: u32 = 400;

/// ONC RPC program numbers this module names or decodes.
pub mod program {
    pub const PORTMAP: u32 = 100000;
    pub const NFS: u32 = 100003;
    pub const MOUNT: u32 = 100005;
    pub const NLM: u32 = 100021;
    pub const NSM: u32 = 100024;
}

/// One ONC RPC message (or, over TCP, one segment's view of a message that spans segments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcMessage {
    pub xid: u32,
    pub body: RpcBody,
    /// Frame offset of the message's first byte (after the record mark), when it starts in
    /// this frame.
    pub offset: Option<usize>,
    /// TCP: the record mark in front of the message's first fragment.
    pub record: Option<RecordMark>,
    /// Bytes of the message were missing when it was decoded (it continues in a later segment
    /// or IP fragment, a segment was lost, or it exceeded [`HEAD_CAP`]); arguments and results
    /// that run past the available bytes are then `Incomplete`.
    pub partial: bool,
    /// An earlier frame already reported this message (its header); this frame carries more of
    /// it. Count messages with `!continuation`; match rules on both so every segment of a call
    /// can be acted on. Only [`RpcTracker`](crate::wire::tracker::RpcTracker) produces these.
    pub continuation: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RpcBody {
    Call(RpcCall),
    Reply(RpcReply),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcCall {
    /// Always 2 (anything else is not taken for RPC).
    pub rpcvers: u32,
    pub program: u32,
    pub version: u32,
    pub procedure: u32,
    pub cred_flavor: u32,
    pub verf_flavor: u32,
    pub args: Args,
}

impl RpcCall {
    pub fn id(&self) -> CallId {
        CallId {
            program: self.program,
            version: self.version,
            procedure: self.procedure,
        }
    }
}

/// Program, version and procedure of a call: what a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CallId {
    pub program: u32,
    pub version: u32,
    pub procedure: u32,
}

impl CallId {
    pub fn procedure_name(&self) -> Option<&'static str> {
        procedure_name(self.program, self.version, self.procedure)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcReply {
    /// 0 MSG_ACCEPTED, 1 MSG_DENIED.
    pub reply_stat: u32,
    /// Accepted: 0 SUCCESS, 1 PROG_UNAVAIL, 2 PROG_MISMATCH, 3 PROC_UNAVAIL, 4 GARBAGE_ARGS,
    /// 5 SYSTEM_ERR.
    pub accept_stat: Option<u32>,
    /// Denied: 0 RPC_MISMATCH, 1 AUTH_ERROR.
    pub reject_stat: Option<u32>,
    /// AUTH_ERROR's auth_stat.
    pub auth_stat: Option<u32>,
    /// PROG_MISMATCH or RPC_MISMATCH: (low, high).
    pub mismatch: Option<(u32, u32)>,
    pub verf_flavor: Option<u32>,
    /// The call this answers, when [`RpcTracker`](crate::wire::tracker::RpcTracker) saw it.
    pub call: Option<CallId>,
    /// Decoded when the call is known and the reply is accepted with SUCCESS.
    pub results: Res,
}

/// Matcher-friendly questions. For a reply, program/version/procedure are those of its call,
/// known only when [`RpcTracker`](crate::wire::tracker::RpcTracker) saw the call.
impl RpcMessage {
    pub fn is_call(&self) -> bool {
        matches!(self.body, RpcBody::Call(_))
    }

    pub fn is_reply(&self) -> bool {
        matches!(self.body, RpcBody::Reply(_))
    }

    pub fn call(&self) -> Option<&RpcCall> {
        match &self.body {
            RpcBody::Call(c) => Some(c),
            RpcBody::Reply(_) => None,
        }
    }

    pub fn reply(&self) -> Option<&RpcReply> {
        match &self.body {
            RpcBody::Reply(r) => Some(r),
            RpcBody::Call(_) => None,
        }
    }

    pub fn call_id(&self) -> Option<CallId> {
        match &self.body {
            RpcBody::Call(c) => Some(c.id()),
            RpcBody::Reply(r) => r.call,
        }
    }

    pub fn program(&self) -> Option<u32> {
        self.call_id().map(|c| c.program)
    }

    pub fn version(&self) -> Option<u32> {
        self.call_id().map(|c| c.version)
    }

    pub fn procedure(&self) -> Option<u32> {
        self.call_id().map(|c| c.procedure)
    }

    /// See [`procedure_name`].
    pub fn procedure_name(&self) -> Option<&'static str> {
        self.call_id().and_then(|c| c.procedure_name())
    }

    pub fn args(&self) -> Option<&Args> {
        self.call().map(|c| &c.args)
    }

    pub fn results(&self) -> Option<&Res> {
        self.reply().map(|r| &r.results)
    }

    /// The NLM cookie of a call's arguments or a reply's results.
    pub fn cookie(&self) -> Option<&[u8]> {
        match &self.body {
            RpcBody::Call(c) => c.args.cookie(),
            RpcBody::Reply(r) => r.results.cookie(),
        }
    }

    /// The NLM stat of a *_RES call or of a reply.
    pub fn nlm_stat(&self) -> Option<u32> {
        match &self.body {
            RpcBody::Call(c) => c.args.nlm_stat(),
            RpcBody::Reply(r) => r.results.nlm_stat(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

const MSG_CALL: u32 = 0;
const MSG_REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const SUCCESS: u32 = 0;
const PROG_MISMATCH: u32 = 2;
const SYSTEM_ERR: u32 = 5;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;
/// Reply verifiers in use are AUTH_NONE..AUTH_TLS (0–7); anything above is taken as not RPC.
const MAX_VERF_FLAVOR: u32 = 7;

/// Finds the call a reply answers, by xid (the tracker knows the flow).
pub(crate) type Lookup<'l> = &'l dyn Fn(u32) -> Option<CallId>;

pub(crate) fn no_calls(_: u32) -> Option<CallId> {
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undecodable {
    /// Could be RPC, but the header is not all there yet.
    NeedMore,
    NotRpc,
}

/// Skip an opaque_auth, answering its flavor.
fn auth(x: &mut Xdr<'_>, short: Undecodable) -> Result<u32, Undecodable> {
    let flavor = x.u32().ok_or(short)?;
    let len = x.u32().ok_or(short)?;
    if len > MAX_AUTH {
        return Err(Undecodable::NotRpc);
    }
    x.fixed(len as usize).ok_or(short)?;
    Ok(flavor)
}

/// Decode one RPC message from its bytes. `whole`: `b` holds all of it (else a missing header
/// part means "need more" rather than "not RPC", and missing arguments are `Incomplete`).
/// `with_body`: decode arguments and results too.
pub(crate) fn decode_message(
    b: &[u8],
    whole: bool,
    lookup: Lookup<'_>,
    with_body: bool,
) -> Result<RpcMessage, Undecodable> {
    use Undecodable::*;
    let short = if whole { NotRpc } else { NeedMore };
    let mut x = Xdr::new(b);
    let xid = x.u32().ok_or(short)?;
    let body = match x.u32().ok_or(short)? {
        MSG_CALL => {
            let rpcvers = x.u32().ok_or(short)?;
            if rpcvers != 2 {
                return Err(NotRpc);
            }
            let program = x.u32().ok_or(short)?;
            let version = x.u32().ok_or(short)?;
            let procedure = x.u32().ok_or(short)?;
            let cred_flavor = auth(&mut x, short)?;
            let verf_flavor = auth(&mut x, short)?;
            let args = if with_body {
                decode_args(program, version, procedure, &mut x).unwrap_or(if whole {
                    Args::Invalid
                } else {
                    Args::Incomplete
                })
            } else {
                Args::None
            };
            RpcBody::Call(RpcCall {
                rpcvers,
                program,
                version,
                procedure,
                cred_flavor,
                verf_flavor,
                args,
            })
        }
        MSG_REPLY => {
            let reply_stat = x.u32().ok_or(short)?;
            let mut reply = RpcReply {
                reply_stat,
                accept_stat: None,
                reject_stat: None,
                auth_stat: None,
                mismatch: None,
                verf_flavor: None,
                call: lookup(xid),
                results: Res::None,
            };
            match reply_stat {
                MSG_ACCEPTED => {
                    let flavor = auth(&mut x, short)?;
                    if flavor > MAX_VERF_FLAVOR {
                        return Err(NotRpc);
                    }
                    reply.verf_flavor = Some(flavor);
                    let accept_stat = x.u32().ok_or(short)?;
                    if accept_stat > SYSTEM_ERR {
                        return Err(NotRpc);
                    }
                    reply.accept_stat = Some(accept_stat);
                    if accept_stat == PROG_MISMATCH {
                        reply.mismatch = x.u32().zip(x.u32());
                    }
                    if accept_stat == SUCCESS && with_body {
                        if let Some(call) = reply.call {
                            reply.results = decode_results(call, &mut x).unwrap_or(if whole {
                                Res::Invalid
                            } else {
                                Res::Incomplete
                            });
                        }
                    }
                }
                MSG_DENIED => {
                    let reject_stat = x.u32().ok_or(short)?;
                    match reject_stat {
                        RPC_MISMATCH => reply.mismatch = x.u32().zip(x.u32()),
                        AUTH_ERROR => reply.auth_stat = x.u32(),
                        _ => return Err(NotRpc),
                    }
                    reply.reject_stat = Some(reject_stat);
                }
                _ => return Err(NotRpc),
            }
            RpcBody::Reply(reply)
        }
        _ => return Err(NotRpc),
    };
    Ok(RpcMessage {
        xid,
        body,
        offset: None,
        record: None,
        partial: !whole,
        continuation: false,
    })
}

/// The RPC messages found in one frame, at most [`MAX_RPC_PER_FRAME`] of them; the rest are
/// only counted.
#[derive(Default)]
pub(crate) struct Emit {
    pub(crate) msgs: Vec<RpcMessage>,
    pub(crate) omitted: usize,
}

impl Emit {
    pub(crate) fn push(&mut self, m: RpcMessage) {
        if self.msgs.len() < MAX_RPC_PER_FRAME {
            self.msgs.push(m);
        } else {
            self.omitted = self.omitted.saturating_add(1);
        }
    }
}
