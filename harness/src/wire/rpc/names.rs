//! Names for ONC RPC programs, procedures and NLM stats, one scheme for all programs, and the
//! reverse lookup rules written with names use.
//!
//! Invariant: pure and total: fixed tables, no allocation.

use super::program;

/// `prefixed!["P_": "A", _, "B"]` is `["P_A", "", "P_B"]` (`_` marks an unused number).
macro_rules! prefixed {
    ($prefix:literal: $($name:tt),* $(,)?) => {
        [$(prefixed!(@one $prefix $name)),*]
    };
    (@one $prefix:literal _) => { "" };
    (@one $prefix:literal $name:literal) => { concat!($prefix, $name) };
}

const NLM1_NAMES: [&str; 24] = prefixed!["NLM_": "NULL", "TEST", "LOCK", "CANCEL", "UNLOCK", "GRANTED",
    "TEST_MSG", "LOCK_MSG", "CANCEL_MSG", "UNLOCK_MSG", "GRANTED_MSG", "TEST_RES", "LOCK_RES",
    "CANCEL_RES", "UNLOCK_RES", "GRANTED_RES", "SM_NOTIFY", _, _, _, "SHARE", "UNSHARE", "NM_LOCK",
    "FREE_ALL"];
const NLM4_NAMES: [&str; 24] = prefixed!["NLM4_": "NULL", "TEST", "LOCK", "CANCEL", "UNLOCK", "GRANTED",
    "TEST_MSG", "LOCK_MSG", "CANCEL_MSG", "UNLOCK_MSG", "GRANTED_MSG", "TEST_RES", "LOCK_RES",
    "CANCEL_RES", "UNLOCK_RES", "GRANTED_RES", "SM_NOTIFY", _, _, _, "SHARE", "UNSHARE", "NM_LOCK",
    "FREE_ALL"];
const NSM_NAMES: [&str; 7] =
    prefixed!["SM_": "NULL", "STAT", "MON", "UNMON", "UNMON_ALL", "SIMU_CRASH", "NOTIFY"];
const PMAP_NAMES: [&str; 6] = prefixed!["PMAP_": "NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"];
const RPCB3_NAMES: [&str; 9] = prefixed!["RPCB_": "NULL", "SET", "UNSET", "GETADDR", "DUMP", "CALLIT",
    "GETTIME", "UADDR2TADDR", "TADDR2UADDR"];
const RPCB4_NAMES: [&str; 13] = prefixed!["RPCB_": "NULL", "SET", "UNSET", "GETADDR", "DUMP", "BCAST",
    "GETTIME", "UADDR2TADDR", "TADDR2UADDR", "GETVERSADDR", "INDIRECT", "GETADDRLIST", "GETSTAT"];
const NFS2_NAMES: [&str; 18] = prefixed!["NFS2_": "NULL", "GETATTR", "SETATTR", "ROOT", "LOOKUP",
    "READLINK", "READ", "WRITECACHE", "WRITE", "CREATE", "REMOVE", "RENAME", "LINK", "SYMLINK", "MKDIR",
    "RMDIR", "READDIR", "STATFS"];
const NFS3_NAMES: [&str; 22] = prefixed!["NFS3_": "NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS",
    "READLINK", "READ", "WRITE", "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME",
    "LINK", "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT"];
const NFS4_NAMES: [&str; 2] = prefixed!["NFS4_": "NULL", "COMPOUND"];
const MOUNT_NAMES: [&str; 6] = prefixed!["MOUNT_": "NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"];
const MOUNT3_NAMES: [&str; 6] = prefixed!["MOUNT3_": "NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"];

fn names(program: u32, version: u32) -> &'static [&'static str] {
    match (program, version) {
        (program::NLM, 1 | 3) => &NLM1_NAMES,
        (program::NLM, 4) => &NLM4_NAMES,
        (program::NSM, 1) => &NSM_NAMES,
        (program::PORTMAP, 2) => &PMAP_NAMES,
        (program::PORTMAP, 3) => &RPCB3_NAMES,
        (program::PORTMAP, 4) => &RPCB4_NAMES,
        (program::NFS, 2) => &NFS2_NAMES,
        (program::NFS, 3) => &NFS3_NAMES,
        (program::NFS, 4) => &NFS4_NAMES,
        (program::MOUNT, 1 | 2) => &MOUNT_NAMES,
        (program::MOUNT, 3) => &MOUNT3_NAMES,
        _ => &[],
    }
}

/// Procedure names, one scheme for all programs: a prefix naming the program (and the version
/// where layouts differ), then the procedure as its `.x` file names it: NLM v1/v3 `NLM_LOCK`,
/// NLM v4 `NLM4_LOCK`, `NLM4_GRANTED_MSG`, `NLM4_GRANTED_RES`, `NLM_SM_NOTIFY` (Linux's private
/// procedure 16), NSM `SM_NOTIFY`, `SM_MON`, portmap v2 `PMAP_GETPORT`, rpcbind v3/v4
/// `RPCB_GETADDR`, `NFS3_WRITE`, `MOUNT3_MNT`. `None` for anything else.
pub fn procedure_name(program: u32, version: u32, procedure: u32) -> Option<&'static str> {
    let name = *names(program, version).get(usize::try_from(procedure).ok()?)?;
    (!name.is_empty()).then_some(name)
}

/// The inverse of [`procedure_name`], for rules written with names.
pub fn procedure_number(program: u32, version: u32, name: &str) -> Option<u32> {
    let i = names(program, version)
        .iter()
        .position(|n| !n.is_empty() && *n == name)?;
    u32::try_from(i).ok()
}

/// Conventional program names (as in `/etc/rpc`).
pub fn program_name(program: u32) -> Option<&'static str> {
    Some(match program {
        program::PORTMAP => "portmapper",
        program::NFS => "nfs",
        program::MOUNT => "mountd",
        program::NLM => "nlockmgr",
        program::NSM => "status",
        _ => return None,
    })
}

/// NLM stat names (`nlm4_stats` without the prefix): "GRANTED", "BLOCKED", ...
pub fn nlm_stat_name(stat: u32) -> Option<&'static str> {
    const STATS: [&str; 10] = [
        "GRANTED",
        "DENIED",
        "DENIED_NOLOCKS",
        "BLOCKED",
        "DENIED_GRACE_PERIOD",
        "DEADLCK",
        "ROFS",
        "STALE_FH",
        "FBIG",
        "FAILED",
    ];
    STATS.get(usize::try_from(stat).ok()?).copied()
}
