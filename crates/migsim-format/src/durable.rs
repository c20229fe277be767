//! Durable saves: the order of writes and fdatasyncs that makes a save
//! cut short by a power loss either load exactly or be refused, and the
//! completion mark that says the save finished.
//!
//! QEMU 10 never fsyncs a migration file and writes the mapped-ram bitmaps
//! last (`ram_save_complete` -> `ram_save_file_bmap`, then the device
//! sections, EOF and the vmdesc trailer from `qemu_savevm_state_complete_precopy`).
//! After a power loss the page cache may have written back the bitmaps,
//! EOF and vmdesc but not every page: the file looks complete and loads
//! wrong memory. [`Durability::Durable`] makes the writer
//!
//! 1. write every page (and header) as usual, then **fdatasync**;
//! 2. write the bitmaps, the END section, the device sections, EOF and the
//!    vmdesc trailer (and the integrity trailer, [`crate::integrity`], when
//!    asked for), then **fdatasync**;
//! 3. append the completion mark below, then **fdatasync**.
//!
//! If the mark is on disk, everything before the second sync is too. A
//! reader that asks for it ([`crate::LoadOptions::require_durable`])
//! refuses a file without the mark. The first sync is for loaders that do
//! not check the mark (QEMU): once a bitmap can be on disk, the pages it
//! names are.
//!
//! Byte layout of the mark (the last 16 bytes of the file, right after the
//! vmdesc trailer or the integrity trailer; QEMU's loader stops reading after the trailer, so it
//! ignores them):
//!
//! ```text
//! 0   8  b"MIGSIMOK"
//! 8   8  be64 absolute file offset of the mark itself
//! ```
//!
//! A torn or lost mark reads as zeros (a hole) or is cut off, and neither
//! matches: the magic has no zero byte and the offset must equal the
//! mark's own position at the end of the file.

use std::io;

use serde::Serialize;

use crate::io::MigFile;

/// How the writer orders its writes and syncs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// As QEMU 10 writes: no fsync, bitmaps last. The default; the bytes
    /// are exactly QEMU's.
    #[default]
    QemuCompatible,
    /// Pages, sync, bitmaps + EOF + vmdesc, sync, completion mark, sync
    /// (see the module documentation). Still loadable by QEMU 10.
    Durable,
}

impl Durability {
    /// Every mode.
    pub const ALL: [Durability; 2] = [Durability::QemuCompatible, Durability::Durable];

    /// Name as on the command line: `qemu`, `durable`.
    pub fn name(self) -> &'static str {
        match self {
            Durability::QemuCompatible => "qemu",
            Durability::Durable => "durable",
        }
    }
}

/// Magic of the completion mark.
pub const MARK_MAGIC: &[u8; 8] = b"MIGSIMOK";

/// Bytes of the completion mark.
pub const MARK_LEN: u64 = 16;

/// The completion mark written at absolute offset `at`.
pub fn encode_mark(at: u64) -> [u8; MARK_LEN as usize] {
    let mut m = [0u8; MARK_LEN as usize];
    m[..8].copy_from_slice(MARK_MAGIC);
    m[8..].copy_from_slice(&at.to_be_bytes());
    m
}

/// Where the file's completion mark is (its absolute offset), if its last
/// 16 bytes are one.
pub fn find_mark<F: MigFile + ?Sized>(file: &F) -> io::Result<Option<u64>> {
    let len = file.len();
    let Some(at) = len.checked_sub(MARK_LEN) else {
        return Ok(None);
    };
    let mut m = [0u8; MARK_LEN as usize];
    if file.read_at(at, &mut m)? != m.len() {
        return Ok(None);
    }
    Ok((m == encode_mark(at)).then_some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_found_only_at_its_own_offset_and_whole() {
        let mut f = vec![7u8; 100];
        f.extend_from_slice(&encode_mark(100));
        assert_eq!(find_mark(&f).unwrap(), Some(100));
        // Moved: its offset no longer matches.
        let mut moved = vec![7u8; 101];
        moved.extend_from_slice(&encode_mark(100));
        assert_eq!(find_mark(&moved).unwrap(), None);
        // Torn: any byte zeroed or cut.
        for i in 0..MARK_LEN as usize {
            let mut torn = f.clone();
            torn[100 + i] = 0;
            let want = if i >= 8 && encode_mark(100)[i] == 0 {
                Some(100)
            } else {
                None
            };
            assert_eq!(find_mark(&torn).unwrap(), want, "byte {i} zeroed");
        }
        assert_eq!(find_mark(&f[..110].to_vec()).unwrap(), None);
        assert_eq!(find_mark(&Vec::new()).unwrap(), None);
    }
}
