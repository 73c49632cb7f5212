//! Faults: wire rules, triggers and ends, kinds, frame matches.

use std::collections::BTreeSet;

use super::*;
use crate::wire::rules::{Facts, RpcFacts, RpcKind, RpcMatch, RuleSet};

// ---- wire faults become switch rules ---------------------------------------------------------

#[test]
fn a_wire_fault_becomes_the_switchs_rule() {
    let c = load(&testdata("grant-lost")).unwrap();
    let f = c.fault("grant-lost").unwrap();
    assert_eq!(
        f.start,
        Trigger::AfterStep {
            step: "mount-imap2".into()
        }
    );
    assert_eq!(
        f.end,
        End::Duration {
            duration: Duration::from_secs(60)
        }
    );
    let rule = wire_rule(f).unwrap();
    assert_eq!(
        rule,
        Rule {
            name: "grant-lost".into(),
            matcher: Match {
                to: Some("imap1".into()),
                rpc: Some(RpcMatch {
                    program: Some(100021),
                    version: Some(4),
                    procedure: Some(10),
                    kind: Some(RpcKind::Call),
                    reclaim: None,
                    nlm_stat: None,
                }),
                ..Match::default()
            },
            action: Action::Drop,
        }
    );
    // And the switch drops a GRANTED_MSG toward imap1 with it, and nothing toward imap2.
    let mut rules = RuleSet::default();
    rules.add(rule);
    let grant = Facts {
        ethertype: 0x0800,
        ip_proto: Some(6),
        rpc: vec![RpcFacts {
            xid: 1,
            call: true,
            program: Some(100021),
            version: Some(4),
            procedure: Some(10),
            reclaim: None,
            nlm_stat: None,
        }],
        ..Facts::default()
    };
    let d = rules.decide(&grant, 7, "filer", &["imap1", "imap2"], &mut || 0.0);
    assert_eq!(
        d.verdicts,
        [
            crate::wire::rules::Verdict::Drop,
            crate::wire::rules::Verdict::Forward
        ]
    );
}

