//! Files the command line reads and writes, and the rules that keep the
//! user's data safe: an input is checked to be a regular file *before* it
//! is opened (a FIFO would block the open); an output is replaced only
//! once the command succeeded, by renaming a temporary file migsim created
//! itself, and is never the input (same device and inode).

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use migsim_format::extract::ExtractError;
use migsim_format::io::DiskFile;
use migsim_format::reader::StreamInfo;

/// What a non-regular file is, in words.
fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Open the migration file `path` for inspect and extract, with its
/// metadata (which extract compares with the output's).
///
/// Only regular files are read: the reader reads at random offsets and
/// needs the length, which a pipe, FIFO, socket or device does not give,
/// and opening a FIFO for reading would block until some writer came. So
/// the type is checked with `metadata` *before* opening, and anything else
/// is refused with what it is and what to do. A stream in a pipe is
/// deliberately not spooled to a temporary file: it is as large as the
/// guest's RAM, and the user knows better than migsim where that fits
/// (`cat FIFO > vm.mig`). (A path swapped for a FIFO between the check and
/// the open could still block; that race is not defended against.)
pub fn open(path: &Path) -> Result<(DiskFile, std::fs::Metadata), String> {
    let p = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{p}: {e}"))?;
    if meta.is_dir() {
        return Err(format!(
            "{p}: is a directory; migsim reads migration files, give the path of one"
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "{p}: is {}; migsim reads migration files (at random offsets), \
             save the stream to a file first, e.g. cat {p} > vm.mig",
            file_kind(meta.file_type())
        ));
    }
    let file = DiskFile::open(path).map_err(|e| format!("{p}: {e}"))?;
    Ok((file, meta))
}

/// Largest report `migsim merge` reads: a shard keeps at most 1,000
/// failures of a few KiB each.
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

