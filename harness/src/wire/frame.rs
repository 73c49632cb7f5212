//! Frame classification: Ethernet II (with at most one 802.1Q tag), ARP, IPv4, IPv6, ICMP,
//! ICMPv6, UDP, TCP, and ONC RPC (RFC 5531) with decoders for NLM, NSM (statd) and
//! portmap/rpcbind.
//!
//! Everything here is pure: no I/O, no clocks. Frames come from guests the harness is trying to
//! break, so every read goes through a small cursor type (`Reader`) that answers `None` instead
//! of panicking; every length read from the wire is bounded before it is used; arithmetic on
//! wire values is checked or wrapping. Allocations are bounded copies: opaque fields and strings
//! are capped at [`MAX_OPAQUE`] bytes, a frame lists at most [`MAX_RPC_PER_FRAME`] RPC
//! messages, and the tracker keeps at most a fixed number of calls and flows, each flow
//! buffering at most [`HEAD_CAP`] bytes.
//!
//! Two layers:
//!
//! - [`classify`] is stateless and describes one frame. UDP datagrams carry one RPC message
//!   each. Over TCP, RPC messages are framed by record marks that need not line up with
//!   segments, so `classify` only finds RPC in a segment that *starts* with a record mark
//!   (which is what Linux sends for small calls like NLM's), and it cannot know what a reply
//!   answers.
//! - [`RpcTracker::observe`] follows TCP streams (where the next record mark is, by sequence
//!   number) and remembers calls so replies are annotated with the program, version and
//!   procedure of their call and their results decoded. See [`RpcTracker`] for what it can
//!   and cannot see.

use serde::{Serialize, Serializer};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

#[cfg(test)]
mod tests;

/// Longest opaque or string field copied out of an RPC message (NLM's `MAXNETOBJ_SZ` and
/// `LM_MAXSTRLEN`, NSM's `SM_MAXSTRLEN` are all 1024). Longer ones make the arguments invalid.
pub const MAX_OPAQUE: usize = 1024;
/// Most RPC messages listed for one frame; the rest are counted in [`FrameInfo::rpc_omitted`].
pub const MAX_RPC_PER_FRAME: usize = 64;
/// Bytes of an RPC message's start the TCP parser keeps to decode a message split across
/// segments. Header and NLM/NSM/portmap arguments fit; bulk NFS data does not need to.
pub const HEAD_CAP: usize = 2048;
/// Largest credential or verifier body (RFC 5531 `MAX_AUTH_BYTES`).
const MAX_AUTH: u32 = 400;
/// Largest record fragment believed: bigger marks mean the stream is not RPC or we are lost.
const MAX_FRAGMENT: u32 = 1 << 24;
/// Smallest whole RPC message (a denied reply with an auth error: five words).
const MIN_MESSAGE: u32 = 20;
/// Extension headers skipped in an IPv6 packet before giving up.
const MAX_IPV6_EXT: usize = 8;

/// Ethernet types this module knows.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers this module knows.
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// TCP flag bits as in [`Tcp::flags`].
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// ONC RPC program numbers this module names or decodes.
pub mod program {
    pub const PORTMAP: u32 = 100000;
    pub const NFS: u32 = 100003;
    pub const MOUNT: u32 = 100005;
    pub const NLM: u32 = 100021;
    pub const NSM: u32 = 100024;
}

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

// ---------------------------------------------------------------------------------------------
// Bounds-checked reading

/// A cursor over untrusted bytes: every read is checked and answers `None` past the end, without
/// moving.
#[derive(Clone, Copy, Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        let [b] = self.array::<1>()?;
        Some(b)
    }

    fn be16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    fn be32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    fn be64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }
}

/// XDR (RFC 4506) on top of [`Reader`]: big-endian words, opaques padded to four bytes, every
/// length bounded by the caller.
#[derive(Clone, Copy, Debug)]
struct Xdr<'a>(Reader<'a>);

