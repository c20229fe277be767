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
pub struct Cursor<'f, F: MigFile + ?Sized> {
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

    fn fill(&mut self, what: &'static str, n: usize) -> Result<&[u8], LoadError> {
        if self.remaining() < n as u64 {
            return Err(self.truncated(what, n as u64));
        }
        let in_window = self.pos >= self.win_start
            && self.pos + n as u64 <= self.win_start + self.win.len() as u64;
        if !in_window {
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
    /// Exactly `buf.len()` bytes into `buf`.
    pub fn read_into(&mut self, what: &'static str, buf: &mut [u8]) -> Result<(), LoadError> {
        let n = buf.len();
        if n <= WINDOW {
            buf.copy_from_slice(self.fill(what, n)?);
            return Ok(());
        }
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
    /// Short string (u8 length + bytes), decoded lossily as UTF-8 with
    /// control characters escaped, so a hostile name prints safely.
    pub fn short_str(&mut self, what: &'static str) -> Result<String, LoadError> {
        let n = self.u8(what)? as usize;
        Ok(printable(self.fill(what, n)?))
    }
}

/// Bytes from a file as text fit for an error message: invalid UTF-8
/// becomes U+FFFD, control characters are escaped (`\u{1b}`).
pub fn printable(bytes: &[u8]) -> String {
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
