use super::*;
use crate::wire::frame::{classify, tcp_flags, Mac};
use crate::wire::test_frames::*;
use crate::wire::tracker::RpcTracker;
use std::net::IpAddr;

// ---------------------------------------------------------------------------------------------
// ONC RPC over UDP

#[test]
fn nlm4_lock_call_with_block_and_its_blocked_reply() {
    let conv = conversation();
    let (c, r) = (&conv[2], &conv[3]);
    let info = classify(c);
    let m = only(&info);
    assert!(m.is_call() && !m.is_reply() && !m.partial && !m.continuation);
    assert_eq!(m.xid, 0x1001);
    assert_eq!(
        (m.program(), m.version(), m.procedure()),
        (Some(NLM), Some(4), Some(2))
    );
    assert_eq!(m.procedure_name(), Some("NLM4_LOCK"));
    assert_eq!(m.offset, Some(14 + 20 + 8));
    assert_eq!(m.record, None);
    let call = m.call().unwrap();
    assert_eq!((call.rpcvers, call.cred_flavor, call.verf_flavor), (2, 1, 0));
    let a = lock_args(m);
    assert_eq!(a.cookie, [0, 0, 0, 1]);
    assert!(a.block && a.exclusive && !a.reclaim);
    assert_eq!(a.state, 3);
    assert_eq!(a.lock.caller_name, "fe1");
    assert_eq!((a.lock.fh.as_slice(), a.lock.oh.as_slice()), (FH, OH));
    assert_eq!((a.lock.svid, a.lock.offset, a.lock.len), (42, 100, 50));
    assert_eq!(m.args().unwrap().block(), Some(true));
    assert_eq!(m.cookie(), Some(&[0, 0, 0, 1][..]));

    // Without the call, a reply is only a reply.
    let alone = classify(r);
    let m = only(&alone);
    assert!(m.is_reply());
    assert_eq!(m.program(), None);
    let rep = m.reply().unwrap();
    assert_eq!((rep.reply_stat, rep.accept_stat, rep.call), (0, Some(0), None));
    assert_eq!(rep.results, Res::None);

    // With it, the tracker says what it answers and decodes the results.
    let mut t = RpcTracker::new();
    assert_eq!(only(&t.classify(c)).procedure_name(), Some("NLM4_LOCK"));
    let info = t.classify(r);
    let m = only(&info);
    assert_eq!(m.procedure_name(), Some("NLM4_LOCK"));
    assert_eq!(
        m.reply().unwrap().call,
        Some(CallId {
            program: NLM,
            version: 4,
            procedure: 2
        })
    );
    assert_eq!(
        m.results(),
        Some(&Res::NlmRes(NlmRes {
            cookie: vec![0, 0, 0, 1],
            stat: nlm_stat::BLOCKED
        }))
    );
    assert_eq!(m.nlm_stat(), Some(nlm_stat::BLOCKED));
    assert_eq!(nlm_stat_name(m.nlm_stat().unwrap()), Some("BLOCKED"));
    assert_eq!(m.cookie(), Some(&[0, 0, 0, 1][..]));
    let s = t.stats();
    assert_eq!((s.calls, s.replies_matched, s.replies_unmatched), (1, 1, 0));
}

#[test]
fn nlm4_lock_call_and_reply_snapshots() {
    let conv = conversation();
    let mut t = RpcTracker::new();
    insta::assert_json_snapshot!("nlm4_lock_call", t.classify(&conv[2]));
    insta::assert_json_snapshot!("nlm4_lock_blocked_reply", t.classify(&conv[3]));
}

