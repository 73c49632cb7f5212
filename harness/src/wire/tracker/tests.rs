use super::*;
use crate::wire::frame::classify;
use crate::wire::rpc::{Args, MAX_RPC_PER_FRAME};
use crate::wire::test_frames::*;

// ---------------------------------------------------------------------------------------------
// ONC RPC over TCP

#[test]
fn two_records_in_one_segment() {
    let frames = nlm_tcp_frames();
    let seg = &frames[3]; // after the handshake
    let info = classify(seg);
    assert_eq!(info.rpc.len(), 2);
    let (a, b) = (&info.rpc[0], &info.rpc[1]);
    assert_eq!((a.xid, a.procedure_name()), (0x5001, Some("NLM4_LOCK")));
    assert_eq!((b.xid, b.procedure_name()), (0x5002, Some("NLM4_UNLOCK")));
    let start = info.payload().unwrap().start;
    let first = a.record.unwrap();
    assert!(first.last);
    assert_eq!(a.offset, Some(start + 4));
    assert_eq!(b.offset, Some(start + 4 + first.len as usize + 4));
    assert!(!a.partial && !b.partial);
    assert_eq!(b.cookie(), Some(&[5, 2][..]));

    let mut t = RpcTracker::new();
    for f in &frames[..3] {
        assert!(t.classify(f).rpc.is_empty());
    }
    assert_eq!(
        t.classify(seg).rpc,
        info.rpc,
        "the tracker agrees with the stateless parse"
    );
    let replies = t.classify(&frames[4]);
    let stats: Vec<_> = replies
        .rpc
        .iter()
        .map(|m| (m.xid, m.procedure_name(), m.nlm_stat()))
        .collect();
    assert_eq!(
        stats,
        [
            (0x5001, Some("NLM4_LOCK"), Some(0)),
            (0x5002, Some("NLM4_UNLOCK"), Some(0))
        ]
    );
}

#[test]
fn record_split_over_segments() {
    let frames = nlm_tcp_frames();
    let mut t = RpcTracker::new();
    for f in &frames[..5] {
        t.classify(f);
    }
    // Segment 1: mark + 70 bytes, the header is there, the arguments are not.
    let info = t.classify(&frames[5]);
    let m = only(&info);
    assert_eq!((m.xid, m.procedure_name()), (0x5003, Some("NLM4_LOCK")));
    assert!(m.partial && !m.continuation);
    assert_eq!(m.offset, Some(info.payload().unwrap().start + 4));
    assert_eq!(m.args(), Some(&Args::Incomplete));
    assert_eq!(
        only(&classify(&frames[5])),
        m,
        "the stateless parse sees the same start"
    );

    // Segment 2: the rest of it (decoded whole from the buffered start), then 30 bytes of the
    // next record, whose header is not complete yet.
    let info = t.classify(&frames[6]);
    let m = only(&info);
    assert_eq!(m.xid, 0x5003);
    assert!(m.continuation && !m.partial && m.offset.is_none());
    let a = lock_args(m);
    assert!(a.block);
    assert_eq!(a.cookie, [5, 3]);
    assert!(
        classify(&frames[6]).rpc.is_empty(),
        "mid-record: nothing without the tracker"
    );

    // Segment 3: the rest of 0x5004, reported once its header could be read, then half a mark.
    let info = t.classify(&frames[7]);
    let m = only(&info);
    assert_eq!(m.xid, 0x5004);
    assert!(!m.continuation && !m.partial && m.offset.is_none());
    assert_eq!(lock_args(m).cookie, [5, 4]);

    // Segment 4: the other half of the mark and a whole UNLOCK.
    let info = t.classify(&frames[8]);
    let m = only(&info);
    assert_eq!((m.xid, m.procedure_name()), (0x5005, Some("NLM4_UNLOCK")));
    assert_eq!(m.offset, Some(info.payload().unwrap().start + 2));
    assert!(!m.partial && !m.continuation);

    let info = t.classify(&frames[9]);
    let got: Vec<_> = info
        .rpc
        .iter()
        .map(|m| (m.xid, m.procedure_name(), m.nlm_stat()))
        .collect();
    assert_eq!(
        got,
        [
            (0x5003, Some("NLM4_LOCK"), Some(3)),
            (0x5004, Some("NLM4_LOCK"), Some(0)),
            (0x5005, Some("NLM4_UNLOCK"), Some(0))
        ]
    );
    let s = t.stats();
    assert_eq!(
        (s.resyncs, s.desyncs, s.retransmissions, s.replies_matched),
        (0, 0, 0, 5)
    );
}

