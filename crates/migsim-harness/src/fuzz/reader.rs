//! The `reader` target: arbitrary bytes as a migration file (see the
//! [module docs](super)).

use crate::sim::dest::{Destination, GARBAGE};
use migsim_format::LoadError;
use migsim_format::caps::{Capabilities, Capability};
use migsim_format::io::{Bytes, MigFile};
use migsim_format::reader::{self, LoadOptions, NullSink, RamSink, StreamInfo};
use migsim_format::vmdesc::VmdescCache;
use migsim_format::writer::RamBlockDesc;

use super::caps_model::on_off;
use super::{MACHINE, PAGE, PAGE_USIZE, TRAILERS, read_exact, reader_blocks};

/// Arbitrary bytes as a migration file (see the module docs), read in
/// place (libFuzzer's copy of the input is already exactly its size, so
/// AddressSanitizer sees any read past it).
pub fn reader(data: &[u8]) {
    check_file(&Bytes(data), &reader_blocks());
}

/// Every reader check on one file, with `local` as the destination's
/// blocks: three loads read the page data (an accepting sink through
/// `write_pages`, `inspect` without page data, a dirty [`Destination`]
/// through its buffers), two more check the machine and the validated
/// capability without it. They share one [`VmdescCache::for_one_file`]
/// (`file` is borrowed, so it cannot change), so the vmdesc JSON is found
/// and parsed once, not five times, and never compared again, and not
/// parsed at all when an earlier input had the same JSON ([`TRAILERS`]);
/// `tests/it/fuzz_corpus.rs` also loads every input without a cache.
///
/// No load into a zeroed destination: the dirty one checks more (a
/// reader that leaves a page alone instead of zeroing it fails there,
/// not in zeroed memory), and the validated loads accept exactly when
/// the unvalidated one does with the same description, so what they
/// would restore is what the dirty destination held.
pub(crate) fn check_file<F: MigFile + ?Sized>(file: &F, local: &[RamBlockDesc]) {
    check_file_sharing(
        file,
        local,
        VmdescCache::for_one_file().remembering(&TRAILERS),
    );
}

/// [`check_file`] with the loads' vmdesc answers kept in `cache`, a
/// cache for this file alone ([`VmdescCache::for_one_file`], or one
/// [`VmdescCache::pinned_to`] it from the cache of an earlier version of
/// the file), so the trailer is searched for at most once.
pub(crate) fn check_file_sharing<F: MigFile + ?Sized>(
    file: &F,
    local: &[RamBlockDesc],
    cache: VmdescCache,
) {
    let shared = LoadOptions {
        vmdesc_cache: Some(cache.clone()),
        ..LoadOptions::default()
    };
    let inspected = reader::inspect_sharing(file, Some(&cache));
    if let Ok(info) = &inspected {
        check_layout(file, info);
    }
    let mut contract = ContractSink::default();
    let loaded = reader::load(file, &shared, &mut contract);
    same_outcome(&inspected, &loaded);

    // A dirty destination proves the reader zeroes what the file says is
    // zero.
    {
        let mut dest = dirty_destination(local);
        if let Ok(info) = reader::load(file, &shared, &mut dest) {
            assert!(
                loaded.is_ok(),
                "a destination accepted a file that a sink accepting every block refused: {:?}",
                loaded.err()
            );
            check_restored(file, &info, &dest, local);
        }
        DIRTY.set(Some(dest));
    }

    for fixed in [false, true] {
        let mut opts = VALIDATED.take().unwrap_or_else(validated_options);
        opts[usize::from(fixed)].vmdesc_cache = Some(cache.clone());
        let loaded_checked = reader::load(file, &opts[usize::from(fixed)], &mut NullSink);
        VALIDATED.set(Some(opts));
        if let Ok(info) = loaded_checked {
            // The only validated capability is fixed-ram: the stream may
            // list it (even twice) exactly when the destination has it.
            let listed = !info.capabilities.is_empty();
            assert!(
                info.capabilities.iter().all(|c| c == "fixed-ram") && listed == fixed,
                "a destination with fixed-ram {} accepted a stream listing {:?}",
                on_off(fixed),
                info.capabilities
            );
            assert_eq!(
                info.machine, MACHINE,
                "machine check let another machine in"
            );
            match &loaded {
                Ok(all) => assert_eq!(
                    &info,
                    all,
                    "a load checking machine and fixed-ram {} describes the file otherwise \
                     than one that checks nothing",
                    on_off(fixed)
                ),
                Err(e) => panic!(
                    "a load checking machine and fixed-ram {} accepted a file that a load \
                     checking nothing refused: {e}",
                    on_off(fixed)
                ),
            }
        }
    }
}

