//! `PageIndex`: a guest's pages numbered across its RAMBlocks, as a
//! workload picks them (one global index) and as a driver sends them
//! (block, page). Shared by the byte-level and the extent guest.

use migsim_format::writer::RamBlockDesc;

/// Where each block's pages start in the global numbering.
#[derive(Clone, Debug)]
pub struct PageIndex {
    starts: Vec<u64>,
    total: u64,
}

impl PageIndex {
    /// The numbering of `blocks`, in order.
    pub fn new(blocks: &[RamBlockDesc]) -> Self {
        let mut starts = Vec::with_capacity(blocks.len());
        let mut total = 0u64;
        for b in blocks {
            starts.push(total);
            total += b.pages();
        }
        Self { starts, total }
    }

    /// Pages over all blocks.
    pub fn total_pages(&self) -> u64 {
        self.total
    }

    /// Map a global page index (below [`Self::total_pages`]) to
    /// `(block, page)`.
    pub fn locate(&self, global: u64) -> (usize, u64) {
        let b = self.starts.partition_point(|&s| s <= global) - 1;
        (b, global - self.starts[b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_indices_walk_the_blocks_in_order() {
        let block = |pages: u64| RamBlockDesc {
            name: format!("b{pages}"),
            used_length: pages * 4096,
            shared: false,
        };
        let ix = PageIndex::new(&[block(3), block(1), block(2)]);
        assert_eq!(ix.total_pages(), 6);
        let all: Vec<_> = (0..6).map(|g| ix.locate(g)).collect();
        assert_eq!(all, [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1)]);
    }
}
