//! A test-only frame builder: XDR, ONC RPC, record marks, UDP/TCP/IPv4/IPv6/Ethernet, ARP, a
//! TCP connection keeping sequence numbers, and a lab conversation of every kind of frame the
//! scenarios care about. Shared by the frame, RPC and tracker tests.

use crate::wire::bytes::pad4;
use crate::wire::frame::{classify, ethertype, ip_proto, tcp_flags, FrameInfo};
use crate::wire::rpc::{nlm_stat, program, Args, NlmLockArgs, RpcMessage, MAX_RPC_PER_FRAME};

#[derive(Default, Clone)]
pub(crate) struct X(pub(crate) Vec<u8>);

impl X {
    pub(crate) fn new() -> Self {
        X(Vec::new())
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i32(self, v: i32) -> Self {
        self.u32(v as u32)
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bool(self, v: bool) -> Self {
        self.u32(v as u32)
    }
    pub(crate) fn fixed(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self.0.resize(self.0.len() + pad4(b.len()), 0);
        self
    }
    pub(crate) fn opaque(self, b: &[u8]) -> Self {
        self.u32(b.len() as u32).fixed(b)
    }
    pub(crate) fn string(self, s: &str) -> Self {
        self.opaque(s.as_bytes())
    }
    pub(crate) fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

pub(crate) const NLM: u32 = program::NLM;
pub(crate) const NSM: u32 = program::NSM;
pub(crate) const PMAP: u32 = program::PORTMAP;
pub(crate) const NFS: u32 = program::NFS;

pub(crate) const FE1: [u8; 4] = [192, 0, 2, 11];
pub(crate) const FILER: [u8; 4] = [192, 0, 2, 10];
pub(crate) const LO: [u8; 4] = [127, 0, 0, 1];
pub(crate) const FH: &[u8] = &[
    0x01, 0x00, 0x07, 0x00, 0x02, 0x00, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x2a,
];
pub(crate) const OH: &[u8] = b"1234@fe1";
pub(crate) const PRIV: [u8; 16] = [0xa5; 16];

/// An AUTH_SYS call with an AUTH_NONE verifier, as Linux sends NLM and NSM calls.
pub(crate) fn call(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let cred = X::new().u32(0x0001_e240).string("fe1").u32(0).u32(0).u32(0);
    X::new()
        .u32(xid)
        .u32(0)
        .u32(2)
        .u32(prog)
        .u32(vers)
        .u32(proc_)
        .u32(1)
        .opaque(&cred.0)
        .u32(0)
        .u32(0)
        .raw(args)
        .0
}

/// An accepted, successful reply.
pub(crate) fn reply(xid: u32, results: &[u8]) -> Vec<u8> {
    X::new()
        .u32(xid)
        .u32(1)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0)
        .raw(results)
        .0
}

/// One last-fragment record.
pub(crate) fn record(msg: &[u8]) -> Vec<u8> {
    X::new().u32(0x8000_0000 | msg.len() as u32).raw(msg).0
}

pub(crate) fn nlm_lock(v4: bool, svid: i32, off: u64, len: u64) -> X {
    let x = X::new().string("fe1").opaque(FH).opaque(OH).i32(svid);
    if v4 {
        x.u64(off).u64(len)
    } else {
        x.u32(off as u32).u32(len as u32)
    }
}

pub(crate) fn lockargs(
    v4: bool,
    cookie: &[u8],
    block: bool,
    excl: bool,
    reclaim: bool,
    state: i32,
) -> Vec<u8> {
    X::new()
        .opaque(cookie)
        .bool(block)
        .bool(excl)
        .raw(&nlm_lock(v4, 42, 100, 50).0)
        .bool(reclaim)
        .i32(state)
        .0
}

pub(crate) fn testargs(cookie: &[u8], excl: bool) -> Vec<u8> {
    X::new()
        .opaque(cookie)
        .bool(excl)
        .raw(&nlm_lock(true, 42, 100, 50).0)
        .0
}

pub(crate) fn unlockargs(cookie: &[u8]) -> Vec<u8> {
    X::new().opaque(cookie).raw(&nlm_lock(true, 42, 100, 50).0).0
}

pub(crate) fn nlm_res(cookie: &[u8], stat: u32) -> Vec<u8> {
    X::new().opaque(cookie).u32(stat).0
}

pub(crate) fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Put a correct checksum at `at` in a UDP/TCP segment.
pub(crate) fn l4_checksum(src: &[u8], dst: &[u8], proto: u8, mut seg: Vec<u8>, at: usize) -> Vec<u8> {
    let len = seg.len() as u32;
    let pseudo = if src.len() == 4 {
        let mut p = Vec::new();
        p.extend_from_slice(src);
        p.extend_from_slice(dst);
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
        p
    } else {
        let mut p = Vec::new();
        p.extend_from_slice(src);
        p.extend_from_slice(dst);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
        p
    };
    let c = checksum(&[&pseudo, &seg]);
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

pub(crate) fn udp_seg(src: &[u8], dst: &[u8], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let seg = X::new()
        .raw(&sport.to_be_bytes())
        .raw(&dport.to_be_bytes())
        .raw(&((payload.len() + 8) as u16).to_be_bytes())
        .raw(&[0, 0])
        .raw(payload)
        .0;
    l4_checksum(src, dst, ip_proto::UDP, seg, 6)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn tcp_seg(
    src: &[u8],
    dst: &[u8],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let seg = X::new()
        .raw(&sport.to_be_bytes())
        .raw(&dport.to_be_bytes())
        .u32(seq)
        .u32(ack)
        .raw(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0])
        .raw(payload)
        .0;
    l4_checksum(src, dst, ip_proto::TCP, seg, 16)
}

pub(crate) fn ipv4_packet(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = X::new()
        .raw(&[0x45, 0])
        .raw(&((20 + l4.len()) as u16).to_be_bytes())
        .raw(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0])
        .raw(&src)
        .raw(&dst)
        .0;
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

pub(crate) fn mac_of(ip: &[u8]) -> [u8; 6] {
    if ip == LO {
        [0; 6]
    } else {
        [0x52, 0x54, 0x00, 0x00, 0x00, *ip.last().unwrap()]
    }
}

pub(crate) fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    X::new()
        .raw(&dst)
        .raw(&src)
        .raw(&ethertype.to_be_bytes())
        .raw(payload)
        .0
}

pub(crate) fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let seg = udp_seg(&src, &dst, sport, dport, payload);
    ether(
        mac_of(&dst),
        mac_of(&src),
        ethertype::IPV4,
        &ipv4_packet(src, dst, ip_proto::UDP, &seg),
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn tcp4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let seg = tcp_seg(&src, &dst, sport, dport, seq, ack, flags, payload);
    ether(
        mac_of(&dst),
        mac_of(&src),
        ethertype::IPV4,
        &ipv4_packet(src, dst, ip_proto::TCP, &seg),
    )
}

pub(crate) const V6_FE1: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
pub(crate) const V6_FILER: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];

/// IPv6 + hop-by-hop options (one PadN) + UDP.
pub(crate) fn udp6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, payload: &[u8]) -> Vec<u8> {
    let seg = udp_seg(&src, &dst, sport, dport, payload);
    let hbh = [ip_proto::UDP, 0, 1, 4, 0, 0, 0, 0];
    let pkt = X::new()
        .u32(0x6000_0000)
        .raw(&((hbh.len() + seg.len()) as u16).to_be_bytes())
        .raw(&[0, 64])
        .raw(&src)
        .raw(&dst)
        .raw(&hbh)
        .raw(&seg)
        .0;
    ether(
        [0x33, 0x33, 0, 0, 0, 0x10],
        [0x52, 0x54, 0, 0, 0, 0x11],
        ethertype::IPV6,
        &pkt,
    )
}

