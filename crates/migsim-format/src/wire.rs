//! Primitive encodings of the QEMU stream: big-endian integers, short
//! strings (u8 length + bytes, no NUL), and a bounded, buffered reading
//! cursor that turns every short read into a [`LoadError::Truncated`].

use crate::error::LoadError;
use crate::io::MigFile;

/// Appends primitives to a byte buffer.
#[derive(Default, Debug)]
pub struct Encoder {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Encoder {
    /// Empty encoder.
    pub fn new() -> Self {
        Self::default()
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// be16.
    pub fn be16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// be32.
    pub fn be32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// be64.
    pub fn be64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Raw bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// Short string: u8 length then the bytes. Names longer than 255 bytes
    /// cannot be encoded; callers validate names up front.
    pub fn short_str(&mut self, s: &str) -> &mut Self {
        assert!(s.len() <= 255, "short string longer than 255 bytes: {s:?}");
        self.u8(s.len() as u8).bytes(s.as_bytes())
    }
    /// Size in bytes of a short string.
    pub fn short_str_len(s: &str) -> u64 {
        1 + s.len() as u64
    }
}

const WINDOW: usize = 64 * 1024;

/// A reading position in a [`MigFile`], buffered, bounded by the file's
/// length. Every read either returns the bytes or a `Truncated` error
/// naming what was being read; nothing is allocated beyond what the
/// remaining file can hold.
pub(crate) struct Cursor<'f, F: MigFile + ?Sized> {
    file: &'f F,
    pos: u64,
    len: u64,
    win_start: u64,
    win: Vec<u8>,
}

impl<'f, F: MigFile + ?Sized> Cursor<'f, F> {
    /// A cursor at `pos`.
    pub fn new(file: &'f F, pos: u64) -> Self {
        Self {
            file,
            pos,
            len: file.len(),
            win_start: 0,
            win: Vec::new(),
        }
    }

    fn truncated(&self, what: &'static str, needed: u64) -> LoadError {
        LoadError::Truncated {
            what,
            offset: self.pos,
            needed,
            file_len: self.len,
        }
    }

    /// Current absolute offset.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// File length.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Bytes left before the end of the file.
    pub fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Move to an absolute offset (may be past the end; the next read
    /// then fails as truncated).
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// The underlying file.
    pub fn file(&self) -> &'f F {
        self.file
    }

    /// Whether the next `n` bytes are in the window already.
    fn in_window(&self, n: usize) -> bool {
        self.pos >= self.win_start && self.pos + n as u64 <= self.win_start + self.win.len() as u64
    }

    fn fill(&mut self, what: &'static str, n: usize) -> Result<&[u8], LoadError> {
        if self.remaining() < n as u64 {
            return Err(self.truncated(what, n as u64));
        }
        if let Some(here) = self.file.slice_at(self.pos, n) {
            // In memory already: the bytes in place, no window to fill.
            self.pos += n as u64;
            return Ok(here);
        }
        if !self.in_window(n) {
            let want = n.max(WINDOW).min(self.remaining() as usize);
            self.win.resize(want, 0);
            let got = self.file.read_at(self.pos, &mut self.win)?;
            self.win.truncate(got);
            self.win_start = self.pos;
            if got < n {
                return Err(self.truncated(what, n as u64));
            }
        }
        let start = (self.pos - self.win_start) as usize;
        self.pos += n as u64;
        Ok(&self.win[start..start + n])
    }

