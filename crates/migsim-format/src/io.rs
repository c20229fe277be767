//! The one file abstraction every writer and the reader use: positioned
//! reads and writes on something that is seekable (a file) or not (a pipe or
//! socket, where writes may only append).
//!
//! Product code only knows [`MigFile`]. The simulated file with its write
//! log (and its non-seekable variant) lives in the harness
//! (`sim::simfile`); [`DiskFile`] is a real file on disk, optionally with
//! an O_DIRECT descriptor for aligned page writes (as QEMU's `direct-io`:
//! page data bypasses the page cache, everything else does not).
//!
//! Several channels (the multifd idea) can write disjoint pages of one
//! file at once through [`SharedWrite`], which a file offers with
//! [`MigFile::shared`]; the file is told about those writes afterwards
//! with [`MigFile::note_shared_write`] so a write log stays complete.
//! [`MigFile::sync`] is fdatasync (a durable save calls it, see
//! [`crate::durable`]; QEMU never does).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Positioned I/O on a migration file or transport. `Sync`, so reader
/// channels can read one file from several threads.
pub trait MigFile: Sync {
    /// Write all of `data` at absolute `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Read up to `buf.len()` bytes at `offset`; returns how many were read
    /// (fewer only at end of file).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Current logical length in bytes.
    fn len(&self) -> u64;
    /// Whether this is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether writes may land anywhere (`true`) or only at the end.
    fn seekable(&self) -> bool;
    /// A handle several threads may write through at once, if the file
    /// has one (a real file does; in-memory files do not).
    fn shared(&self) -> Option<&dyn SharedWrite> {
        None
    }
    /// Record a write made through [`MigFile::shared`] (length, logs).
    /// Called once per write, in a deterministic order, after the writes.
    fn note_shared_write(&mut self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
    /// Make every write so far durable (fdatasync). Files that live only
    /// in memory have nothing to do (the default).
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The whole file as one slice of memory, if it is one (an in-memory
    /// file of bytes), so a reader can use its bytes in place instead of
    /// copying them out with [`MigFile::read_at`]. `None` (the default):
    /// read with `read_at`.
    fn contiguous(&self) -> Option<&[u8]> {
        None
    }
    /// The `n` bytes at `offset` where they lie, if the file keeps them
    /// as one piece of memory (a reader's small fields then need no
    /// copy); `None` when it does not, or when the range reaches past the
    /// end: read with [`MigFile::read_at`]. A file in pieces (chunks)
    /// answers for ranges inside one piece. The default answers for a
    /// [`MigFile::contiguous`] file.
    fn slice_at(&self, offset: u64, n: usize) -> Option<&[u8]> {
        let all = self.contiguous()?;
        let end = offset.checked_add(n as u64)?;
        (end <= all.len() as u64).then(|| &all[offset as usize..end as usize])
    }
    /// Hand `f` the bytes `offset..offset + len` where they lie, in
    /// order and in pieces that start and end on 4 KiB boundaries of the
    /// file (a piece may end earlier only at `offset + len`), instead of
    /// copying them out with [`MigFile::read_at`]; `true` when it did. It
    /// does not (`false`, and `f` is not called) when the file keeps no
    /// bytes in memory or the range reaches past its end: read with
    /// `read_at`. The default lends a [`MigFile::contiguous`] file.
    fn lend(&self, offset: u64, len: usize, f: &mut dyn FnMut(&[u8])) -> bool {
        let Some(bytes) = self.contiguous() else {
            return false;
        };
        match offset.checked_add(len as u64) {
            Some(end) if end <= bytes.len() as u64 => {
                f(&bytes[offset as usize..end as usize]);
                true
            }
            _ => false,
        }
    }
    /// Write `run` (pages named by reference, see
    /// [`crate::writer::PageRun`]) at `offset`, keeping the reference
    /// rather than bytes. Only a file that can resolve references later
    /// supports it (a simulated file of page identities); a file of bytes
    /// refuses with [`io::ErrorKind::Unsupported`] (the default).
    fn write_run_at(&mut self, offset: u64, run: &crate::writer::PageRun) -> io::Result<()> {
        let _ = (offset, run);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this file keeps bytes: a run of pages by reference needs a file of page identities",
        ))
    }
}