pub(crate) fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let body = X::new()
        .raw(&[0, 1, 8, 0, 6, 4])
        .raw(&op.to_be_bytes())
        .raw(&sha)
        .raw(&spa)
        .raw(&tha)
        .raw(&tpa)
        .0;
    let dst = if op == 1 { [0xff; 6] } else { tha };
    ether(dst, sha, ethertype::ARP, &body)
}

/// Both directions of one TCP connection, keeping sequence numbers.
pub(crate) struct TcpConn {
    a: ([u8; 4], u16),
    b: ([u8; 4], u16),
    seq_a: u32,
    seq_b: u32,
}

impl TcpConn {
    pub(crate) fn new(a: ([u8; 4], u16), b: ([u8; 4], u16)) -> Self {
        TcpConn {
            a,
            b,
            seq_a: 0x1000_0000,
            seq_b: 0x7000_0000,
        }
    }
    pub(crate) fn handshake(&mut self) -> Vec<Vec<u8>> {
        let (a, b) = (self.a, self.b);
        let syn = tcp4(a.0, a.1, b.0, b.1, self.seq_a, 0, tcp_flags::SYN, &[]);
        self.seq_a = self.seq_a.wrapping_add(1);
        let synack = tcp4(
            b.0,
            b.1,
            a.0,
            a.1,
            self.seq_b,
            self.seq_a,
            tcp_flags::SYN | tcp_flags::ACK,
            &[],
        );
        self.seq_b = self.seq_b.wrapping_add(1);
        let ack = tcp4(a.0, a.1, b.0, b.1, self.seq_a, self.seq_b, tcp_flags::ACK, &[]);
        vec![syn, synack, ack]
    }
    pub(crate) fn a_to_b(&mut self, payload: &[u8]) -> Vec<u8> {
        let (a, b) = (self.a, self.b);
        let f = tcp4(
            a.0,
            a.1,
            b.0,
            b.1,
            self.seq_a,
            self.seq_b,
            tcp_flags::ACK | tcp_flags::PSH,
            payload,
        );
        self.seq_a = self.seq_a.wrapping_add(payload.len() as u32);
        f
    }
    pub(crate) fn b_to_a(&mut self, payload: &[u8]) -> Vec<u8> {
        let (a, b) = (self.a, self.b);
        let f = tcp4(
            b.0,
            b.1,
            a.0,
            a.1,
            self.seq_b,
            self.seq_a,
            tcp_flags::ACK | tcp_flags::PSH,
            payload,
        );
        self.seq_b = self.seq_b.wrapping_add(payload.len() as u32);
        f
    }
}

