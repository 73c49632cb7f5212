use super::*;
use crate::wire::rpc::Args;
use crate::wire::test_frames::*;
use crate::wire::tracker::RpcTracker;

// ---------------------------------------------------------------------------------------------
// L2–L4

#[test]
fn udp_frame_fields() {
    let f = udp4(FE1, 901, FILER, 4045, b"hello");
    let info = classify(&f);
    let eth = info.eth.unwrap();
    assert_eq!(eth.src.to_string(), "52:54:00:00:00:0b");
    assert_eq!(eth.dst, Mac(mac_of(&FILER)));
    assert_eq!(eth.ethertype, ethertype::IPV4);
    let ip = info.ip.unwrap();
    assert_eq!(
        (ip.version, ip.protocol, ip.header_len, ip.total_len, ip.ttl),
        (4, 17, 20, 33, 64)
    );
    assert!(ip.dont_fragment && !ip.fragment);
    assert_eq!(info.src_ip(), Some(IpAddr::from(FE1)));
    assert_eq!(info.dst_ip(), Some(IpAddr::from(FILER)));
    assert_eq!((info.src_port(), info.dst_port()), (Some(901), Some(4045)));
    assert_eq!(&f[info.payload().unwrap()], b"hello");
    assert_eq!(info.malformed, None);
    assert!(info.rpc.is_empty());
    let flow = info.flow().unwrap();
    assert_eq!(flow.reversed().reversed(), flow);
    assert_eq!(flow.reversed().src_port, 4045);
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut f = udp4(FE1, 901, FILER, 4045, b"hi");
    f.resize(60, 0);
    let info = classify(&f);
    assert_eq!(&f[info.payload().unwrap()], b"hi");
    assert_eq!(info.malformed, None);
}

#[test]
fn tcp_frame_fields() {
    let f = tcp4(
        FE1,
        700,
        FILER,
        4045,
        1000,
        2000,
        tcp_flags::ACK | tcp_flags::PSH,
        b"data",
    );
    let info = classify(&f);
    let t = info.tcp().unwrap();
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack, t.header_len),
        (700, 4045, 1000, 2000, 20)
    );
    assert!(t.has(tcp_flags::ACK) && t.has(tcp_flags::PSH) && !t.has(tcp_flags::SYN));
    assert_eq!(&f[t.payload.clone()], b"data");
    assert!(info.rpc.is_empty());
}

#[test]
fn arp_request_and_reply() {
    let req = classify(&arp(1, mac_of(&FE1), FE1, [0; 6], FILER));
    assert_eq!(req.eth.unwrap().dst, Mac::BROADCAST);
    assert!(Mac::BROADCAST.is_multicast());
    let a = req.arp.unwrap();
    assert_eq!(a.op, 1);
    assert_eq!(a.sender_mac, Mac(mac_of(&FE1)));
    assert_eq!(a.sender_ip, Ipv4Addr::from(FE1));
    assert_eq!(a.target_ip, Ipv4Addr::from(FILER));
    assert_eq!(req.malformed, None);
    assert!(req.ip.is_none() && req.l4.is_none());

    let rep = classify(&arp(2, mac_of(&FILER), FILER, mac_of(&FE1), FE1))
        .arp
        .unwrap();
    assert_eq!(
        (rep.op, rep.sender_ip, rep.target_mac),
        (2, Ipv4Addr::from(FILER), Mac(mac_of(&FE1)))
    );

    // Padded to the Ethernet minimum, still fine; another hardware type is not described.
    let mut padded = arp(1, mac_of(&FE1), FE1, [0; 6], FILER);
    padded.resize(60, 0);
    assert!(classify(&padded).arp.is_some());
    let mut other = arp(1, mac_of(&FE1), FE1, [0; 6], FILER);
    other[15] = 6;
    let other = classify(&other);
    assert!(other.arp.is_none() && other.malformed.is_none());
}

#[test]
fn vlan_tag() {
    let inner = udp4(
        FE1,
        4047,
        FILER,
        4046,
        &call(9, NSM, 1, 6, &X::new().string("fe1").i32(5).0),
    );
    let mut f = inner[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x60, 0x64]); // PCP 3, VID 100
    f.extend_from_slice(&inner[12..]);
    let info = classify(&f);
    let eth = info.eth.unwrap();
    assert_eq!(
        eth.vlan,
        Some(Vlan {
            id: 100,
            pcp: 3,
            dei: false
        })
    );
    assert_eq!(info.vlan_id(), Some(100));
    assert_eq!(info.ethertype(), Some(ethertype::IPV4));
    assert_eq!(info.dst_port(), Some(4046));
    assert_eq!(only(&info).procedure_name(), Some("SM_NOTIFY"));
}

