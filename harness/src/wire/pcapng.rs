//! pcapng traces of the lab's segments: a writer for the switch's per-frame path and a small
//! reader for our tests and for re-reading traces.
//!
//! One file is one section; each switch port is one interface (LINKTYPE_ETHERNET, nanosecond
//! timestamps), added when the port connects, so interfaces may appear after packets of other
//! ports. Each frame is one Enhanced Packet Block with its direction in `epb_flags` and, when a
//! fault rule dropped or delayed it, a comment naming the rule.
//!
//! Everything is little-endian (draft-ietf-opsawg-pcapng; block and option codes below). The
//! writer adds no host-dependent options (no `shb_os`, `shb_hardware`), so the same run writes
//! the same bytes wherever it runs.

use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;

const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_HARDWARE: u16 = 2;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;
const EPB_FLAGS: u16 = 2;

/// `if_tsresol` when the option is absent: microseconds.
const DEFAULT_TSRESOL: u8 = 6;
/// Ours: 10^-9 s.
const NANOSECONDS: u8 = 9;

/// Block type, total length, ..., total length again.
const BLOCK_OVERHEAD: usize = 12;
/// The EPB's fixed fields after type and length: interface, timestamp (2), captured and
/// original length.
const EPB_FIXED: usize = 20;

/// Which way a frame crossed the interface (the switch port) it is recorded on, as the two low
/// bits of `epb_flags`: inbound (01) arrived at the switch through the port, outbound (10) left
/// the switch through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    fn flags(self) -> u32 {
        match self {
            Direction::Inbound => 0b01,
            Direction::Outbound => 0b10,
        }
    }

    /// 00 (unknown) and 11 (not defined) have no direction.
    fn from_flags(flags: u32) -> Option<Self> {
        match flags & 0b11 {
            0b01 => Some(Direction::Inbound),
            0b10 => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Writes one pcapng section into `W`.
///
/// Each block is assembled in a buffer the writer keeps and reuses, then handed to `W` with a
/// single `write_all`, so a caller's `BufWriter` sees one copy per block and the per-frame path
/// allocates nothing once the buffer has grown to the largest frame. Bad arguments (an unknown
/// interface, a string longer than an option can hold) are refused before anything is written.
/// If `W` fails, a partial block may be in the output; later blocks would follow garbage and make
/// the rest of the file unreadable, so the writer refuses every later block.
pub struct Writer<W: Write> {
    out: W,
    buf: Vec<u8>,
    interfaces: u32,
    frames: u64,
    frame_bytes: u64,
    bytes: u64,
    failed: bool,
}

impl<W: Write> Writer<W> {
    /// Starts a section (byte order, version 1.0, length unknown) naming `application` as the
    /// writer (`shb_userappl`; omitted when empty).
    pub fn new(out: W, application: &str) -> io::Result<Self> {
        check_option_len("application", application)?;
        let mut w = Writer {
            out,
            buf: Vec::with_capacity(2048),
            interfaces: 0,
            frames: 0,
            frame_bytes: 0,
            bytes: 0,
            failed: false,
        };
        let options = string_option_len(application) + 4;
        let total = BLOCK_OVERHEAD + 16 + options;
        let b = &mut w.buf;
        put_u32(b, SHB);
        put_u32(b, total as u32);
        put_u32(b, BYTE_ORDER_MAGIC);
        put_u16(b, 1);
        put_u16(b, 0);
        // Section length: not known while writing (and a trace is appended to as it goes).
        b.extend_from_slice(&(-1i64).to_le_bytes());
        put_string_option(b, SHB_USERAPPL, application);
        put_option(b, OPT_ENDOFOPT, &[]);
        put_u32(b, total as u32);
        debug_assert_eq!(b.len(), total);
        w.emit()?;
        Ok(w)
    }

    /// Describes an Ethernet interface (a switch port) and returns its id for
    /// [`Writer::write_frame`]. Ids count from 0 in the order interfaces are added. Empty
    /// `name` or `description` are left out.
    pub fn add_interface(&mut self, name: &str, description: &str) -> io::Result<u32> {
        self.check_usable()?;
        check_option_len("interface name", name)?;
        check_option_len("interface description", description)?;
        let id = self.interfaces;
        let next = id
            .checked_add(1)
            .ok_or_else(|| invalid("too many interfaces".to_string()))?;
        // if_tsresol: one byte of value, padded to 4.
        let options = string_option_len(name) + string_option_len(description) + 8 + 4;
        let total = BLOCK_OVERHEAD + 8 + options;
        let b = &mut self.buf;
        b.clear();
        put_u32(b, IDB);
        put_u32(b, total as u32);
        put_u16(b, LINKTYPE_ETHERNET);
        put_u16(b, 0);
        // Snaplen 0: no limit; the switch records every frame whole.
        put_u32(b, 0);
        put_string_option(b, IF_NAME, name);
        put_string_option(b, IF_DESCRIPTION, description);
        put_option(b, IF_TSRESOL, &[NANOSECONDS]);
        put_option(b, OPT_ENDOFOPT, &[]);
        put_u32(b, total as u32);
        debug_assert_eq!(b.len(), total);
        self.emit()?;
        self.interfaces = next;
        Ok(id)
    }

    /// Records `frame` (whole: captured length = original length) as seen on `interface` at
    /// `timestamp_ns` since the Unix epoch. `comment` (`opt_comment`) says what a fault rule
    /// did to it; an empty comment is left out.
    pub fn write_frame(
        &mut self,
        interface: u32,
        timestamp_ns: u64,
        frame: &[u8],
        direction: Direction,
        comment: Option<&str>,
    ) -> io::Result<()> {
        self.check_usable()?;
        if interface >= self.interfaces {
            return Err(invalid(format!(
                "interface {interface} was not added (the section has {})",
                self.interfaces
            )));
        }
        let comment = comment.unwrap_or("");
        check_option_len("comment", comment)?;
        // epb_flags (4 + 4) and opt_endofopt (4).
        let options = string_option_len(comment) + 8 + 4;
        let total =
            (BLOCK_OVERHEAD + EPB_FIXED + options) as u64 + frame.len() as u64 + pad4(frame.len()) as u64;
        if total > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "a {}-byte frame does not fit in a block",
                frame.len()
            )));
        }
        let total = total as usize;
        let b = &mut self.buf;
        b.clear();
        b.reserve(total);
        put_u32(b, EPB);
        put_u32(b, total as u32);
        put_u32(b, interface);
        put_u32(b, (timestamp_ns >> 32) as u32);
        put_u32(b, timestamp_ns as u32);
        put_u32(b, frame.len() as u32);
        put_u32(b, frame.len() as u32);
        put_padded(b, frame);
        put_string_option(b, OPT_COMMENT, comment);
        put_option(b, EPB_FLAGS, &direction.flags().to_le_bytes());
        put_option(b, OPT_ENDOFOPT, &[]);
        put_u32(b, total as u32);
        debug_assert_eq!(b.len(), total);
        self.emit()?;
        self.frames += 1;
        self.frame_bytes += frame.len() as u64;
        Ok(())
    }

    /// Flushes `W`.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The inner writer. The writer holds no data of its own (every block went to `W` whole),
    /// so nothing is lost; flushing `W` is the caller's business.
    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Interfaces added so far (also the next interface's id).
    pub fn interfaces(&self) -> u32 {
        self.interfaces
    }

    /// Frames written (Enhanced Packet Blocks).
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    /// The frames' own bytes, without pcapng framing.
    pub fn frame_bytes_written(&self) -> u64 {
        self.frame_bytes
    }

    /// Every byte handed to `W`, headers included: the file's length once flushed.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier write to this pcapng file failed"));
        }
        Ok(())
    }

    fn emit(&mut self) -> io::Result<()> {
        if let Err(e) = self.out.write_all(&self.buf) {
            self.failed = true;
            return Err(e);
        }
        self.bytes += self.buf.len() as u64;
        Ok(())
    }
}

