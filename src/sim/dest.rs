//! The simulated destination guest: its own RAMBlocks, filled from a
//! migration file through the reader's [`RamSink`]. It can start zeroed
//! (fresh RAM, as QEMU assumes) or dirty (filled with garbage), to prove
//! the reader zeroes what the file says is zero.

use crate::format::LoadError;
use crate::format::ram::PAGE_SIZE;
use crate::format::reader::RamSink;
use crate::format::writer::RamBlockDesc;

/// Byte the dirty destination starts filled with.
pub const GARBAGE: u8 = 0xA5;

/// Destination memory.
#[derive(Debug)]
pub struct Destination {
    blocks: Vec<RamBlockDesc>,
    mem: Vec<Vec<u8>>,
    /// stream block index -> local block index
    map: Vec<usize>,
}

impl Destination {
    /// A destination with these blocks; `dirty` fills memory with garbage.
    pub fn new(blocks: &[RamBlockDesc], dirty: bool) -> Self {
        let fill = if dirty { GARBAGE } else { 0 };
        Self {
            mem: blocks
                .iter()
                .map(|b| vec![fill; b.used_length as usize])
                .collect(),
            blocks: blocks.to_vec(),
            map: Vec::new(),
        }
    }

    /// One page of local block `block`.
    pub fn page(&self, block: usize, page: u64) -> &[u8] {
        let s = (page * PAGE_SIZE) as usize;
        &self.mem[block][s..s + PAGE_SIZE as usize]
    }

    fn range(&mut self, block: usize, first: u64, bytes: u64) -> &mut [u8] {
        let local = self.map[block];
        let s = (first * PAGE_SIZE) as usize;
        &mut self.mem[local][s..s + bytes as usize]
    }
}

impl RamSink for Destination {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        let i = self
            .blocks
            .iter()
            .position(|b| b.name == name)
            .ok_or_else(|| LoadError::UnknownBlock(name.to_string()))?;
        if self.blocks[i].used_length != used_length {
            return Err(LoadError::SizeMismatch {
                name: name.to_string(),
                stream: used_length,
                local: self.blocks[i].used_length,
            });
        }
        self.map.push(i);
        Ok(())
    }

    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        self.range(block, first, data.len() as u64)
            .copy_from_slice(data);
        Ok(())
    }

    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        self.range(block, first, count * PAGE_SIZE).fill(0);
        Ok(())
    }
}