#[test]
fn ipv6_udp_with_extension_header() {
    let f = udp6(
        V6_FE1,
        4047,
        V6_FILER,
        4046,
        &call(0x8001, NSM, 1, 6, &X::new().string("fe1").i32(7).0),
    );
    let info = classify(&f);
    let ip = info.ip.unwrap();
    assert_eq!(
        (ip.version, ip.protocol, ip.header_len, ip.ttl),
        (6, ip_proto::UDP, 48, 64)
    );
    assert_eq!(ip.src, IpAddr::from(V6_FE1));
    assert_eq!(info.dst_port(), Some(4046));
    assert_eq!(info.malformed, None);
    let m = only(&info);
    assert_eq!(m.args().unwrap().mon_name(), Some("fe1"));
    assert_eq!(m.args().unwrap().state(), Some(7));
}

/// IPv6 packet with the given extension headers (each `(type, bytes)`), ending in `upper`.
fn ipv6_with(exts: &[(u8, Vec<u8>)], upper_proto: u8, upper: &[u8]) -> Vec<u8> {
    let first = exts.first().map(|e| e.0).unwrap_or(upper_proto);
    let mut body = Vec::new();
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = exts.get(i + 1).map(|e| e.0).unwrap_or(upper_proto);
        body.extend_from_slice(&b);
    }
    body.extend_from_slice(upper);
    let pkt = X::new()
        .u32(0x6000_0000)
        .raw(&(body.len() as u16).to_be_bytes())
        .raw(&[first, 64])
        .raw(&V6_FE1)
        .raw(&V6_FILER)
        .raw(&body)
        .0;
    ether(
        [0x33, 0x33, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 1],
        ethertype::IPV6,
        &pkt,
    )
}