impl<'a> Xdr<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Xdr(Reader::new(buf))
    }

    fn u32(&mut self) -> Option<u32> {
        self.0.be32()
    }

    fn i32(&mut self) -> Option<i32> {
        Some(self.0.be32()? as i32)
    }

    fn u64(&mut self) -> Option<u64> {
        self.0.be64()
    }

    /// XDR booleans are words; like Linux, anything but zero is true.
    fn bool(&mut self) -> Option<bool> {
        Some(self.u32()? != 0)
    }

    /// Variable-length opaque of at most `max` bytes, padding included in the read.
    fn opaque(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > max {
            return None;
        }
        self.fixed(len)
    }

    /// Fixed-length opaque of `len` bytes plus padding.
    fn fixed(&mut self, len: usize) -> Option<&'a [u8]> {
        let data = self.0.bytes(len)?;
        self.0.skip(pad4(len))?;
        Some(data)
    }

    fn string(&mut self, max: usize) -> Option<String> {
        Some(String::from_utf8_lossy(self.opaque(max)?).into_owned())
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn ser_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

// ---------------------------------------------------------------------------------------------
// L2–L4 description

/// A MAC address; shown and serialized as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Group bit set: broadcast or multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why parsing stopped early (or found a lie in a length field). The frame is still described
/// as far as it parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Malformed {
    /// Shorter than the 14-byte Ethernet header.
    TruncatedEthernet,
    /// An 802.1Q tag without the four bytes it needs.
    TruncatedVlan,
    /// ARP shorter than its fixed part or its addresses.
    TruncatedArp,
    /// IPv4 shorter than 20 bytes or than its IHL.
    TruncatedIpv4Header,
    /// IPv6 shorter than its 40-byte fixed header.
    TruncatedIpv6Header,
    /// The IP version nibble disagrees with the ethertype.
    BadIpVersion,
    /// IPv4 IHL below 5.
    BadIhl,
    /// IPv4 total length shorter than the header.
    BadIpTotalLength,
    /// IP total / payload length goes past the end of the frame (parsed what is there).
    TruncatedIpPayload,
    /// An IPv6 extension header runs past the packet.
    TruncatedIpv6Extension,
    /// More than eight extension headers.
    TooManyIpv6Extensions,
    /// UDP shorter than its 8-byte header, or its length field past the packet.
    TruncatedUdp,
    /// UDP length field below 8.
    BadUdpLength,
    /// TCP shorter than 20 bytes or than its data offset.
    TruncatedTcp,
    /// TCP data offset below 5.
    BadTcpOffset,
    /// ICMP/ICMPv6 shorter than 4 bytes.
    TruncatedIcmp,
}

impl Malformed {
    /// The snake_case name, as serialized: handy as a counter label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Malformed::TruncatedEthernet => "truncated_ethernet",
            Malformed::TruncatedVlan => "truncated_vlan",
            Malformed::TruncatedArp => "truncated_arp",
            Malformed::TruncatedIpv4Header => "truncated_ipv4_header",
            Malformed::TruncatedIpv6Header => "truncated_ipv6_header",
            Malformed::BadIpVersion => "bad_ip_version",
            Malformed::BadIhl => "bad_ihl",
            Malformed::BadIpTotalLength => "bad_ip_total_length",
            Malformed::TruncatedIpPayload => "truncated_ip_payload",
            Malformed::TruncatedIpv6Extension => "truncated_ipv6_extension",
            Malformed::TooManyIpv6Extensions => "too_many_ipv6_extensions",
            Malformed::TruncatedUdp => "truncated_udp",
            Malformed::BadUdpLength => "bad_udp_length",
            Malformed::TruncatedTcp => "truncated_tcp",
            Malformed::BadTcpOffset => "bad_tcp_offset",
            Malformed::TruncatedIcmp => "truncated_icmp",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`classify`] found in one frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct FrameInfo {
    /// Bytes in the frame.
    pub len: usize,
    pub eth: Option<Ethernet>,
    pub arp: Option<Arp>,
    pub ip: Option<Ip>,
    pub l4: Option<L4>,
    /// ONC RPC messages in the UDP datagram or TCP segment, in wire order.
    pub rpc: Vec<RpcMessage>,
    /// RPC messages found past [`MAX_RPC_PER_FRAME`] and not listed.
    pub rpc_omitted: usize,
    /// Set when parsing stopped early or a length field lied; the first reason wins.
    pub malformed: Option<Malformed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ethernet {
    pub dst: Mac,
    pub src: Mac,
    pub vlan: Option<Vlan>,
    /// The ethertype after the VLAN tag, if any (below 0x0600 it is an 802.3 length).
    pub ethertype: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Vlan {
    pub id: u16,
    pub pcp: u8,
    pub dei: bool,
}

/// ARP for Ethernet/IPv4 (other hardware or protocol types are not described).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ip {
    /// 4 or 6.
    pub version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol: IPv4's protocol field, or IPv6's last next-header after the
    /// extension headers that were skipped.
    pub protocol: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Header bytes, including IPv4 options and skipped IPv6 extension headers.
    pub header_len: usize,
    /// Length the header claims for the whole packet (IPv4 total length, IPv6 40 + payload
    /// length); bytes past it (Ethernet padding) are ignored.
    pub total_len: usize,
    /// IPv4 identification, or the IPv6 fragment header's identification (else 0).
    pub id: u32,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in bytes.
    pub fragment_offset: u16,
    /// Part of a fragmented packet (more fragments, or a non-zero offset). Only the first
    /// fragment is parsed beyond IP.
    pub fragment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "proto", rename_all = "snake_case")]