#[test]
fn granted_msg_and_granted_res_carry_the_same_cookie() {
    let conv = conversation();
    let msg = classify(&conv[4]);
    let res = classify(&conv[5]);
    let (m, r) = (only(&msg), only(&res));
    assert_eq!(m.procedure_name(), Some("NLM4_GRANTED_MSG"));
    assert_eq!(r.procedure_name(), Some("NLM4_GRANTED_RES"));
    assert!(
        m.is_call() && r.is_call(),
        "the asynchronous result is a call of its own"
    );
    assert_eq!(m.cookie(), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
    assert_eq!(m.cookie(), r.cookie());
    assert_eq!(r.nlm_stat(), Some(nlm_stat::GRANTED));
    match m.args().unwrap() {
        Args::NlmTest(a) => assert!(a.exclusive && a.lock.svid == 42),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.args().unwrap().lock().unwrap().caller_name, "fe1");
}

#[test]
fn lock_with_reclaim() {
    let conv = conversation();
    let info = classify(&conv[6]);
    let a = lock_args(only(&info));
    assert!(a.reclaim && !a.block);
    assert_eq!(only(&info).args().unwrap().reclaim(), Some(true));
}

#[test]
fn nlm_test_denied_with_holder() {
    let conv = conversation();
    let mut t = RpcTracker::new();
    let c = t.classify(&conv[8]);
    assert_eq!(only(&c).procedure_name(), Some("NLM4_TEST"));
    assert_eq!(only(&c).args().unwrap().exclusive(), Some(false));
    let r = t.classify(&conv[9]);
    let holder = NlmHolder {
        exclusive: true,
        svid: 7,
        oh: b"oh-7".to_vec(),
        offset: 0,
        len: 10,
    };
    assert_eq!(
        only(&r).results(),
        Some(&Res::NlmTestRes(NlmTestRes {
            cookie: vec![0, 0, 0, 3],
            stat: nlm_stat::DENIED,
            holder: Some(holder)
        }))
    );
}

#[test]
fn nlm_v3_has_32_bit_ranges() {
    let conv = conversation();
    let info = classify(&conv[10]);
    let m = only(&info);
    assert_eq!(m.procedure_name(), Some("NLM_LOCK"));
    let a = lock_args(m);
    assert_eq!(
        (a.lock.offset, a.lock.len, a.cookie.as_slice()),
        (100, 50, &[4][..])
    );
}

#[test]
fn sm_notify_over_udp() {
    let conv = conversation();
    let mut t = RpcTracker::new();
    let info = t.classify(&conv[12]);
    let m = only(&info);
    assert_eq!(
        (m.program(), m.version(), m.procedure()),
        (Some(NSM), Some(1), Some(6))
    );
    assert_eq!(m.procedure_name(), Some("SM_NOTIFY"));
    assert_eq!(
        m.args(),
        Some(&Args::NsmNotify(NsmNotify {
            mon_name: "fe1".into(),
            state: 5
        }))
    );
    let r = t.classify(&conv[13]);
    assert_eq!(only(&r).procedure_name(), Some("SM_NOTIFY"));
    assert_eq!(only(&r).results(), Some(&Res::None));
}

#[test]
fn sm_mon_and_its_stat_res() {
    let conv = conversation();
    let mut t = RpcTracker::new();
    let info = t.classify(&conv[14]);
    let m = only(&info);
    assert_eq!(m.procedure_name(), Some("SM_MON"));
    let my_id = NsmMyId {
        my_name: "localhost".into(),
        prog: NLM,
        vers: 3,
        proc_: 16,
    };
    assert_eq!(
        m.args(),
        Some(&Args::NsmMon(NsmMon {
            mon_name: "filer".into(),
            my_id,
            priv_: Some(PRIV.to_vec())
        }))
    );
    let r = t.classify(&conv[15]);
    assert_eq!(
        only(&r).results(),
        Some(&Res::NsmStatRes {
            res_stat: 0,
            state: 3
        })
    );
}

#[test]
fn nlm_v3_procedure_16_downcall_on_loopback() {
    let conv = conversation();
    let info = classify(&conv[16]);
    assert_eq!(info.src_ip(), Some(IpAddr::from(LO)));
    assert_eq!(info.eth.unwrap().src, Mac([0; 6]));
    let m = only(&info);
    assert_eq!(
        (m.program(), m.version(), m.procedure()),
        (Some(NLM), Some(3), Some(16))
    );
    assert_eq!(m.procedure_name(), Some("NLM_SM_NOTIFY"));
    assert_eq!(
        m.args(),
        Some(&Args::NlmReboot(NlmReboot {
            mon_name: "fe1".into(),
            state: 5,
            priv_: PRIV.to_vec()
        }))
    );
    assert_eq!(m.args().unwrap().mon_name(), Some("fe1"));
}

#[test]
fn portmap_getport_call_and_reply() {
    let conv = conversation();
    let c = classify(&conv[0]);
    let m = only(&c);
    assert_eq!(m.procedure_name(), Some("PMAP_GETPORT"));
    assert_eq!(
        m.args(),
        Some(&Args::Pmap(PmapMapping {
            prog: NLM,
            vers: 4,
            prot: 17,
            port: 0
        }))
    );
    // Stateless: the reply's four bytes mean nothing without the call.
    assert_eq!(only(&classify(&conv[1])).results(), Some(&Res::None));
    let mut t = RpcTracker::new();
    t.classify(&conv[0]);
    let r = t.classify(&conv[1]);
    let m = only(&r);
    assert_eq!(m.procedure_name(), Some("PMAP_GETPORT"));
    assert_eq!(m.results(), Some(&Res::PmapPort { port: 4045 }));
    assert_eq!(m.results().unwrap().port(), Some(4045));
}

#[test]
fn rpcbind_getaddr() {
    let args = X::new()
        .u32(NLM)
        .u32(4)
        .string("tcp")
        .string("")
        .string("superuser")
        .0;
    let c = udp4(FE1, 903, FILER, 111, &call(0x99, PMAP, 4, 3, &args));
    let r = udp4(
        FILER,
        111,
        FE1,
        903,
        &reply(0x99, &X::new().string("192.0.2.10.15.205").0),
    );
    let mut t = RpcTracker::new();
    let info = t.classify(&c);
    assert_eq!(only(&info).procedure_name(), Some("RPCB_GETADDR"));
    match only(&info).args().unwrap() {
        Args::Rpcb(b) => assert_eq!(
            (b.prog, b.vers, b.netid.as_str(), b.owner.as_str()),
            (NLM, 4, "tcp", "superuser")
        ),
        other => panic!("{other:?}"),
    }
    let info = t.classify(&r);
    assert_eq!(
        only(&info).results(),
        Some(&Res::RpcbAddr {
            addr: "192.0.2.10.15.205".into()
        })
    );
}

#[test]
fn denied_and_error_replies() {
    // RPC_MISMATCH, AUTH_ERROR, PROG_UNAVAIL, PROG_MISMATCH.
    let bodies: [(&[u32], u32); 4] = [
        (&[1, 0, 2, 2], 1),
        (&[1, 1, 5], 1),
        (&[0, 0, 0, 1], 0),
        (&[0, 0, 0, 2, 1, 3], 0),
    ];
    for (words, stat) in bodies {
        let mut x = X::new().u32(0x55).u32(1);
        for w in words {
            x = x.u32(*w);
        }
        let info = classify(&udp4(FILER, 4045, FE1, 901, &x.0));
        let r = only(&info).reply().unwrap().clone();
        assert_eq!(r.reply_stat, stat);
        assert_eq!(r.results, Res::None);
    }
    let x = X::new().u32(0x55).u32(1).u32(1).u32(0).u32(2).u32(2).0;
    assert_eq!(
        only(&classify(&udp4(FILER, 4045, FE1, 901, &x)))
            .reply()
            .unwrap()
            .mismatch,
        Some((2, 2))
    );
    let x = X::new().u32(0x55).u32(1).u32(1).u32(1).u32(5).0;
    assert_eq!(
        only(&classify(&udp4(FILER, 4045, FE1, 901, &x)))
            .reply()
            .unwrap()
            .auth_stat,
        Some(5)
    );
}

#[test]
fn invalid_and_incomplete_arguments() {
    // A cookie longer than any NLM cookie may be: the call is RPC, its arguments invalid.
    let args = X::new().u32(5000).0;
    let info = classify(&udp4(FE1, 901, FILER, 4045, &call(1, NLM, 4, 2, &args)));
    assert_eq!(only(&info).args(), Some(&Args::Invalid));
    // Arguments cut short in a whole datagram are invalid too.
    let args = lockargs(true, &[1], false, false, false, 0);
    let info = classify(&udp4(
        FE1,
        901,
        FILER,
        4045,
        &call(1, NLM, 4, 2, &args[..args.len() - 4]),
    ));
    assert_eq!(only(&info).args(), Some(&Args::Invalid));
    // NFS and unknown procedures are not decoded.
    let info = classify(&udp4(FE1, 901, FILER, 2049, &call(1, NFS, 3, 7, &[0; 40])));
    assert_eq!(only(&info).args(), Some(&Args::None));
    assert_eq!(only(&info).procedure_name(), Some("NFS3_WRITE"));
}

#[test]
fn not_rpc() {
    // DNS query.
    let dns = [
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 3, b'f', b'e', b'1', 0, 0, 1, 0, 1,
    ];
    assert!(classify(&udp4(FE1, 5353, FILER, 53, &dns)).rpc.is_empty());
    // Calls with another RPC version, or a credential longer than 400 bytes.
    let mut c = call(1, NLM, 4, 2, &lockargs(true, &[1], false, false, false, 0));
    c[8..12].copy_from_slice(&3u32.to_be_bytes());
    assert!(classify(&udp4(FE1, 901, FILER, 4045, &c)).rpc.is_empty());
    let mut c = call(1, NLM, 4, 2, &[]);
    c[28..32].copy_from_slice(&401u32.to_be_bytes());
    assert!(classify(&udp4(FE1, 901, FILER, 4045, &c)).rpc.is_empty());
    // Message type 2; reply with accept_stat 6; verifier flavor 9.
    assert!(
        classify(&udp4(FE1, 1, FILER, 2, &X::new().u32(1).u32(2).u32(2).u32(0).0))
            .rpc
            .is_empty()
    );
    let r = X::new().u32(1).u32(1).u32(0).u32(0).u32(0).u32(6).0;
    assert!(classify(&udp4(FE1, 1, FILER, 2, &r)).rpc.is_empty());
    let r = X::new().u32(1).u32(1).u32(0).u32(9).u32(0).u32(0).0;
    assert!(classify(&udp4(FE1, 1, FILER, 2, &r)).rpc.is_empty());
    // IMAP over TCP, with and without a tracker.
    let imap = tcp4(
        FILER,
        143,
        FE1,
        40000,
        1,
        1,
        tcp_flags::ACK,
        b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n",
    );
    assert!(classify(&imap).rpc.is_empty());
    let mut t = RpcTracker::new();
    assert!(t.classify(&imap).rpc.is_empty());
    assert_eq!(t.stats().flows, 0, "non-RPC streams are not tracked");
    // A plausible record mark in front of something that is not RPC.
    let fake = tcp4(FE1, 1, FILER, 2, 1, 1, tcp_flags::ACK, &record(&[7; 40]));
    assert!(classify(&fake).rpc.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Names

#[test]
fn procedure_names() {
    let cases = [
        (NLM, 4, 2, Some("NLM4_LOCK")),
        (NLM, 4, 10, Some("NLM4_GRANTED_MSG")),
        (NLM, 4, 15, Some("NLM4_GRANTED_RES")),
        (NLM, 3, 16, Some("NLM_SM_NOTIFY")),
        (NLM, 1, 1, Some("NLM_TEST")),
        (NLM, 4, 23, Some("NLM4_FREE_ALL")),
        (NLM, 4, 17, None),
        (NLM, 4, 24, None),
        (NLM, 2, 2, None),
        (NSM, 1, 6, Some("SM_NOTIFY")),
        (NSM, 1, 2, Some("SM_MON")),
        (PMAP, 2, 3, Some("PMAP_GETPORT")),
        (PMAP, 4, 3, Some("RPCB_GETADDR")),
        (PMAP, 4, 9, Some("RPCB_GETVERSADDR")),
        (NFS, 3, 7, Some("NFS3_WRITE")),
        (NFS, 3, 21, Some("NFS3_COMMIT")),
        (program::MOUNT, 3, 1, Some("MOUNT3_MNT")),
        (1, 1, 1, None),
        (NLM, 4, u32::MAX, None),
    ];
    for (p, v, n, name) in cases {
        assert_eq!(procedure_name(p, v, n), name, "{p} {v} {n}");
    }
    for (p, versions) in [
        (NLM, &[1, 3, 4][..]),
        (NSM, &[1]),
        (PMAP, &[2, 3, 4]),
        (NFS, &[2, 3, 4]),
        (program::MOUNT, &[1, 2, 3]),
    ] {
        for &v in versions {
            for n in 0..64 {
                if let Some(name) = procedure_name(p, v, n) {
                    assert_eq!(procedure_number(p, v, name), Some(n));
                }
            }
        }
    }
    assert_eq!(procedure_number(NLM, 4, ""), None);
    assert_eq!(procedure_number(NLM, 4, "NLM_LOCK"), None);
    assert_eq!(program_name(NLM), Some("nlockmgr"));
    assert_eq!(nlm_stat_name(10), None);
}
