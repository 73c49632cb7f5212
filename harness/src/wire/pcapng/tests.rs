use super::*;
use std::process::Command;

/// One frame as the tests write it: interface, timestamp, length, direction, comment.
type Spec = (u32, u64, usize, Direction, Option<&'static str>);

const IN: Direction = Direction::Inbound;
const OUT: Direction = Direction::Outbound;
/// 2023-11-14T22:13:20Z plus some nanoseconds.
const T0: u64 = 1_700_000_000_123_456_789;

/// Frames before the third port connects, then after. Lengths cover every padding case, the
/// empty frame, jumbo and past-64 KiB frames; comments cover every padding case and non-ASCII.
const BEFORE_LATE_PORT: &[Spec] = &[
    (0, T0, 60, IN, None),
    (1, T0 + 1, 0, OUT, Some("drop: rule nfs-stall")),
    (0, T0 + 1_000, 1, OUT, Some("a")),
    (1, T0 + 1_000_000, 3, IN, Some("délai 200 ms, règle «lent» 🐢")),
];
const AFTER_LATE_PORT: &[Spec] = &[
    (2, T0 + 2_000_000_001, 4, IN, None),
    (2, T0 + 2_999_999_999, 1514, OUT, Some("ab")),
    (0, T0 + 3_000_000_000, 9000, IN, Some("abc")),
    (1, T0 + 60_000_000_007, 60, OUT, Some("abcd")),
    (
        2,
        T0 + 61_000_000_000,
        65_535 + 17,
        IN,
        Some("delay 5s: rule slow-filer"),
    ),
    (0, T0 + 3_600_000_000_000, 5, OUT, None),
];
const PORTS: [(&str, &str); 3] = [
    ("filer", "switch port 0: filer"),
    ("frontend1", "switch port 1: frontend1"),
    ("frontend2", "switch port 2: frontend2, connected late"),
];

/// A frame's bytes: a pattern that differs between frames so a mix-up shows.
fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (j * 31 + i * 7) as u8).collect()
}

fn all_specs() -> impl Iterator<Item = (usize, &'static Spec)> {
    BEFORE_LATE_PORT.iter().chain(AFTER_LATE_PORT).enumerate()
}

/// The sample trace: two ports, some frames, a third port, more frames.
fn sample() -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), "faultline test").unwrap();
    for (name, description) in &PORTS[..2] {
        w.add_interface(name, description).unwrap();
    }
    for (i, (iface, ts, len, dir, comment)) in all_specs() {
        if i == BEFORE_LATE_PORT.len() {
            assert_eq!(w.add_interface(PORTS[2].0, PORTS[2].1).unwrap(), 2);
        }
        w.write_frame(*iface, *ts, &frame(i, *len), *dir, *comment)
            .unwrap();
    }
    assert_eq!(w.frames_written(), 10);
    assert_eq!(
        w.frame_bytes_written(),
        all_specs().map(|(_, s)| s.2 as u64).sum::<u64>()
    );
    let written = w.bytes_written();
    let bytes = w.into_inner();
    assert_eq!(written, bytes.len() as u64);
    bytes
}

fn port(id: usize) -> Block<'static> {
    Block::Interface(Interface {
        link_type: 1,
        snaplen: 0,
        name: Some(PORTS[id].0),
        description: Some(PORTS[id].1),
        tsresol: 9,
    })
}

#[test]
fn what_is_written_reads_back() {
    let bytes = sample();
    let frames: Vec<Vec<u8>> = all_specs().map(|(i, s)| frame(i, s.2)).collect();
    let mut want = vec![
        Block::Section(Section {
            application: Some("faultline test"),
            os: None,
            hardware: None,
        }),
        port(0),
        port(1),
    ];
    for (i, (iface, ts, _, dir, comment)) in all_specs() {
        if i == BEFORE_LATE_PORT.len() {
            want.push(port(2));
        }
        want.push(Block::Packet(Packet {
            interface: *iface,
            timestamp_ns: *ts,
            data: &frames[i],
            original_len: frames[i].len() as u32,
            comment: *comment,
            direction: Some(*dir),
        }));
    }
    assert_eq!(read_blocks(&bytes).unwrap(), want);
}