impl<W: Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("interfaces", &self.interfaces)
            .field("frames", &self.frames)
            .field("bytes", &self.bytes)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// An option's length field is 16 bits.
fn check_option_len(what: &str, s: &str) -> io::Result<()> {
    if s.len() > u16::MAX as usize {
        return Err(invalid(format!(
            "{what} is {} bytes; pcapng options hold at most {}",
            s.len(),
            u16::MAX
        )));
    }
    Ok(())
}

fn pad4(n: usize) -> usize {
    n.wrapping_neg() & 3
}

/// Bytes a string option takes, 0 when it is left out for being empty.
fn string_option_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        4 + s.len() + pad4(s.len())
    }
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_padded(b: &mut Vec<u8>, data: &[u8]) {
    b.extend_from_slice(data);
    b.extend_from_slice(&[0; 3][..pad4(data.len())]);
}

/// `value` must fit in 16 bits (checked by the callers before the block is started).
fn put_option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    put_u16(b, code);
    put_u16(b, value.len() as u16);
    put_padded(b, value);
}

fn put_string_option(b: &mut Vec<u8>, code: u16, s: &str) {
    if !s.is_empty() {
        put_option(b, code, s.as_bytes());
    }
}

/// One block of a pcapng file, borrowing from the bytes it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block<'a> {
    Section(Section<'a>),
    Interface(Interface<'a>),
    Packet(Packet<'a>),
    /// A block this reader does not interpret (statistics, name resolution, custom...).
    Other {
        block_type: u32,
    },
}

/// A Section Header Block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    pub application: Option<&'a str>,
    pub os: Option<&'a str>,
    pub hardware: Option<&'a str>,
}

/// An Interface Description Block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface<'a> {
    pub link_type: u16,
    /// 0: no limit.
    pub snaplen: u32,
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    /// `if_tsresol` as stored (6, microseconds, when absent).
    pub tsresol: u8,
}