pub enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    Icmp { icmp_type: u8, code: u8 },
    Icmpv6 { icmp_type: u8, code: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// See [`tcp_flags`].
    pub flags: u8,
    pub window: u16,
    pub header_len: usize,
    /// The segment's data, as offsets into the frame.
    pub payload: Range<usize>,
}

impl Tcp {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Udp {
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP length field (header included).
    pub length: u16,
    /// The datagram's data present in this frame, as offsets into the frame (shorter than
    /// `length - 8` in a first IP fragment or a truncated frame).
    pub payload: Range<usize>,
}

/// A transport flow, one direction: `src` sends to `dst`. [`FlowKey::reversed`] is the
/// direction replies travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FlowKey {
    pub protocol: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
}

impl FlowKey {
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            protocol: self.protocol,
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }
}

impl FrameInfo {
    /// The ethertype after any VLAN tag.
    pub fn ethertype(&self) -> Option<u16> {
        self.eth.map(|e| e.ethertype)
    }

    pub fn vlan_id(&self) -> Option<u16> {
        self.eth.and_then(|e| e.vlan).map(|v| v.id)
    }

    pub fn src_ip(&self) -> Option<IpAddr> {
        self.ip.map(|ip| ip.src)
    }

    pub fn dst_ip(&self) -> Option<IpAddr> {
        self.ip.map(|ip| ip.dst)
    }

    pub fn ip_protocol(&self) -> Option<u8> {
        self.ip.map(|ip| ip.protocol)
    }

    pub fn tcp(&self) -> Option<&Tcp> {
        match &self.l4 {
            Some(L4::Tcp(t)) => Some(t),
            _ => None,
        }
    }

    pub fn udp(&self) -> Option<&Udp> {
        match &self.l4 {
            Some(L4::Udp(u)) => Some(u),
            _ => None,
        }
    }

    pub fn src_port(&self) -> Option<u16> {
        match &self.l4 {
            Some(L4::Tcp(t)) => Some(t.src_port),
            Some(L4::Udp(u)) => Some(u.src_port),
            _ => None,
        }
    }

    pub fn dst_port(&self) -> Option<u16> {
        match &self.l4 {
            Some(L4::Tcp(t)) => Some(t.dst_port),
            Some(L4::Udp(u)) => Some(u.dst_port),
            _ => None,
        }
    }

    /// ICMP or ICMPv6 (type, code).
    pub fn icmp(&self) -> Option<(u8, u8)> {
        match self.l4 {
            Some(L4::Icmp { icmp_type, code }) | Some(L4::Icmpv6 { icmp_type, code }) => {
                Some((icmp_type, code))
            }
            _ => None,
        }
    }

