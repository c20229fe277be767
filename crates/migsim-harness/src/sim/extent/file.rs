//! `ExtentFile`: the extent mode's simulated migration file. Bytes the
//! writer writes (stream framing, fixed-ram headers and bitmaps, device
//! state) are kept as bytes; runs of pages saved by reference
//! ([`MigFile::write_run_at`]) are kept as page identities, `(block,
//! first page, version)` a run, so a 24 TiB page area costs a few
//! thousand entries plus one per page re-dirtied. Reads materialise the
//! bytes from the identities (the same generator as the byte-level path,
//! [`crate::sim::content`]), so the product's reader loads it as any
//! file; [`ExtentFile::identities`] tells what a range of pages holds
//! without materialising it. Every write is logged with its pass, as
//! [`SimFile`](crate::sim::simfile::SimFile) does.

use std::io;
use std::sync::Arc;

use migsim_format::PAGE_SIZE;
use migsim_format::io::MigFile;
use migsim_format::writer::PageRun;

use super::runs::{Piece, RunMap};
use crate::sim::content::{Identified, PageState, fill_page, identify};
use crate::sim::simfile::WriteRecord;

/// What a stretch of the file holds.
#[derive(Clone, Debug)]
enum Seg {
    /// Bytes, from `at` in `data`.
    Bytes { data: Arc<[u8]>, at: usize },
    /// Pages of `block` from page `page`, at `version`, starting `skip`
    /// bytes into page `page`.
    Pages {
        block: u32,
        page: u64,
        skip: u64,
        version: u64,
    },
}

impl Piece for Seg {
    fn skip(&self, by: u64) -> Self {
        match self {
            Seg::Bytes { data, at } => Seg::Bytes {
                data: data.clone(),
                at: at + by as usize,
            },
            &Seg::Pages {
                block,
                page,
                skip,
                version,
            } => {
                let s = skip + by;
                Seg::Pages {
                    block,
                    page: page + s / PAGE_SIZE,
                    skip: s % PAGE_SIZE,
                    version,
                }
            }
        }
    }
}

/// A page run write, as logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunWrite {
    /// Absolute offset.
    pub offset: u64,
    /// What the writer said it wrote there.
    pub run: PageRun,
    /// The pass it happened in.
    pub pass: u32,
}

/// A file of bytes and page identities.
#[derive(Debug)]
pub struct ExtentFile {
    seed: u64,
    segs: RunMap<Seg>,
    len: u64,
    /// The pass the driver is in (tags the write log).
    pub pass: u32,
    log: Vec<WriteRecord>,
    runs: Vec<RunWrite>,
    bytes_written: u64,
}

impl ExtentFile {
    /// An empty file whose page identities are generated from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            segs: RunMap::new(),
            len: 0,
            pass: 0,
            log: Vec::new(),
            runs: Vec::new(),
            bytes_written: 0,
        }
    }

    /// Every write (bytes and runs), in order.
    pub fn log(&self) -> &[WriteRecord] {
        &self.log
    }

    /// The page run writes, in order.
    pub fn run_writes(&self) -> &[RunWrite] {
        &self.runs
    }

    /// Bytes written, overwrites and runs counted.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Bytes that hold something (bytes or pages), rounded up to 4 KiB a
    /// stretch: what a filesystem would allocate, about.
    pub fn allocated(&self) -> u64 {
        self.segs
            .iter()
            .map(|(_, l, _)| l.next_multiple_of(4096))
            .sum()
    }

    /// Stretches kept (bytes and page runs): the file's memory, in entries.
    pub fn stretches(&self) -> usize {
        self.segs.runs()
    }

    /// A hash of the whole file: its length and every stretch, bytes by
    /// content and page runs by identity.
    pub fn content_hash(&self) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        h.update(&self.len.to_le_bytes());
        for (start, len, seg) in self.segs.iter() {
            h.update(&start.to_le_bytes());
            h.update(&len.to_le_bytes());
            match seg {
                Seg::Bytes { data, at } => {
                    h.update(b"B");
                    h.update(&data[*at..*at + len as usize]);
                }
                Seg::Pages {
                    block,
                    page,
                    skip,
                    version,
                } => {
                    h.update(b"P");
                    for v in [u64::from(*block), *page, *skip, *version] {
                        h.update(&v.to_le_bytes());
                    }
                }
            }
        }
        h.finalize()
    }

    /// What `count` pages from absolute `offset` hold, as runs: `each(k,
    /// n, id)` for pages `k..k + n` of the range (from 0), `id` what page
    /// `k` holds; a data run holds consecutive pages from there. Holes
    /// read as zero; bytes and misaligned pages are identified page by
    /// page, as the byte-level destination does.
    pub fn identities(&self, offset: u64, count: u64, each: &mut dyn FnMut(u64, u64, Identified)) {
        let mut page = vec![0u8; PAGE_SIZE as usize];
        // Pages told so far: a page two stretches share is told once.
        let mut told = 0u64;
        self.segs
            .for_each_in(offset, count * PAGE_SIZE, |at, len, seg| {
                let rel = at - offset;
                let whole = rel.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE);
                match seg {
                    None if whole => {
                        told = (rel + len) / PAGE_SIZE;
                        each(rel / PAGE_SIZE, len / PAGE_SIZE, Identified::Zero)
                    }
                    Some(Seg::Pages {
                        block,
                        page: p,
                        skip: 0,
                        version,
                    }) if whole => {
                        let id = match u32::try_from(version) {
                            Ok(0) => Identified::Zero,
                            Ok(v) => Identified::Data {
                                block,
                                page: p,
                                version: v,
                            },
                            Err(_) => Identified::Garbage,
                        };
                        told = (rel + len) / PAGE_SIZE;
                        each(rel / PAGE_SIZE, len / PAGE_SIZE, id)
                    }
                    // Page by page: the pages this stretch touches.
                    _ => {
                        let first = (rel / PAGE_SIZE).max(told);
                        let last = (rel + len).div_ceil(PAGE_SIZE);
                        told = told.max(last);
                        for k in first..last {
                            let n = self.read_at(offset + k * PAGE_SIZE, &mut page).unwrap_or(0);
                            page[n..].fill(0);
                            each(k, 1, identify(self.seed, &page));
                        }
                    }
                }
            });
    }

    fn logged(&mut self, offset: u64, len: u64) {
        self.len = self.len.max(offset + len);
        self.bytes_written += len;
        self.log.push(WriteRecord {
            offset,
            len,
            pass: self.pass,
            file_len: self.len,
        });
    }
}