#[test]
fn timestamps_keep_every_nanosecond() {
    let stamps = [0, 1, u64::from(u32::MAX), 1 << 32, T0, u64::MAX];
    let mut w = Writer::new(Vec::new(), "").unwrap();
    w.add_interface("", "").unwrap();
    for ts in stamps {
        w.write_frame(0, ts, b"x", IN, None).unwrap();
    }
    let bytes = w.into_inner();
    let got: Vec<u64> = read_blocks(&bytes)
        .unwrap()
        .into_iter()
        .filter_map(|b| match b {
            Block::Packet(p) => Some(p.timestamp_ns),
            _ => None,
        })
        .collect();
    assert_eq!(got, stamps);
    // Empty strings are left out rather than written as empty options.
    assert_eq!(
        read_blocks(&bytes).unwrap()[..2],
        [
            Block::Section(Section {
                application: None,
                os: None,
                hardware: None
            }),
            Block::Interface(Interface {
                link_type: 1,
                snaplen: 0,
                name: None,
                description: None,
                tsresol: 9
            }),
        ]
    );
}

#[test]
fn other_resolutions_and_offsets_convert_to_nanoseconds() {
    let clock = |tsresol, offset_s| Clock { tsresol, offset_s };
    assert_eq!(to_ns(1_500_000, clock(6, 0)), Some(1_500_000_000));
    assert_eq!(to_ns(1_500_000, clock(6, 10)), Some(11_500_000_000));
    assert_eq!(to_ns(3, clock(6, -1)), None);
    assert_eq!(to_ns(12_345, clock(12, 0)), Some(12));
    assert_eq!(to_ns(u64::MAX, clock(127, 0)), Some(0));
    // 2^-10 s ticks: 1024 of them are one second.
    assert_eq!(to_ns(1024, clock(0x80 | 10, 0)), Some(1_000_000_000));
    assert_eq!(to_ns(u64::MAX, clock(0x80 | 127, 0)), Some(0));
    assert_eq!(to_ns(u64::MAX, clock(0, 0)), None);
}

#[test]
fn bad_arguments_are_refused_and_write_nothing() {
    let mut w = Writer::new(Vec::new(), "t").unwrap();
    let before = w.bytes_written();
    let e = w.write_frame(0, 0, b"x", IN, None).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(e.to_string(), "interface 0 was not added (the section has 0)");
    let id = w.add_interface("p", "").unwrap();
    let e = w.write_frame(id + 1, 0, b"x", IN, None).unwrap_err();
    assert_eq!(e.to_string(), "interface 1 was not added (the section has 1)");
    let long = "x".repeat(65_536);
    let e = w.write_frame(id, 0, b"x", IN, Some(&long)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "comment is 65536 bytes; pcapng options hold at most 65535"
    );
    assert!(w.add_interface(&long, "").is_err());
    assert!(Writer::new(Vec::new(), &long).is_err());
    // The longest comment that fits is fine.
    w.write_frame(id, 0, b"x", IN, Some(&long[1..])).unwrap();
    let bytes = w.into_inner();
    let blocks = read_blocks(&bytes).unwrap();
    assert!(matches!(&blocks[2], Block::Packet(p) if p.comment.map(str::len) == Some(65_535)));
    assert_eq!(blocks.len(), 3);
    assert!(before < bytes.len() as u64);
}

/// Accepts `ok` bytes, then fails every write.
struct FailAfter {
    ok: usize,
    got: Vec<u8>,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.ok - self.got.len());
        if n == 0 {
            return Err(io::Error::other("disk full"));
        }
        self.got.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn after_a_failed_write_nothing_more_is_written() {
    let mut w = Writer::new(
        FailAfter {
            ok: 100,
            got: Vec::new(),
        },
        "t",
    )
    .unwrap();
    w.add_interface("p", "").unwrap();
    let e = w.write_frame(0, 0, &[0; 64], IN, None).unwrap_err();
    assert_eq!(e.to_string(), "disk full");
    let partial = w.get_ref().got.len();
    assert_eq!(partial, 100);
    let e = w.write_frame(0, 0, b"", IN, None).unwrap_err();
    assert_eq!(e.to_string(), "an earlier write to this pcapng file failed");
    assert!(w.add_interface("q", "").is_err());
    assert_eq!(w.frames_written(), 0);
    assert_eq!(w.into_inner().got.len(), partial);
}

