//! Bounds-checked reading of untrusted bytes: a cursor ([`Reader`]) that answers `None` instead
//! of panicking, and XDR (RFC 4506) on top of it ([`Xdr`]). Shared by the frame parsers and the
//! ONC RPC decoders.
//!
//! Invariant: pure and total. No read goes past the end of its slice, no arithmetic on a
//! position overflows, and a failed read leaves the cursor where it was. The only allocation is
//! [`Xdr::string`]'s copy, bounded by its caller's `max`.

/// A cursor over untrusted bytes: every read is checked and answers `None` past the end, without
/// moving.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let [b] = self.array::<1>()?;
        Some(b)
    }

    pub(crate) fn be16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn be32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn be64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }
}

/// XDR (RFC 4506) on top of [`Reader`]: big-endian words, opaques padded to four bytes, every
/// length bounded by the caller.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Xdr<'a>(Reader<'a>);

impl<'a> Xdr<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Xdr(Reader::new(buf))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.0.be32()
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        Some(self.0.be32()? as i32)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.0.be64()
    }

    /// XDR booleans are words; like Linux, anything but zero is true.
    pub(crate) fn bool(&mut self) -> Option<bool> {
        Some(self.u32()? != 0)
    }

    /// Variable-length opaque of at most `max` bytes, padding included in the read.
    pub(crate) fn opaque(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > max {
            return None;
        }
        self.fixed(len)
    }

    /// Fixed-length opaque of `len` bytes plus padding.
    pub(crate) fn fixed(&mut self, len: usize) -> Option<&'a [u8]> {
        let data = self.0.bytes(len)?;
        self.0.skip(pad4(len))?;
        Some(data)
    }

    pub(crate) fn string(&mut self, max: usize) -> Option<String> {
        Some(String::from_utf8_lossy(self.opaque(max)?).into_owned())
    }
}

pub(crate) fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}