/// Segments of one direction: `msgs` as records, cut at `cuts` (payload offsets).
fn segments(msgs: &[Vec<u8>], cuts: &[usize], seq0: u32) -> Vec<Vec<u8>> {
    let stream: Vec<u8> = msgs.iter().flat_map(|m| record(m)).collect();
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(stream.len());
    bounds
        .windows(2)
        .map(|w| {
            let seq = seq0.wrapping_add(w[0] as u32);
            tcp4(FE1, 705, FILER, 4045, seq, 1, tcp_flags::ACK, &stream[w[0]..w[1]])
        })
        .collect()
}

#[test]
fn segment_starting_mid_record_with_a_boundary_inside() {
    let a = lock_call_v4(0xa, &[0xa], false, false);
    let b = call(0xb, NLM, 4, 4, &unlockargs(&[0xb]));
    // The second segment starts 20 bytes before the end of `a`; sequence numbers wrap inside
    // the first segment.
    let cut = 4 + a.len() - 20;
    let segs = segments(&[a.clone(), b.clone()], &[cut], 0xffff_fff0);
    // With the first segment seen, the tracker knows where the next mark is.
    let mut t = RpcTracker::new();
    assert!(only(&t.classify(&segs[0])).partial);
    let info = t.classify(&segs[1]);
    assert_eq!(info.rpc.len(), 2);
    assert!(info.rpc[0].continuation && info.rpc[0].xid == 0xa && !info.rpc[0].partial);
    assert_eq!(info.rpc[1].xid, 0xb);
    assert_eq!(info.rpc[1].offset, Some(info.payload().unwrap().start + 20 + 4));
    assert!(!info.rpc[1].continuation && !info.rpc[1].partial);
    // Without it, the stateless parse sees nothing,
    assert!(classify(&segs[1]).rpc.is_empty());
    // and a fresh tracker resyncs on the plausible record mark after the 20 bytes.
    let mut fresh = RpcTracker::new();
    let info = fresh.classify(&segs[1]);
    let m = only(&info);
    assert_eq!((m.xid, m.procedure_name()), (0xb, Some("NLM4_UNLOCK")));
    assert_eq!(fresh.stats().resyncs, 1);
    // and follows the stream from there.
    let next = segments(
        &[a.clone(), b.clone(), a.clone()],
        &[cut, 4 + a.len() + 4 + b.len()],
        0xffff_fff0,
    );
    assert_eq!(only(&fresh.classify(&next[2])).xid, 0xa);
    assert_eq!(fresh.stats().resyncs, 1);
}

#[test]
fn resync_on_a_reply_needs_its_call() {
    let c = call(0xc, NLM, 4, 4, &unlockargs(&[0xc]));
    let r = reply(0xc, &nlm_res(&[0xc], 0));
    let tail = [&[0u8; 13][..], &record(&r)].concat();
    let seg = tcp4(FILER, 4045, FE1, 706, 77, 1, tcp_flags::ACK, &tail);
    let mut t = RpcTracker::new();
    assert!(
        t.classify(&seg).rpc.is_empty(),
        "an unknown xid is no reason to believe in a mark"
    );
    t.classify(&udp4(FE1, 706, FILER, 4045, &c)); // same 5-tuple, other protocol: no match
    assert!(t.classify(&seg).rpc.is_empty());
    t.classify(&tcp4(FE1, 706, FILER, 4045, 5, 1, tcp_flags::ACK, &record(&c)));
    let info = t.classify(&seg);
    assert_eq!(only(&info).nlm_stat(), Some(0));
    assert_eq!(only(&info).offset, Some(info.payload().unwrap().start + 13 + 4));
}

