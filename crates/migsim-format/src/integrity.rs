//! The integrity trailer (opt-in): a CRC-32 of every 1 MiB chunk of the
//! stream, written after the vmdesc trailer (and before a durable save's
//! completion mark, [`crate::durable`]), so a reader can refuse a file
//! whose bytes are not the ones written: a page lost or torn by a power
//! loss, a bit flipped on the medium. QEMU's loader stops after the vmdesc
//! trailer and never reads it.
//!
//! The chunks cover the whole stream, from its first byte (the stream
//! offset) to the trailer: headers, block list, bitmaps, page areas (holes
//! count as the zeros they read as), sections, device state and vmdesc.
//! A fixed-ram page area is overwritten in place, so the writer computes
//! the checksums at the end, reading the file back.
//!
//! Byte layout (`at` = the trailer's absolute offset, `n` chunks):
//!
//! ```text
//! at+0      4  be32 version (1)
//! at+4      4  be32 chunk size (1 MiB)
//! at+8      8  be64 covered start (the stream's first byte)
//! at+16     8  be64 chunk count n = ceil((at - start) / chunk size)
//! at+24    4n  be32 CRC-32 (IEEE) of chunk i = [start + i*size, min(start + (i+1)*size, at))
//! at+24+4n  4  be32 CRC-32 of the trailer's bytes before this field
//! at+28+4n  8  b"MIGSIMIT"
//! at+36+4n  8  be64 at
//! ```
//!
//! The trailer ends with its magic and its own offset, so it is found from
//! the end of the file (or from a completion mark), before anything else
//! is read. CRC-32 is `crc32fast`'s (the zlib polynomial; hardware
//! accelerated with PCLMULQDQ on x86_64 and the CRC instructions on
//! aarch64).

use std::io;

use crate::error::LoadError;
use crate::io::MigFile;

/// Bytes a chunk covers.
pub const CHUNK: u64 = 1 << 20;

/// Trailer version written.
pub const VERSION: u32 = 1;

/// Magic near the trailer's end.
pub const MAGIC: &[u8; 8] = b"MIGSIMIT";

/// Bytes of a trailer covering `covered` bytes.
pub fn trailer_len(covered: u64) -> u64 {
    44 + 4 * covered.div_ceil(CHUNK)
}

/// CRC-32 of `file[start..end)` per [`CHUNK`].
fn chunk_crcs<F: MigFile + ?Sized>(
    file: &F,
    start: u64,
    end: u64,
    mut each: impl FnMut(u64, u32) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut buf = vec![0u8; CHUNK.min(end - start) as usize];
    let mut pos = start;
    let mut i = 0;
    while pos < end {
        let n = CHUNK.min(end - pos) as usize;
        let got = file.read_at(pos, &mut buf[..n])?;
        // Past the file's end reads as zeros (a caller checks sizes).
        buf[got..n].fill(0);
        each(i, crc32fast::hash(&buf[..n]))?;
        pos += n as u64;
        i += 1;
    }
    Ok(())
}

/// The trailer for `file[start..at)`, to be written at `at`.
pub fn encode<F: MigFile + ?Sized>(file: &F, start: u64, at: u64) -> io::Result<Vec<u8>> {
    let n = (at - start).div_ceil(CHUNK);
    let mut t = Vec::with_capacity(trailer_len(at - start) as usize);
    t.extend_from_slice(&VERSION.to_be_bytes());
    t.extend_from_slice(&(CHUNK as u32).to_be_bytes());
    t.extend_from_slice(&start.to_be_bytes());
    t.extend_from_slice(&n.to_be_bytes());
    chunk_crcs(file, start, at, |_, c| {
        t.extend_from_slice(&c.to_be_bytes());
        Ok(())
    })
    .map_err(|e| match e {
        LoadError::Io(e) => e,
        e => io::Error::other(e.to_string()),
    })?;
    let own = crc32fast::hash(&t);
    t.extend_from_slice(&own.to_be_bytes());
    t.extend_from_slice(MAGIC);
    t.extend_from_slice(&at.to_be_bytes());
    Ok(t)
}