pub(crate) fn lock_call_v4(xid: u32, cookie: &[u8], block: bool, reclaim: bool) -> Vec<u8> {
    call(xid, NLM, 4, 2, &lockargs(true, cookie, block, true, reclaim, 3))
}

/// A lab conversation: every kind of frame the scenarios care about, in an order that makes
/// sense (calls before replies, TCP in sequence). Used by the unit tests, the tshark
/// cross-check and as fuzzing seeds.
#[allow(clippy::vec_init_then_push)] // a script, with a comment between steps
pub(crate) fn conversation() -> Vec<Vec<u8>> {
    let mut f = Vec::new();
    // portmap GETPORT for NLM v4 over UDP, and its reply.
    f.push(udp4(
        FE1,
        900,
        FILER,
        111,
        &call(
            0x0000_0101,
            PMAP,
            2,
            3,
            &X::new().u32(NLM).u32(4).u32(17).u32(0).0,
        ),
    ));
    f.push(udp4(
        FILER,
        111,
        FE1,
        900,
        &reply(0x0000_0101, &X::new().u32(4045).0),
    ));
    // NLM4 LOCK, blocking, answered BLOCKED; then the server's GRANTED_MSG and the GRANTED_RES.
    f.push(udp4(
        FE1,
        901,
        FILER,
        4045,
        &lock_call_v4(0x0000_1001, &[0, 0, 0, 1], true, false),
    ));
    f.push(udp4(
        FILER,
        4045,
        FE1,
        901,
        &reply(0x0000_1001, &nlm_res(&[0, 0, 0, 1], nlm_stat::BLOCKED)),
    ));
    f.push(udp4(
        FILER,
        950,
        FE1,
        4045,
        &call(
            0x0000_2001,
            NLM,
            4,
            10,
            &testargs(&[0xde, 0xad, 0xbe, 0xef], true),
        ),
    ));
    f.push(udp4(
        FE1,
        951,
        FILER,
        4045,
        &call(0x0000_3001, NLM, 4, 15, &nlm_res(&[0xde, 0xad, 0xbe, 0xef], 0)),
    ));
    // LOCK with reclaim (grace period after a reboot), GRANTED.
    f.push(udp4(
        FE1,
        901,
        FILER,
        4045,
        &lock_call_v4(0x0000_1002, &[0, 0, 0, 2], false, true),
    ));
    f.push(udp4(
        FILER,
        4045,
        FE1,
        901,
        &reply(0x0000_1002, &nlm_res(&[0, 0, 0, 2], nlm_stat::GRANTED)),
    ));
    // TEST answered DENIED with a holder.
    f.push(udp4(
        FE1,
        901,
        FILER,
        4045,
        &call(0x0000_1003, NLM, 4, 1, &testargs(&[0, 0, 0, 3], false)),
    ));
    let holder = X::new().bool(true).i32(7).opaque(b"oh-7").u64(0).u64(10);
    let testres = X::new()
        .opaque(&[0, 0, 0, 3])
        .u32(nlm_stat::DENIED)
        .raw(&holder.0);
    f.push(udp4(FILER, 4045, FE1, 901, &reply(0x0000_1003, &testres.0)));
    // NLM v3 (32-bit offsets) LOCK, GRANTED.
    f.push(udp4(
        FE1,
        902,
        FILER,
        4045,
        &call(
            0x0000_1004,
            NLM,
            3,
            2,
            &lockargs(false, &[4], false, false, false, 3),
        ),
    ));
    f.push(udp4(
        FILER,
        4045,
        FE1,
        902,
        &reply(0x0000_1004, &nlm_res(&[4], nlm_stat::GRANTED)),
    ));
    // NSM SM_NOTIFY from fe1's statd after a reboot, and its void reply.
    f.push(udp4(
        FE1,
        4047,
        FILER,
        4046,
        &call(0x0000_4001, NSM, 1, 6, &X::new().string("fe1").i32(5).0),
    ));
    f.push(udp4(FILER, 4046, FE1, 4047, &reply(0x0000_4001, &[])));
    // lockd asks the local statd to monitor the filer (loopback), statd answers.
    let mon = X::new()
        .string("filer")
        .string("localhost")
        .u32(NLM)
        .u32(3)
        .u32(16)
        .fixed(&PRIV);
    f.push(udp4(LO, 810, LO, 4046, &call(0x0000_4002, NSM, 1, 2, &mon.0)));
    f.push(udp4(
        LO,
        4046,
        LO,
        810,
        &reply(0x0000_4002, &X::new().u32(0).i32(3).0),
    ));
    // statd's downcall to lockd when a monitored peer reboots: NLM v3 procedure 16.
    let reboot = X::new().string("fe1").i32(5).fixed(&PRIV);
    f.push(udp4(LO, 811, LO, 4045, &call(0x0000_4003, NLM, 3, 16, &reboot.0)));
    f.push(udp4(LO, 4045, LO, 811, &reply(0x0000_4003, &[])));

    // NLM over TCP, from the handshake.
    let mut c = TcpConn::new((FE1, 700), (FILER, 4045));
    f.extend(c.handshake());
    // Two records in one segment, two replies in one segment.
    let two = [
        record(&lock_call_v4(0x0000_5001, &[5, 1], false, false)),
        record(&call(0x0000_5002, NLM, 4, 4, &unlockargs(&[5, 2]))),
    ]
    .concat();
    f.push(c.a_to_b(&two));
    let two_replies = [
        record(&reply(0x0000_5001, &nlm_res(&[5, 1], 0))),
        record(&reply(0x0000_5002, &nlm_res(&[5, 2], 0))),
    ]
    .concat();
    f.push(c.b_to_a(&two_replies));
    // A record split over two segments (header in the first), the second segment also
    // carrying the start of another record whose header is cut, then its end and half a
    // record mark, then the rest of that mark and a whole record.
    let r3 = record(&lock_call_v4(0x0000_5003, &[5, 3], true, false));
    let r4 = record(&lock_call_v4(0x0000_5004, &[5, 4], false, false));
    let r5 = record(&call(0x0000_5005, NLM, 4, 4, &unlockargs(&[5, 5])));
    f.push(c.a_to_b(&r3[..74]));
    f.push(c.a_to_b(&[&r3[74..], &r4[..30]].concat()));
    f.push(c.a_to_b(&[&r4[30..], &r5[..2]].concat()));
    f.push(c.a_to_b(&r5[2..]));
    let three = [
        record(&reply(0x0000_5003, &nlm_res(&[5, 3], nlm_stat::BLOCKED))),
        record(&reply(0x0000_5004, &nlm_res(&[5, 4], 0))),
        record(&reply(0x0000_5005, &nlm_res(&[5, 5], 0))),
    ]
    .concat();
    f.push(c.b_to_a(&three));

    // portmap over TCP, picked up without a handshake.
    let mut p = TcpConn::new((FE1, 701), (FILER, 111));
    f.push(p.a_to_b(&record(&call(
        0x0000_6001,
        PMAP,
        2,
        3,
        &X::new().u32(NSM).u32(1).u32(6).u32(0).0,
    ))));
    f.push(p.b_to_a(&record(&reply(0x0000_6001, &X::new().u32(4046).0))));
    // NFSv3 GETATTR: program/version/procedure only.
    let mut n = TcpConn::new((FE1, 702), (FILER, 2049));
    f.push(n.a_to_b(&record(&call(0x0000_7001, NFS, 3, 1, &X::new().opaque(FH).0))));
    let attrs = X::new()
        .u32(0)
        .u32(2)
        .u32(0o755)
        .u32(2)
        .u32(0)
        .u32(0)
        .u64(4096)
        .u64(4096);
    f.push(n.b_to_a(&record(&reply(
        0x0000_7001,
        &attrs.u64(0).u64(0).u64(1).u64(2).raw(&[0; 24]).0,
    ))));

    // SM_NOTIFY over IPv6 (with a hop-by-hop header).
    f.push(udp6(
        V6_FE1,
        4047,
        V6_FILER,
        4046,
        &call(0x0000_8001, NSM, 1, 6, &X::new().string("fe1").i32(7).0),
    ));
    // ARP who-has and is-at.
    let fe1_mac = mac_of(&FE1);
    let filer_mac = mac_of(&FILER);
    f.push(arp(1, fe1_mac, FE1, [0; 6], FILER));
    f.push(arp(2, filer_mac, FILER, fe1_mac, FE1));
    // ICMP echo request.
    let icmp = X::new().raw(&[8, 0, 0, 0, 0, 1, 0, 1]).raw(b"ping").0;
    let mut icmp = icmp;
    let c = checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f.push(ether(
        filer_mac,
        fe1_mac,
        ethertype::IPV4,
        &ipv4_packet(FE1, FILER, ip_proto::ICMP, &icmp),
    ));
    f
}