#[test]
fn ipv6_extension_headers_fragments_and_limits() {
    let icmp6 = [135u8, 0, 0, 0, 0, 0, 0, 0];
    // Destination options (16 bytes) then routing (8) then ICMPv6.
    let f = ipv6_with(
        &[
            (60, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (43, vec![0; 8]),
        ],
        58,
        &icmp6,
    );
    let info = classify(&f);
    assert_eq!(info.ip.unwrap().header_len, 40 + 16 + 8);
    assert_eq!(info.icmp(), Some((135, 0)));
    assert!(matches!(info.l4, Some(L4::Icmpv6 { .. })));

    // A non-first fragment: no L4.
    let frag = vec![0, 0, 0x05, 0xa8, 0, 0, 0, 9]; // offset 1448, M=0
    let info = classify(&ipv6_with(&[(44, frag)], ip_proto::UDP, &[0; 16]));
    let ip = info.ip.unwrap();
    assert!(ip.fragment && !ip.more_fragments);
    assert_eq!((ip.fragment_offset, ip.id, ip.protocol), (1448, 9, ip_proto::UDP));
    assert!(info.l4.is_none() && info.malformed.is_none());

    // A first fragment: UDP parsed, its length field larger than what is here is fine.
    let first = vec![0, 0, 0, 1, 0, 0, 0, 9];
    let udp = [0x0f, 0xcf, 0x0f, 0xce, 0x10, 0x00, 0, 0, 1, 2, 3, 4];
    let info = classify(&ipv6_with(&[(44, first)], ip_proto::UDP, &udp));
    assert!(info.ip.unwrap().fragment && info.ip.unwrap().more_fragments);
    assert_eq!(info.dst_port(), Some(4046));
    assert_eq!(info.malformed, None);

    // Nine hop-by-hop headers: too many.
    let many: Vec<_> = (0..9).map(|_| (0u8, vec![0; 8])).collect();
    let info = classify(&ipv6_with(&many, ip_proto::UDP, &udp));
    assert_eq!(info.malformed, Some(Malformed::TooManyIpv6Extensions));
    assert!(info.l4.is_none());
    // An extension header claiming more than the packet holds.
    let info = classify(&ipv6_with(
        &[(60, vec![0, 200, 0, 0, 0, 0, 0, 0])],
        ip_proto::UDP,
        &udp,
    ));
    assert_eq!(info.malformed, Some(Malformed::TruncatedIpv6Extension));
}

#[test]
fn icmp_echo() {
    let f = conversation().pop().unwrap();
    let info = classify(&f);
    assert_eq!(info.icmp(), Some((8, 0)));
    assert_eq!(info.ip_protocol(), Some(ip_proto::ICMP));
    assert!(info.flow().is_none());
}

#[test]
fn ipv4_fragments() {
    let payload = call(0x77, NLM, 4, 2, &lockargs(true, &[7], false, true, false, 1));
    let whole = udp4(FE1, 901, FILER, 4045, &payload);
    // First fragment: keep the UDP header and the first 64 bytes of the RPC message.
    let mut first = whole[..14 + 20 + 8 + 64].to_vec();
    first[14 + 2..14 + 4].copy_from_slice(&((20 + 8 + 64) as u16).to_be_bytes());
    first[14 + 6] = 0x20; // MF
    let info = classify(&first);
    let ip = info.ip.unwrap();
    assert!(ip.fragment && ip.more_fragments && ip.fragment_offset == 0);
    assert_eq!(info.malformed, None);
    assert_eq!(info.dst_port(), Some(4045));
    let m = only(&info);
    assert!(m.partial);
    assert_eq!(m.procedure_name(), Some("NLM4_LOCK"));
    assert_eq!(m.args(), Some(&Args::Incomplete));
    // A later fragment: IP only.
    let mut later = whole.clone();
    later[14 + 6..14 + 8].copy_from_slice(&[0x00, 0x09]); // offset 72
    let info = classify(&later);
    assert!(info.ip.unwrap().fragment);
    assert_eq!(info.ip.unwrap().fragment_offset, 72);
    assert!(info.l4.is_none() && info.rpc.is_empty() && info.malformed.is_none());
}

#[test]
fn malformed_headers() {
    let good = udp4(FE1, 901, FILER, 4045, b"payload!");
    let with = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        classify(&f)
    };
    assert_eq!(
        classify(&good[..10]).malformed,
        Some(Malformed::TruncatedEthernet)
    );
    assert_eq!(with(14, &[0x44]).malformed, Some(Malformed::BadIhl));
    assert_eq!(with(14, &[0x65]).malformed, Some(Malformed::BadIpVersion));
    assert_eq!(with(16, &[0, 10]).malformed, Some(Malformed::BadIpTotalLength));
    let long = with(16, &[0x05, 0xdc]);
    assert_eq!(long.malformed, Some(Malformed::TruncatedIpPayload));
    assert_eq!(long.dst_port(), Some(4045), "described as far as it parsed");
    // IHL 15 (60 bytes) in a 44-byte packet.
    assert_eq!(with(14, &[0x4f]).malformed, Some(Malformed::TruncatedIpv4Header));
    assert_eq!(with(34 + 4, &[0, 4]).malformed, Some(Malformed::BadUdpLength));
    assert_eq!(with(34 + 4, &[0, 200]).malformed, Some(Malformed::TruncatedUdp));
    let tcp = tcp4(FE1, 700, FILER, 4045, 1, 1, tcp_flags::ACK, b"x");
    let mut bad = tcp.clone();
    bad[34 + 12] = 0x40;
    assert_eq!(classify(&bad).malformed, Some(Malformed::BadTcpOffset));
    bad[34 + 12] = 0xf0;
    assert_eq!(classify(&bad).malformed, Some(Malformed::TruncatedTcp));
    assert_eq!(Malformed::TruncatedTcp.as_str(), "truncated_tcp");
    assert_eq!(serde_json::to_string(&Malformed::BadIhl).unwrap(), "\"bad_ihl\"");
    let mut v6 = udp6(V6_FE1, 1, V6_FILER, 2, b"x");
    v6[14] = 0x40;
    assert_eq!(classify(&v6).malformed, Some(Malformed::BadIpVersion));
}

#[test]
fn every_prefix_of_every_fixture_is_malformed_and_never_panics() {
    let mut tracker = RpcTracker::with_limits(16, 4);
    for f in conversation() {
        assert_eq!(classify(&f).malformed, None, "the whole frame is fine");
        for n in 0..f.len() {
            let prefix = &f[..n];
            let mut info = classify(prefix);
            check_invariants(prefix, &info);
            assert!(
                info.malformed.is_some(),
                "a {n}-byte prefix of a {}-byte frame is not malformed",
                f.len()
            );
            tracker.observe(prefix, &mut info);
            check_invariants(prefix, &info);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzzing seeds

/// `FAULTLINE_FRAME_SEEDS=DIR cargo test -q --lib wire::frame::tests::write_fuzz_seeds` writes
/// the fixture frames as fuzzing seeds (see harness/fuzz). Does nothing otherwise.
#[test]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("FAULTLINE_FRAME_SEEDS") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    for (i, f) in conversation().iter().enumerate() {
        // The fuzz target reads a sequence of (u16 length, frame) pairs.
        let mut seed = (f.len() as u16).to_be_bytes().to_vec();
        seed.extend_from_slice(f);
        std::fs::write(std::path::Path::new(&dir).join(format!("frame-{i:02}")), seed).unwrap();
    }
    let all: Vec<u8> = conversation()
        .iter()
        .flat_map(|f| [&(f.len() as u16).to_be_bytes()[..], f].concat())
        .collect();
    std::fs::write(std::path::Path::new(&dir).join("conversation"), all).unwrap();
}