    /// The TCP or UDP payload, as offsets into the frame.
    pub fn payload(&self) -> Option<Range<usize>> {
        match &self.l4 {
            Some(L4::Tcp(t)) => Some(t.payload.clone()),
            Some(L4::Udp(u)) => Some(u.payload.clone()),
            _ => None,
        }
    }

    /// The TCP or UDP flow in this frame's direction.
    pub fn flow(&self) -> Option<FlowKey> {
        let ip = self.ip?;
        let (protocol, src_port, dst_port) = match &self.l4 {
            Some(L4::Tcp(t)) => (ip_proto::TCP, t.src_port, t.dst_port),
            Some(L4::Udp(u)) => (ip_proto::UDP, u.src_port, u.dst_port),
            _ => return None,
        };
        Some(FlowKey {
            protocol,
            src: ip.src,
            src_port,
            dst: ip.dst,
            dst_port,
        })
    }

    pub fn is_rpc(&self) -> bool {
        !self.rpc.is_empty()
    }

    fn fail(&mut self, why: Malformed) {
        self.malformed.get_or_insert(why);
    }
}

/// Describe one frame: L2–L4 headers and any ONC RPC messages, without state. Never panics;
/// allocates only bounded copies. See the module docs for what needs [`RpcTracker`].
pub fn classify(frame: &[u8]) -> FrameInfo {
    let mut info = FrameInfo {
        len: frame.len(),
        ..FrameInfo::default()
    };
    if let Some((ethertype, off)) = parse_ethernet(frame, &mut info) {
        match ethertype {
            ethertype::ARP => parse_arp(frame, off, &mut info),
            ethertype::IPV4 => parse_ipv4(frame, off, &mut info),
            ethertype::IPV6 => parse_ipv6(frame, off, &mut info),
            _ => {}
        }
    }
    let mut emit = Emit::default();
    match &info.l4 {
        Some(L4::Udp(u)) => rpc_in_datagram(frame, u, &no_calls, &mut emit),
        Some(L4::Tcp(t)) => {
            let p = frame.get(t.payload.clone()).unwrap_or_default();
            let _ = Stream::default().feed(p, t.payload.start, &no_calls, &mut emit);
        }
        _ => {}
    }
    info.rpc = emit.msgs;
    info.rpc_omitted = emit.omitted;
    info
}

fn parse_ethernet(frame: &[u8], info: &mut FrameInfo) -> Option<(u16, usize)> {
    let mut r = Reader::new(frame);
    let (Some(dst), Some(src), Some(mut ethertype)) = (r.array::<6>(), r.array::<6>(), r.be16()) else {
        info.fail(Malformed::TruncatedEthernet);
        return None;
    };
    let mut vlan = None;
    if ethertype == ethertype::VLAN {
        let (Some(tci), Some(inner)) = (r.be16(), r.be16()) else {
            info.eth = Some(Ethernet {
                dst: Mac(dst),
                src: Mac(src),
                vlan: None,
                ethertype,
            });
            info.fail(Malformed::TruncatedVlan);
            return None;
        };
        vlan = Some(Vlan {
            id: tci & 0x0fff,
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
        });
        ethertype = inner;
    }
    info.eth = Some(Ethernet {
        dst: Mac(dst),
        src: Mac(src),
        vlan,
        ethertype,
    });
    Some((ethertype, r.pos))
}

fn parse_arp(frame: &[u8], off: usize, info: &mut FrameInfo) {
    let mut r = Reader::new(frame.get(off..).unwrap_or_default());
    let (Some(htype), Some(ptype), Some(hlen), Some(plen), Some(op)) =
        (r.be16(), r.be16(), r.u8(), r.u8(), r.be16())
    else {
        info.fail(Malformed::TruncatedArp);
        return;
    };
    if (htype, ptype, hlen, plen) != (1, ethertype::IPV4, 6, 4) {
        return;
    }
    let (Some(sha), Some(spa), Some(tha), Some(tpa)) =
        (r.array::<6>(), r.array::<4>(), r.array::<6>(), r.array::<4>())
    else {
        info.fail(Malformed::TruncatedArp);
        return;
    };
    info.arp = Some(Arp {
        op,
        sender_mac: Mac(sha),
        sender_ip: Ipv4Addr::from(spa),
        target_mac: Mac(tha),
        target_ip: Ipv4Addr::from(tpa),
    });
}

