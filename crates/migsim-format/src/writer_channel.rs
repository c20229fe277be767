//! The writer's multifd-channel operations on a fixed-ram file, split as
//! QEMU 10 splits them: a send channel first sets or clears the file
//! bitmap bits of its batch (`multifd_set_file_bitmap` in
//! `multifd-nocomp.c`), then writes each run of non-zero pages with one
//! positioned write (`file_write_ramblock_iov` in `file.c`). A caller that
//! models channels running concurrently with the migration thread calls
//! them in its own order; [`MigrationWriter::save_page`] is the two done at
//! once.

use super::{LayoutState, MigrationWriter, page_offset};
use crate::error::SaveError;
use crate::fixed_ram::BlockLayout;
use crate::hooks::SaveHooks;
use crate::io::MigFile;
use crate::ram::PAGE_SIZE;

impl<F: MigFile, H: SaveHooks> MigrationWriter<F, H> {
    /// A channel writes independently of the main stream's sections (it
    /// may still be writing between a PART's EOS and the next PART), so
    /// only the block and page are checked.
    fn check_channel_page(&self, block: usize, page: u64) -> Result<(), SaveError> {
        match self.blocks.get(block) {
            Some(b) if page < b.pages() => self.refuse_ignored(block),
            Some(b) => Err(SaveError::Setup(format!(
                "page {page:#x} outside block {} of {} pages",
                b.name,
                b.pages()
            ))),
            None => Err(SaveError::Setup(format!("no block {block}"))),
        }
    }

    /// The fixed-ram layout of every block (`None` for a sequential
    /// writer): where each page is written and where each bitmap goes.
    pub fn fixed_ram_layout(&self) -> Option<&[BlockLayout]> {
        match &self.layout {
            LayoutState::FixedRam { blocks, .. } => Some(blocks),
            LayoutState::Sequential { .. } => None,
        }
    }

    /// Where page `page` of `block` is written (`None` for a sequential
    /// writer or a page outside the block).
    pub fn page_file_offset(&self, block: usize, page: u64) -> Option<u64> {
        let l = self.fixed_ram_layout()?.get(block)?;
        (page < self.blocks[block].pages()).then(|| page_offset(l, block, page, &self.hooks))
    }

    /// Set (`data`) or clear the file bitmap bit of one page, as a send
    /// channel does before it writes its batch. Fixed-ram only.
    pub fn set_page_bit(&mut self, block: usize, page: u64, data: bool) -> Result<(), SaveError> {
        self.check_channel_page(block, page)?;
        if !matches!(self.layout, LayoutState::FixedRam { .. }) {
            return Err(SaveError::Setup(
                "set_page_bit needs a fixed-ram writer".into(),
            ));
        }
        self.note_page(block, page, !data);
        Ok(())
    }

    /// Write `data` (whole pages) as pages `first..` of `block` with one
    /// positioned write, leaving the bitmap alone (see
    /// [`MigrationWriter::set_page_bit`]). Fixed-ram only.
    pub fn write_page_run(
        &mut self,
        block: usize,
        first: u64,
        data: &[u8],
    ) -> Result<(), SaveError> {
        let n = data.len() as u64 / PAGE_SIZE;
        if n == 0 || !(data.len() as u64).is_multiple_of(PAGE_SIZE) {
            return Err(SaveError::Setup(format!(
                "a page run of {} bytes is not whole pages",
                data.len()
            )));
        }
        self.check_channel_page(block, first)?;
        self.check_channel_page(block, first + n - 1)?;
        let off = self
            .page_file_offset(block, first)
            .ok_or_else(|| SaveError::Setup("write_page_run needs a fixed-ram writer".into()))?;
        self.file.write_at(off, data)?;
        Ok(())
    }
}
