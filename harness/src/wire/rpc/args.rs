//! What NLM, NSM (statd) and portmap/rpcbind calls carry ([`Args`]) and what successful replies
//! to them answer ([`Res`]), and their XDR decoders.
//!
//! Invariant: pure and total: a decoder reads through [`Xdr`] and answers `None` when the bytes
//! end or a length is over its bound; every copied opaque or string is at most [`MAX_OPAQUE`]
//! bytes.

use serde::{Serialize, Serializer};

use super::{program, CallId};
use crate::wire::bytes::Xdr;

/// Longest opaque or string field copied out of an RPC message (NLM's `MAXNETOBJ_SZ` and
/// `LM_MAXSTRLEN`, NSM's `SM_MAXSTRLEN` are all 1024). Longer ones make the arguments invalid.
pub const MAX_OPAQUE: usize = 1024;

/// NLM `nlm4_stats` values (v1/v3 share 0–4).
pub mod nlm_stat {
    pub const GRANTED: u32 = 0;
    pub const DENIED: u32 = 1;
    pub const DENIED_NOLOCKS: u32 = 2;
    pub const BLOCKED: u32 = 3;
    pub const DENIED_GRACE_PERIOD: u32 = 4;
    pub const DEADLCK: u32 = 5;
    pub const ROFS: u32 = 6;
    pub const STALE_FH: u32 = 7;
    pub const FBIG: u32 = 8;
    pub const FAILED: u32 = 9;
}

fn ser_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// Decoded call arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Args {
    /// No decoder for this program/procedure (NFS, MOUNT, NULL procedures, ...), or not asked.
    None,
    /// A decoder exists but the message's bytes stop before the arguments do.
    Incomplete,
    /// A decoder exists and the arguments do not parse (a length over its bound, ...).
    Invalid,
    /// NLM TEST, TEST_MSG, GRANTED, GRANTED_MSG (`nlm_testargs`).
    NlmTest(NlmTestArgs),
    /// NLM LOCK, LOCK_MSG, NM_LOCK (`nlm_lockargs`).
    NlmLock(NlmLockArgs),
    /// NLM CANCEL, CANCEL_MSG (`nlm_cancargs`).
    NlmCancel(NlmCancelArgs),
    /// NLM UNLOCK, UNLOCK_MSG (`nlm_unlockargs`).
    NlmUnlock(NlmUnlockArgs),
    /// NLM TEST_RES call (`nlm_testres`).
    NlmTestRes(NlmTestRes),
    /// NLM LOCK_RES, CANCEL_RES, UNLOCK_RES, GRANTED_RES calls (`nlm_res`).
    NlmRes(NlmRes),
    /// NLM procedure 16: Linux statd's reboot downcall to lockd (`nlm_reboot`).
    NlmReboot(NlmReboot),
    /// NLM FREE_ALL (`nlm_notify`).
    NlmFreeAll(NsmNotify),
    /// NSM SM_STAT (`sm_name`).
    NsmStat { mon_name: String },
    /// NSM SM_MON (`mon`) and SM_UNMON (`mon_id`, no `priv`).
    NsmMon(NsmMon),
    /// NSM SM_UNMON_ALL (`my_id`).
    NsmUnmonAll(NsmMyId),
    /// NSM SM_NOTIFY (`stat_chge`).
    NsmNotify(NsmNotify),
    /// portmap v2 SET, UNSET, GETPORT (`mapping`).
    Pmap(PmapMapping),
    /// rpcbind v3/v4 SET, UNSET, GETADDR, GETVERSADDR (`rpcb`).
    Rpcb(Rpcb),
}

