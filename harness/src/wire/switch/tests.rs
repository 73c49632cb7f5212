//! The switch without QEMU: test ports connect to its sockets as guests would.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::wire::rules::{Action, Match, RpcMatch};

const A: [u8; 6] = [0x52, 0x54, 0, 0xfa, 0, 0x0a];
const B: [u8; 6] = [0x52, 0x54, 0, 0xfa, 0, 0x0b];
const C: [u8; 6] = [0x52, 0x54, 0, 0xfa, 0, 0x0c];
const BROADCAST: [u8; 6] = [0xff; 6];

/// Ethernet + IPv4 + UDP with `payload`.
fn udp(dst: [u8; 6], src: [u8; 6], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = 20 + 8 + payload.len();
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&[192, 0, 2, src[5]]);
    f.extend_from_slice(&[192, 0, 2, dst[5]]);
    let ulen = 8 + payload.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(ulen as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// An ONC RPC call header with AUTH_NULL credentials, then `args`.
fn rpc_call(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    for w in [xid, 0, 2, prog, vers, proc_, 0, 0, 0, 0] {
        p.extend_from_slice(&w.to_be_bytes());
    }
    p.extend_from_slice(args);
    p
}

/// nlm4_testargs for GRANTED_MSG: cookie, exclusive, alock{caller_name, fh, oh, svid, offset, len}.
fn granted_args(cookie: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    let opaque = |a: &mut Vec<u8>, b: &[u8]| {
        a.extend_from_slice(&(b.len() as u32).to_be_bytes());
        a.extend_from_slice(b);
        a.resize(a.len() + (4 - b.len() % 4) % 4, 0);
    };
    opaque(&mut a, cookie);
    a.extend_from_slice(&1u32.to_be_bytes());
    opaque(&mut a, b"filer");
    opaque(&mut a, &[0xab; 32]);
    opaque(&mut a, b"oh");
    a.extend_from_slice(&1234u32.to_be_bytes());
    a.extend_from_slice(&0u64.to_be_bytes());
    a.extend_from_slice(&0u64.to_be_bytes());
    a
}

async fn segment(ports: &[&str]) -> (tempfile::TempDir, Switch) {
    segment_on(ports, Listen::Unix).await
}

async fn segment_on(ports: &[&str], listen: Listen) -> (tempfile::TempDir, Switch) {
    let dir = tempfile::tempdir().unwrap();
    let sw = Switch::start(SegmentConfig {
        name: "lan".into(),
        ports: ports.iter().map(|s| s.to_string()).collect(),
        socket_dir: dir.path().to_path_buf(),
        listen,
        pcap: dir.path().join("lan.pcapng"),
    })
    .await
    .unwrap();
    (dir, sw)
}

async fn connect(sw: &Switch, port: &str) -> TestPort {
    TestPort::connect_to(sw.addr(port).unwrap()).await.unwrap()
}

/// Wait until the switch has seen `n` connections in all.
async fn connected(sw: &Switch, n: u64) {
    for _ in 0..200 {
        if sw.stats().await.ports.iter().map(|p| p.connections).sum::<u64>() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("ports did not connect");
}

/// A segment of three ports, each connected as a guest would be.
async fn three_ports(names: [&str; 3]) -> (tempfile::TempDir, Switch, [TestPort; 3]) {
    let (dir, sw) = segment(&names).await;
    let ports = [
        connect(&sw, names[0]).await,
        connect(&sw, names[1]).await,
        connect(&sw, names[2]).await,
    ];
    connected(&sw, 3).await;
    (dir, sw, ports)
}

const WAIT: Duration = Duration::from_millis(500);

/// What three ports receive, and the switch's counts, for the same traffic: a broadcast, a
/// learned unicast, and a frame of the largest size written in two pieces.
async fn traffic(listen: Listen) -> (Vec<Option<Vec<u8>>>, SegmentStats) {
    let (_d, sw) = segment_on(&["a", "b", "c"], listen).await;
    let (mut a, mut b, mut c) = (
        connect(&sw, "a").await,
        connect(&sw, "b").await,
        connect(&sw, "c").await,
    );
    connected(&sw, 3).await;
    let mut got = Vec::new();
    a.send(&udp(BROADCAST, A, 1, 2, b"hello")).await.unwrap();
    got.push(b.recv(WAIT).await.unwrap());
    got.push(c.recv(WAIT).await.unwrap());
    b.send(&udp(A, B, 2, 1, b"hi")).await.unwrap();
    got.push(a.recv(WAIT).await.unwrap());
    got.push(c.recv(Duration::from_millis(100)).await.unwrap());
    let mut big = udp(B, A, 3, 4, &[0x5a; 1400]);
    big.resize(MAX_FRAME, 0x77);
    let mut framed = (big.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&big);
    let (first, rest) = framed.split_at(1000);
    a.send_raw(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.send_raw(rest).await.unwrap();
    got.push(b.recv(WAIT).await.unwrap());
    (got, sw.stop().await)
}

/// QEMU older than 7.2 reaches the switch over TCP loopback (`-netdev socket`): its frames
/// must go exactly where unix-socket frames go, counted and traced the same.
#[tokio::test]
async fn frames_pass_through_tcp_ports_as_through_unix_ones() {
    let (unix, unix_st) = traffic(Listen::Unix).await;
    let (tcp, tcp_st) = traffic(Listen::TcpLoopback).await;
    assert_eq!(unix.len(), 5);
    assert!(unix[3].is_none(), "unicast stays off c");
    assert_eq!(unix[4].as_ref().map(Vec::len), Some(MAX_FRAME));
    assert_eq!(tcp, unix);
    assert_eq!(tcp_st.frames, 3);
    assert_eq!(tcp_st.pcap_frames, unix_st.pcap_frames);
    for (t, u) in tcp_st.ports.iter().zip(&unix_st.ports) {
        assert_eq!(
            (t.rx_frames, t.rx_bytes, t.tx_frames, t.tx_bytes, t.bad_lengths),
            (u.rx_frames, u.rx_bytes, u.tx_frames, u.tx_bytes, u.bad_lengths),
            "port {}",
            t.name
        );
    }
}

/// A loopback port is open to every local user: once QEMU holds it, a second connection is
/// closed at once and counted, and can neither send into the segment nor take the port.
#[tokio::test]
async fn a_tcp_port_keeps_its_first_connection_and_refuses_later_ones() {
    let (_d, sw) = segment_on(&["a", "b"], Listen::TcpLoopback).await;
    let PortAddr::Tcp(addr) = sw.addr("a").unwrap().clone() else {
        panic!("a TCP port");
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert!(sw.socket("a").is_none());
    let mut a = connect(&sw, "a").await;
    let mut b = connect(&sw, "b").await;
    connected(&sw, 2).await;
    let mut intruder = connect(&sw, "a").await;
    let _ = intruder.send(&udp(BROADCAST, C, 6, 6, b"spoof")).await;
    // The switch closed it: the read ends instead of waiting.
    assert!(intruder.recv(WAIT).await.is_err());
    let f = udp(BROADCAST, B, 1, 2, b"still a");
    b.send(&f).await.unwrap();
    assert_eq!(a.recv(WAIT).await.unwrap().as_deref(), Some(&f[..]));
    assert_eq!(
        b.recv(Duration::from_millis(100)).await.unwrap(),
        None,
        "no spoofed frame"
    );
    let st = sw.stop().await;
    assert_eq!(st.frames, 1);
    assert_eq!(st.ports[0].connections, 1);
    assert_eq!(st.ports[0].refused, 1);
    assert!(st.ports[0].connected);
}

#[tokio::test]
async fn broadcast_floods_and_unicast_learns() {
    let (_d, sw, [mut a, mut b, mut c]) = three_ports(["a", "b", "c"]).await;
    let arp_like = udp(BROADCAST, A, 1, 2, b"hello");
    a.send(&arp_like).await.unwrap();
    assert_eq!(b.recv(WAIT).await.unwrap().as_deref(), Some(&arp_like[..]));
    assert_eq!(c.recv(WAIT).await.unwrap().as_deref(), Some(&arp_like[..]));
    // b answers a: a's MAC is known now, so only a gets it.
    let reply = udp(A, B, 2, 1, b"hi");
    b.send(&reply).await.unwrap();
    assert_eq!(a.recv(WAIT).await.unwrap().as_deref(), Some(&reply[..]));
    assert_eq!(c.recv(Duration::from_millis(100)).await.unwrap(), None);
    let st = sw.stop().await;
    assert_eq!(st.frames, 2);
    assert_eq!(st.ports[0].rx_frames, 1);
    assert_eq!(st.ports[0].tx_frames, 1);
}

#[tokio::test]
async fn a_rule_drops_exactly_granted_msg_toward_one_port_and_counts_it() {
    let (dir, sw, [mut filer, mut imap1, mut imap2]) = three_ports(["filer", "imap1", "imap2"]).await;
    // Teach the switch where everyone is.
    imap1.send(&udp(BROADCAST, B, 9, 9, b"x")).await.unwrap();
    imap2.send(&udp(BROADCAST, C, 9, 9, b"x")).await.unwrap();
    filer.recv(WAIT).await.unwrap();
    filer.recv(WAIT).await.unwrap();
    imap2.recv(WAIT).await.unwrap();
    imap1.recv(WAIT).await.unwrap();

    let id = sw
        .add_rule(Rule {
            name: "grant-lost".into(),
            matcher: Match {
                to: Some("imap1".into()),
                rpc: Some(RpcMatch::call(100021, 10)),
                ..Match::default()
            },
            action: crate::wire::rules::Action::Drop,
        })
        .await;
    let grant_to_1 = udp(B, A, 800, 4045, &rpc_call(1, 100021, 4, 10, &granted_args(b"c1")));
    let grant_to_2 = udp(C, A, 800, 4045, &rpc_call(2, 100021, 4, 10, &granted_args(b"c2")));
    let lock_to_1 = udp(B, A, 800, 4045, &rpc_call(3, 100021, 4, 2, &granted_args(b"c3")));
    filer.send(&grant_to_1).await.unwrap();
    filer.send(&grant_to_2).await.unwrap();
    filer.send(&lock_to_1).await.unwrap();
    assert_eq!(
        imap1.recv(WAIT).await.unwrap().as_deref(),
        Some(&lock_to_1[..]),
        "only the LOCK reaches imap1"
    );
    assert_eq!(imap2.recv(WAIT).await.unwrap().as_deref(), Some(&grant_to_2[..]));
    assert!(sw.remove_rule(id).await);
    filer.send(&grant_to_1).await.unwrap();
    assert_eq!(
        imap1.recv(WAIT).await.unwrap().as_deref(),
        Some(&grant_to_1[..]),
        "healed"
    );
    let st = sw.stop().await;
    assert_eq!(st.rules.len(), 1);
    assert_eq!(st.rules[0].matched, 1);
    // Frames: 2 broadcasts, then grant→imap1 (5th overall? no: 3rd), grant→imap2, lock, grant again.
    assert_eq!(st.rules[0].frames, [3]);

    // The pcapng has every frame, the dropped one commented.
    let bytes = std::fs::read(dir.path().join("lan.pcapng")).unwrap();
    let blocks = crate::wire::pcapng::read_blocks(&bytes).unwrap();
    let packets: Vec<_> = blocks
        .iter()
        .filter_map(|b| match b {
            crate::wire::pcapng::Block::Packet(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(packets.len(), 6);
    assert_eq!(
        packets[2].comment,
        Some("dropped toward imap1 by rule grant-lost (#1)")
    );
    assert!(packets
        .iter()
        .enumerate()
        .all(|(i, p)| i == 2 || p.comment.is_none()));
}

#[tokio::test]
async fn delay_and_duplicate_and_partition() {
    let (_d, sw, [mut a, mut b, mut c]) = three_ports(["a", "b", "c"]).await;
    sw.add_rule(Rule {
        name: "slow".into(),
        matcher: Match {
            to: Some("b".into()),
            ..Match::default()
        },
        action: Action::Delay {
            fixed: Duration::from_millis(200),
            jitter: Duration::ZERO,
        },
    })
    .await;
    sw.add_rule(Rule {
        name: "twice".into(),
        matcher: Match {
            to: Some("c".into()),
            ..Match::default()
        },
        action: Action::Duplicate,
    })
    .await;
    let f = udp(BROADCAST, A, 1, 2, b"x");
    let t = std::time::Instant::now();
    a.send(&f).await.unwrap();
    assert!(c.recv(WAIT).await.unwrap().is_some());
    assert!(c.recv(WAIT).await.unwrap().is_some(), "duplicated");
    assert!(b.recv(Duration::from_secs(2)).await.unwrap().is_some());
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "delayed: {:?}",
        t.elapsed()
    );

    let groups = vec![
        BTreeSet::from(["a".to_string()]),
        BTreeSet::from(["b".to_string(), "c".to_string()]),
    ];
    let (_d2, sw2, [mut a, mut b, mut c]) = three_ports(["a", "b", "c"]).await;
    sw2.add_rule(Rule {
        name: "split".into(),
        matcher: Match::default(),
        action: Action::Partition { groups },
    })
    .await;
    b.send(&udp(BROADCAST, B, 1, 2, b"y")).await.unwrap();
    assert!(c.recv(WAIT).await.unwrap().is_some());
    assert_eq!(a.recv(Duration::from_millis(100)).await.unwrap(), None);
}

#[tokio::test]
async fn hostile_bytes_close_only_that_port() {
    let (_d, sw, [mut a, mut b, mut c]) = three_ports(["a", "b", "c"]).await;
    // Short and junk frames are forwarded (and counted), never a panic.
    for len in [0usize, 1, 5, 13, 14, 20, 33, 60] {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8 | 1).collect();
        a.send(&junk).await.unwrap();
    }
    // An impossible length prefix: that connection is closed.
    a.send_raw(&u32::MAX.to_be_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The rest of the segment still works.
    let f = udp(BROADCAST, B, 1, 2, b"still here");
    b.send(&f).await.unwrap();
    let mut got = None;
    for _ in 0..20 {
        match c.recv(WAIT).await.unwrap() {
            Some(x) if x == f => {
                got = Some(x);
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert!(got.is_some());
    let st = sw.stop().await;
    assert_eq!(st.ports[0].bad_lengths, 1);
    assert!(!st.ports[0].connected);
    // Frames shorter than an Ethernet header are malformed; longer junk has an unknown
    // ethertype, which is not.
    assert!(st.ports[0].malformed >= 4, "{:?}", st.ports[0]);
}

#[tokio::test]
async fn an_old_connection_ending_never_cuts_off_the_newer_one() {
    let (_d, sw) = segment(&["a", "b"]).await;
    // Something connects to port a (a probe, or QEMU before a restore), then the guest does.
    let old = connect(&sw, "a").await;
    connected(&sw, 1).await;
    let mut guest = connect(&sw, "a").await;
    connected(&sw, 2).await;
    let mut b = connect(&sw, "b").await;
    connected(&sw, 3).await;
    drop(old);
    // Let the old connection's end reach the switch before b speaks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let f = udp(BROADCAST, B, 1, 2, b"still yours");
    b.send(&f).await.unwrap();
    assert_eq!(
        guest.recv(WAIT).await.unwrap().as_deref(),
        Some(&f[..]),
        "the old connection's end took the guest's writer"
    );
    let st = sw.stop().await;
    assert!(st.ports[0].connected);
    assert_eq!(st.ports[0].connections, 2);
}

/// Send `n` frames of `size` bytes from `a` (broadcast, so toward b) through a 60 s delay,
/// and return the switch's counts once it has taken them all.
async fn into_a_long_delay(n: usize, size: usize) -> SegmentStats {
    let (_d, sw) = segment(&["a", "b"]).await;
    let mut a = connect(&sw, "a").await;
    let _b = connect(&sw, "b").await;
    connected(&sw, 2).await;
    sw.add_rule(Rule {
        name: "slow".into(),
        matcher: Match {
            to: Some("b".into()),
            ..Match::default()
        },
        action: Action::Delay {
            fixed: Duration::from_secs(60),
            jitter: Duration::ZERO,
        },
    })
    .await;
    let mut f = udp(BROADCAST, A, 1, 2, b"x");
    f.resize(size, 0);
    for _ in 0..n {
        a.send(&f).await.unwrap();
    }
    for _ in 0..1000 {
        let st = sw.stats().await;
        if st.frames == n as u64 {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the switch did not take all {n} frames");
}

#[tokio::test]
async fn the_delay_queue_is_bounded_in_frames_and_counts_what_it_drops() {
    let st = into_a_long_delay(DELAY_QUEUE_FRAMES + 7, 64).await;
    assert_eq!(st.ports[1].delay_overflow, 7, "{:?}", st.ports[1]);
    assert_eq!(st.ports[0].delay_overflow, 0);
}

#[tokio::test]
async fn the_delay_queue_is_bounded_in_bytes_and_counts_what_it_drops() {
    let fit = DELAY_QUEUE_BYTES / MAX_FRAME;
    let st = into_a_long_delay(fit + 3, MAX_FRAME).await;
    assert_eq!(st.ports[1].delay_overflow, 3, "{:?}", st.ports[1]);
}

/// A trace the switch could not write is not silently short: the failed writes are counted
/// and the first is named, and the frames still go where they were sent.
#[tokio::test]
async fn pcapng_write_errors_are_counted_not_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let sw = Switch::start(SegmentConfig {
        name: "lan".into(),
        ports: vec!["a".into(), "b".into()],
        socket_dir: dir.path().to_path_buf(),
        listen: Listen::Unix,
        // Every write to it fails with ENOSPC.
        pcap: "/dev/full".into(),
    })
    .await
    .unwrap();
    let mut a = connect(&sw, "a").await;
    let mut b = connect(&sw, "b").await;
    connected(&sw, 2).await;
    let f = udp(BROADCAST, A, 1, 2, b"hello");
    a.send(&f).await.unwrap();
    assert_eq!(b.recv(WAIT).await.unwrap().as_deref(), Some(&f[..]));
    let st = sw.stop().await;
    assert_eq!(st.frames, 1);
    assert!(st.pcap_errors >= 1, "{st:?}");
    let said = st.pcap_error.unwrap_or_default();
    assert!(said.contains("/dev/full"), "{said}");
}

/// The switch's own count of what it wrote is in its stats, to compare with the trace.
#[tokio::test]
async fn stats_count_the_frames_written_to_the_pcapng() {
    let (_d, sw, [mut a, _b, _c]) = three_ports(["a", "b", "c"]).await;
    for i in 0..3 {
        a.send(&udp(BROADCAST, A, 1, i, b"x")).await.unwrap();
    }
    for _ in 0..200 {
        if sw.stats().await.frames == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let st = sw.stop().await;
    assert_eq!((st.frames, st.pcap_frames, st.pcap_errors), (3, 3, 0));
    assert_eq!(st.pcap_error, None);
}