    /// Peek one byte without consuming it; `None` at end of file.
    pub fn peek_u8(&mut self) -> Result<Option<u8>, LoadError> {
        if self.remaining() == 0 {
            return Ok(None);
        }
        let b = self.fill("byte", 1)?[0];
        self.pos -= 1;
        Ok(Some(b))
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, LoadError> {
        Ok(self.fill(what, 1)?[0])
    }
    /// be16.
    pub fn be16(&mut self, what: &'static str) -> Result<u16, LoadError> {
        Ok(u16::from_be_bytes(self.fill(what, 2)?.try_into().unwrap()))
    }
    /// be32.
    pub fn be32(&mut self, what: &'static str) -> Result<u32, LoadError> {
        Ok(u32::from_be_bytes(self.fill(what, 4)?.try_into().unwrap()))
    }
    /// be64.
    pub fn be64(&mut self, what: &'static str) -> Result<u64, LoadError> {
        Ok(u64::from_be_bytes(self.fill(what, 8)?.try_into().unwrap()))
    }
    /// Exactly `n` bytes, copied. `n` is checked against the bytes left in
    /// the file before anything is allocated.
    pub fn bytes(&mut self, what: &'static str, n: u64) -> Result<Vec<u8>, LoadError> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        let mut out = vec![0; n as usize];
        self.read_into(what, &mut out)?;
        Ok(out)
    }
    /// Exactly `n` bytes as a String (one allocation), or
    /// [`LoadError::NameNotUtf8`] naming `at` (where its field starts).
    pub fn string(&mut self, what: &'static str, at: u64, n: u64) -> Result<String, LoadError> {
        String::from_utf8(self.bytes(what, n)?).map_err(|e| not_utf8(what, at, e.as_bytes()))
    }
    /// Exactly `buf.len()` bytes into `buf`.
    pub fn read_into(&mut self, what: &'static str, buf: &mut [u8]) -> Result<(), LoadError> {
        let n = buf.len();
        if let Some(here) = self.file.slice_at(self.pos, n) {
            buf.copy_from_slice(here);
            self.pos += n as u64;
            return Ok(());
        }
        if self.in_window(n) {
            buf.copy_from_slice(self.fill(what, n)?);
            return Ok(());
        }
        // Bulk data (page contents) not in the window: read straight into
        // `buf` rather than through a window filled for it.
        if (n as u64) > self.remaining() || self.file.read_at(self.pos, buf)? < n {
            return Err(self.truncated(what, n as u64));
        }
        self.pos += n as u64;
        Ok(())
    }
    /// Skip `n` bytes, failing if the file is shorter.
    pub fn skip(&mut self, what: &'static str, n: u64) -> Result<(), LoadError> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        self.pos += n;
        Ok(())
    }
    /// Short string (u8 length + bytes): exactly the bytes in the file, so
    /// a name comes back as the writer wrote it (control characters
    /// included; escaping is for whoever prints it, see [`printable`]).
    /// Bytes that are not UTF-8 are refused with
    /// [`LoadError::NameNotUtf8`]: a lossy decoding could not be given back
    /// byte for byte, and two different names could decode the same
    /// (QEMU's idstrs and vmstate names are ASCII).
    pub fn short_str(&mut self, what: &'static str) -> Result<String, LoadError> {
        let offset = self.pos;
        utf8(what, offset, self.short_bytes(what)?)
    }
    /// A short string's bytes (u8 length + bytes), where they lie or in
    /// the window: for names compared, not kept.
    pub fn short_bytes(&mut self, what: &'static str) -> Result<&[u8], LoadError> {
        let n = self.u8(what)?;
        self.fill(what, usize::from(n))
    }
}

/// `bytes` (a name read at `offset`) as a String, or
/// [`LoadError::NameNotUtf8`].
pub(crate) fn utf8(what: &'static str, offset: u64, bytes: &[u8]) -> Result<String, LoadError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(not_utf8(what, offset, bytes)),
    }
}

/// [`LoadError::NameNotUtf8`] for the name `bytes` read at `offset`.
fn not_utf8(what: &'static str, offset: u64, bytes: &[u8]) -> LoadError {
    LoadError::NameNotUtf8 {
        what,
        offset,
        name: printable(&bytes[..bytes.len().min(crate::error::NAME_SHOWN)]),
        len: bytes.len() as u64,
    }
}

/// Bytes from a file as text fit for a terminal or an error message:
/// invalid UTF-8 becomes U+FFFD, control characters are escaped
/// (`\u{1b}`). The reader's names are not escaped; [`LoadError`]'s texts
/// escape the names they embed with this.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if !text.chars().any(char::is_control) {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ReadAtOnly;

    #[test]
    fn short_str_len_counts_the_length_byte() {
        for s in ["", "ram", "pc.ram", &"x".repeat(255)] {
            let mut e = Encoder::new();
            e.short_str(s);
            assert_eq!(Encoder::short_str_len(s), e.buf.len() as u64, "{s:?}");
        }
    }

    /// Bytes 0..len where every aligned be32 holds its own index, shifted by
    /// one pad byte so reads straddle the cursor's 64 KiB windows.
    fn counters(n: u32) -> Vec<u8> {
        let mut f = vec![0xAA];
        for i in 0..n {
            f.extend_from_slice(&i.to_be_bytes());
        }
        f
    }