fn parse_ipv4(frame: &[u8], off: usize, info: &mut FrameInfo) {
    let pkt = frame.get(off..).unwrap_or_default();
    let mut r = Reader::new(pkt);
    let fields = (|| {
        let vihl = r.u8()?;
        let _tos = r.u8()?;
        let total = r.be16()?;
        let id = r.be16()?;
        let flags_frag = r.be16()?;
        let ttl = r.u8()?;
        let proto = r.u8()?;
        let _csum = r.be16()?;
        let src = r.array::<4>()?;
        let dst = r.array::<4>()?;
        Some((vihl, total, id, flags_frag, ttl, proto, src, dst))
    })();
    let Some((vihl, total, id, flags_frag, ttl, protocol, src, dst)) = fields else {
        if pkt.first().is_some_and(|b| b >> 4 != 4) {
            info.fail(Malformed::BadIpVersion);
        } else {
            info.fail(Malformed::TruncatedIpv4Header);
        }
        return;
    };
    if vihl >> 4 != 4 {
        info.fail(Malformed::BadIpVersion);
        return;
    }
    let header_len = usize::from(vihl & 0x0f) * 4;
    let total_len = usize::from(total);
    let fragment_offset = (flags_frag & 0x1fff).wrapping_mul(8);
    let more_fragments = flags_frag & 0x2000 != 0;
    info.ip = Some(Ip {
        version: 4,
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        protocol,
        ttl,
        header_len,
        total_len,
        id: u32::from(id),
        dont_fragment: flags_frag & 0x4000 != 0,
        more_fragments,
        fragment_offset,
        fragment: more_fragments || fragment_offset != 0,
    });
    if header_len < 20 {
        info.fail(Malformed::BadIhl);
        return;
    }
    if pkt.len() < header_len {
        info.fail(Malformed::TruncatedIpv4Header);
        return;
    }
    if total_len < header_len {
        info.fail(Malformed::BadIpTotalLength);
        return;
    }
    let end = if total_len > pkt.len() {
        info.fail(Malformed::TruncatedIpPayload);
        pkt.len()
    } else {
        total_len
    };
    if fragment_offset != 0 {
        return;
    }
    parse_l4(frame, off + header_len, off + end, protocol, more_fragments, info);
}

fn is_ipv6_extension(nh: u8) -> bool {
    // Hop-by-hop, routing, fragment, destination options, AH, mobility, HIP, shim6.
    matches!(nh, 0 | 43 | 44 | 60 | 51 | 135 | 139 | 140)
}