#[test]
fn retransmission_is_parsed_alone_and_leaves_the_state() {
    let a = lock_call_v4(0xa, &[0xa], false, false);
    let b = call(0xb, NLM, 4, 4, &unlockargs(&[0xb]));
    let segs = segments(&[a.clone(), b.clone()], &[4 + a.len()], 1);
    let mut t = RpcTracker::new();
    let first = t.classify(&segs[0]);
    let again = t.classify(&segs[0]);
    assert_eq!(first.rpc, again.rpc);
    assert_eq!(t.stats().retransmissions, 1);
    assert_eq!(only(&t.classify(&segs[1])).xid, 0xb);
    // A segment overlapping old bytes and bringing new ones: only the new part is parsed.
    let both = tcp4(
        FE1,
        705,
        FILER,
        4045,
        1,
        1,
        tcp_flags::ACK,
        &[record(&a), record(&b), record(&a)].concat(),
    );
    let info = t.classify(&both);
    assert_eq!(only(&info).xid, 0xa);
    assert_eq!(
        only(&info).offset,
        Some(info.payload().unwrap().start + 2 * 4 + a.len() + b.len() + 4)
    );
}

#[test]
fn lost_bytes_inside_a_record_are_skipped() {
    let write = call(0x77, NFS, 3, 7, &[0x42; 3000]);
    let unlock = call(0x78, NLM, 4, 4, &unlockargs(&[0x78]));
    let segs = segments(&[write.clone(), unlock], &[1000, 2000], 50);
    let mut t = RpcTracker::new();
    let m = t.classify(&segs[0]).rpc;
    assert!(m.len() == 1 && m[0].partial && m[0].procedure_name() == Some("NFS3_WRITE"));
    // segs[1] is lost.
    let info = t.classify(&segs[2]);
    assert_eq!(info.rpc.len(), 2);
    assert!(info.rpc[0].continuation && info.rpc[0].partial && info.rpc[0].xid == 0x77);
    assert_eq!(info.rpc[1].procedure_name(), Some("NLM4_UNLOCK"));
    assert_eq!(t.stats().gaps, 1);
    // Late arrival of the lost segment: old bytes, parsed alone, nothing plausible in them.
    assert!(t.classify(&segs[1]).rpc.is_empty());
    assert_eq!(t.stats().retransmissions, 1);
}

#[test]
fn a_gap_across_a_record_boundary_resyncs() {
    let msgs: Vec<_> = (0..4)
        .map(|i| call(0x100 + i, NLM, 4, 4, &unlockargs(&[i as u8])))
        .collect();
    let len = 4 + msgs[0].len();
    let segs = segments(&msgs, &[len, 2 * len + 10, 3 * len], 9);
    let mut t = RpcTracker::new();
    assert_eq!(only(&t.classify(&segs[0])).xid, 0x100);
    // segs[1] lost: it held all of record 1 and 10 bytes of record 2.
    assert!(t.classify(&segs[2]).rpc.is_empty());
    assert_eq!(t.stats().desyncs, 1);
    assert_eq!(only(&t.classify(&segs[3])).xid, 0x103);
    assert_eq!(t.stats().resyncs, 2);
}