/// Positioned writes from several threads at once.
pub trait SharedWrite: Sync {
    /// Write all of `data` at `offset`. Callers keep concurrent writes
    /// disjoint.
    fn write_shared(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

impl<T: MigFile + ?Sized> MigFile for &mut T {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, data)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn seekable(&self) -> bool {
        (**self).seekable()
    }
    fn shared(&self) -> Option<&dyn SharedWrite> {
        (**self).shared()
    }
    fn note_shared_write(&mut self, offset: u64, len: u64) {
        (**self).note_shared_write(offset, len)
    }
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
    fn contiguous(&self) -> Option<&[u8]> {
        (**self).contiguous()
    }
    fn slice_at(&self, offset: u64, n: usize) -> Option<&[u8]> {
        (**self).slice_at(offset, n)
    }
    fn lend(&self, offset: u64, len: usize, f: &mut dyn FnMut(&[u8])) -> bool {
        (**self).lend(offset, len, f)
    }
    fn write_run_at(&mut self, offset: u64, run: &crate::writer::PageRun) -> io::Result<()> {
        (**self).write_run_at(offset, run)
    }
}

/// Alignment O_DIRECT needs for offsets, lengths and buffers.
pub const DIRECT_ALIGN: usize = 4096;

/// A real file on disk.
#[derive(Debug)]
pub struct DiskFile {
    file: File,
    /// Second descriptor opened with O_DIRECT, for aligned writes.
    direct: Option<File>,
    len: u64,
    /// [`DiskFile::create_replacing`]: (the temporary file, the path it
    /// replaces on [`DiskFile::commit`]); removed if dropped uncommitted.
    replacing: Option<(PathBuf, PathBuf)>,
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.replacing.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl DiskFile {
    /// Create (or truncate) `path` for writing and reading.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Self {
            file,
            direct: None,
            len: 0,
            replacing: None,
        })
    }

    /// A new file that will replace `path` only when [`DiskFile::commit`]
    /// says so: written as a temporary file beside it (`.NAME.tmp-PID`),
    /// fdatasynced and renamed over `path` (and the directory synced) on
    /// commit, removed if dropped before. A save that fails (ENOSPC, EIO)
    /// or a crash before the rename leaves the previous file at `path` as
    /// it was. Where `path` is not a regular file or absent (a device such
    /// as `/dev/null`, a FIFO, a symlink) there is nothing to replace
    /// atomically: it is opened as [`DiskFile::create`] does. `direct`
    /// adds O_DIRECT ([`DiskFile::create_direct`]).
    pub fn create_replacing(path: &Path, direct: bool) -> io::Result<Self> {
        let regular_or_absent = match std::fs::symlink_metadata(path) {
            Ok(m) => m.file_type().is_file(),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        };
        let name = path.file_name().filter(|_| regular_or_absent);
        let Some(name) = name else {
            return if direct {
                Self::create_direct(path)
            } else {
                Self::create(path)
            };
        };
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
        };
        let file = match open() {
            // Left by an earlier process of this pid that died: stale.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp)?;
                open()?
            }
            r => r?,
        };
        let f = Self {
            file,
            direct: None,
            len: 0,
            replacing: Some((tmp.clone(), path.to_path_buf())),
        };
        if direct {
            f.with_direct(&tmp, true)
        } else {
            Ok(f)
        }
    }

    /// Make a [`DiskFile::create_replacing`] file the one at its path:
    /// fdatasync, rename over the path, fsync the directory. A no-op for
    /// other files. The file stays open and readable.
    pub fn commit(&mut self) -> io::Result<()> {
        let Some((tmp, path)) = self.replacing.take() else {
            return Ok(());
        };
        let done = self
            .file
            .sync_data()
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }

    /// Create `path` like [`DiskFile::create`], plus an O_DIRECT
    /// descriptor: writes (and reads) whose offset, length and buffer are
    /// all [`DIRECT_ALIGN`]-aligned bypass the page cache. Fails (rather than
    /// silently falling back) where the filesystem refuses O_DIRECT.
    pub fn create_direct(path: &Path) -> io::Result<Self> {
        Self::create(path)?.with_direct(path, true)
    }

    /// Add the O_DIRECT descriptor (`write`: read-write, else read-only).
    fn with_direct(mut self, path: &Path, write: bool) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{}: O_DIRECT not available: {e}", path.display()),
                )
            })?;
        self.direct = Some(direct);
        Ok(self)
    }

    /// Open an existing file read-only.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            direct: None,
            len,
            replacing: None,
        })
    }

    /// Open an existing file read-only, plus an O_DIRECT descriptor for
    /// aligned reads (see [`DiskFile::create_direct`]).
    pub fn open_direct(path: &Path) -> io::Result<Self> {
        Self::open(path)?.with_direct(path, false)
    }

    /// Whether this file has an O_DIRECT descriptor.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes allocated on disk (`st_blocks * 512`).
    pub fn allocated(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata()?.blocks() * 512)
    }

    /// The descriptor for an I/O of `len` bytes at `offset` from or to
    /// `ptr`: the O_DIRECT one when there is one and all three are aligned.
    fn fd_for(&self, offset: u64, len: usize, ptr: *const u8) -> &File {
        let aligned = |x: usize| x.is_multiple_of(DIRECT_ALIGN);
        match &self.direct {
            Some(d) if aligned(offset as usize) && aligned(len) && aligned(ptr as usize) => d,
            _ => &self.file,
        }
    }

    fn write_raw(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fd_for(offset, data.len(), data.as_ptr())
            .write_all_at(data, offset)
    }
}