/// Read a JSON report for `migsim merge`: a regular file (checked before
/// opening, as for [`open`]) of at most [`MAX_REPORT_BYTES`], as UTF-8.
/// The error does not repeat the path (the caller adds it).
pub fn read_regular(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!(
            "is {}; give the JSON file `migsim explore --json` wrote",
            file_kind(meta.file_type())
        ));
    }
    if meta.len() > MAX_REPORT_BYTES {
        return Err(format!(
            "{} bytes, more than an explore report can be ({MAX_REPORT_BYTES})",
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// A file migsim created itself (`create_new`, so never anyone else's),
/// removed when dropped unless [`TempOut::rename_to`] moved it into place.
struct TempOut {
    path: PathBuf,
    file: std::fs::File,
    keep: bool,
}

impl TempOut {
    /// Create `DIR/.NAME.migsim-PID-N.tmp` with the first free N.
    fn create(dir: &Path, name: &str) -> std::io::Result<Self> {
        let pid = std::process::id();
        for n in 0..1000 {
            let path = dir.join(format!(".{name}.migsim-{pid}-{n}.tmp"));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("no free temporary file name in {}", dir.display()),
        ))
    }

    /// Rename over `to` (atomically replacing whatever was there).
    fn rename_to(mut self, to: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where extract's bytes go.
enum Dest {
    /// A regular file (`path`, symlinks resolved; it may not exist yet):
    /// extract into a temporary file beside it, rename over it on success.
    /// `perms`: an existing file's permissions, kept.
    Replace {
        path: PathBuf,
        perms: Option<std::fs::Permissions>,
    },
    /// Not a regular file (/dev/stdout on a pipe, /dev/null, a FIFO):
    /// extract into a spool file, then copy into it.
    Stream,
}

/// Decide how to write `output`, refusing the input itself (same device
/// and inode after following symlinks: the same path, a hard link or a
/// symlink to it) and directories.
fn output_dest(output: &Path, input: &std::fs::Metadata) -> Result<Dest, String> {
    use std::os::unix::fs::MetadataExt;
    let o = output.display();
    match std::fs::metadata(output) {
        Ok(m) if (m.dev(), m.ino()) == (input.dev(), input.ino()) => Err(format!(
            "{o}: is the input file (or a link to it); refusing to write over it, \
             give another output path"
        )),
        Ok(m) if m.is_dir() => Err(format!("{o}: is a directory; give an output file path")),
        Ok(m) if m.is_file() => Ok(Dest::Replace {
            path: std::fs::canonicalize(output).map_err(|e| format!("{o}: {e}"))?,
            perms: Some(m.permissions()),
        }),
        Ok(_) => Ok(Dest::Stream),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(output).is_ok() {
                return Err(format!(
                    "{o}: is a symbolic link to nothing; remove it or give its target"
                ));
            }
            Ok(Dest::Replace {
                path: output.to_path_buf(),
                perms: None,
            })
        }
        Err(e) => Err(format!("{o}: {e}")),
    }
}

/// Write `output` with `write`, safely: it is never the input (`input`:
/// the input's metadata), a regular output is replaced only when `write`
/// succeeded, by renaming a temporary file from its own directory over it
/// (an existing file's permissions kept); anything else (a pipe, FIFO,
/// /dev/stdout, /dev/null) gets a copy of a spool file in the temporary
/// directory, which is unlinked as soon as it is created, so nothing is
/// left behind even if migsim is killed. A failed `write` leaves any
/// existing output as it was, and migsim only ever removes its own
/// temporary file. Errors about the output name the output.
pub fn write_output<T>(
    output: &Path,
    input: &std::fs::Metadata,
    write: impl FnOnce(&std::fs::File) -> Result<T, String>,
) -> Result<T, String> {
    let dest = output_dest(output, input)?;
    let o = output.display();
    match dest {
        Dest::Replace { path: to, perms } => {
            let dir = match to.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            // Short enough that the temporary name fits in NAME_MAX.
            let name: String = to
                .file_name()
                .map_or("out".into(), |n| n.to_string_lossy())
                .chars()
                .scan(0, |len, c| {
                    *len += c.len_utf8();
                    (*len <= 200).then_some(c)
                })
                .collect();
            let tmp =
                TempOut::create(dir, &name).map_err(|e| format!("{o}: cannot create: {e}"))?;
            if let Some(p) = perms {
                tmp.file
                    .set_permissions(p)
                    .map_err(|e| format!("{o}: {e}"))?;
            }
            let value = write(&tmp.file)?;
            tmp.rename_to(&to)
                .map_err(|e| format!("{o}: cannot replace: {e}"))?;
            Ok(value)
        }
        Dest::Stream => {
            let dir = std::env::temp_dir();
            let mut tmp = TempOut::create(&dir, "spool").map_err(|e| {
                format!("{o}: cannot create a spool file in {}: {e}", dir.display())
            })?;
            // Unlinked now; the descriptor keeps it until it is closed.
            if std::fs::remove_file(&tmp.path).is_ok() {
                tmp.keep = true;
            }
            let value = write(&tmp.file)?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .open(output)
                .map_err(|e| format!("{o}: {e}"))?;
            tmp.file.rewind().map_err(|e| format!("{o}: {e}"))?;
            std::io::copy(&mut tmp.file, &mut out)
                .and_then(|_| out.flush())
                .map_err(|e| format!("{o}: {e}"))?;
            Ok(value)
        }
    }
}

/// `migsim extract`: block `block` of the migration file `path` into
/// `output`, by [`write_output`]'s rules; the input is opened and checked
/// before the output is touched.
pub fn extract(path: &Path, block: &str, output: &Path) -> Result<StreamInfo, String> {
    let (file, meta) = open(path)?;
    write_output(output, &meta, |out| {
        migsim_format::extract::extract(&file, block, out).map_err(|e| match e {
            ExtractError::Output(e) => format!("{}: {e}", output.display()),
            e => format!("{}: {e}", path.display()),
        })
    })
}

/// Make sure `dir` is a directory migsim can write files in, before any
/// work starts: create it (and its parents) if missing, refuse a file in
/// its place, and prove it writable by creating and removing a file.
pub fn check_output_dir(dir: &Path, flag: &str) -> Result<(), String> {
    let d = dir.display();
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{flag} {d}: is not a directory"));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{flag} {d}: cannot create: {e}"))?;
    let probe = TempOut::create(dir, "probe")
        .map_err(|e| format!("{flag} {d}: cannot write there: {e}"))?;
    drop(probe);
    Ok(())
}
