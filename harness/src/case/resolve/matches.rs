//! Frame matches, wherever they are written (a wire fault, an `on_frame` trigger, a `frames`
//! check): ports by guest name, L2–L4 fields, and ONC RPC program, version and procedure by
//! number or by the name the frame decoder prints.

use std::net::IpAddr;

use super::{Cx, Names};
use crate::case::raw::{RawMatch, Str, S};
use crate::wire::frame;
use crate::wire::rpc::{self, program};
use crate::wire::rules::{Match, RpcKind, RpcMatch, PAYLOAD_HEAD};

/// Whether guest `g` has a port on the segment (when the segment is known).
pub(super) fn on_segment(cx: &mut Cx, g: &Str, segment: &Str, on: Option<&[String]>) -> bool {
    match on {
        Some(members) if !members.contains(g.get_ref()) => {
            cx.at(
                g,
                format!(
                    "guest `{}` is not on segment `{}`",
                    g.get_ref(),
                    segment.get_ref()
                ),
            );
            false
        }
        _ => true,
    }
}

/// ONC RPC programs by the names a case may use.
const PROGRAMS: [(&str, u32); 10] = [
    ("nlm", program::NLM),
    ("nlockmgr", program::NLM),
    ("nsm", program::NSM),
    ("status", program::NSM),
    ("nfs", program::NFS),
    ("mount", program::MOUNT),
    ("mountd", program::MOUNT),
    ("portmap", program::PORTMAP),
    ("portmapper", program::PORTMAP),
    ("rpcbind", program::PORTMAP),
];

pub(super) fn frame_match(
    cx: &mut Cx,
    m: &RawMatch,
    guests: &Names,
    segment: &Str,
    on: Option<&[String]>,
) -> Match {
    let port_of = |g: Option<&Str>, cx: &mut Cx| -> Option<String> {
        let g = g?;
        if guests.refer(cx, g) {
            on_segment(cx, g, segment, on);
        }
        Some(g.get_ref().clone())
    };
    let from = port_of(m.from, cx);
    let to = port_of(m.to, cx);
    let ethertype = m.ethertype.map(|v| {
        number_or_name(
            cx,
            v,
            0xffff,
            &[
                ("ipv4", frame::ethertype::IPV4 as u64),
                ("ipv6", frame::ethertype::IPV6 as u64),
                ("arp", frame::ethertype::ARP as u64),
                ("vlan", frame::ethertype::VLAN as u64),
            ],
            "ethertype",
        ) as u16
    });
    let ip_proto = m.ip_proto.map(|v| {
        number_or_name(
            cx,
            v,
            0xff,
            &[
                ("tcp", frame::ip_proto::TCP as u64),
                ("udp", frame::ip_proto::UDP as u64),
                ("icmp", frame::ip_proto::ICMP as u64),
                ("icmpv6", frame::ip_proto::ICMPV6 as u64),
            ],
            "ip_proto",
        ) as u8
    });
    let ip = |cx: &mut Cx, v: Option<&Str>| -> Option<IpAddr> {
        let v = v?;
        v.get_ref().parse().map_or_else(
            |_| {
                cx.at(v, format!("{:?} is not an IP address", v.get_ref()));
                None
            },
            Some,
        )
    };
    let src_ip = ip(cx, m.src_ip);
    let dst_ip = ip(cx, m.dst_ip);
    let port = |cx: &mut Cx, v: Option<&S<i64>>| -> Option<u16> {
        let v = v?;
        match u16::try_from(*v.get_ref()) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                cx.at(v, "a port is 1 to 65535");
                None
            }
        }
    };
    let src_port = port(cx, m.src_port);
    let dst_port = port(cx, m.dst_port);
    let tcp_flags = m.tcp_flags.map(|v| tcp_flag_bits(cx, v));

    let mut rpc = RpcMatch::default();
    let mut program_number = m.rpc_program.map(|v| {
        let names: Vec<(&str, u64)> = PROGRAMS.iter().map(|(n, p)| (*n, u64::from(*p))).collect();
        number_or_name(cx, v, u64::from(u32::MAX), &names, "rpc_program") as u32
    });
    let mut version = m.rpc_version.map(|v| {
        u32::try_from(*v.get_ref()).unwrap_or_else(|_| {
            cx.at(v, "rpc_version is a number from 0 to 4294967295");
            0
        })
    });
    let procedure = m.rpc_procedure.and_then(|v| match v.get_ref() {
        toml::Value::Integer(n) => u32::try_from(*n).ok().or_else(|| {
            cx.at(
                v,
                "rpc_procedure is a number from 0 to 4294967295, or a name like \"NLM4_GRANTED_MSG\"",
            );
            None
        }),
        toml::Value::String(name) => {
            let (p, ver, n) = procedure_by_name(cx, v, name, program_number, version)?;
            program_number = Some(p);
            version = Some(ver);
            Some(n)
        }
        _ => {
            cx.at(
                v,
                "rpc_procedure is a number, or a name like \"NLM4_GRANTED_MSG\"",
            );
            None
        }
    });
    rpc.program = program_number;
    rpc.version = version;
    rpc.procedure = procedure;
    rpc.kind = m.rpc_kind.and_then(|k| match k.get_ref().as_str() {
        "call" => Some(RpcKind::Call),
        "reply" => Some(RpcKind::Reply),
        other => {
            cx.at(
                k,
                format!("rpc_kind must be \"call\" or \"reply\", not {other:?}"),
            );
            None
        }
    });
    rpc.reclaim = m.nlm_reclaim.map(|v| *v.get_ref());
    rpc.nlm_stat = m.nlm_stat.map(|v| {
        number_or_name(
            cx,
            v,
            u64::from(u32::MAX),
            &[
                ("granted", 0),
                ("denied", 1),
                ("denied_nolocks", 2),
                ("blocked", 3),
                ("denied_grace_period", 4),
                ("deadlck", 5),
                ("rofs", 6),
                ("stale_fh", 7),
                ("fbig", 8),
                ("failed", 9),
            ],
            "nlm_stat",
        ) as u32
    });
    let any_rpc = m.rpc_program.is_some()
        || m.rpc_version.is_some()
        || m.rpc_procedure.is_some()
        || m.rpc_kind.is_some()
        || m.nlm_reclaim.is_some()
        || m.nlm_stat.is_some();
    Match {
        from,
        to,
        ethertype,
        ip_proto,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        tcp_flags,
        rpc: any_rpc.then_some(rpc),
        payload_contains: m.payload_contains.map(|p| {
            let text = p.get_ref();
            if text.is_empty() || text.len() > PAYLOAD_HEAD || text.contains(['\n', '\r']) {
                cx.at(
                    p,
                    format!("payload_contains is 1 to {PAYLOAD_HEAD} bytes of one line: only the payload's first {PAYLOAD_HEAD} bytes are looked at"),
                );
            }
            text.clone()
        }),
    }
}

