//! A few frames cut out of a pcapng trace, with a little context, into a small pcapng that
//! Wireshark and tshark open: the same interfaces (switch ports) in the same order, each kept
//! frame with its time, direction and comment, and a comment saying which frame of the
//! original it was.
//!
//! Architecture invariant: pure (bytes in, bytes out) and bounded: the input is read with
//! [`pcapng::blocks`], which never panics and never reads past a block; a garbled or hostile
//! file is a [`CutError`], never a panic or a half-written cut.

use std::collections::{BTreeMap, BTreeSet};

use crate::wire::pcapng::{self, Block, Direction, Writer};

/// Why a trace could not be cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutError {
    #[error("{0}")]
    Read(#[from] pcapng::ReadError),
    #[error("it holds more than one section; only a single-section trace (as the switch writes) can be cut")]
    Sections,
    #[error("frame {0} has no direction (epb_flags): not a trace the switch wrote")]
    NoDirection(u64),
    #[error("frame {0} could not be written: {1}")]
    Write(u64, String),
}

/// A cut: the new file's bytes and where each kept frame came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub bytes: Vec<u8>,
    /// Original frame number → its number in the cut (both 1-based).
    pub map: BTreeMap<u64, u64>,
    /// Every kept frame by its number in the cut.
    pub frames: Vec<CutFrame>,
    /// Frames in the original.
    pub original_frames: u64,
    /// Wanted frames the original does not have.
    pub missing: Vec<u64>,
}

/// One frame of a cut, for the summary's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutFrame {
    pub cut: u64,
    pub original: u64,
    pub timestamp_ns: u64,
    /// The interface (switch port, i.e. guest) it was recorded on.
    pub port: String,
    pub direction: Direction,
    /// Whether it was asked for (not only context).
    pub wanted: bool,
}