impl SharedWrite for DiskFile {
    fn write_shared(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_raw(offset, data)
    }
}

impl MigFile for DiskFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_raw(offset, data)?;
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.fd_for(offset, buf.len(), buf.as_ptr());
        let mut done = 0;
        while done < buf.len() {
            // After a short read the rest may be unaligned: finish through
            // the page cache.
            let fd = if done == 0 { fd } else { &self.file };
            match fd.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn seekable(&self) -> bool {
        true
    }
    fn shared(&self) -> Option<&dyn SharedWrite> {
        Some(self)
    }
    fn note_shared_write(&mut self, offset: u64, len: u64) {
        self.len = self.len.max(offset + len);
    }
    /// fdatasync: the data, and the size when it grew (O_DIRECT writes
    /// included: they bypass the cache, not the device's write cache).
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// A page-aligned buffer (O_DIRECT needs aligned memory): an
/// over-allocated vector and the aligned window inside it.
#[derive(Clone)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes aligned to [`DIRECT_ALIGN`].
    pub fn zeroed(len: usize) -> Self {
        let raw = vec![0u8; len + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN);
        Self { raw, start, len }
    }
}

impl AlignedBuf {
    /// Make it `len` bytes long when its memory holds that many (it was
    /// made at least as long): `true`, and the bytes up to `len` are
    /// whatever they were. `false`, and nothing changed, when it is too
    /// small.
    pub fn fit(&mut self, len: usize) -> bool {
        let fits = self.start + len <= self.raw.len();
        if fits {
            self.len = len;
        }
        fits
    }

    /// Ask the kernel for transparent huge pages behind this buffer, as a
    /// VMM does for guest RAM (first touch of 2 MiB pages is far cheaper
    /// than of 4 KiB ones). Best effort: ignored where unsupported.
    pub fn advise_huge_pages(&mut self) {
        if self.len == 0 {
            return;
        }
        let ptr = self.raw[self.start..].as_mut_ptr();
        // SAFETY: the range is inside this buffer's allocation and
        // page-aligned; MADV_HUGEPAGE only changes how it is backed.
        unsafe {
            libc::madvise(ptr.cast(), self.len, libc::MADV_HUGEPAGE);
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// An in-memory byte buffer, handy for tests and the fuzzer.
impl MigFile for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset as usize + data.len();
        if Vec::len(self) < end {
            self.resize(end, 0);
        }
        self[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Bytes(self).read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
    fn seekable(&self) -> bool {
        true
    }
    fn contiguous(&self) -> Option<&[u8]> {
        Some(self)
    }
}

/// A file already in memory, read-only: reading needs no copy. Writes
/// fail.
#[derive(Clone, Copy, Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl MigFile for Bytes<'_> {
    fn write_at(&mut self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only bytes",
        ))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.0.len() as u64;
        if offset >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - offset) as usize);
        buf[..n].copy_from_slice(&self.0[offset as usize..offset as usize + n]);
        Ok(n)
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn seekable(&self) -> bool {
        true
    }
    fn contiguous(&self) -> Option<&[u8]> {
        Some(self.0)
    }
}

/// Test helper: bytes offered only through `read_at` (no
/// [`MigFile::contiguous`], so no `lend` either), so a reader takes its
/// copying paths: a cursor reads through its window, a trailer search
/// copies its windows out.
#[cfg(test)]
pub(crate) struct ReadAtOnly<'a>(pub &'a [u8]);