/// A number up to `max`, or one of `names` (case-insensitive).
fn number_or_name(cx: &mut Cx, v: &S<toml::Value>, max: u64, names: &[(&str, u64)], key: &str) -> u64 {
    let listed = names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let complain = |cx: &mut Cx| {
        cx.at(
            v,
            format!("{key} is a number from 0 to {max:#x} or one of {listed}"),
        );
        0
    };
    match v.get_ref() {
        toml::Value::Integer(n) => match u64::try_from(*n) {
            Ok(n) if n <= max => n,
            _ => complain(cx),
        },
        toml::Value::String(s) => {
            let s = s.to_ascii_lowercase();
            names
                .iter()
                .find(|(n, _)| *n == s)
                .map(|(_, x)| *x)
                .unwrap_or_else(|| complain(cx))
        }
        _ => complain(cx),
    }
}

fn tcp_flag_bits(cx: &mut Cx, v: &S<toml::Value>) -> u8 {
    const NAMES: [(&str, u8); 8] = [
        ("fin", 0x01),
        ("syn", 0x02),
        ("rst", 0x04),
        ("psh", 0x08),
        ("ack", 0x10),
        ("urg", 0x20),
        ("ece", 0x40),
        ("cwr", 0x80),
    ];
    let hint = "tcp_flags is a number from 1 to 255 or names joined by '|', e.g. \"syn|ack\" (fin, syn, rst, psh, ack, urg, ece, cwr)";
    let bits = match v.get_ref() {
        toml::Value::Integer(n) => u8::try_from(*n).ok(),
        toml::Value::String(s) => s.split('|').try_fold(0u8, |acc, part| {
            let part = part.trim().to_ascii_lowercase();
            NAMES.iter().find(|(n, _)| *n == part).map(|(_, b)| acc | b)
        }),
        _ => None,
    };
    match bits {
        Some(b) if b > 0 => b,
        _ => {
            cx.at(v, hint);
            0
        }
    }
}

/// (program, version, procedure) for a procedure name, narrowed by a given program and
/// version; an error unless exactly one (program, version) has it.
fn procedure_by_name(
    cx: &mut Cx,
    at: &S<toml::Value>,
    name: &str,
    program: Option<u32>,
    version: Option<u32>,
) -> Option<(u32, u32, u32)> {
    let name = name.to_ascii_uppercase();
    let programs: Vec<u32> = match program {
        Some(p) => vec![p],
        None => vec![
            program::NLM,
            program::NSM,
            program::NFS,
            program::MOUNT,
            program::PORTMAP,
        ],
    };
    let versions: Vec<u32> = match version {
        Some(v) => vec![v],
        None => (0..=4).collect(),
    };
    let mut found = Vec::new();
    for &p in &programs {
        for &v in &versions {
            if let Some(n) = rpc::procedure_number(p, v, &name) {
                found.push((p, v, n));
            }
        }
    }
    let program_label = |p: u32| rpc::program_name(p).map_or(p.to_string(), |n| format!("{n} ({p})"));
    match found.as_slice() {
        [one] => Some(*one),
        [] => {
            let scope = match (program, version) {
                (Some(p), Some(v)) => format!(" in version {v} of {}", program_label(p)),
                (Some(p), None) => format!(" in {}", program_label(p)),
                (None, Some(v)) => format!(" in version {v} of any program"),
                (None, None) => String::new(),
            };
            cx.at(
                at,
                format!(
                    "unknown RPC procedure `{name}`{scope}: names are as the frame decoder prints them, e.g. NLM4_GRANTED_MSG, NFS3_WRITE, SM_NOTIFY"
                ),
            );
            None
        }
        [(p, _, _), ..] if found.iter().all(|(q, _, _)| q == p) => {
            let vs: Vec<String> = found.iter().map(|(_, v, _)| v.to_string()).collect();
            cx.at(
                at,
                format!(
                    "procedure `{name}` is in versions {} of {}: set rpc_version",
                    vs.join(" and "),
                    program_label(*p)
                ),
            );
            None
        }
        _ => {
            cx.at(
                at,
                format!("procedure `{name}` is in several programs: set rpc_program and rpc_version"),
            );
            None
        }
    }
}