/// The validated loads' options, without fixed-ram and with it: the
/// machine checked, no page data.
fn validated_options() -> [LoadOptions; 2] {
    [false, true].map(|fixed| {
        let enabled: &[Capability] = if fixed { &[Capability::FixedRam] } else { &[] };
        LoadOptions {
            machine: Some(MACHINE.into()),
            caps: Some(Capabilities::from_enabled(enabled).expect("fixed-ram alone is valid")),
            skip_page_data: true,
            ..LoadOptions::default()
        }
    })
}

thread_local! {
    /// [`validated_options`], built once (their machine name and
    /// capability set are the same for every input; each load sets its
    /// input's vmdesc cache).
    static VALIDATED: std::cell::Cell<Option<[LoadOptions; 2]>> = const { std::cell::Cell::new(None) };
    /// The dirty destination of the last input, kept for the next one
    /// (only [`dirty_destination`]'s, so always filled with [`GARBAGE`]).
    pub(crate) static DIRTY: std::cell::Cell<Option<Destination>> = const { std::cell::Cell::new(None) };
}

/// A dirty [`Destination`] with blocks `local`, every byte [`GARBAGE`]:
/// the last input's, [reset](Destination::reset_to) to `local` (one
/// taken while a check panics is simply not returned). Give it back with
/// `DIRTY.set(Some(dest))`.
pub(crate) fn dirty_destination(local: &[RamBlockDesc]) -> Destination {
    match DIRTY.take() {
        Some(mut d) => {
            d.reset_to(local);
            d
        }
        None => Destination::new(local, true),
    }
}

/// `inspect` (no page data) and a full load into an accepting sink must
/// describe the file the same way, or fail with the same error; except a
/// stream whose EOF comes before the RAM END section (a save that did not
/// complete), which a load refuses and `inspect` describes with a warning
/// at the same EOF, and a stream without a vmdesc trailer whose device
/// sections follow the RAM END section and which ends as QEMU ends one
/// (`suppress-vmdesc=on`), which `inspect` reads up to the first device
/// section and a load refuses at that section (the reader's module docs).
pub(crate) fn same_outcome(
    inspected: &Result<StreamInfo, LoadError>,
    loaded: &Result<StreamInfo, LoadError>,
) {
    if let (Ok(info), Err(LoadError::NoVmdesc { idstr, offset, .. })) = (inspected, loaded) {
        let Some(stop) = &info.unwalked_devices else {
            panic!(
                "a load refused for want of a vmdesc trailer at section '{}' ({offset:#x}) \
                 a file that inspect read to the end",
                idstr.escape_debug()
            );
        };
        assert_eq!(
            (&stop.idstr, stop.offset),
            (idstr, *offset),
            "inspect stopped at another device section than the one a load refused at"
        );
        assert!(
            info.warnings
                .iter()
                .any(|w| w.starts_with("no vmdesc trailer")),
            "inspect stopped at the device sections without saying so: {:?}",
            info.warnings
        );
        return;
    }
    if let (Ok(info), Err(LoadError::NoRamEnd { offset })) = (inspected, loaded) {
        assert_eq!(info.eof_offset, *offset, "inspect and load saw another EOF");
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("before the RAM END section")),
            "a load refused a stream without RAM END that inspect did not warn about: {:?}",
            info.warnings
        );
        return;
    }
    match (inspected, loaded) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "inspect and load describe the file differently"),
        (Err(a), Err(b)) => {
            if !same_text(a, b) {
                assert_eq!(
                    a.to_string(),
                    b.to_string(),
                    "inspect and load fail differently"
                );
            }
        }
        (a, b) => panic!(
            "inspect and load disagree: inspect {:?}, load {:?}",
            a.as_ref().map(|i| i.layout),
            b.as_ref().map(|i| i.layout)
        ),
    }
}