/// Where a trailer ending at `end` starts, if the 16 bytes before `end`
/// name one.
pub fn find<F: MigFile + ?Sized>(file: &F, end: u64) -> io::Result<Option<u64>> {
    let Some(foot) = end.checked_sub(16) else {
        return Ok(None);
    };
    let mut f = [0u8; 16];
    if file.read_at(foot, &mut f)? != 16 || &f[..8] != MAGIC {
        return Ok(None);
    }
    let at = u64::from_be_bytes(f[8..].try_into().expect("8 bytes"));
    Ok((at < foot).then_some(at))
}

/// The end of the QEMU stream in `file`: before migsim's trailers (the
/// integrity trailer, a durable save's completion mark), if any.
pub fn stream_end<F: MigFile + ?Sized>(file: &F) -> io::Result<u64> {
    let end = crate::durable::find_mark(file)?.unwrap_or(file.len());
    Ok(find(file, end)?.unwrap_or(end))
}

/// Check the trailer at `at`, ending at `end`, for a stream from
/// `stream_start`: its fields, its own CRC, then every chunk. Names the
/// first chunk that differs.
pub fn verify<F: MigFile + ?Sized>(
    file: &F,
    stream_start: u64,
    at: u64,
    end: u64,
) -> Result<u64, LoadError> {
    let bad = |why: String| LoadError::IntegrityTrailer { offset: at, why };
    let len = end - at;
    if !(44..=(1 << 32)).contains(&len) {
        return Err(bad(format!("{len} bytes is not a trailer's length")));
    }
    let mut t = vec![0u8; len as usize];
    if file.read_at(at, &mut t)? != t.len() {
        return Err(bad("cut short".into()));
    }
    let be32 = |o: usize| u32::from_be_bytes(t[o..o + 4].try_into().expect("4 bytes"));
    let be64 = |o: usize| u64::from_be_bytes(t[o..o + 8].try_into().expect("8 bytes"));
    let (version, chunk, start, n) = (be32(0), be32(4), be64(8), be64(16));
    if version != VERSION {
        return Err(bad(format!("version {version}, expected {VERSION}")));
    }
    if u64::from(chunk) != CHUNK {
        return Err(bad(format!("chunk size {chunk}, expected {CHUNK}")));
    }
    if start != stream_start || start > at {
        return Err(bad(format!(
            "covers from {start:#x}, but the stream starts at {stream_start:#x}"
        )));
    }
    if n != (at - start).div_ceil(CHUNK) || len != trailer_len(at - start) {
        return Err(bad(format!(
            "{n} chunks in {len} bytes do not cover {:#x} bytes",
            at - start
        )));
    }
    let body = 24 + 4 * n as usize;
    if crc32fast::hash(&t[..body]) != be32(body) {
        return Err(bad("its own CRC-32 does not match (torn or damaged)".into()));
    }
    chunk_crcs(file, start, at, |i, got| {
        let want = be32(24 + 4 * i as usize);
        if got == want {
            return Ok(());
        }
        let from = start + i * CHUNK;
        Err(LoadError::IntegrityMismatch {
            chunk: i,
            start: from,
            end: (from + CHUNK).min(at),
            got,
            want,
        })
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailer_is_found_and_verified_and_names_the_changed_chunk() {
        let mut f: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 251) as u8).collect();
        let at = f.len() as u64;
        let t = encode(&f, 0, at).unwrap();
        assert_eq!(t.len() as u64, trailer_len(at));
        f.extend_from_slice(&t);
        let end = f.len() as u64;
        assert_eq!(find(&f, end).unwrap(), Some(at));
        assert_eq!(stream_end(&f).unwrap(), at);
        assert_eq!(verify(&f, 0, at, end).unwrap(), 4);
        // A bit flipped in chunk 2.
        let mut g = f.clone();
        g[(2 * CHUNK + 7) as usize] ^= 0x10;
        match verify(&g, 0, at, end) {
            Err(LoadError::IntegrityMismatch {
                chunk: 2,
                start,
                end,
                ..
            }) => assert_eq!((start, end), (2 * CHUNK, 3 * CHUNK)),
            other => panic!("{other:?}"),
        }
        // The trailer's own bytes damaged.
        let mut h = f.clone();
        h[at as usize + 30] ^= 1;
        let e = verify(&h, 0, at, end).unwrap_err().to_string();
        assert!(e.contains("its own CRC-32"), "{e}");
        // Another stream start.
        assert!(verify(&f, 5, at, end).is_err());
        assert_eq!(find(&f[..f.len() - 1].to_vec(), end - 1).unwrap(), None);
    }
}
