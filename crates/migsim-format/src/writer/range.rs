//! Saving a run of pages by reference: [`MigrationWriter::save_run`].
//!
//! A fixed-ram page lands at a fixed offset whatever else is in the file,
//! so a run of `count` consecutive pages is one bitmap range and one page
//! area range. A source that can name what a run holds ([`RunSource`]:
//! zero, or pages at a token such as a version) lets the writer hand the
//! file the reference ([`MigFile::write_run_at`]) instead of
//! `count * 4096` bytes, and set the run's bitmap bits a word at a time.
//! A file that keeps page identities (a simulator's) can then hold a guest
//! far larger than memory; a file of bytes refuses such writes. The bits,
//! offsets and hooks are those of [`MigrationWriter::save_pages`], so a
//! run saved here and the same pages saved one by one give the same
//! bitmap and the same page at every slot.

use super::{LayoutState, MigrationWriter, Open};
use crate::error::SaveError;
use crate::hooks::SaveHooks;
use crate::io::MigFile;

/// What a run of pages holds, as its source names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunContent {
    /// Every page is all zeros (fixed-ram: the bits are cleared).
    Zero,
    /// Non-zero pages named by a token of the source's: page `first + k`
    /// of the run holds the source's page `first + k` as of `token`.
    Ref(u64),
}

/// Consecutive non-zero pages of one block, by reference (what
/// [`MigFile::write_run_at`] receives).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageRun {
    /// Block index (in the declared block list).
    pub block: usize,
    /// First page of the source's block.
    pub first: u64,
    /// Pages in the run (>= 1).
    pub count: u64,
    /// The source's name for their contents ([`RunContent::Ref`]).
    pub token: u64,
}

/// Where [`MigrationWriter::save_run`] learns what a run holds.
pub trait RunSource {
    /// Split pages `first..first + count` of `block` into consecutive
    /// sub-runs of one content each, calling `each(first, count, content)`
    /// in page order; together they must cover the run exactly.
    fn runs(
        &self,
        block: usize,
        first: u64,
        count: u64,
        each: &mut dyn FnMut(u64, u64, RunContent),
    );
}

impl<F: MigFile, H: SaveHooks> MigrationWriter<F, H> {
    /// Send pages `first..first + count` of block `block`, in order, as
    /// `source` describes them (fixed-ram only: a sequential stream carries
    /// every page's bytes). Zero sub-runs clear their bits; the others set
    /// them and are written to the file by reference, one write per run of
    /// consecutive slots.
    pub fn save_run(
        &mut self,
        block: usize,
        first: u64,
        count: u64,
        source: &dyn RunSource,
    ) -> Result<(), SaveError> {
        if self.open == Open::None {
            return Err(SaveError::Setup("save_run outside a RAM section".into()));
        }
        let b = self
            .blocks
            .get(block)
            .ok_or_else(|| SaveError::Setup(format!("no block {block}")))?;
        if first.checked_add(count).is_none_or(|end| end > b.pages()) {
            return Err(SaveError::Setup(format!(
                "pages {first:#x}+{count:#x} outside block {} of {} pages",
                b.name,
                b.pages()
            )));
        }
        self.refuse_ignored(block)?;
        let LayoutState::FixedRam { blocks, bitmaps } = &mut self.layout else {
            return Err(SaveError::Setup(
                "save_run needs the fixed-ram layout: a sequential stream carries every page's bytes"
                    .into(),
            ));
        };
        let mut subs = Vec::new();
        source.runs(block, first, count, &mut |f, n, c| subs.push((f, n, c)));
        let mut at = first;
        for &(f, n, _) in &subs {
            if f != at || n == 0 {
                return Err(SaveError::Setup(format!(
                    "run source split {first:#x}+{count:#x} badly: sub-run {f:#x}+{n:#x} where {at:#x} was next"
                )));
            }
            at += n;
        }
        if at != first + count {
            return Err(SaveError::Setup(format!(
                "run source covered {first:#x}..{at:#x} of {first:#x}+{count:#x}"
            )));
        }
        let hooks = &self.hooks;
        for (f, n, content) in subs {
            let zero = content == RunContent::Zero;
            if zero {
                self.stats.zero_pages += n;
            } else {
                self.stats.pages_written += n;
            }
            let bm = &mut bitmaps[block];
            match hooks.bitmap_run(block, zero) {
                Some(bit) => bm.set_range(f, n, bit),
                None => {
                    for p in f..f + n {
                        let bit = hooks.bitmap_bit(block, p, zero, bm.get(p));
                        bm.set(p, bit);
                    }
                }
            }
            let RunContent::Ref(token) = content else {
                continue;
            };
            let mut p = f;
            while p < f + n {
                let (slot, k) = hooks.slot_run(block, p, f + n - p);
                let k = k.clamp(1, f + n - p);
                let run = super::PageRun {
                    block,
                    first: p,
                    count: k,
                    token,
                };
                self.file
                    .write_run_at(blocks[block].page_offset(slot), &run)?;
                p += k;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! `save_run` sets the run's bits as `save_page` would, and refuses
    //! what it cannot do with an error, never a panic.

    use super::*;
    use crate::caps::{Capabilities, Capability};
    use crate::reader;
    use crate::writer::RamBlockDesc;

    /// Pages 0..4 data at token 1, page 2 zero.
    struct Src;
    impl RunSource for Src {
        fn runs(
            &self,
            _: usize,
            first: u64,
            count: u64,
            each: &mut dyn FnMut(u64, u64, RunContent),
        ) {
            for p in first..first + count {
                each(
                    p,
                    1,
                    if p == 2 {
                        RunContent::Zero
                    } else {
                        RunContent::Ref(1)
                    },
                );
            }
        }
    }

    fn writer(fixed: bool) -> MigrationWriter<Vec<u8>> {
        let caps = if fixed {
            Capabilities::from_enabled(&[Capability::FixedRam]).unwrap()
        } else {
            Capabilities::default()
        };
        let blocks = vec![RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 8 * 4096,
            shared: false,
        }];
        MigrationWriter::start(Vec::new(), "pc", &caps, blocks).unwrap()
    }

    #[test]
    fn a_file_of_bytes_refuses_pages_by_reference() {
        let mut w = writer(true);
        w.begin_iteration().unwrap();
        let e = w.save_run(0, 0, 4, &Src).unwrap_err();
        assert!(e.to_string().contains("page identities"), "{e}");
    }

    #[test]
    fn zero_runs_only_clear_bits_and_bad_runs_are_refused() {
        let mut w = writer(true);
        w.begin_iteration().unwrap();
        w.save_run(0, 2, 1, &Src).unwrap();
        assert!(w.save_run(0, 6, 3, &Src).is_err(), "past the block");
        assert!(w.save_run(0, u64::MAX, 2, &Src).is_err(), "overflow");
        assert!(w.save_run(1, 0, 1, &Src).is_err(), "no such block");
        w.end_iteration().unwrap();
        w.begin_completion().unwrap();
        let file = w.finish(&[]).unwrap().0;
        let info = reader::inspect(&file).unwrap();
        assert_eq!(info.blocks[0].pages_present, 0);
        let mut s = writer(false);
        s.begin_iteration().unwrap();
        let e = s.save_run(0, 0, 1, &Src).unwrap_err();
        assert!(e.to_string().contains("fixed-ram layout"), "{e}");
    }
}