    #[test]
    fn cursor_reads_the_right_bytes_across_window_boundaries_and_seeks() {
        let n = 60_000u32; // 240 KiB: several windows
        let f = counters(n);
        // Both ways a cursor reads: in place (the bytes are in memory) and
        // through its window (a file that only has read_at).
        let windowed = ReadAtOnly(&f);
        for file in [&f as &dyn MigFile, &windowed] {
            let mut c = Cursor::new(file, 1);
            assert_eq!(c.file_len(), f.len() as u64);
            for i in 0..n {
                assert_eq!(c.pos(), 1 + 4 * u64::from(i));
                assert_eq!(c.remaining(), f.len() as u64 - c.pos());
                match i % 3 {
                    0 => assert_eq!(c.be32("x").unwrap(), i),
                    1 => {
                        let hi = c.be16("x").unwrap();
                        let lo = c.be16("x").unwrap();
                        assert_eq!((u32::from(hi) << 16) | u32::from(lo), i);
                    }
                    _ => {
                        assert_eq!(c.peek_u8().unwrap(), Some(i.to_be_bytes()[0]));
                        assert_eq!(c.u8("x").unwrap(), i.to_be_bytes()[0]);
                        assert_eq!(c.bytes("x", 3).unwrap(), i.to_be_bytes()[1..]);
                    }
                }
            }
            assert_eq!(c.remaining(), 0);
            assert_eq!(c.peek_u8().unwrap(), None);
            // Seek back before the current window, then forward again.
            c.seek(1 + 4 * 7);
            assert_eq!(c.be64("x").unwrap(), (7u64 << 32) | 8);
            c.seek(1 + 4 * 40_000);
            assert_eq!(c.be32("x").unwrap(), 40_000);
            c.seek(1 + 4 * 20_000);
            assert_eq!(c.be32("x").unwrap(), 20_000);
            // skip moves exactly.
            c.skip("x", 4 * 99).unwrap();
            assert_eq!(c.be32("x").unwrap(), 20_100);
            // A read larger than the window.
            let mut big = vec![0; 100_000];
            c.seek(1 + 4 * 1000);
            c.read_into("x", &mut big).unwrap();
            assert_eq!(big[..], f[4001..104_001]);
            assert_eq!(c.pos(), 104_001);
            assert_eq!(c.be32("x").unwrap(), 26_000);
        }
    }

    #[test]
    fn cursor_reports_truncation_exactly_at_the_end() {
        let f = counters(40_000); // 160_001 bytes
        let len = f.len() as u64;
        // Both ways a cursor reads: in place (the bytes are in memory) and
        // through its window (a file that only has read_at).
        let windowed = ReadAtOnly(&f);
        for file in [&f as &dyn MigFile, &windowed] {
            let truncated = |r: Result<(), LoadError>, at: u64, needed: u64| match r {
                Err(LoadError::Truncated {
                    what,
                    offset,
                    needed: n,
                    file_len,
                }) => {
                    assert_eq!((what, offset, n, file_len), ("t", at, needed, len));
                }
                other => panic!("expected Truncated at {at}, got {other:?}"),
            };
            for left in [0u64, 1, 3, 7, 70_000, 100_000] {
                let at = len - left;
                let mut c = Cursor::new(file, at);
                // Exactly what is left: fine.
                c.skip("t", left).unwrap();
                assert_eq!(c.pos(), len);
                let mut c = Cursor::new(file, at);
                assert_eq!(c.bytes("t", left).unwrap(), f[at as usize..]);
                let mut c = Cursor::new(file, at);
                let mut buf = vec![0; left as usize];
                c.read_into("t", &mut buf).unwrap();
                assert_eq!(buf, f[at as usize..]);
                // One more: refused, and the position does not move.
                let mut c = Cursor::new(file, at);
                truncated(c.skip("t", left + 1), at, left + 1);
                truncated(c.bytes("t", left + 1).map(drop), at, left + 1);
                let mut buf = vec![0; left as usize + 1];
                truncated(c.read_into("t", &mut buf), at, left + 1);
                assert_eq!(c.pos(), at);
                if left < 8 {
                    truncated(c.be64("t").map(drop), at, 8);
                }
                if left < 4 {
                    truncated(c.be32("t").map(drop), at, 4);
                }
                if left < 2 {
                    truncated(c.be16("t").map(drop), at, 2);
                }
                if left == 0 {
                    truncated(c.u8("t").map(drop), at, 1);
                }
            }
        }
    }

    #[test]
    fn hostile_names_are_printed_safely() {
        assert_eq!(printable(b"pc.ram"), "pc.ram");
        assert_eq!(printable(b"a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(printable(&[b'x', 0xFF, b'y']), "x\u{FFFD}y");
        assert_eq!(printable(b"a\tb\0c"), "a\\tb\\u{0}c");
    }

    #[test]
    fn short_str_gives_back_the_bytes_of_the_file() {
        // Control characters are the name's own bytes: not escaped here.
        let mut f = vec![5];
        f.extend_from_slice(b"a\tb\0c");
        let mut c = Cursor::new(&f, 0);
        assert_eq!(c.short_str("name").unwrap(), "a\tb\0c");
        assert_eq!(c.pos(), 6);
        // Not UTF-8: refused, with the name made printable in the error.
        let f = vec![3, b'x', 0xFF, b'\n'];
        let mut c = Cursor::new(&f, 0);
        match c.short_str("name") {
            Err(
                e @ LoadError::NameNotUtf8 {
                    what: "name",
                    offset: 0,
                    ..
                },
            ) => {
                assert!(e.to_string().contains("x\u{FFFD}\\n"), "{e}")
            }
            other => panic!("expected NameNotUtf8, got {other:?}"),
        }
    }
}