/// Decoded results of an accepted, successful reply whose call is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Res {
    /// Call unknown, no decoder, not SUCCESS, or void.
    None,
    Incomplete,
    Invalid,
    /// NLM TEST (`nlm_testres`).
    NlmTestRes(NlmTestRes),
    /// NLM LOCK, CANCEL, UNLOCK, GRANTED, NM_LOCK (`nlm_res`).
    NlmRes(NlmRes),
    /// NSM SM_STAT, SM_MON (`sm_stat_res`).
    NsmStatRes {
        res_stat: u32,
        state: i32,
    },
    /// NSM SM_UNMON, SM_UNMON_ALL (`sm_stat`).
    NsmState {
        state: i32,
    },
    /// portmap GETPORT.
    PmapPort {
        port: u32,
    },
    /// portmap SET, UNSET.
    PmapBool {
        value: bool,
    },
    /// rpcbind GETADDR, GETVERSADDR (universal address; empty when not registered).
    RpcbAddr {
        addr: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmLock {
    pub caller_name: String,
    #[serde(serialize_with = "ser_hex")]
    pub fh: Vec<u8>,
    #[serde(serialize_with = "ser_hex")]
    pub oh: Vec<u8>,
    pub svid: i32,
    /// 64-bit in NLM v4, 32-bit in v1/v3.
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmLockArgs {
    #[serde(serialize_with = "ser_hex")]
    pub cookie: Vec<u8>,
    pub block: bool,
    pub exclusive: bool,
    pub lock: NlmLock,
    pub reclaim: bool,
    pub state: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmTestArgs {
    #[serde(serialize_with = "ser_hex")]
    pub cookie: Vec<u8>,
    pub exclusive: bool,
    pub lock: NlmLock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmCancelArgs {
    #[serde(serialize_with = "ser_hex")]
    pub cookie: Vec<u8>,
    pub block: bool,
    pub exclusive: bool,
    pub lock: NlmLock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmUnlockArgs {
    #[serde(serialize_with = "ser_hex")]
    pub cookie: Vec<u8>,
    pub lock: NlmLock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmRes {
    #[serde(serialize_with = "ser_hex")]
    pub cookie: Vec<u8>,
    /// See [`nlm_stat`].
    pub stat: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmTestRes {
    #[serde(serialize_with = "ser_hex")]
    pub cookie: Vec<u8>,
    pub stat: u32,
    /// Present when `stat` is DENIED.
    pub holder: Option<NlmHolder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmHolder {
    pub exclusive: bool,
    pub svid: i32,
    #[serde(serialize_with = "ser_hex")]
    pub oh: Vec<u8>,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NlmReboot {
    pub mon_name: String,
    pub state: i32,
    #[serde(serialize_with = "ser_hex")]
    pub priv_: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsmNotify {
    pub mon_name: String,
    pub state: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsmMyId {
    pub my_name: String,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsmMon {
    pub mon_name: String,
    pub my_id: NsmMyId,
    /// SM_MON's 16 private bytes (absent for SM_UNMON).
    #[serde(serialize_with = "ser_hex_opt")]
    pub priv_: Option<Vec<u8>>,
}

fn ser_hex_opt<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => ser_hex(b, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PmapMapping {
    pub prog: u32,
    pub vers: u32,
    /// 6 TCP, 17 UDP.
    pub prot: u32,
    pub port: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rpcb {
    pub prog: u32,
    pub vers: u32,
    pub netid: String,
    pub addr: String,
    pub owner: String,
}

impl Args {
    /// The NLM cookie, for any NLM procedure that carries one.
    pub fn cookie(&self) -> Option<&[u8]> {
        match self {
            Args::NlmTest(a) => Some(&a.cookie),
            Args::NlmLock(a) => Some(&a.cookie),
            Args::NlmCancel(a) => Some(&a.cookie),
            Args::NlmUnlock(a) => Some(&a.cookie),
            Args::NlmTestRes(a) => Some(&a.cookie),
            Args::NlmRes(a) => Some(&a.cookie),
            _ => None,
        }
    }

    /// The lock an NLM TEST/LOCK/CANCEL/UNLOCK/GRANTED(_MSG) is about.
    pub fn lock(&self) -> Option<&NlmLock> {
        match self {
            Args::NlmTest(a) => Some(&a.lock),
            Args::NlmLock(a) => Some(&a.lock),
            Args::NlmCancel(a) => Some(&a.lock),
            Args::NlmUnlock(a) => Some(&a.lock),
            _ => None,
        }
    }

    /// NLM stat carried by a *_RES call.
    pub fn nlm_stat(&self) -> Option<u32> {
        match self {
            Args::NlmTestRes(a) => Some(a.stat),
            Args::NlmRes(a) => Some(a.stat),
            _ => None,
        }
    }

    pub fn block(&self) -> Option<bool> {
        match self {
            Args::NlmLock(a) => Some(a.block),
            Args::NlmCancel(a) => Some(a.block),
            _ => None,
        }
    }

    pub fn exclusive(&self) -> Option<bool> {
        match self {
            Args::NlmTest(a) => Some(a.exclusive),
            Args::NlmLock(a) => Some(a.exclusive),
            Args::NlmCancel(a) => Some(a.exclusive),
            _ => None,
        }
    }

    pub fn reclaim(&self) -> Option<bool> {
        match self {
            Args::NlmLock(a) => Some(a.reclaim),
            _ => None,
        }
    }

    /// NSM/NLM state number: NLM LOCK's `state`, NSM NOTIFY's, NLM reboot and FREE_ALL's.
    pub fn state(&self) -> Option<i32> {
        match self {
            Args::NlmLock(a) => Some(a.state),
            Args::NlmReboot(a) => Some(a.state),
            Args::NlmFreeAll(a) | Args::NsmNotify(a) => Some(a.state),
            _ => None,
        }
    }

    /// The host name an NSM call, NLM reboot downcall or FREE_ALL names.
    pub fn mon_name(&self) -> Option<&str> {
        match self {
            Args::NlmReboot(a) => Some(&a.mon_name),
            Args::NlmFreeAll(a) | Args::NsmNotify(a) => Some(&a.mon_name),
            Args::NsmStat { mon_name } => Some(mon_name),
            Args::NsmMon(a) => Some(&a.mon_name),
            _ => None,
        }
    }
}

impl Res {
    pub fn cookie(&self) -> Option<&[u8]> {
        match self {
            Res::NlmTestRes(r) => Some(&r.cookie),
            Res::NlmRes(r) => Some(&r.cookie),
            _ => None,
        }
    }

    pub fn nlm_stat(&self) -> Option<u32> {
        match self {
            Res::NlmTestRes(r) => Some(r.stat),
            Res::NlmRes(r) => Some(r.stat),
            _ => None,
        }
    }

    pub fn port(&self) -> Option<u32> {
        match self {
            Res::PmapPort { port } => Some(*port),
            _ => None,
        }
    }
}

fn nlm_lock(x: &mut Xdr<'_>, v4: bool) -> Option<NlmLock> {
    Some(NlmLock {
        caller_name: x.string(MAX_OPAQUE)?,
        fh: x.opaque(MAX_OPAQUE)?.to_vec(),
        oh: x.opaque(MAX_OPAQUE)?.to_vec(),
        svid: x.i32()?,
        offset: nlm_u64(x, v4)?,
        len: nlm_u64(x, v4)?,
    })
}

fn nlm_u64(x: &mut Xdr<'_>, v4: bool) -> Option<u64> {
    if v4 {
        x.u64()
    } else {
        x.u32().map(u64::from)
    }
}

fn netobj(x: &mut Xdr<'_>) -> Option<Vec<u8>> {
    Some(x.opaque(MAX_OPAQUE)?.to_vec())
}

fn nlm_res(x: &mut Xdr<'_>) -> Option<NlmRes> {
    Some(NlmRes {
        cookie: netobj(x)?,
        stat: x.u32()?,
    })
}

fn nlm_testres(x: &mut Xdr<'_>, v4: bool) -> Option<NlmTestRes> {
    let cookie = netobj(x)?;
    let stat = x.u32()?;
    let holder = if stat == nlm_stat::DENIED {
        Some(NlmHolder {
            exclusive: x.bool()?,
            svid: x.i32()?,
            oh: netobj(x)?,
            offset: nlm_u64(x, v4)?,
            len: nlm_u64(x, v4)?,
        })
    } else {
        None
    };
    Some(NlmTestRes { cookie, stat, holder })
}

fn nsm_my_id(x: &mut Xdr<'_>) -> Option<NsmMyId> {
    Some(NsmMyId {
        my_name: x.string(MAX_OPAQUE)?,
        prog: x.u32()?,
        vers: x.u32()?,
        proc_: x.u32()?,
    })
}

/// Arguments of a call; `None` when they do not parse, `Some(Args::None)` when not decoded here.
pub(super) fn decode_args(program: u32, version: u32, procedure: u32, x: &mut Xdr<'_>) -> Option<Args> {
    Some(match (program, version) {
        (program::NLM, 1 | 3 | 4) => {
            let v4 = version == 4;
            match procedure {
                1 | 5 | 6 | 10 => Args::NlmTest(NlmTestArgs {
                    cookie: netobj(x)?,
                    exclusive: x.bool()?,
                    lock: nlm_lock(x, v4)?,
                }),
                2 | 7 | 22 => Args::NlmLock(NlmLockArgs {
                    cookie: netobj(x)?,
                    block: x.bool()?,
                    exclusive: x.bool()?,
                    lock: nlm_lock(x, v4)?,
                    reclaim: x.bool()?,
                    state: x.i32()?,
                }),
                3 | 8 => Args::NlmCancel(NlmCancelArgs {
                    cookie: netobj(x)?,
                    block: x.bool()?,
                    exclusive: x.bool()?,
                    lock: nlm_lock(x, v4)?,
                }),
                4 | 9 => Args::NlmUnlock(NlmUnlockArgs {
                    cookie: netobj(x)?,
                    lock: nlm_lock(x, v4)?,
                }),
                11 => Args::NlmTestRes(nlm_testres(x, v4)?),
                12..=15 => Args::NlmRes(nlm_res(x)?),
                16 => Args::NlmReboot(NlmReboot {
                    mon_name: x.string(MAX_OPAQUE)?,
                    state: x.i32()?,
                    priv_: x.fixed(16)?.to_vec(),
                }),
                23 => Args::NlmFreeAll(NsmNotify {
                    mon_name: x.string(MAX_OPAQUE)?,
                    state: x.i32()?,
                }),
                _ => Args::None,
            }
        }
        (program::NSM, 1) => match procedure {
            1 => Args::NsmStat {
                mon_name: x.string(MAX_OPAQUE)?,
            },
            2 | 3 => Args::NsmMon(NsmMon {
                mon_name: x.string(MAX_OPAQUE)?,
                my_id: nsm_my_id(x)?,
                priv_: if procedure == 2 {
                    Some(x.fixed(16)?.to_vec())
                } else {
                    None
                },
            }),
            4 => Args::NsmUnmonAll(nsm_my_id(x)?),
            6 => Args::NsmNotify(NsmNotify {
                mon_name: x.string(MAX_OPAQUE)?,
                state: x.i32()?,
            }),
            _ => Args::None,
        },
        (program::PORTMAP, 2) => match procedure {
            1..=3 => Args::Pmap(PmapMapping {
                prog: x.u32()?,
                vers: x.u32()?,
                prot: x.u32()?,
                port: x.u32()?,
            }),
            _ => Args::None,
        },
        (program::PORTMAP, 3 | 4) => match (version, procedure) {
            (_, 1..=3) | (4, 9) => Args::Rpcb(Rpcb {
                prog: x.u32()?,
                vers: x.u32()?,
                netid: x.string(MAX_OPAQUE)?,
                addr: x.string(MAX_OPAQUE)?,
                owner: x.string(MAX_OPAQUE)?,
            }),
            _ => Args::None,
        },
        _ => Args::None,
    })
}

/// Results of a successful reply to `call`; `None` when they do not parse.
pub(super) fn decode_results(call: CallId, x: &mut Xdr<'_>) -> Option<Res> {
    let CallId {
        program,
        version,
        procedure,
    } = call;
    Some(match (program, version) {
        (program::NLM, 1 | 3 | 4) => match procedure {
            1 => Res::NlmTestRes(nlm_testres(x, version == 4)?),
            2..=5 | 22 => Res::NlmRes(nlm_res(x)?),
            _ => Res::None,
        },
        (program::NSM, 1) => match procedure {
            1 | 2 => Res::NsmStatRes {
                res_stat: x.u32()?,
                state: x.i32()?,
            },
            3 | 4 => Res::NsmState { state: x.i32()? },
            _ => Res::None,
        },
        (program::PORTMAP, 2) => match procedure {
            3 => Res::PmapPort { port: x.u32()? },
            1 | 2 => Res::PmapBool { value: x.bool()? },
            _ => Res::None,
        },
        (program::PORTMAP, 3 | 4) => match (version, procedure) {
            (_, 3) | (4, 9) => Res::RpcbAddr {
                addr: x.string(MAX_OPAQUE)?,
            },
            _ => Res::None,
        },
        _ => Res::None,
    })
}
