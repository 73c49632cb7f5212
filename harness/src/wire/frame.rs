//! Frame classification, L2 to L4: Ethernet II (with at most one 802.1Q tag), ARP, IPv4,
//! IPv6, ICMP, ICMPv6, UDP and TCP, and [`classify`], which describes one frame including the
//! ONC RPC messages it carries (decoded by [`rpc`]).
//!
//! Invariant: pure and total: no I/O, no clocks, no panic, bounded memory on any bytes. Frames
//! come from guests the harness is trying to break, so every read goes through a small cursor
//! type (`Reader`) that answers `None` instead of panicking; every length read from the wire
//! is bounded before it is used; arithmetic on wire values is checked or wrapping. Allocations
//! are the RPC layer's bounded copies.
//!
//! [`classify`] is stateless and describes one frame. UDP datagrams carry one RPC message
//! each. Over TCP, RPC messages are framed by record marks that need not line up with
//! segments, so `classify` only finds RPC in a segment that *starts* with a record mark (which
//! is what Linux sends for small calls like NLM's), and it cannot know what a reply answers:
//! [`RpcTracker`](crate::wire::tracker::RpcTracker) follows streams and pairs replies with
//! calls.

use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::wire::bytes::Reader;
use crate::wire::rpc::{self, decode_message, no_calls, Emit, Lookup, RpcMessage};

#[cfg(test)]
mod tests;

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
    /// RPC messages found past [`rpc::MAX_RPC_PER_FRAME`] and not listed.
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
/// allocates only bounded copies. See the module docs for what needs
/// [`RpcTracker`](crate::wire::tracker::RpcTracker).
pub fn classify(frame: &[u8]) -> FrameInfo {
    let mut info = classify_headers(frame);
    let mut emit = Emit::default();
    match &info.l4 {
        Some(L4::Udp(u)) => rpc_in_datagram(frame, u, &no_calls, &mut emit),
        Some(L4::Tcp(t)) => {
            let p = frame.get(t.payload.clone()).unwrap_or_default();
            let _ = rpc::Stream::default().feed(p, t.payload.start, &no_calls, &mut emit);
        }
        _ => {}
    }
    info.rpc = emit.msgs;
    info.rpc_omitted = emit.omitted;
    info
}

/// [`classify`] without its stateless look for ONC RPC messages: the L2–L4 headers and
/// whether they are malformed. For a caller that runs
/// [`RpcTracker::observe`](crate::wire::tracker::RpcTracker::observe) next, which finds a
/// frame's RPC messages again with its state and replaces `rpc`.
pub fn classify_headers(frame: &[u8]) -> FrameInfo {
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

/// A UDP datagram is one RPC message.
pub(crate) fn rpc_in_datagram(frame: &[u8], u: &Udp, lookup: Lookup<'_>, emit: &mut Emit) {
    let p = frame.get(u.payload.clone()).unwrap_or_default();
    let whole = p.len().checked_add(8) == Some(usize::from(u.length));
    if let Ok(mut m) = decode_message(p, whole, lookup, true) {
        m.offset = Some(u.payload.start);
        emit.push(m);
    }
}