pub(crate) fn only(info: &FrameInfo) -> &RpcMessage {
    assert_eq!(info.rpc.len(), 1, "expected exactly one RPC message in {info:#?}");
    &info.rpc[0]
}

pub(crate) fn lock_args(m: &RpcMessage) -> &NlmLockArgs {
    match m.args() {
        Some(Args::NlmLock(a)) => a,
        other => panic!("not NLM lock args: {other:?}"),
    }
}

/// Properties every classification must have, whatever the input.
pub(crate) fn check_invariants(frame: &[u8], info: &FrameInfo) {
    assert_eq!(info.len, frame.len());
    if let Some(r) = info.payload() {
        assert!(
            r.start <= r.end && r.end <= frame.len(),
            "payload {r:?} outside a {}-byte frame",
            frame.len()
        );
    }
    assert!(info.rpc.len() <= MAX_RPC_PER_FRAME);
    for m in &info.rpc {
        if let Some(o) = m.offset {
            assert!(o <= frame.len());
        }
    }
    // Serializing never fails either.
    serde_json::to_string(info).unwrap();
}

/// The conversation's frames of the NLM-over-TCP connection.
pub(crate) fn nlm_tcp_frames() -> Vec<Vec<u8>> {
    conversation()
        .into_iter()
        .filter(|f| {
            classify(f)
                .flow()
                .is_some_and(|k| k.protocol == ip_proto::TCP && k.src_port.min(k.dst_port) == 700)
        })
        .collect()
}

pub(crate) fn only_first(info: &FrameInfo) -> &RpcMessage {
    &info.rpc[0]
}
