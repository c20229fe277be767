//! Where a QEMU stream starts in a file. QEMU's `file:` URI takes
//! `offset=` (every mapped-ram offset in the stream is then an absolute
//! file position), and libvirt's `virsh save` puts its own header before
//! the stream:
//!
//! ```text
//! libvirt save image (src/qemu/qemu_saveimage.h; host byte order):
//!   0   16 bytes  magic "LibvirtQemudSave" (or "LibvirtQemudPart", unfinished)
//!  16   u32 version (2)        20  u32 data_len (domain XML and cookie)
//!  24   u32 was_running        28  u32 format (0 raw; 1..5 gzip, bzip2, xz, lzop, zstd)
//!  32   u32 cookieOffset       36  14 x u32 unused
//!  92   data_len bytes, then the QEMU stream ("QEVM", be32 3, ...)
//! ```
//! [`find_stream`] recognises a stream at 0, after a libvirt header, or
//! (for `offset=` files) the first stream header in the file's first
//! [`MAX_SCAN`] bytes.

use serde::Serialize;

use crate::error::LoadError;
use crate::io::MigFile;
use crate::stream::{MAGIC, VERSION, kind};

/// How far into a file [`find_stream`] looks for a stream header.
pub const MAX_SCAN: u64 = 16 << 20;
/// Size of libvirt's save image header.
pub const LIBVIRT_HEADER_LEN: u64 = 92;

/// What holds the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Container {
    /// The file is the stream.
    Bare,
    /// A libvirt save image (`virsh save`).
    LibvirtSave {
        /// Header version.
        version: u32,
        /// Bytes of domain XML (and cookie) before the stream.
        data_len: u32,
        /// Whether the domain was running when saved.
        was_running: bool,
        /// `LibvirtQemudPart`: libvirt did not finish writing it.
        partial: bool,
    },
    /// The stream starts at an offset with nothing migsim recognises
    /// before it (QEMU `file:PATH,offset=N`).
    Offset,
}

/// Where the stream is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamStart {
    /// File offset of the stream's magic.
    pub offset: u64,
    /// What holds it.
    pub container: Container,
}

/// The stream header: magic, version 3, the CONFIGURATION type byte.
fn header_at<F: MigFile + ?Sized>(file: &F, at: u64) -> bool {
    let mut b = [0u8; 9];
    matches!(file.read_at(at, &mut b), Ok(9))
        && b[..4] == MAGIC.to_be_bytes()
        && b[4..8] == VERSION.to_be_bytes()
        && b[8] == kind::CONFIGURATION
}

/// Find the stream in `file` (see the module docs). A file that starts
/// with the stream's magic, or in which no stream header is found, is
/// [`Container::Bare`] at 0: the reader then names what is wrong with it.
/// A compressed libvirt image is refused (migsim reads raw streams).
pub fn find_stream<F: MigFile + ?Sized>(file: &F) -> Result<StreamStart, LoadError> {
    let bare = StreamStart {
        offset: 0,
        container: Container::Bare,
    };
    let mut head = [0u8; LIBVIRT_HEADER_LEN as usize];
    let n = file.read_at(0, &mut head)?;
    if n < 4 || head[..4] == MAGIC.to_be_bytes() {
        return Ok(bare);
    }
    if n == head.len() && (&head[..16] == b"LibvirtQemudSave" || &head[..16] == b"LibvirtQemudPart")
    {
        let word = |i: usize| -> u32 {
            let b: [u8; 4] = head[16 + 4 * i..20 + 4 * i].try_into().expect("4 bytes");
            u32::from_le_bytes(b)
        };
        // Host byte order: a big-endian writer's version reads huge here.
        let swap = word(0) > 0xFFFF;
        let w = |i| if swap { word(i).swap_bytes() } else { word(i) };
        let (version, data_len, was_running, format) = (w(0), w(1), w(2), w(3));
        if format != 0 {
            return Err(LoadError::CompressedContainer { format });
        }
        let offset = LIBVIRT_HEADER_LEN + u64::from(data_len);
        if !header_at(file, offset) {
            return Err(LoadError::NoStreamInContainer { offset });
        }
        return Ok(StreamStart {
            offset,
            container: Container::LibvirtSave {
                version,
                data_len,
                was_running: was_running != 0,
                partial: &head[..16] == b"LibvirtQemudPart",
            },
        });
    }
    // An `offset=` file: look for the stream header, a window at a time.
    let end = file.len().min(MAX_SCAN);
    let mut buf = vec![0u8; (1 << 20) + 8];
    let mut at = 0u64;
    while at < end {
        let n = file.read_at(at, &mut buf)?;
        if n < 9 {
            break;
        }
        if let Some(i) = buf[..n]
            .windows(4)
            .position(|w| w == MAGIC.to_be_bytes())
            .map(|i| at + i as u64)
            .filter(|&i| i < end)
        {
            if header_at(file, i) {
                return Ok(StreamStart {
                    offset: i,
                    container: Container::Offset,
                });
            }
            at = i + 1;
            continue;
        }
        at += (n - 8) as u64;
    }
    Ok(bare)
}