/// The frames `wanted` of `bytes` and up to `context` frames either side of each, in order,
/// each once. `label` names the original in the frames' comments (`frame 256 of <label>`).
pub fn cut(bytes: &[u8], wanted: &BTreeSet<u64>, context: u64, label: &str) -> Result<Cut, CutError> {
    // First pass: how many frames, so context can be clipped and missing frames named.
    let mut total = 0u64;
    let mut sections = 0;
    for block in pcapng::blocks(bytes) {
        match block? {
            Block::Section(_) => sections += 1,
            Block::Packet(_) => total += 1,
            _ => {}
        }
    }
    if sections > 1 {
        return Err(CutError::Sections);
    }
    let mut keep = BTreeSet::new();
    for &n in wanted.iter().filter(|&&n| n >= 1 && n <= total) {
        keep.extend(n.saturating_sub(context).max(1)..=n.saturating_add(context).min(total));
    }
    let missing = wanted.iter().copied().filter(|&n| n < 1 || n > total).collect();

    let application = "faultline (frames cut from a trace)";
    let mut w = Writer::new(Vec::new(), application).map_err(|e| CutError::Write(0, e.to_string()))?;
    let mut ports: Vec<String> = Vec::new();
    let mut number = 0u64;
    let mut map = BTreeMap::new();
    let mut frames = Vec::new();
    for block in pcapng::blocks(bytes) {
        match block? {
            Block::Interface(i) => {
                // Every interface, kept or not, so that interface ids stay the original's.
                let name = i.name.unwrap_or("");
                w.add_interface(name, i.description.unwrap_or(""))
                    .map_err(|e| CutError::Write(number, e.to_string()))?;
                ports.push(if name.is_empty() { "?".into() } else { name.into() });
            }
            Block::Packet(p) => {
                number += 1;
                if !keep.contains(&number) {
                    continue;
                }
                let direction = p.direction.ok_or(CutError::NoDirection(number))?;
                let ours = format!("frame {number} of {label}");
                let comment = match p.comment {
                    Some(c) => format!("{ours}; {c}"),
                    None => ours,
                };
                w.write_frame(p.interface, p.timestamp_ns, p.data, direction, Some(&comment))
                    .map_err(|e| CutError::Write(number, e.to_string()))?;
                let c = w.frames_written();
                map.insert(number, c);
                frames.push(CutFrame {
                    cut: c,
                    original: number,
                    timestamp_ns: p.timestamp_ns,
                    port: ports
                        .get(p.interface as usize)
                        .cloned()
                        .unwrap_or_else(|| "?".into()),
                    direction,
                    wanted: wanted.contains(&number),
                });
            }
            _ => {}
        }
    }
    Ok(Cut {
        bytes: w.into_inner(),
        map,
        frames,
        original_frames: total,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace of `n` frames on two ports; frame k's payload is k as 4 bytes (padded to 60).
    fn trace(n: u32) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), "test").unwrap();
        let a = w.add_interface("filer", "").unwrap();
        let b = w.add_interface("imap1", "port 2").unwrap();
        for k in 1..=n {
            let mut frame = vec![0u8; 60];
            frame[..4].copy_from_slice(&k.to_be_bytes());
            let (port, dir) = if k % 2 == 0 {
                (a, Direction::Inbound)
            } else {
                (b, Direction::Outbound)
            };
            let comment = (k == 5).then_some("dropped toward imap1 by rule r (#1)");
            w.write_frame(port, 1_000_000_000 * u64::from(k), &frame, dir, comment)
                .unwrap();
        }
        w.into_inner()
    }

    fn packets(bytes: &[u8]) -> Vec<(u32, u64, Vec<u8>, Option<String>)> {
        pcapng::read_blocks(bytes)
            .unwrap()
            .into_iter()
            .filter_map(|b| match b {
                Block::Packet(p) => Some((
                    p.interface,
                    p.timestamp_ns,
                    p.data.to_vec(),
                    p.comment.map(str::to_string),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn context_around_each_wanted_frame_is_kept_once_in_order() {
        let src = trace(30);
        let c = cut(&src, &BTreeSet::from([5, 7, 20]), 3, "wire/lan.pcapng").unwrap();
        let kept: Vec<u64> = c.frames.iter().map(|f| f.original).collect();
        assert_eq!(kept, [2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 18, 19, 20, 21, 22, 23]);
        assert_eq!(c.map[&5], 4);
        assert_eq!(c.map[&20], 13);
        assert_eq!(c.original_frames, 30);
        assert!(c.missing.is_empty());
        // The cut is a pcapng of those frames, bytes and times unchanged, each saying where it
        // came from; a rule's comment stays.
        let p = packets(&c.bytes);
        assert_eq!(p.len(), 16);
        assert_eq!(p[3].2[..4], 5u32.to_be_bytes());
        assert_eq!(p[3].1, 5_000_000_000);
        assert_eq!(p[3].0, 1, "interface ids are the original's");
        assert_eq!(
            p[3].3.as_deref(),
            Some("frame 5 of wire/lan.pcapng; dropped toward imap1 by rule r (#1)")
        );
        assert!(c.frames.iter().filter(|f| f.wanted).count() == 3);
        assert_eq!(c.frames[3].port, "imap1");
    }

    #[test]
    fn context_is_clipped_at_both_ends_and_absent_frames_are_named() {
        let src = trace(4);
        let c = cut(&src, &BTreeSet::from([0, 1, 4, 9]), 3, "x").unwrap();
        assert_eq!(c.frames.len(), 4);
        assert_eq!(c.missing, [0, 9]);
    }

    #[test]
    fn a_garbled_trace_is_an_error_never_a_panic() {
        let src = trace(12);
        let wanted = BTreeSet::from([3, 9]);
        // Every truncation, and a byte flipped at every position.
        for len in 0..src.len() {
            let _ = cut(&src[..len], &wanted, 3, "x");
        }
        for i in 0..src.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = src.clone();
                b[i] ^= flip;
                let _ = cut(&b, &wanted, u64::MAX, "x");
            }
        }
        assert!(matches!(
            cut(b"not a pcapng", &wanted, 3, "x"),
            Err(CutError::Read(_))
        ));
        assert!(cut(&src[..src.len() - 1], &wanted, 3, "x").is_err());
    }

    #[test]
    fn a_second_section_is_refused() {
        let mut src = trace(2);
        src.extend(trace(2));
        assert_eq!(cut(&src, &BTreeSet::from([1]), 1, "x"), Err(CutError::Sections));
    }
}