#[cfg(test)]
impl MigFile for ReadAtOnly<'_> {
    fn write_at(&mut self, _: u64, _: &[u8]) -> io::Result<()> {
        unreachable!("read-only")
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Bytes(self.0).read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn seekable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_file_reads_short_at_the_end_and_grows_on_writes_past_it() {
        let mut v: Vec<u8> = vec![1, 2, 3, 4, 5];
        assert!(!MigFile::is_empty(&v));
        assert!(v.seekable());
        let mut buf = [0u8; 4];
        assert_eq!(v.read_at(3, &mut buf).unwrap(), 2);
        assert_eq!(buf[..2], [4, 5]);
        assert_eq!(v.read_at(1, &mut buf).unwrap(), 4);
        assert_eq!(buf, [2, 3, 4, 5]);
        assert_eq!(v.read_at(5, &mut buf).unwrap(), 0);
        assert_eq!(v.read_at(1 << 40, &mut buf).unwrap(), 0);
        v.write_at(8, &[9, 9]).unwrap();
        assert_eq!(v, [1, 2, 3, 4, 5, 0, 0, 0, 9, 9]);
        v.write_at(0, &[7]).unwrap();
        v.write_at(9, &[6]).unwrap();
        assert_eq!(v, [7, 2, 3, 4, 5, 0, 0, 0, 9, 6]);
        assert_eq!(MigFile::len(&v), 10);
        assert!(MigFile::is_empty(&Vec::new()));
    }

    #[test]
    fn a_mutable_reference_is_the_same_file() {
        type R<'a> = &'a mut Vec<u8>;
        let mut v: Vec<u8> = vec![1, 2, 3];
        {
            let mut r: R = &mut v;
            assert_eq!(<R as MigFile>::len(&r), 3);
            assert!(!<R as MigFile>::is_empty(&r));
            assert!(<R as MigFile>::seekable(&r));
            let mut buf = [0u8; 2];
            assert_eq!(<R as MigFile>::read_at(&r, 1, &mut buf).unwrap(), 2);
            assert_eq!(buf, [2, 3]);
            <R as MigFile>::write_at(&mut r, 3, &[4]).unwrap();
            assert_eq!(<R as MigFile>::len(&r), 4);
        }
        assert_eq!(v, [1, 2, 3, 4]);
        let mut empty: Vec<u8> = Vec::new();
        assert!(<R as MigFile>::is_empty(&&mut empty));
    }

    #[test]
    fn disk_file_tracks_its_length_and_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.mig");
        let mut d = DiskFile::create(&path).unwrap();
        assert!(d.is_empty());
        assert!(d.seekable());
        d.write_at(10, b"abc").unwrap();
        assert_eq!(d.len(), 13);
        d.write_at(0, b"x").unwrap();
        assert_eq!(d.len(), 13, "a write inside the file does not grow it");
        let mut buf = [0xFFu8; 10];
        assert_eq!(d.read_at(8, &mut buf).unwrap(), 5);
        assert_eq!(buf[..5], [0, 0, b'a', b'b', b'c']);
        assert_eq!(d.read_at(13, &mut buf).unwrap(), 0);
        drop(d);
        let d = DiskFile::open(&path).unwrap();
        assert_eq!(d.len(), 13);
        assert!(d.seekable());
        let mut all = [0u8; 13];
        assert_eq!(d.read_at(0, &mut all).unwrap(), 13);
        assert_eq!(all[0], b'x');
        assert_eq!(all[10..], *b"abc");
        // A large read is completed across the kernel's short reads.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("big.mig");
        let mut d = DiskFile::create(&path).unwrap();
        d.write_at(0, &big).unwrap();
        let d = DiskFile::open(&path).unwrap();
        let mut back = vec![0; big.len() + 10];
        assert_eq!(d.read_at(0, &mut back).unwrap(), big.len());
        assert_eq!(back[..big.len()], big[..]);
        let mut tail = vec![0; 100];
        assert_eq!(d.read_at(big.len() as u64 - 40, &mut tail).unwrap(), 40);
        assert_eq!(tail[..40], big[big.len() - 40..]);
    }

    #[test]
    fn a_replacing_file_takes_its_path_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.mig");
        let count = || std::fs::read_dir(dir.path()).unwrap().count();
        std::fs::write(&path, b"old").unwrap();
        // Dropped before commit: the old file stays, the temporary goes.
        let mut d = DiskFile::create_replacing(&path, false).unwrap();
        d.write_at(0, b"new!").unwrap();
        assert_eq!(count(), 2);
        drop(d);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(count(), 1);
        // Committed: the new bytes, one file, still readable.
        let mut d = DiskFile::create_replacing(&path, false).unwrap();
        d.write_at(0, b"new!").unwrap();
        d.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new!");
        assert_eq!(count(), 1);
        let mut b = [0u8; 4];
        assert_eq!(d.read_at(0, &mut b).unwrap(), 4);
        d.commit().unwrap();
        drop(d);
        assert_eq!(count(), 1);
        // A device is written in place: nothing to replace.
        let mut n = DiskFile::create_replacing(Path::new("/dev/null"), false).unwrap();
        n.write_at(0, b"x").unwrap();
        n.commit().unwrap();
    }

    #[test]
    fn disk_file_read_errors_are_returned_not_retried() {
        // Reading a directory fails with EISDIR: a real error, which must come
        // back to the caller (only EINTR is retried).
        let dir = tempfile::tempdir().unwrap();
        let d = DiskFile::open(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let _ = tx.send(d.read_at(0, &mut buf).map_err(|e| e.kind()));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("read_at on a directory must return, not spin");
        assert_eq!(r, Err(std::io::ErrorKind::IsADirectory));
    }
}
