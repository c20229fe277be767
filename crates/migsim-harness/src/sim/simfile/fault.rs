//! What the fault model records and injects: a file's journal (every
//! write with its bytes, every sync) and a failure at one chosen write
//! (ENOSPC, EIO, a short write), as a full or failing disk gives it.

use std::io;

use serde::Serialize;

/// One event of a file's journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalEntry {
    /// A write: absolute offset and the bytes.
    Write {
        /// Absolute offset.
        offset: u64,
        /// What was written.
        data: Vec<u8>,
    },
    /// fdatasync: every write before it is durable.
    Sync,
}

/// A failure injected at one write ([`SimFile::fail_write`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoFault {
    /// The write fails with ENOSPC, nothing written.
    Enospc,
    /// The write fails with EIO, nothing written.
    Eio,
    /// Half the write (rounded down to 512 bytes) lands, then ENOSPC: what
    /// `write_all` sees when the disk fills during a write.
    ShortWrite,
}

impl IoFault {
    /// Every kind.
    pub const ALL: [IoFault; 3] = [IoFault::Enospc, IoFault::Eio, IoFault::ShortWrite];

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IoFault::Enospc => "enospc",
            IoFault::Eio => "eio",
            IoFault::ShortWrite => "short-write",
        }
    }

    /// Bytes of a `len`-byte write that land.
    pub fn landed(self, len: usize) -> usize {
        match self {
            IoFault::ShortWrite => len / 2 / 512 * 512,
            _ => 0,
        }
    }

    pub(super) fn error(self, index: usize, offset: u64, len: usize) -> io::Error {
        let (kind, what) = match self {
            IoFault::Enospc => (
                io::ErrorKind::StorageFull,
                "No space left on device (os error 28)",
            ),
            IoFault::Eio => (io::ErrorKind::Other, "Input/output error (os error 5)"),
            IoFault::ShortWrite => (
                io::ErrorKind::StorageFull,
                "short write, then No space left on device (os error 28)",
            ),
        };
        io::Error::new(
            kind,
            format!(
                "{what}: write {index} ({len} bytes at {offset:#x}), {} landed (simulated {})",
                self.landed(len),
                self.name()
            ),
        )
    }
}