#[test]
fn syn_starts_a_stream_and_fin_or_rst_end_it() {
    let frames = nlm_tcp_frames();
    let mut t = RpcTracker::new();
    t.classify(&frames[0]);
    t.classify(&frames[1]);
    assert_eq!(t.stats().flows, 2);
    t.classify(&frames[3]);
    assert_eq!(t.stats().resyncs, 0, "followed from the SYN");
    let fin = tcp4(FE1, 700, FILER, 4045, 0, 0, tcp_flags::FIN | tcp_flags::ACK, &[]);
    t.classify(&fin);
    assert_eq!(t.stats().flows, 1);
    let rst = tcp4(FILER, 4045, FE1, 700, 0, 0, tcp_flags::RST, &[]);
    t.classify(&rst);
    assert_eq!(t.stats().flows, 0);
    // A connection that starts with something else is given up at once.
    let mut imap = TcpConn::new((FE1, 40001), (FILER, 143));
    for f in imap.handshake() {
        t.classify(&f);
    }
    assert!(t.classify(&imap.a_to_b(b"a1 LOGIN user pass\r\n")).rpc.is_empty());
    assert_eq!(
        t.stats().flows,
        1,
        "only the server's direction is left, until it speaks"
    );
    assert_eq!(t.stats().desyncs, 0, "never was RPC");
}

#[test]
fn tracker_memory_is_bounded() {
    let mut t = RpcTracker::with_limits(100, 8);
    for i in 0..10_000u32 {
        let port = 1000 + (i % 50) as u16;
        t.classify(&udp4(
            FE1,
            port,
            FILER,
            4045,
            &call(i, NLM, 4, 4, &unlockargs(&[1])),
        ));
        // The same call again (a retransmission) refreshes rather than duplicates.
        t.classify(&udp4(
            FE1,
            port,
            FILER,
            4045,
            &call(i, NLM, 4, 4, &unlockargs(&[1])),
        ));
        assert!(t.calls.len() <= 100);
        assert!(t.call_order.len() <= 2 * 100 + 16 + 1);
    }
    let s = t.stats();
    assert_eq!(s.calls, 100);
    assert_eq!(s.calls_evicted, 9_900);
    // The newest calls are remembered, the oldest not.
    let port = |i: u32| 1000 + (i % 50) as u16;
    let r = t.classify(&udp4(
        FILER,
        4045,
        FE1,
        port(9_999),
        &reply(9_999, &nlm_res(&[1], 0)),
    ));
    assert_eq!(only(&r).procedure_name(), Some("NLM4_UNLOCK"));
    let r = t.classify(&udp4(FILER, 4045, FE1, port(5), &reply(5, &nlm_res(&[1], 0))));
    assert_eq!(only(&r).procedure(), None);
    assert_eq!(t.stats().replies_unmatched, 1);

    for i in 0..50u16 {
        t.classify(&tcp4(FE1, 2000 + i, FILER, 4045, 1, 1, tcp_flags::SYN, &[]));
        assert!(t.flows.len() <= 8);
    }
    assert_eq!(t.stats().flows_evicted, 42);
}