/// An Enhanced Packet Block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The interface's id within its section.
    pub interface: u32,
    /// Since the Unix epoch, converted from the interface's resolution and offset.
    pub timestamp_ns: u64,
    /// The captured bytes.
    pub data: &'a [u8],
    /// The frame's length on the wire (more than `data.len()` if it was cut short).
    pub original_len: u32,
    /// The first `opt_comment`.
    pub comment: Option<&'a str>,
    /// `None` when `epb_flags` is absent or gives no direction.
    pub direction: Option<Direction>,
}

/// Why a pcapng file could not be read; `offset` is the byte where the offending block starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not a pcapng file: it does not start with a section header block")]
    NotPcapng,
    #[error("block at byte {offset}: the file ends inside it")]
    Truncated { offset: usize },
    #[error("block at byte {offset}: bad length {length} (at least 12 and a multiple of 4)")]
    BadLength { offset: usize, length: u32 },
    #[error("block at byte {offset}: the trailing length {trailer} differs from the leading {length}")]
    TrailerMismatch {
        offset: usize,
        length: u32,
        trailer: u32,
    },
    #[error("section at byte {offset}: big-endian sections are not supported")]
    BigEndian { offset: usize },
    #[error("section at byte {offset}: bad byte-order magic {magic:#010x}")]
    BadMagic { offset: usize, magic: u32 },
    #[error("section at byte {offset}: unsupported version {major}.{minor}")]
    Version { offset: usize, major: u16, minor: u16 },
    #[error("block at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("packet at byte {offset}: interface {interface} was not described (the section has {count})")]
    UnknownInterface {
        offset: usize,
        interface: u32,
        count: usize,
    },
    #[error("packet at byte {offset}: the timestamp does not fit in 64 bits of nanoseconds since 1970")]
    Timestamp { offset: usize },
}

/// Every block of `bytes`, or the first error. An empty input has no blocks.
pub fn read_blocks(bytes: &[u8]) -> Result<Vec<Block<'_>>, ReadError> {
    blocks(bytes).collect()
}

/// The blocks of `bytes` one by one; after an error the iterator ends.
pub fn blocks(bytes: &[u8]) -> Blocks<'_> {
    Blocks {
        bytes,
        pos: 0,
        interfaces: Vec::new(),
        done: false,
    }
}

/// Iterator over the blocks of a pcapng file; see [`blocks`].
pub struct Blocks<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The current section's interfaces, in id order: what their packets' timestamps mean.
    interfaces: Vec<Clock>,
    done: bool,
}

/// How an interface's timestamps convert to nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Clock {
    tsresol: u8,
    offset_s: i64,
}