fn parse_ipv6(frame: &[u8], off: usize, info: &mut FrameInfo) {
    let pkt = frame.get(off..).unwrap_or_default();
    let mut r = Reader::new(pkt);
    let fields = (|| {
        let vtf = r.be32()?;
        let plen = r.be16()?;
        let nh = r.u8()?;
        let hop = r.u8()?;
        let src = r.array::<16>()?;
        let dst = r.array::<16>()?;
        Some((vtf, plen, nh, hop, src, dst))
    })();
    let Some((vtf, plen, mut nh, ttl, src, dst)) = fields else {
        if pkt.first().is_some_and(|b| b >> 4 != 6) {
            info.fail(Malformed::BadIpVersion);
        } else {
            info.fail(Malformed::TruncatedIpv6Header);
        }
        return;
    };
    if vtf >> 28 != 6 {
        info.fail(Malformed::BadIpVersion);
        return;
    }
    let total_len = 40 + usize::from(plen);
    let end = if total_len > pkt.len() {
        info.fail(Malformed::TruncatedIpPayload);
        pkt.len()
    } else {
        total_len
    };
    let mut ip = Ip {
        version: 6,
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol: nh,
        ttl,
        header_len: 40,
        total_len,
        id: 0,
        dont_fragment: false,
        more_fragments: false,
        fragment_offset: 0,
        fragment: false,
    };
    let body = pkt.get(..end).unwrap_or_default();
    let mut pos = 40usize;
    let mut upper = true;
    let mut skipped = 0usize;
    while is_ipv6_extension(nh) {
        if skipped == MAX_IPV6_EXT {
            info.fail(Malformed::TooManyIpv6Extensions);
            upper = false;
            break;
        }
        skipped += 1;
        let mut h = Reader::new(body);
        h.pos = pos;
        let (Some(next), Some(hlen)) = (h.u8(), h.u8()) else {
            info.fail(Malformed::TruncatedIpv6Extension);
            upper = false;
            break;
        };
        let len = match nh {
            51 => (usize::from(hlen) + 2) * 4,
            44 => {
                let (Some(offflags), Some(id)) = (h.be16(), h.be32()) else {
                    info.fail(Malformed::TruncatedIpv6Extension);
                    upper = false;
                    break;
                };
                ip.fragment = true;
                ip.fragment_offset = offflags & 0xfff8;
                ip.more_fragments = offflags & 1 != 0;
                ip.id = id;
                8
            }
            _ => (usize::from(hlen) + 1) * 8,
        };
        if pos + len > body.len() {
            info.fail(Malformed::TruncatedIpv6Extension);
            upper = false;
            break;
        }
        pos += len;
        nh = next;
        ip.protocol = nh;
        ip.header_len = pos;
    }
    let parse_upper = upper && ip.fragment_offset == 0;
    let more = ip.more_fragments;
    info.ip = Some(ip);
    if parse_upper {
        parse_l4(frame, off + pos, off + end, nh, more, info);
    }
}