#[test]
fn every_match_field_and_action_converts() {
    let c = ok(r#"[faults.slow]
start = { at = "0s" }
[faults.slow.wire]
segment = "lan"
from = "filer"
to = "imap1"
ethertype = "ipv4"
ip_proto = "tcp"
src_ip = "192.0.2.10"
dst_ip = "192.0.2.11"
src_port = 2049
dst_port = 0x3ff
tcp_flags = "syn|ACK"
rpc_program = "nlm"
rpc_version = 4
rpc_procedure = 2
rpc_kind = "reply"
action = "delay"
delay = "200ms"
jitter = "50ms"
[faults.twice]
start = { at = "1s" }
wire = { segment = "lan", ethertype = 0x0806, ip_proto = 17, tcp_flags = 4, rpc_program = 100003, action = "duplicate" }
[faults.split]
start = { at = "1s" }
wire = { segment = "lan", rpc_procedure = "nlm4_granted_res", action = "partition", groups = [["filer"], ["imap1"]] }
[faults.other]
start = { at = "1s" }
guest_nft = { guest = "filer", ruleset = "table inet cut {\n chain in { type filter hook input priority 0; counter drop; }\n}" }
"#);
    let rule = |n: &str| wire_rule(c.fault(n).unwrap()).unwrap();
    assert_eq!(
        rule("slow"),
        Rule {
            name: "slow".into(),
            matcher: Match {
                from: Some("filer".into()),
                to: Some("imap1".into()),
                ethertype: Some(0x0800),
                ip_proto: Some(6),
                src_ip: Some("192.0.2.10".parse().unwrap()),
                dst_ip: Some("192.0.2.11".parse().unwrap()),
                src_port: Some(2049),
                dst_port: Some(1023),
                tcp_flags: Some(0x12),
                rpc: Some(RpcMatch {
                    program: Some(100021),
                    version: Some(4),
                    procedure: Some(2),
                    kind: Some(RpcKind::Reply),
                    reclaim: None,
                    nlm_stat: None,
                }),
                payload_contains: None,
            },
            action: Action::Delay {
                fixed: Duration::from_millis(200),
                jitter: Duration::from_millis(50),
            },
        }
    );
    assert_eq!(
        rule("twice"),
        Rule {
            name: "twice".into(),
            matcher: Match {
                ethertype: Some(0x0806),
                ip_proto: Some(17),
                tcp_flags: Some(4),
                rpc: Some(RpcMatch {
                    program: Some(100003),
                    ..RpcMatch::default()
                }),
                ..Match::default()
            },
            action: Action::Duplicate,
        }
    );
    assert_eq!(
        rule("split"),
        Rule {
            name: "split".into(),
            matcher: Match {
                rpc: Some(RpcMatch {
                    program: Some(100021),
                    version: Some(4),
                    procedure: Some(15),
                    kind: None,
                    reclaim: None,
                    nlm_stat: None,
                }),
                ..Match::default()
            },
            action: Action::Partition {
                groups: vec![
                    BTreeSet::from(["filer".to_string()]),
                    BTreeSet::from(["imap1".to_string()])
                ],
            },
        }
    );
    assert_eq!(wire_rule(c.fault("other").unwrap()), None);
    assert_eq!(
        c.fault("other").unwrap().kind,
        FaultKind::GuestNft {
            guest: "filer".into(),
            ruleset: "table inet cut {\n chain in { type filter hook input priority 0; counter drop; }\n}"
                .into(),
            tables: vec!["inet cut".into()],
        }
    );
}

#[test]
fn fault_triggers_and_ends() {
    table(&[
        (
            "[faults.f]\nstart = { at = \"1s\" }\n",
            "t.toml:11:9: fault `f` needs one of wire, guest_nft, guest_exec, service, disk_error, disk_delay, disk_pause, power_cut",
        ),
        (
            "[faults.f]\nstart = { after_step = \"nope\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:24: unknown step `nope` (this case has a)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\", after_step = \"a\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:35: `start` takes one of at, after_step, on_log, on_frame, not both `at` and `after_step`",
        ),
        (
            "[faults.f]\nstart = {}\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:9: `start` needs one of at, after_step, on_log, on_frame",
        ),
        (
            "[faults.f]\nstart = { on_log = { guest = \"imap1\", file = \"log\", pattern = \"x\" } }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:46: file \"log\" must be an absolute path",
        ),
        (
            "[faults.f]\nstart = { on_frame = { segment = \"lan\", from = \"imap3\" } }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:12:48: unknown guest `imap3` (this case has filer, imap1)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"5s\", until_step = \"a\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:13:39: `end` takes one of duration, until_step, heal_step, not both `duration` and `until_step`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = {}\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:13:7: `end` needs one of duration, until_step, heal_step",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { heal_step = \"z\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:13:21: unknown step `z` (this case has a)",
        ),
        (
            "[[steps]]\nname = \"b\"\nguest = \"imap1\"\nexec = { command = \"x\" }\n[faults.f]\nstart = { after_step = \"b\" }\nend = { until_step = \"a\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"stop\" }\n",
            "t.toml:17:22: fault `f` starts after step `b` but ends at step `a`, which does not come after it",
        ),
    ]);
    let c = ok("[[steps]]\nname = \"b\"\nguest = \"filer\"\nexec = { command = \"systemctl start nfs-server\" }\n[faults.f]\nstart = { on_log = { guest = \"imap1\", file = \"/var/log/syslog\", pattern = \"lockd: server * not responding\" } }\nend = { heal_step = \"b\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"kill\" }\n[faults.g]\nstart = { after_step = \"a\" }\nend = \"never\"\nservice = { guest = \"imap1\", action = \"reboot\" }\n");
    let f = c.fault("f").unwrap();
    assert_eq!(f.end, End::HealStep { step: "b".into() });
    assert_eq!(
        f.start,
        Trigger::OnLog {
            guest: "imap1".into(),
            file: "/var/log/syslog".into(),
            pattern: Pattern::new("lockd: server * not responding").unwrap()
        }
    );
    assert_eq!(f.kind.guest(), Some("filer"));
    assert_eq!(c.fault("g").unwrap().end, End::Never);
}

#[test]
fn fault_kinds() {
    table(&[
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { heal_step = \"a\" }\nwire = { segment = \"lan\", action = \"drop\" }\n",
            "t.toml:13:21: a wire fault is removed by the harness, not by a step: use until_step",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"wan\", action = \"drop\" }\n",
            "t.toml:13:20: unknown segment `wan` (this case has lan)",
        ),
        (
            "[segments.lan]\nguests = [\"filer\"]\n[segments.back]\nguests = [\"imap1\"]\n[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", to = \"imap1\", action = \"drop\" }\n",
            "t.toml:17:32: guest `imap1` is not on segment `lan`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"delay\" }\n",
            "t.toml:13:36: a delay action needs `delay` (e.g. \"200ms\")",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"delay\", delay = \"0ms\" }\n",
            "t.toml:13:53: a delay of 0 with no jitter does nothing",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"drop\", jitter = \"5ms\" }\n",
            "t.toml:13:53: `jitter` only goes with action = \"delay\"",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"partition\" }\n",
            "t.toml:13:36: a partition needs `groups`, e.g. [[\"filer\"], [\"imap1\", \"imap2\"]]",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"partition\", groups = [[\"filer\"], [\"imap1\", \"filer\"]] }\n",
            "t.toml:13:80: guest `filer` is in two groups",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nwire = { segment = \"lan\", action = \"corrupt\" }\n",
            "t.toml:13:36: action must be \"drop\", \"delay\", \"duplicate\" or \"partition\", not \"corrupt\"",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"5s\" }\nguest_exec = { guest = \"imap1\", command = \"x\" }\n",
            "t.toml:13:7: fault `f` is ended by the harness, so its guest_exec needs a `heal` command",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nguest_exec = { guest = \"imap1\", command = \"x\", heal = \"y\" }\n",
            "t.toml:13:55: `heal` runs only when the harness ends the fault (end.duration or end.until_step)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nend = { duration = \"5s\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"restart\" }\n",
            "t.toml:13:7: a restart is over at once: it takes no `end`",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", unit = \"x.service\", action = \"reboot\" }\n",
            "t.toml:13:37: a reboot takes no unit: it restarts the whole guest",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", action = \"stop\" }\n",
            "t.toml:13:39: a stop needs the `unit` to act on",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", unit = \"nfs-server\", action = \"stop\" }\n",
            "t.toml:13:37: \"nfs-server\" is not a systemd unit name (e.g. nfs-server.service)",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nservice = { guest = \"filer\", unit = \"nfs-server.service\", action = \"pause\" }\n",
            "t.toml:13:68: action must be \"stop\", \"kill\", \"restart\" or \"reboot\", not \"pause\"",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\nguest_nft = { guest = \"filer\", ruleset = \"add rule inet x y counter drop\" }\n",
            "t.toml:13:42: the ruleset declares no table: write `table inet NAME { ... }`, so that the harness can delete it to heal the fault",
        ),
        // A guest ruleset fires only with proof: a packet one of its counters counted.
        (
            "[faults.f]\nstart = { at = \"1s\" }\nguest_nft = { guest = \"filer\", ruleset = \"table inet cut { chain c { drop } } # no counter here\" }\n",
            "t.toml:13:42: the ruleset has no `counter`: put one in the rule that does the harm (`... counter drop`), since a loaded ruleset proves nothing and only a packet it counted shows the fault fired",
        ),
        (
            "[faults.f]\nstart = { at = \"1s\" }\ndisk_error = { disk = \"tray\" }\n",
            "t.toml:13:23: unknown disk `tray` (this case has none)",
        ),
        (
            "[disks.shelf]\nguest = \"filer\"\nsize = \"lots\"\n",
            "t.toml:13:8: bad size \"lots\": use a number with K, M or G, e.g. \"1G\"",
        ),
        (
            "[disks.shelf]\nguest = \"filer\"\nsize = \"1G\"\nnbdkit_filters = [\"error\", \"delay\", \"error\"]\n",
            "t.toml:14:37: filter `error` is listed twice",
        ),
        (
            "[disks.shelf-controller-a-10]\nguest = \"filer\"\nsize = \"1G\"\n",
            "t.toml:11:8: disk name `shelf-controller-a-10` is longer than 20 characters: the guest sees it as the disk's serial, which holds no more",
        ),
    ]);
    let c = ok("[disks.shelf]\nguest = \"filer\"\nsize = \"512M\"\nnbdkit_filters = [\"error\"]\n[faults.f]\nstart = { at = \"1s\" }\nend = { until_step = \"a\" }\ndisk_error = { disk = \"shelf\" }\n");
    assert_eq!(
        c.disks,
        [Disk {
            name: "shelf".into(),
            guest: "filer".into(),
            size_bytes: 512 << 20,
            nbdkit_filters: vec!["error".into()],
            write_cache: crate::disks::WriteCache::None,
        }]
    );
}

#[test]
fn frame_matches() {
    let wire = |fields: &str| {
        format!("[faults.f]\nstart = {{ at = \"1s\" }}\nwire = {{ segment = \"lan\", {fields}, action = \"drop\" }}\n")
    };
    // Field values start at column 27 + the length of `key = `.
    let rows = [
        (
            wire("rpc_procedure = \"NLM4_GRANTED_MESSAGE\""),
            "t.toml:13:43: unknown RPC procedure `NLM4_GRANTED_MESSAGE`: names are as the frame decoder prints them, e.g. NLM4_GRANTED_MSG, NFS3_WRITE, SM_NOTIFY",
        ),
        (
            wire("rpc_procedure = \"NLM_LOCK\""),
            "t.toml:13:43: procedure `NLM_LOCK` is in versions 1 and 3 of nlockmgr (100021): set rpc_version",
        ),
        (
            wire("rpc_program = \"nfs\", rpc_procedure = \"NLM4_GRANTED_MSG\""),
            "t.toml:13:64: unknown RPC procedure `NLM4_GRANTED_MSG` in nfs (100003): names are as the frame decoder prints them, e.g. NLM4_GRANTED_MSG, NFS3_WRITE, SM_NOTIFY",
        ),
        (
            wire("rpc_program = \"sunrpc\""),
            "t.toml:13:41: rpc_program is a number from 0 to 0xffffffff or one of nlm, nlockmgr, nsm, status, nfs, mount, mountd, portmap, portmapper, rpcbind",
        ),
        (
            wire("rpc_kind = \"callback\""),
            "t.toml:13:38: rpc_kind must be \"call\" or \"reply\", not \"callback\"",
        ),
        (
            wire("ip_proto = \"sctp\""),
            "t.toml:13:38: ip_proto is a number from 0 to 0xff or one of tcp, udp, icmp, icmpv6",
        ),
        (
            wire("ethertype = 70000"),
            "t.toml:13:39: ethertype is a number from 0 to 0xffff or one of ipv4, ipv6, arp, vlan",
        ),
        (
            wire("tcp_flags = \"syn|xmas\""),
            "t.toml:13:39: tcp_flags is a number from 1 to 255 or names joined by '|', e.g. \"syn|ack\" (fin, syn, rst, psh, ack, urg, ece, cwr)",
        ),
        (wire("dst_port = 70000"), "t.toml:13:38: a port is 1 to 65535"),
        (wire("src_ip = \"10.0.0\""), "t.toml:13:36: \"10.0.0\" is not an IP address"),
    ];
    let rows: Vec<(&str, &str)> = rows.iter().map(|(m, w)| (m.as_str(), *w)).collect();
    table(&rows);
    // With a version, the name is found in it.
    let c = ok(&wire("rpc_version = 3, rpc_procedure = \"NLM_LOCK\""));
    let FaultKind::Wire { matcher, .. } = &c.fault("f").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        matcher.rpc,
        Some(RpcMatch {
            program: Some(100021),
            version: Some(3),
            procedure: Some(2),
            kind: None,
            reclaim: None,
            nlm_stat: None,
        })
    );
}