#[test]
fn many_records_in_one_segment_are_capped() {
    let one = record(&reply(1, &[]));
    let mut t = RpcTracker::new();
    t.classify(&tcp4(
        FE1,
        707,
        FILER,
        4045,
        0,
        1,
        tcp_flags::ACK,
        &record(&call(1, NLM, 4, 0, &[])),
    ));
    let seg = tcp4(FILER, 4045, FE1, 707, 0, 1, tcp_flags::ACK, &one.repeat(100));
    let info = t.classify(&seg);
    assert_eq!(
        (info.rpc.len(), info.rpc_omitted),
        (MAX_RPC_PER_FRAME, 100 - MAX_RPC_PER_FRAME)
    );
    assert_eq!(only_first(&info).procedure_name(), Some("NLM4_NULL"));
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/// xorshift64*: deterministic, good enough to throw bytes at a parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Values that steer parsers into their edge cases.
const INTERESTING: [u32; 12] = [
    0,
    1,
    2,
    3,
    4,
    0x7fff_ffff,
    0x8000_0000,
    0x8000_0014,
    0xffff_ffff,
    NLM,
    400,
    401,
];

fn mutate(rng: &mut Rng, f: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        if f.is_empty() {
            f.push(0);
        }
        let at = rng.below(f.len());
        match rng.below(6) {
            0 => f[at] = rng.next() as u8,
            1 => f[at] ^= 1 << rng.below(8),
            2 => f.truncate(at),
            3 => {
                let v = INTERESTING[rng.below(INTERESTING.len())].to_be_bytes();
                let end = (at + 4).min(f.len());
                f[at..end].copy_from_slice(&v[..end - at]);
            }
            4 => {
                let n = rng.below(16);
                let extra = rng.bytes(n);
                f.splice(at..at, extra);
            }
            _ => {
                let n = rng.below(f.len() - at + 1);
                f.drain(at..at + n);
            }
        }
    }
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let fixtures = conversation();
    let mut t = RpcTracker::with_limits(32, 8);
    let mut headers = Vec::new();
    for f in &fixtures {
        let info = classify(f);
        if let Some(p) = info.payload() {
            headers.push(f[..p.start].to_vec());
        }
    }
    for i in 0..20_000 {
        let frame = match i % 4 {
            // Pure noise.
            0 => {
                let n = rng.below(200);
                rng.bytes(n)
            }
            // Valid headers, random payload (often with a record mark or RPC header in front).
            1 => {
                let mut f = headers[rng.below(headers.len())].clone();
                if rng.below(2) == 0 {
                    f.extend_from_slice(&INTERESTING[rng.below(INTERESTING.len())].to_be_bytes());
                    f.extend_from_slice(&(rng.next() as u32).to_be_bytes());
                    f.extend_from_slice(&[0, 0, 0, rng.below(2) as u8, 0, 0, 0, 2]);
                }
                let n = rng.below(300);
                f.extend(rng.bytes(n));
                f
            }
            // Mutated fixtures.
            _ => {
                let mut f = fixtures[rng.below(fixtures.len())].clone();
                mutate(&mut rng, &mut f);
                f
            }
        };
        let mut info = classify(&frame);
        check_invariants(&frame, &info);
        t.observe(&frame, &mut info);
        check_invariants(&frame, &info);
        assert!(t.calls.len() <= 32 && t.flows.len() <= 8);
    }
}

#[test]
fn shuffled_and_duplicated_segments_never_panic() {
    let mut rng = Rng(42);
    let msgs: Vec<_> = (0..20u32)
        .map(|i| match i % 3 {
            0 => lock_call_v4(i, &[i as u8], i % 2 == 0, false),
            1 => call(i, NFS, 3, 7, &vec![0x80; 1500]),
            _ => call(i, NLM, 4, 4, &unlockargs(&[i as u8])),
        })
        .collect();
    let total: usize = msgs.iter().map(|m| m.len() + 4).sum();
    for round in 0..200 {
        let mut cuts: Vec<usize> = (0..rng.below(40)).map(|_| 1 + rng.below(total - 1)).collect();
        cuts.sort();
        cuts.dedup();
        let mut segs = segments(&msgs, &cuts, rng.next() as u32);
        // Swap, drop and duplicate a few.
        for _ in 0..round % 5 {
            let (a, b) = (rng.below(segs.len()), rng.below(segs.len()));
            segs.swap(a, b);
            let d = rng.below(segs.len());
            let dup = segs[d].clone();
            segs.insert(rng.below(segs.len()), dup);
            if segs.len() > 2 {
                segs.remove(rng.below(segs.len()));
            }
        }
        let mut t = RpcTracker::with_limits(64, 4);
        let seq0 = classify(&segs[0]).tcp().unwrap().seq;
        let syn = tcp4(
            FE1,
            705,
            FILER,
            4045,
            seq0.wrapping_sub(1),
            0,
            tcp_flags::SYN,
            &[],
        );
        if round % 5 == 0 {
            t.classify(&syn);
        }
        let mut seen = 0;
        for s in &segs {
            let info = t.classify(s);
            check_invariants(s, &info);
            seen += info.rpc.iter().filter(|m| !m.continuation).count();
        }
        if round % 5 == 0 {
            // In order and complete: every message is reported exactly once.
            assert_eq!(seen, msgs.len(), "cuts {cuts:?}");
        }
    }
}