/// Whether `a` and `b` display as the same text: `a` formatted into a
/// buffer on the stack, `b` compared with it as it is formatted, so the
/// usual case (the same error twice) allocates nothing for either; a text
/// longer than the buffer is compared as two Strings.
fn same_text(a: &impl std::fmt::Display, b: &impl std::fmt::Display) -> bool {
    use std::fmt::Write;
    /// Text into a fixed buffer; an error when it does not fit.
    struct Buf {
        bytes: [u8; 512],
        len: usize,
    }
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let room = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            room.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    /// Compares text written to it with `want`, from the start.
    struct Compare<'a> {
        want: &'a [u8],
        at: usize,
    }
    impl Write for Compare<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.at + s.len();
            if self.want.get(self.at..end) != Some(s.as_bytes()) {
                return Err(std::fmt::Error);
            }
            self.at = end;
            Ok(())
        }
    }
    let mut buf = Buf {
        bytes: [0; 512],
        len: 0,
    };
    if write!(buf, "{a}").is_err() {
        return a.to_string() == b.to_string();
    }
    let want = &buf.bytes[..buf.len];
    let mut cmp = Compare { want, at: 0 };
    write!(cmp, "{b}").is_ok() && cmp.at == want.len()
}

/// What docs/reference/reader-guarantees.md promises about a file the reader accepted.
pub(crate) fn check_layout<F: MigFile + ?Sized>(file: &F, info: &StreamInfo) {
    let len = file.len();
    assert_eq!(info.file_len, len, "file_len");
    assert!(
        info.eof_offset < len,
        "EOF byte at {:#x} past the file",
        info.eof_offset
    );
    let mut end = 0u64;
    for s in &info.sections {
        assert!(
            s.offset >= end,
            "section at {:#x} overlaps the one before",
            s.offset
        );
        end = s.offset + s.len;
    }
    assert!(end <= info.eof_offset, "sections run past the EOF byte");
    let fixed = info.layout == migsim_format::Layout::FixedRam;
    let mut next_free = 0u64;
    for b in &info.blocks {
        assert!(
            b.used_length > 0 && b.used_length.is_multiple_of(PAGE),
            "block {} used_length {:#x}",
            b.name,
            b.used_length
        );
        assert_eq!(b.pages, b.used_length / PAGE, "block {} page count", b.name);
        let Some(fr) = &b.fixed_ram else {
            assert!(
                !fixed,
                "fixed-ram stream, but block {} has no header",
                b.name
            );
            continue;
        };
        assert!(
            fixed,
            "sequential stream, but block {} has a header",
            b.name
        );
        // Formatted only when an assertion fails.
        let story = || format!("block {} layout {fr:?} in a file of {len:#x} bytes", b.name);
        if b.ignored {
            assert!(
                info.capabilities.iter().any(|c| c == "x-ignore-shared"),
                "ignored {}: accepted in a stream without x-ignore-shared",
                story()
            );
            assert!(
                fr.header_offset >= next_free
                    && fr.bitmap_offset == 0
                    && fr.pages_offset == 0
                    && fr.bitmap_len == 0
                    && b.pages_present == 0,
                "ignored {}: not the ignored-block encoding, or overlapping the block before",
                story()
            );
            next_free = fr.header_offset + 28;
            continue;
        }
        let bitmap_len = b.pages.div_ceil(64) * 8;
        assert!(
            fr.header_offset >= next_free,
            "{}: header overlaps the block before",
            story()
        );
        assert!(
            fr.version <= 1 && fr.page_size == PAGE,
            "{}: header fields",
            story()
        );
        assert_eq!(fr.bitmap_len, bitmap_len, "{}: bitmap length", story());
        assert!(
            fr.bitmap_offset >= fr.header_offset + 28,
            "{}: bitmap overlaps header",
            story()
        );
        assert!(
            fr.pages_offset.is_multiple_of(PAGE),
            "{}: page area not page-aligned",
            story()
        );
        assert!(
            fr.pages_offset >= fr.bitmap_offset + bitmap_len,
            "{}: page area overlaps bitmap",
            story()
        );
        assert!(
            fr.pages_offset + b.used_length <= len,
            "{}: page area past the end",
            story()
        );
        assert!(
            b.pages_present <= b.pages,
            "{}: more pages present than pages",
            story()
        );
        next_free = fr.pages_offset + b.used_length;
    }
}