/// Parse the transport header in `frame[start..end]`. `more_fragments`: the IP packet is a first
/// fragment, so a short UDP datagram is expected rather than malformed.
fn parse_l4(frame: &[u8], start: usize, end: usize, proto: u8, more_fragments: bool, info: &mut FrameInfo) {
    let seg = frame.get(start..end).unwrap_or_default();
    let mut r = Reader::new(seg);
    match proto {
        ip_proto::UDP => {
            let (Some(src_port), Some(dst_port), Some(length), Some(_csum)) =
                (r.be16(), r.be16(), r.be16(), r.be16())
            else {
                info.fail(Malformed::TruncatedUdp);
                return;
            };
            let claimed = usize::from(length);
            let data_end = if claimed < 8 {
                info.fail(Malformed::BadUdpLength);
                8
            } else if claimed > seg.len() {
                if !more_fragments {
                    info.fail(Malformed::TruncatedUdp);
                }
                seg.len()
            } else {
                claimed
            };
            info.l4 = Some(L4::Udp(Udp {
                src_port,
                dst_port,
                length,
                payload: start + 8..start + data_end,
            }));
        }
        ip_proto::TCP => {
            let fields = (|| {
                Some((
                    r.be16()?,
                    r.be16()?,
                    r.be32()?,
                    r.be32()?,
                    r.be16()?,
                    r.be16()?,
                    r.be16()?,
                    r.be16()?,
                ))
            })();
            let Some((src_port, dst_port, seq, ack, off_flags, window, _csum, _urg)) = fields else {
                info.fail(Malformed::TruncatedTcp);
                return;
            };
            let header_len = usize::from(off_flags >> 12) * 4;
            let data_start = if header_len < 20 {
                info.fail(Malformed::BadTcpOffset);
                seg.len()
            } else if header_len > seg.len() {
                info.fail(Malformed::TruncatedTcp);
                seg.len()
            } else {
                header_len
            };
            info.l4 = Some(L4::Tcp(Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags: (off_flags & 0xff) as u8,
                window,
                header_len,
                payload: start + data_start..start + seg.len(),
            }));
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            let (Some(icmp_type), Some(code), Some(_csum)) = (r.u8(), r.u8(), r.be16()) else {
                info.fail(Malformed::TruncatedIcmp);
                return;
            };
            info.l4 = Some(if proto == ip_proto::ICMP {
                L4::Icmp { icmp_type, code }
            } else {
                L4::Icmpv6 { icmp_type, code }
            });
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// ONC RPC description

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
    /// can be acted on. Only [`RpcTracker`] produces these.
    pub continuation: bool,
}

/// TCP record mark (RFC 5531 §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordMark {
    pub last: bool,
    pub len: u32,
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
    /// The call this answers, when [`RpcTracker`] saw it.
    pub call: Option<CallId>,
    /// Decoded when the call is known and the reply is accepted with SUCCESS.
    pub results: Res,
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

/// Matcher-friendly questions. For a reply, program/version/procedure are those of its call,
/// known only when [`RpcTracker`] saw the call.
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
// Names

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

// ---------------------------------------------------------------------------------------------
// ONC RPC decoding

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
const LAST_FRAGMENT: u32 = 0x8000_0000;

/// Finds the call a reply answers, by xid (the tracker knows the flow).
type Lookup<'l> = &'l dyn Fn(u32) -> Option<CallId>;

fn no_calls(_: u32) -> Option<CallId> {
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undecodable {
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
fn decode_message(
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
fn decode_args(program: u32, version: u32, procedure: u32, x: &mut Xdr<'_>) -> Option<Args> {
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
fn decode_results(call: CallId, x: &mut Xdr<'_>) -> Option<Res> {
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

/// Programs a resyncing TCP parser accepts a call for (see [`RpcTracker`]).
fn is_known_program(p: u32) -> bool {
    matches!(
        p,
        program::PORTMAP | program::NFS | program::MOUNT | program::NLM | program::NSM
    )
}

#[derive(Default)]
struct Emit {
    msgs: Vec<RpcMessage>,
    omitted: usize,
}

impl Emit {
    fn push(&mut self, m: RpcMessage) {
        if self.msgs.len() < MAX_RPC_PER_FRAME {
            self.msgs.push(m);
        } else {
            self.omitted = self.omitted.saturating_add(1);
        }
    }
}

/// A UDP datagram is one RPC message.
fn rpc_in_datagram(frame: &[u8], u: &Udp, lookup: Lookup<'_>, emit: &mut Emit) {
    let p = frame.get(u.payload.clone()).unwrap_or_default();
    let whole = p.len().checked_add(8) == Some(usize::from(u.length));
    if let Ok(mut m) = decode_message(p, whole, lookup, true) {
        m.offset = Some(u.payload.start);
        emit.push(m);
    }
}

/// The end of a stream: the bytes cannot be RPC records where we thought they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Desync;

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
struct Stream {
    /// A message decoded on this stream: until then the first record must look like a
    /// single-fragment RPC message (last bit, length ≥ 20) and decode as one.
    verified: bool,
    mark: [u8; 4],
    mark_len: usize,
    frag: Option<Frag>,
    msg: Option<MsgState>,
}

impl Stream {
    /// Parse the next bytes of the stream, `p`, found at frame offset `base`, emitting one
    /// [`RpcMessage`] per message completed in `p` and one for a message still in progress at
    /// its end (once its header can be decoded). Work is linear in `p`.
    fn feed(&mut self, p: &[u8], base: usize, lookup: Lookup<'_>, emit: &mut Emit) -> Result<(), Desync> {
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
    fn skip(&mut self, n: u32) -> bool {
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
fn find_record_start(p: &[u8], lookup: Lookup<'_>) -> Option<usize> {
    (0..p.len()).find(|&k| {
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

// ---------------------------------------------------------------------------------------------
// Tracking

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

    /// [`classify`] then [`RpcTracker::observe`].
    pub fn classify(&mut self, frame: &[u8]) -> FrameInfo {
        let mut info = classify(frame);
        self.observe(frame, &mut info);
        info
    }

    /// Update the state with `frame` and rewrite `info.rpc` with what the state shows: replies
    /// annotated, TCP records found by sequence number. `info` must be `classify(frame)`.
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