/// Where each block of `bytes` ends, walking the length fields only.
fn block_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        pos += u32_at(bytes, pos + 4).unwrap() as usize;
        ends.push(pos);
    }
    assert_eq!(pos, bytes.len());
    ends
}

#[test]
fn every_prefix_reads_to_its_last_whole_block_or_fails() {
    let bytes = sample();
    let ends = block_ends(&bytes);
    let all = read_blocks(&bytes).unwrap();
    for n in 0..=bytes.len() {
        let r = read_blocks(&bytes[..n]);
        let whole = ends.iter().filter(|&&e| e <= n).count();
        if n == 0 || ends.contains(&n) {
            assert_eq!(r.unwrap(), all[..whole], "prefix of {n} bytes");
        } else {
            let offset = ends.get(whole.wrapping_sub(1)).copied().unwrap_or(0);
            assert_eq!(
                r.unwrap_err(),
                ReadError::Truncated { offset },
                "prefix of {n} bytes"
            );
        }
    }
}

/// Deterministic noise (xorshift64).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_is_an_error_and_never_a_panic() {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2_000 {
        let len = noise.below(300);
        let junk: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
        if !junk.is_empty() {
            assert!(read_blocks(&junk).is_err());
        }
    }
    // Corrupting a real trace reaches past the first block; whatever the reader says, it
    // must say it without panicking, and a section header stays a section header.
    let good = sample();
    for _ in 0..5_000 {
        let mut bad = good.clone();
        for _ in 0..1 + noise.below(4) {
            let at = noise.below(bad.len());
            bad[at] = noise.next() as u8;
        }
        let _ = read_blocks(&bad);
        // And with every block's length field pointing somewhere odd.
        let at = block_ends(&good)[noise.below(10)];
        if at + 8 <= bad.len() {
            bad[at + 4..at + 8].copy_from_slice(&(noise.next() as u32).to_le_bytes());
            let _ = read_blocks(&bad);
        }
    }
}

/// A valid trace with one field patched (little-endian u32 at `at`).
fn patched(at: usize, v: u32) -> Vec<u8> {
    let mut b = sample();
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    b
}

#[test]
fn malformed_blocks_are_named() {
    let good = sample();
    let ends = block_ends(&good);
    let (idb, epb) = (ends[0], ends[2]);
    assert_eq!(read_blocks(&good[idb..]).unwrap_err(), ReadError::NotPcapng);
    assert_eq!(
        read_blocks(&patched(8, 0x4D3C_2B1A)).unwrap_err(),
        ReadError::BigEndian { offset: 0 }
    );
    assert!(matches!(
        read_blocks(&patched(8, 7)),
        Err(ReadError::BadMagic { offset: 0, magic: 7 })
    ));
    assert_eq!(
        read_blocks(&patched(12, 2)).unwrap_err(),
        ReadError::Version {
            offset: 0,
            major: 2,
            minor: 0
        }
    );
    assert_eq!(
        read_blocks(&patched(idb + 4, 10)).unwrap_err(),
        ReadError::BadLength {
            offset: idb,
            length: 10
        }
    );
    assert_eq!(
        read_blocks(&patched(idb + 4, 13)).unwrap_err(),
        ReadError::BadLength {
            offset: idb,
            length: 13
        }
    );
    assert!(matches!(
        read_blocks(&patched(ends[1] - 4, 4)),
        Err(ReadError::TrailerMismatch { offset, trailer: 4, .. }) if offset == idb
    ));
    assert_eq!(
        read_blocks(&patched(epb + 8, 2)).unwrap_err(),
        ReadError::UnknownInterface {
            offset: epb,
            interface: 2,
            count: 2
        }
    );
    assert!(matches!(
        read_blocks(&patched(epb + 20, 1_000)),
        Err(ReadError::Malformed {
            what: "captured length overruns the block",
            ..
        })
    ));
    assert!(matches!(
        read_blocks(&patched(epb + 20, u32::MAX)),
        Err(ReadError::Malformed {
            what: "captured length overruns the block",
            ..
        })
    ));
    // The first EPB's first option (epb_flags: 60 data bytes, no comment) claims 200 bytes.
    assert!(matches!(
        read_blocks(&patched(epb + 28 + 60, 2 | 200 << 16)),
        Err(ReadError::Malformed {
            what: "an option overruns its block",
            ..
        })
    ));
    assert!(matches!(
        read_blocks(&patched(epb + 28 + 60, 2 | 3 << 16)),
        Err(ReadError::Malformed {
            what: "epb_flags is not 4 bytes",
            ..
        })
    ));
    let text = read_blocks(&patched(epb + 8, 2)).unwrap_err().to_string();
    assert_eq!(
        text,
        format!("packet at byte {epb}: interface 2 was not described (the section has 2)")
    );
}