/// A fixed-ram file that loaded into `dest`: every page of every block
/// must be the file's page where its bitmap bit (read here, LSB first) is
/// set, and zero where it is clear, whatever the destination held before.
pub(crate) fn check_restored<F: MigFile + ?Sized>(
    file: &F,
    info: &StreamInfo,
    dest: &Destination,
    local: &[RamBlockDesc],
) {
    check_layout(file, info);
    if info.layout != migsim_format::Layout::FixedRam {
        return;
    }
    let zero = [0u8; PAGE_USIZE];
    let mut want = vec![0u8; PAGE_USIZE];
    for b in &info.blocks {
        let fr = b.fixed_ram.as_ref().expect("checked by check_layout");
        let li = local
            .iter()
            .position(|l| l.name == b.name)
            .unwrap_or_else(|| panic!("destination accepted unknown block {}", b.name));
        assert_eq!(
            local[li].used_length, b.used_length,
            "used_length of {}",
            b.name
        );
        if b.ignored {
            // Shared memory the destination keeps: the load must not
            // touch it.
            let fill = dest.initial_fill();
            if let Some(p) = (0..b.pages).find(|&p| dest.page(li, p).iter().any(|&x| x != fill)) {
                panic!(
                    "the load wrote page {p:#x} of {}, a block ignored under x-ignore-shared",
                    b.name
                );
            }
            continue;
        }
        let mut bitmap = vec![0u8; fr.bitmap_len as usize];
        read_exact(file, fr.bitmap_offset, &mut bitmap);
        let mut set = 0;
        for p in 0..b.pages {
            let bit = bitmap[(p / 8) as usize] >> (p % 8) & 1 == 1;
            let expected: &[u8] = if bit {
                set += 1;
                read_exact(file, fr.pages_offset + p * PAGE, &mut want);
                &want
            } else {
                &zero
            };
            let got = dest.page(li, p);
            if got != expected {
                let first = got.iter().zip(expected).position(|(a, b)| a != b);
                panic!(
                    "fixed-ram restore of {} page {p:#x} (bitmap bit {}) is wrong: first \
                     difference at byte {first:?}, restored {:#04x?}, expected {:#04x?} \
                     (garbage is {GARBAGE:#04x})",
                    b.name,
                    u8::from(bit),
                    &got[..16],
                    &expected[..16]
                );
            }
        }
        assert_eq!(b.pages_present, set, "pages_present of {}", b.name);
    }
}

/// A sink that accepts every block and checks the reader keeps the
/// [`RamSink`] contract: whole pages, inside a declared block.
#[derive(Default)]
pub(crate) struct ContractSink {
    /// Pages of each declared block.
    pages: Vec<u64>,
}

impl ContractSink {
    fn check(&self, what: &str, block: usize, first: u64, count: u64) {
        let Some(&pages) = self.pages.get(block) else {
            panic!(
                "reader broke the RamSink contract: {what} for block {block}, but only {} declared",
                self.pages.len()
            );
        };
        assert!(
            first.checked_add(count).is_some_and(|end| end <= pages),
            "reader broke the RamSink contract: {what} pages {first:#x}+{count:#x} outside block \
             {block} of {pages:#x} pages"
        );
    }
}

impl RamSink for ContractSink {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        assert!(
            !name.is_empty(),
            "reader declared a block with an empty name"
        );
        assert!(
            used_length > 0 && used_length.is_multiple_of(PAGE),
            "reader declared block {name} with used_length {used_length:#x}"
        );
        self.pages.push(used_length / PAGE);
        Ok(())
    }
    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        assert!(
            data.len().is_multiple_of(PAGE_USIZE),
            "reader broke the RamSink contract: write_pages of {} bytes",
            data.len()
        );
        self.check(
            "write_pages",
            block,
            first,
            (data.len() / PAGE_USIZE) as u64,
        );
        Ok(())
    }
    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        self.check("zero_pages", block, first, count);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::same_text;

    /// Texts compare equal exactly when they are: short or longer than
    /// the stack buffer, one a prefix of the other, written in pieces.
    #[test]
    fn same_text_is_string_equality() {
        let long = "x".repeat(700);
        let texts = [
            String::new(),
            "a".into(),
            "ab".into(),
            "abc".into(),
            long.clone(),
            format!("{long}y"),
            format!("{}z", &long[..511]),
        ];
        for a in &texts {
            for b in &texts {
                assert_eq!(same_text(a, b), a == b, "{} vs {}", a.len(), b.len());
            }
        }
        let pieces = format_args!("{}{}{}", "ab", 1, "c");
        assert!(same_text(&"ab1c", &pieces));
        assert!(!same_text(&"ab1d", &pieces));
    }
}