impl MigFile for ExtentFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        self.segs.insert(
            offset,
            end - offset,
            Seg::Bytes {
                data: Arc::from(data),
                at: 0,
            },
        );
        self.logged(offset, data.len() as u64);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len.saturating_sub(offset)).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        let mut page = vec![0u8; PAGE_SIZE as usize];
        self.segs.for_each_in(offset, n as u64, |at, len, seg| {
            let out = &mut buf[(at - offset) as usize..(at - offset + len) as usize];
            match seg {
                None => out.fill(0),
                Some(Seg::Bytes { data, at }) => out.copy_from_slice(&data[at..at + out.len()]),
                Some(Seg::Pages {
                    block,
                    page: p,
                    skip,
                    version,
                }) => {
                    let state = PageState {
                        version: u32::try_from(version).unwrap_or(u32::MAX),
                        zero: false,
                    };
                    let mut done = 0usize;
                    let mut k = 0u64;
                    let mut from = skip as usize;
                    while done < out.len() {
                        fill_page(self.seed, block, p + k, state, &mut page);
                        let take = (page.len() - from).min(out.len() - done);
                        out[done..done + take].copy_from_slice(&page[from..from + take]);
                        done += take;
                        from = 0;
                        k += 1;
                    }
                }
            }
        });
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn seekable(&self) -> bool {
        true
    }

    fn write_run_at(&mut self, offset: u64, run: &PageRun) -> io::Result<()> {
        let len = run
            .count
            .checked_mul(PAGE_SIZE)
            .filter(|l| offset.checked_add(*l).is_some())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "run past 2^64"))?;
        let block = u32::try_from(run.block)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "block index past 2^32"))?;
        self.segs.insert(
            offset,
            len,
            Seg::Pages {
                block,
                page: run.first,
                skip: 0,
                version: run.token,
            },
        );
        self.runs.push(RunWrite {
            offset,
            run: *run,
            pass: self.pass,
        });
        self.logged(offset, len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Reads give the bytes the byte-level path would have written, and
    //! identities name the pages without materialising them.

    use super::*;

    #[test]
    fn a_run_reads_back_as_generated_pages_and_identifies_by_range() {
        let mut f = ExtentFile::new(9);
        f.write_at(0, b"hdr").unwrap();
        let run = PageRun {
            block: 0,
            first: 10,
            count: 4,
            token: 3,
        };
        f.write_run_at(4096, &run).unwrap();
        // A re-dirtied page inside the run.
        f.write_run_at(
            3 * 4096,
            &PageRun {
                block: 0,
                first: 12,
                count: 1,
                token: 5,
            },
        )
        .unwrap();
        assert_eq!(f.len(), 5 * 4096);
        let mut page = vec![0u8; 4096];
        let mut want = vec![0u8; 4096];
        f.read_at(2 * 4096, &mut page).unwrap();
        let st = |v| PageState {
            version: v,
            zero: false,
        };
        fill_page(9, 0, 11, st(3), &mut want);
        assert_eq!(page, want);
        f.read_at(3 * 4096, &mut page).unwrap();
        fill_page(9, 0, 12, st(5), &mut want);
        assert_eq!(page, want);
        let mut ids = Vec::new();
        f.identities(0, 5, &mut |k, n, id| ids.push((k, n, id)));
        let data = |page, version| Identified::Data {
            block: 0,
            page,
            version,
        };
        assert_eq!(
            ids,
            vec![
                (0, 1, Identified::Garbage),
                (1, 2, data(10, 3)),
                (3, 1, data(12, 5)),
                (4, 1, data(13, 3)),
            ]
        );
    }
}