#[test]
fn unknown_blocks_are_passed_over() {
    let mut bytes = sample();
    let ends = block_ends(&bytes);
    // A Name Resolution Block with only opt_endofopt... and an end-of-records, after the IDBs.
    let nrb = [4u32, 16, 0, 16];
    let at = ends[2];
    let tail = bytes.split_off(at);
    bytes.extend(nrb.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(tail);
    let blocks = read_blocks(&bytes).unwrap();
    assert_eq!(blocks[3], Block::Other { block_type: 4 });
    assert_eq!(blocks.len(), read_blocks(&sample()).unwrap().len() + 1);
}

/// The bytes as 4-byte little-endian words, one block a paragraph, so a review shows which
/// field changed.
fn words(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut start = 0;
    for end in block_ends(bytes) {
        for row in bytes[start..end].chunks(16) {
            let line: Vec<String> = row
                .chunks(4)
                .map(|w| w.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            out += &line.join(" ");
            out += "\n";
        }
        out += "\n";
        start = end;
    }
    out
}

#[test]
fn the_format_does_not_change_unnoticed() {
    let mut w = Writer::new(Vec::new(), "faultline").unwrap();
    w.add_interface("filer", "port 0").unwrap();
    w.write_frame(0, T0, &[0xff, 0xee, 0xdd, 0xcc, 0xbb], OUT, Some("drop"))
        .unwrap();
    insta::assert_snapshot!(words(&w.into_inner()));
}

/// The sample as tshark sees it: one line per frame, tab-separated fields.
#[test]
fn tshark_reads_what_we_write() {
    let Ok(tshark) = crate::hosttools::find(crate::hosttools::TSHARK) else {
        eprintln!("tshark not installed: skipping the outside check of the pcapng writer");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segment.pcapng");
    std::fs::write(&path, sample()).unwrap();
    let fields = [
        "frame.number",
        "frame.interface_id",
        "frame.interface_name",
        "frame.len",
        "frame.cap_len",
        "frame.comment",
        "frame.packet_flags_direction",
        "frame.p2p_dir",
        "frame.time_epoch",
    ];
    let mut cmd = Command::new(tshark);
    cmd.arg("-n")
        .arg("-r")
        .arg(&path)
        .args(["-T", "fields", "-E", "occurrence=a"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<String> = all_specs()
        .map(|(i, (iface, ts, len, dir, comment))| {
            let (flags, p2p) = match dir {
                Direction::Inbound => ("0x00000001", "1"),
                Direction::Outbound => ("0x00000002", "0"),
            };
            let epoch = format!("{}.{:09}", ts / 1_000_000_000, ts % 1_000_000_000);
            [
                (i + 1).to_string(),
                iface.to_string(),
                PORTS[*iface as usize].0.to_string(),
                len.to_string(),
                len.to_string(),
                comment.unwrap_or("").to_string(),
                flags.to_string(),
                p2p.to_string(),
                epoch,
            ]
            .join("\t")
        })
        .collect();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got, want);
}

/// Rough throughput of the per-frame path; meaningful only with `--release`:
/// `cargo test --release --lib wire::pcapng::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn throughput_of_1514_byte_frames() {
    fn time<W: Write>(label: &str, out: W) {
        let n = 200_000u64;
        let frame = [0xab; 1514];
        let mut w = Writer::new(out, "bench").unwrap();
        w.add_interface("p", "").unwrap();
        let t = std::time::Instant::now();
        for i in 0..n {
            w.write_frame(0, T0 + i, &frame, IN, None).unwrap();
        }
        w.flush().unwrap();
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "{label}: {:.0} ns/frame, {:.0} MB/s of frames",
            s * 1e9 / n as f64,
            w.frame_bytes_written() as f64 / s / 1e6
        );
    }
    time("io::sink", io::sink());
    time("Vec<u8>", Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("t.pcapng")).unwrap();
    time(
        "BufWriter<File> 64 KiB",
        io::BufWriter::with_capacity(1 << 16, file),
    );
}