impl<'a> Iterator for Blocks<'a> {
    type Item = Result<Block<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.bytes.len() {
            return None;
        }
        let r = self.block();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

impl<'a> Blocks<'a> {
    fn block(&mut self) -> Result<Block<'a>, ReadError> {
        let offset = self.pos;
        let rest = &self.bytes[offset..];
        let truncated = ReadError::Truncated { offset };
        let block_type = u32_at(rest, 0).ok_or(truncated.clone())?;
        if offset == 0 && block_type != SHB {
            return Err(ReadError::NotPcapng);
        }
        if block_type == SHB {
            // The magic says how to read the length, so it comes first.
            match u32_at(rest, 8).ok_or(truncated.clone())? {
                BYTE_ORDER_MAGIC => {}
                m if m.swap_bytes() == BYTE_ORDER_MAGIC => return Err(ReadError::BigEndian { offset }),
                magic => return Err(ReadError::BadMagic { offset, magic }),
            }
        }
        let length = u32_at(rest, 4).ok_or(truncated.clone())?;
        if length < BLOCK_OVERHEAD as u32 || length % 4 != 0 {
            return Err(ReadError::BadLength { offset, length });
        }
        let block = rest.get(..length as usize).ok_or(truncated)?;
        let trailer = u32_at(block, block.len() - 4).unwrap_or(0);
        if trailer != length {
            return Err(ReadError::TrailerMismatch {
                offset,
                length,
                trailer,
            });
        }
        let body = &block[8..block.len() - 4];
        let parsed = match block_type {
            SHB => self.section(offset, body)?,
            IDB => self.interface(offset, body)?,
            EPB => self.packet(offset, body)?,
            _ => Block::Other { block_type },
        };
        self.pos += block.len();
        Ok(parsed)
    }

    fn section(&mut self, offset: usize, body: &'a [u8]) -> Result<Block<'a>, ReadError> {
        let too_short = ReadError::Malformed {
            offset,
            what: "section header shorter than its fields",
        };
        let major = u16_at(body, 4).ok_or(too_short.clone())?;
        let minor = u16_at(body, 6).ok_or(too_short.clone())?;
        if major != 1 {
            return Err(ReadError::Version { offset, major, minor });
        }
        let opts = body.get(16..).ok_or(too_short)?;
        let mut s = Section {
            application: None,
            os: None,
            hardware: None,
        };
        for_options(offset, opts, |code, value| {
            let slot = match code {
                SHB_USERAPPL => &mut s.application,
                SHB_OS => &mut s.os,
                SHB_HARDWARE => &mut s.hardware,
                _ => return Ok(()),
            };
            set_string(offset, slot, value)
        })?;
        self.interfaces.clear();
        Ok(Block::Section(s))
    }

    fn interface(&mut self, offset: usize, body: &'a [u8]) -> Result<Block<'a>, ReadError> {
        let too_short = ReadError::Malformed {
            offset,
            what: "interface description shorter than its fields",
        };
        let link_type = u16_at(body, 0).ok_or(too_short.clone())?;
        let snaplen = u32_at(body, 4).ok_or(too_short.clone())?;
        let opts = body.get(8..).ok_or(too_short)?;
        let mut i = Interface {
            link_type,
            snaplen,
            name: None,
            description: None,
            tsresol: DEFAULT_TSRESOL,
        };
        let mut offset_s = 0;
        for_options(offset, opts, |code, value| match code {
            IF_NAME => set_string(offset, &mut i.name, value),
            IF_DESCRIPTION => set_string(offset, &mut i.description, value),
            IF_TSRESOL => match value {
                [r] => {
                    i.tsresol = *r;
                    Ok(())
                }
                _ => Err(ReadError::Malformed {
                    offset,
                    what: "if_tsresol is not 1 byte",
                }),
            },
            IF_TSOFFSET => match value.try_into() {
                Ok(v) => {
                    offset_s = i64::from_le_bytes(v);
                    Ok(())
                }
                Err(_) => Err(ReadError::Malformed {
                    offset,
                    what: "if_tsoffset is not 8 bytes",
                }),
            },
            _ => Ok(()),
        })?;
        self.interfaces.push(Clock {
            tsresol: i.tsresol,
            offset_s,
        });
        Ok(Block::Interface(i))
    }

    fn packet(&mut self, offset: usize, body: &'a [u8]) -> Result<Block<'a>, ReadError> {
        let too_short = ReadError::Malformed {
            offset,
            what: "enhanced packet shorter than its fields",
        };
        let field = |at| u32_at(body, at).ok_or(too_short.clone());
        let interface = field(0)?;
        let raw_ts = (u64::from(field(4)?) << 32) | u64::from(field(8)?);
        let captured = field(12)? as usize;
        let original_len = field(16)?;
        let clock = *self
            .interfaces
            .get(interface as usize)
            .ok_or(ReadError::UnknownInterface {
                offset,
                interface,
                count: self.interfaces.len(),
            })?;
        let timestamp_ns = to_ns(raw_ts, clock).ok_or(ReadError::Timestamp { offset })?;
        let overruns = ReadError::Malformed {
            offset,
            what: "captured length overruns the block",
        };
        // Checked: on a 32-bit host a hostile length could overflow usize.
        let data_end = EPB_FIXED.checked_add(captured).ok_or(overruns.clone())?;
        let data = body.get(EPB_FIXED..data_end).ok_or(overruns.clone())?;
        let opts_start = data_end.checked_add(pad4(captured)).ok_or(overruns.clone())?;
        let opts = body.get(opts_start..).ok_or(overruns)?;
        let mut p = Packet {
            interface,
            timestamp_ns,
            data,
            original_len,
            comment: None,
            direction: None,
        };
        for_options(offset, opts, |code, value| match code {
            OPT_COMMENT => set_string(offset, &mut p.comment, value),
            EPB_FLAGS => match value.try_into() {
                Ok(v) => {
                    p.direction = Direction::from_flags(u32::from_le_bytes(v));
                    Ok(())
                }
                Err(_) => Err(ReadError::Malformed {
                    offset,
                    what: "epb_flags is not 4 bytes",
                }),
            },
            _ => Ok(()),
        })?;
        Ok(Block::Packet(p))
    }
}

/// Calls `f` with each option's code and value until `opt_endofopt` or the end of `opts`.
fn for_options<'a>(
    offset: usize,
    mut opts: &'a [u8],
    mut f: impl FnMut(u16, &'a [u8]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let overruns = ReadError::Malformed {
        offset,
        what: "an option overruns its block",
    };
    while !opts.is_empty() {
        let (Some(code), Some(len)) = (u16_at(opts, 0), u16_at(opts, 2)) else {
            return Err(overruns);
        };
        if code == OPT_ENDOFOPT {
            break;
        }
        let len = len as usize;
        let value = opts.get(4..4 + len).ok_or(overruns.clone())?;
        f(code, value)?;
        opts = opts.get(4 + len + pad4(len)..).ok_or(overruns.clone())?;
    }
    Ok(())
}

/// Keeps the first occurrence: `opt_comment` may repeat, the others should not.
fn set_string<'a>(offset: usize, slot: &mut Option<&'a str>, value: &'a [u8]) -> Result<(), ReadError> {
    if slot.is_none() {
        let s = std::str::from_utf8(value).map_err(|_| ReadError::Malformed {
            offset,
            what: "a string option is not UTF-8",
        })?;
        *slot = Some(s);
    }
    Ok(())
}

/// `raw` ticks of 10^-n s (or 2^-n s when the high bit of `tsresol` is set) plus the
/// interface's offset, in nanoseconds; `None` if that is before 1970 or past u64.
fn to_ns(raw: u64, clock: Clock) -> Option<u64> {
    let raw = u128::from(raw);
    let exp = u32::from(clock.tsresol & 0x7f);
    let ns = if clock.tsresol & 0x80 != 0 {
        // exp ≤ 127, so the shift is in range; raw·10^9 < 2^94 cannot overflow.
        (raw * 1_000_000_000) >> exp
    } else if exp <= 9 {
        raw * 10u128.pow(9 - exp)
    } else {
        10u128.checked_pow(exp - 9).map_or(0, |d| raw / d)
    };
    let total = i128::try_from(ns).ok()? + i128::from(clock.offset_s) * 1_000_000_000;
    u64::try_from(total).ok()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests;
