//! The vmdesc JSON trailer: reading it ([`Vmdesc`], and walking device
//! (FULL) sections with it) and writing it ([`encode`]).
//!
//! ```text
//! ... 0x00 EOF | 0x06 VMDESCRIPTION | be32 len | len bytes of JSON (end of file)
//! ```
//! A FULL payload has no length prefix; its size is known only from the
//! device's field list in the JSON: `{"name","instance_id","vmsd_name",
//! "version","fields":[{"name","type","size","array_len"?,"struct"?}],
//! "subsections"?:[...]}`. Scalars and buffers take `size` bytes
//! (times `array_len`), `struct` fields nest, a `capability` is a short
//! string, and each described subsection appears in the stream as
//! `0x05, short name, be32 version, body`.
//!
//! The trailer is found by scanning the file's tail (at most
//! [`MAX_TAIL`] bytes) for `00 06 len` whose `len` reaches exactly the
//! end of the file and whose JSON parses. A [`VmdescCache`] keeps one
//! found trailer for later loads of the same bytes (the fuzz targets load
//! every input several times; the JSON parse was most of a load), and a
//! [`ParseMemo`] keeps parsed trees across files by their JSON bytes (the
//! fuzz targets' inputs mostly share trailers with the inputs they were
//! mutated from).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
#[cfg(test)]
use serde_json::Value;

use crate::ram::PAGE_SIZE;
use crate::writer::DeviceState;

use crate::error::LoadError;
use crate::fifo::{BytesHash, FifoMap};
use crate::io::MigFile;
use crate::stream::kind;
use crate::wire::Cursor;

#[path = "vmdesc_json.rs"]
mod json;

/// How far from the end the trailer is searched for.
pub const MAX_TAIL: u64 = 16 << 20;
/// How much of the tail [`Vmdesc::locate`] reads a step (after a first
/// step of 4 KiB).
pub const FIRST_WINDOW: u64 = 64 << 10;

/// Whether `b` may not appear in JSON that parses: a byte below 0x20
/// other than tab, LF and CR.
fn is_control(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
}

/// The offset of the last [control byte](is_control) in
/// `floor..len`, read backwards: 4 KiB first, then [`FIRST_WINDOW`]
/// bytes a step. `None` also when a read comes up short (the file
/// shrank: no trailer to find).
fn last_control_byte<F: MigFile + ?Sized>(
    file: &F,
    floor: u64,
    len: u64,
) -> Result<Option<u64>, LoadError> {
    let mut buf = Vec::new();
    let mut end = len;
    while end > floor {
        let step = if end == len { 4 << 10 } else { FIRST_WINDOW };
        let start = end - (end - floor).min(step);
        let Some(piece) = bytes_at(file, start, (end - start) as usize, &mut buf)? else {
            return Ok(None);
        };
        if let Some(i) = rfind_control(piece) {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The last index in `hay` of a [control byte](is_control): 64 bytes a
/// step with one branch (the classic has-less-than test for 0x20 on each
/// word, or-ed; it also flags tab, LF and CR, which the byte loop then
/// passes over), then byte by byte from the flagged block's end.
fn rfind_control(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let below_space = |word: &[u8]| {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        w.wrapping_sub(LO * 0x20) & !w & HI
    };
    let mut end = hay.len();
    loop {
        while end >= 64 {
            let block: &[u8; 64] = hay[end - 64..end].try_into().expect("64 bytes");
            if block.chunks_exact(8).fold(0, |acc, w| acc | below_space(w)) != 0 {
                break;
            }
            end -= 64;
        }
        let from = end.saturating_sub(64);
        if let Some(i) = hay[from..end].iter().rposition(|&b| is_control(b)) {
            return Some(from + i);
        }
        if from == 0 {
            return None;
        }
        end = from;
    }
}

/// The `n` bytes at `offset`: in place when the file keeps them in one
/// piece ([`MigFile::slice_at`]), otherwise read into `buf`; `None` when
/// the file has fewer there.
fn bytes_at<'a, F: MigFile + ?Sized>(
    file: &'a F,
    offset: u64,
    n: usize,
    buf: &'a mut Vec<u8>,
) -> Result<Option<&'a [u8]>, LoadError> {
    if let Some(here) = file.slice_at(offset, n) {
        return Ok(Some(here));
    }
    buf.resize(n, 0);
    Ok((file.read_at(offset, buf)? == n).then_some(&buf[..]))
}

/// Upper bound on walk steps over the whole file (all device sections
/// together), so neither hostile `array_len`s nor many sections repeating
/// an expensive walk can hang the reader. QEMU's own files need a few
/// thousand.
const MAX_STEPS: u64 = 1 << 20;

/// A parsed vmdesc trailer (cheap to clone: the parsed JSON is shared).
#[derive(Debug, Clone)]
pub struct Vmdesc {
    /// Offset of the 0x06 byte.
    pub offset: u64,
    /// JSON length.
    pub json_len: u64,
    tree: Arc<Tree>,
    /// Walk steps spent so far in this file.
    steps: u64,
}

/// The parsed trailer: each device's description resolved once from the
/// JSON into what a walk needs (no key lookups or string compares per
/// field when a payload is walked, several times per load under the fuzz
/// targets), and its device index.
#[derive(Debug)]
struct Tree {
    /// One entry per element of `devices` (an element that is not an
    /// object describes nothing: no fields, no subsections).
    devices: Vec<Desc>,
    /// name -> instance_id -> index into `devices`, first entry wins
    /// (by name first, so a lookup borrows the section's idstr).
    index: BTreeMap<String, BTreeMap<u64, usize>>,
}

/// A device's or a subsection's description: what `walk_struct` reads.
#[derive(Debug, Default, PartialEq)]
struct Desc {
    fields: Vec<Field>,
    subsections: Vec<Subsection>,
}

/// One element of `fields`.
#[derive(Debug, PartialEq)]
struct Field {
    /// `name`, or `?`.
    name: String,
    /// `array_len`, or 1.
    count: u64,
    kind: FieldKind,
}

#[derive(Debug, PartialEq)]
enum FieldKind {
    /// Has a `struct` (of any JSON type: a non-object describes nothing).
    Struct(Desc),
    /// `type` is `capability`: a short string.
    Capability,
    /// Anything else: `size` bytes (`None`: no unsigned `size`).
    Sized(Option<u64>),
}

/// One element of `subsections`.
#[derive(Debug, PartialEq)]
struct Subsection {
    /// `vmsd_name`, or `?`.
    vmsd_name: String,
    desc: Desc,
}

#[cfg(test)]
impl Desc {
    /// The description in `v` as the walk first read JSON, through a
    /// `serde_json::Value` (the reference `json::parse` is compared
    /// with): missing or
    /// mistyped keys take their defaults (serde_json's indexing gives
    /// `Null` for them). The JSON's nesting is bounded by serde_json's
    /// recursion limit (128), so this recursion is too.
    fn from_json(v: &Value) -> Desc {
        let list = |key: &str| v[key].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let fields = list("fields")
            .iter()
            .map(|f| Field {
                name: f["name"].as_str().unwrap_or("?").to_string(),
                count: f["array_len"].as_u64().unwrap_or(1),
                kind: if let Some(inner) = f.get("struct") {
                    FieldKind::Struct(Desc::from_json(inner))
                } else if f["type"].as_str() == Some("capability") {
                    FieldKind::Capability
                } else {
                    FieldKind::Sized(f["size"].as_u64())
                },
            })
            .collect();
        let subsections = list("subsections")
            .iter()
            .map(|sub| Subsection {
                vmsd_name: sub["vmsd_name"].as_str().unwrap_or("?").to_string(),
                desc: Desc::from_json(sub),
            })
            .collect();
        Desc {
            fields,
            subsections,
        }
    }
}

impl Tree {
    /// The walk's descriptions of `devices` (the trailer's `devices`
    /// array) and their index.
    fn from_devices(devices: Vec<json::Node>) -> Tree {
        let mut index: BTreeMap<String, BTreeMap<u64, usize>> = BTreeMap::new();
        for (i, d) in devices.iter().enumerate() {
            if let (Some(name), Some(inst)) = (&d.name, d.instance_id) {
                index
                    .entry(name.clone())
                    .or_default()
                    .entry(inst)
                    .or_insert(i);
            }
        }
        Tree {
            devices: devices.into_iter().map(json::Node::desc).collect(),
            index,
        }
    }
}

impl Vmdesc {
    /// Find and parse the trailer, if the file has one.
    /// migsim's trailers after it (an integrity trailer, a durable save's
    /// completion mark: [`crate::integrity::stream_end`]) are not part of
    /// it: the search ends where they begin.
    ///
    /// Candidates (a 0x06 byte after EOF whose length reaches exactly the
    /// end, then `{`) are tried from the end of the file back, at most
    /// [`MAX_TAIL`] bytes back; the first whose JSON parses wins. JSON
    /// that parses holds no byte below 0x20 but tab, LF and CR (serde_json
    /// refuses them in strings and between tokens alike), and a
    /// candidate's 0x06 is such a byte: so only the last such byte of the
    /// tail and the four before it can be a winning candidate's 0x06 (one
    /// further back has that byte inside its JSON). The search reads the
    /// tail backwards, [`FIRST_WINDOW`] bytes a step (the first step 4
    /// KiB), until that byte, tries those five offsets, and reads a
    /// candidate's JSON only when its length field fits: it gives what
    /// one byte-by-byte pass over the whole tail gives, trying every
    /// candidate (the tests compare them), at the cost of the trailer, not
    /// of the tail (a fuzz input whose trailer was broken, or a file grown
    /// by a hole, once scanned up to 16 MiB).
    pub fn locate<F: MigFile + ?Sized>(file: &F) -> Result<Option<Vmdesc>, LoadError> {
        Self::locate_before(file, crate::integrity::stream_end(file)?, None)
    }

    /// [`Vmdesc::locate`] with the stream's end (`len`) known, parsing
    /// through `memo` when there is one.
    fn locate_before<F: MigFile + ?Sized>(
        file: &F,
        len: u64,
        memo: Option<&ParseMemo>,
    ) -> Result<Option<Vmdesc>, LoadError> {
        let floor = len - len.min(MAX_TAIL);
        let Some(last) = last_control_byte(file, floor, len)? else {
            // No 0x06 in the tail at all.
            return Ok(None);
        };
        // The 0x06 needs the EOF byte before it inside the tail, and `{`
        // after its length field.
        let lowest = last.saturating_sub(4).max(floor + 1);
        let highest = last.min(len.saturating_sub(6));
        let mut buf = Vec::new();
        let mut p = highest + 1;
        while p > lowest {
            p -= 1;
            let Some(head) = bytes_at(file, p - 1, 7, &mut buf)? else {
                return Ok(None);
            };
            let n = u32::from_be_bytes(head[2..6].try_into().expect("4 bytes"));
            if head[0] != kind::EOF
                || head[1] != kind::VMDESCRIPTION
                || p + 5 + u64::from(n) != len
                || head[6] != b'{'
            {
                continue;
            }
            let Some(json) = bytes_at(file, p + 5, n as usize, &mut buf)? else {
                return Ok(None);
            };
            let found = match memo {
                Some(memo) => memo.parse(p, json),
                None => Self::parse(p, json),
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Parse a trailer's JSON read directly.
    pub fn parse(offset: u64, json: &[u8]) -> Option<Vmdesc> {
        Self::parse_tree(json).map(|tree| Self::with_tree(offset, json.len(), tree))
    }

    fn parse_tree(json: &[u8]) -> Option<Arc<Tree>> {
        let root = json::parse(json)?;
        Some(Arc::new(Tree::from_devices(root.devices)))
    }

    fn with_tree(offset: u64, json_len: usize, tree: Arc<Tree>) -> Vmdesc {
        Vmdesc {
            offset,
            json_len: json_len as u64,
            tree,
            steps: 0,
        }
    }

    /// Number of devices described.
    pub fn device_count(&self) -> usize {
        self.tree.devices.len()
    }

    fn device(&self, idstr: &str, instance: u32) -> Option<&Desc> {
        let i = *self.tree.index.get(idstr)?.get(&u64::from(instance))?;
        self.tree.devices.get(i)
    }

    /// Walk one device's FULL payload at the cursor, leaving the cursor on
    /// its footer.
    pub(crate) fn skip_device<F: MigFile + ?Sized>(
        &mut self,
        cur: &mut Cursor<'_, F>,
        idstr: &str,
        instance: u32,
    ) -> Result<(), String> {
        let dev = self
            .device(idstr, instance)
            .ok_or_else(|| format!("the vmdesc trailer does not describe instance {instance}"))?;
        let mut steps = self.steps;
        let r = walk_struct(dev, cur, &mut steps, 0);
        self.steps = steps;
        r
    }
}

/// The last search for a trailer, for later loads of the same file: each
/// reuses its answer only after comparing the bytes it was found in with
/// the file's (for a trailer, the EOF byte before it to the stream's end:
/// every byte the search looked at up to the candidate it chose; for no
/// trailer, the whole tail searched), so a cache handed a changed or
/// another file searches again and gives the same answer as
/// [`Vmdesc::locate`], only without parsing the same JSON or scanning the
/// same tail twice. Clones share the cache (`LoadOptions::vmdesc_cache`).
///
/// [`VmdescCache::for_one_file`] skips the comparison, for loads of one
/// file that cannot change in between.
#[derive(Debug, Clone, Default)]
pub struct VmdescCache {
    slot: Arc<Mutex<Option<Cached>>>,
    /// Reuse the answer without comparing bytes.
    one_file: bool,
    /// Where a search parses the JSON it finds.
    memo: Option<ParseMemo>,
}

/// Parsed trailers remembered across files by their JSON bytes: parsing
/// the same bytes gives the same tree, wherever in a file they sit, so a
/// second file with the trailer of an earlier one (a fuzz input mutated
/// away from its trailer, another input of the same seed, or one loaded
/// again) skips the parse. Holds the last distinct JSONs, the valid and
/// the invalid, at most [`MEMO_ENTRIES`] of them and [`MEMO_BYTES`] of
/// JSON together (a longer JSON than that is parsed each time), dropped
/// oldest first; found by their bytes (a hash map). Clones share the memo.
#[derive(Debug, Clone, Default)]
pub struct ParseMemo {
    slots: Arc<Mutex<MemoSlots>>,
}

/// How many parsed JSONs a [`ParseMemo`] keeps at most.
pub const MEMO_ENTRIES: usize = 1024;
/// How many bytes of JSON a [`ParseMemo`] keeps at most (its trees take
/// a few times that).
pub const MEMO_BYTES: usize = 4 << 20;

/// Each JSON kept (its bytes its size) and what parsing it gave.
#[derive(Debug)]
struct MemoSlots(FifoMap<Arc<[u8]>, Option<Arc<Tree>>, BytesHash>);

impl Default for MemoSlots {
    fn default() -> Self {
        MemoSlots(FifoMap::with_hasher(MEMO_ENTRIES, MEMO_BYTES, BytesHash))
    }
}

impl ParseMemo {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`Vmdesc::parse`], reusing the tree of the same JSON parsed before.
    pub fn parse(&self, offset: u64, json: &[u8]) -> Option<Vmdesc> {
        if json.len() > MEMO_BYTES {
            return Vmdesc::parse(offset, json);
        }
        let lock = || self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let known = lock().0.get(json).cloned();
        // Parsed without the lock, so threads sharing the memo (cargo
        // test replaying corpora) parse side by side.
        let tree = known.unwrap_or_else(|| {
            let tree = Vmdesc::parse_tree(json);
            lock().0.insert(Arc::from(json), tree.clone(), json.len());
            tree
        });
        tree.map(|tree| Vmdesc::with_tree(offset, json.len(), tree))
    }
}

#[derive(Debug)]
struct Cached {
    /// Where the stream ended.
    stream_end: u64,
    /// Offset of `bytes` in the file.
    start: u64,
    /// The file's bytes from `start` to `stream_end`.
    bytes: Vec<u8>,
    found: Option<Vmdesc>,
}

impl VmdescCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache for the loads of ONE file that nothing changes
    /// while the cache lives (an immutable in-memory input, as each input
    /// of the fuzz targets): it reuses its first answer for any file of the
    /// same stream length without reading the bytes again. Handed another
    /// file of that length, it answers wrongly; use [`VmdescCache::new`]
    /// where that can happen.
    pub fn for_one_file() -> Self {
        Self {
            one_file: true,
            ..Self::default()
        }
    }

    /// This cache, parsing the trailers it finds through `memo`, so what
    /// another cache with the same memo parsed is not parsed again.
    pub fn remembering(mut self, memo: &ParseMemo) -> Self {
        self.memo = Some(memo.clone());
        self
    }

    /// [`Vmdesc::locate`], reusing the last answer when the file holds
    /// the same bytes where it was searched for.
    pub fn locate<F: MigFile + ?Sized>(&self, file: &F) -> Result<Option<Vmdesc>, LoadError> {
        let len = crate::integrity::stream_end(file)?;
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = self.reuse(slot.as_ref(), file, len)? {
            return Ok(found);
        }
        let found = Vmdesc::locate_before(file, len, self.memo.as_ref())?;
        let start = match &found {
            // The winning candidate has the EOF byte before it.
            Some(v) => v.offset - 1,
            None => len - len.min(MAX_TAIL),
        };
        // The bytes to compare next time (none needed for one file).
        let keep = if self.one_file { start } else { len };
        let mut bytes = vec![0; (keep - start) as usize];
        *slot = (file.read_at(start, &mut bytes)? == bytes.len()).then(|| Cached {
            stream_end: len,
            start,
            bytes,
            found: found.clone(),
        });
        Ok(found)
    }

    /// The answer `cached` holds, if it holds for `file` (whose stream
    /// ends at `len`).
    fn reuse<F: MigFile + ?Sized>(
        &self,
        cached: Option<&Cached>,
        file: &F,
        len: u64,
    ) -> Result<Option<Option<Vmdesc>>, LoadError> {
        let Some(c) = cached.filter(|c| c.stream_end == len) else {
            return Ok(None);
        };
        if self.one_file {
            return Ok(Some(c.found.clone()));
        }
        let mut now = vec![0; c.bytes.len()];
        let same = file.read_at(c.start, &mut now)? == now.len() && now == c.bytes;
        Ok(same.then(|| c.found.clone()))
    }

    /// A [`VmdescCache::for_one_file`] for `file` (with this cache's
    /// memo) that already holds the answer for it: this cache's answer
    /// when `file` has the bytes it was found in (compared once, here),
    /// else a new search's. For a file changed since this cache last
    /// answered (a fuzz input after its mutations) that is then loaded
    /// several times: one comparison or one search in all, where a
    /// comparing cache would compare on every load, and for a file with
    /// no trailer compare its whole tail, up to [`MAX_TAIL`] bytes.
    pub fn pinned_to<F: MigFile + ?Sized>(&self, file: &F) -> Result<Self, LoadError> {
        let len = crate::integrity::stream_end(file)?;
        let known = {
            let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            self.reuse(slot.as_ref(), file, len)?
        };
        let found = match known {
            Some(found) => found,
            None => Vmdesc::locate_before(file, len, self.memo.as_ref())?,
        };
        Ok(Self {
            slot: Arc::new(Mutex::new(Some(Cached {
                stream_end: len,
                start: len,
                bytes: Vec::new(),
                found,
            }))),
            one_file: true,
            memo: self.memo.clone(),
        })
    }
}

fn charge(steps: &mut u64) -> Result<(), String> {
    *steps += 1;
    if *steps > MAX_STEPS {
        return Err("vmdesc walk exceeds its step budget".into());
    }
    Ok(())
}

fn walk_struct<F: MigFile + ?Sized>(
    desc: &Desc,
    cur: &mut Cursor<'_, F>,
    steps: &mut u64,
    depth: u32,
) -> Result<(), String> {
    if depth > 64 {
        return Err("vmdesc nests too deeply".into());
    }
    for field in &desc.fields {
        charge(steps)?;
        let (count, name) = (field.count, &field.name);
        match &field.kind {
            FieldKind::Struct(inner) => {
                for _ in 0..count {
                    charge(steps)?;
                    walk_struct(inner, cur, steps, depth + 1)?;
                }
            }
            FieldKind::Capability => {
                for _ in 0..count {
                    charge(steps)?;
                    cur.short_str("capability field")
                        .map_err(|e| e.to_string())?;
                }
            }
            FieldKind::Sized(size) => {
                let size = size.ok_or_else(|| format!("field {name} has no size"))?;
                let total = size
                    .checked_mul(count)
                    .ok_or_else(|| format!("field {name} size overflows"))?;
                cur.skip("device field", total).map_err(|e| e.to_string())?;
            }
        }
    }
    for sub in &desc.subsections {
        charge(steps)?;
        let want = &sub.vmsd_name;
        let at = cur.pos();
        let b = cur.u8("subsection").map_err(|e| e.to_string())?;
        if b != kind::SUBSECTION {
            return Err(format!(
                "subsection {want} not found at offset {at:#x} (byte {b:#04x})"
            ));
        }
        let got = cur
            .short_str("subsection name")
            .map_err(|e| e.to_string())?;
        if got != *want {
            return Err(format!(
                "subsection at {at:#x} is {got}, vmdesc expects {want}"
            ));
        }
        cur.be32("subsection version").map_err(|e| e.to_string())?;
        walk_struct(&sub.desc, cur, steps, depth + 1)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Writing the trailer
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct FieldOut {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    array_len: Option<usize>,
    #[serde(rename = "type")]
    ty: &'static str,
    size: usize,
}

impl FieldOut {
    fn one(name: &'static str, ty: &'static str, size: usize) -> FieldOut {
        FieldOut {
            name,
            array_len: None,
            ty,
            size,
        }
    }
}

#[derive(Serialize)]
struct DeviceOut<'a> {
    name: &'a str,
    instance_id: u32,
    vmsd_name: &'a str,
    version: u32,
    fields: Vec<FieldOut>,
}

/// QEMU's `configuration` vmsd as its vmdesc describes it: the machine
/// name (`len`, `name`), and a `configuration/capabilities` subsection
/// when validated capabilities are listed.
#[derive(Serialize)]
struct ConfigurationOut {
    vmsd_name: &'static str,
    version: u32,
    fields: Vec<FieldOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subsections: Vec<SubsectionOut>,
}

#[derive(Serialize)]
struct SubsectionOut {
    vmsd_name: &'static str,
    version: u32,
    fields: Vec<FieldOut>,
}

#[derive(Serialize)]
struct TrailerOut<'a> {
    configuration: ConfigurationOut,
    page_size: u64,
    devices: Vec<DeviceOut<'a>>,
}

/// The vmdesc JSON the writer puts after EOF, shaped as QEMU 10 writes it
/// (`qemu_savevm_state_complete_precopy` with `vmstate_configuration`):
/// first `configuration` (the machine name; the validated capabilities
/// `caps` in its `configuration/capabilities` subsection, a capability
/// field being its short string, and several described once with
/// `array_len`, as QEMU compresses a varray), then `page_size`, then each
/// of `devices` as one buffer field holding its whole state. QEMU's
/// `scripts/analyze-migration.py` learns the stream's capabilities from
/// the configuration entry.
pub fn encode(machine: &str, caps: &[&str], devices: &[DeviceState]) -> Vec<u8> {
    let subsections = if caps.is_empty() {
        Vec::new()
    } else {
        vec![SubsectionOut {
            vmsd_name: crate::stream::CAPS_SUBSECTION,
            version: 1,
            fields: vec![
                FieldOut::one("caps_count", "uint32", 4),
                FieldOut {
                    name: "capabilities",
                    array_len: (caps.len() > 1).then_some(caps.len()),
                    ty: "capability",
                    size: 1 + caps[0].len(),
                },
            ],
        }]
    };
    let desc = TrailerOut {
        configuration: ConfigurationOut {
            vmsd_name: "configuration",
            version: 1,
            fields: vec![
                FieldOut::one("len", "uint32", 4),
                FieldOut::one("name", "buffer", machine.len()),
            ],
            subsections,
        },
        page_size: PAGE_SIZE,
        devices: devices
            .iter()
            .map(|d| DeviceOut {
                name: &d.idstr,
                instance_id: d.instance_id,
                vmsd_name: &d.idstr,
                version: d.version_id,
                fields: vec![FieldOut::one("state", "buffer", d.payload.len())],
            })
            .collect(),
    };
    serde_json::to_vec(&desc).expect("vmdesc serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ReadAtOnly;

    #[test]
    fn vmdesc_trailer_is_found_only_after_an_eof_byte_and_ending_the_file() {
        let found = |bytes: &[u8]| Vmdesc::locate(&bytes.to_vec()).unwrap();
        // 7 bytes of something, EOF, VMDESCRIPTION, be32 len, JSON to the end.
        let mut f = b"section".to_vec();
        f.extend_from_slice(b"\x00\x06\x00\x00\x00\x02{}");
        let v = found(&f).expect("a well-formed trailer is found");
        assert_eq!(v.offset, 8, "offset of the 0x06 byte");
        assert_eq!(v.json_len, 2);
        assert_eq!(v.device_count(), 0);
        // No EOF byte before 0x06.
        let mut g = f.clone();
        g[7] = 0x01;
        assert!(found(&g).is_none(), "0x06 not preceded by EOF");
        // The announced length does not reach the end of the file.
        let mut g = f.clone();
        g[12] = 0x05;
        assert!(found(&g).is_none(), "length past the end");
        let mut g = f.clone();
        g[12] = 0x01;
        assert!(found(&g).is_none(), "length short of the end");
        // Valid JSON, but not an object.
        let mut g = f.clone();
        g[13..].copy_from_slice(b"[]");
        assert!(found(&g).is_none(), "not a JSON object");
    }

    /// The search as it was before the windows: one read of the whole tail.
    fn locate_in_one_read(file: &[u8]) -> Option<(u64, u64)> {
        let start = file.len() - file.len().min(MAX_TAIL as usize);
        let tail = &file[start..];
        (1..tail.len().saturating_sub(5)).rev().find_map(|p| {
            let n = u32::from_be_bytes(tail[p + 1..p + 5].try_into().unwrap()) as usize;
            let ok = tail[p] == kind::VMDESCRIPTION
                && tail[p - 1] == kind::EOF
                && p + 5 + n == tail.len()
                && tail.get(p + 5) == Some(&b'{');
            ok.then(|| Vmdesc::parse((start + p) as u64, &tail[p + 5..]))
                .flatten()
                .map(|v| (v.offset, v.json_len))
        })
    }

    /// The premise of the search: JSON that parses holds no control
    /// byte. Each one, put anywhere in a trailer that parses (inside a
    /// string, a key, a number, between tokens, at the end), makes it
    /// refused; tab, LF and CR between tokens do not.
    #[test]
    fn json_with_a_control_byte_anywhere_does_not_parse() {
        let json = br#"{"page_size": 4096, "devices": [{"name": "a b", "instance_id": 0, "fields": [{"name": "x", "type": "uint8", "size": 1}], "extra": [true, null, "\u0006"]}]}"#;
        assert!(Vmdesc::parse(0, json).is_some());
        for b in (0u8..0x20).filter(|&b| is_control(b)) {
            for at in 1..=json.len() {
                let mut j = json.to_vec();
                j.insert(at, b);
                assert!(
                    Vmdesc::parse(0, &j).is_none(),
                    "byte {b:#04x} at {at} parsed: {}",
                    String::from_utf8_lossy(&j)
                );
            }
        }
        let spaced = String::from_utf8_lossy(json).replace(", ", ",\t\r\n ");
        assert!(Vmdesc::parse(0, format!("{spaced}\n\t").as_bytes()).is_some());
    }

    #[test]
    fn windowed_search_finds_what_one_read_of_the_tail_finds() {
        // Trailers whose JSON ends inside the first window, straddles the
        // window boundaries, or starts past MAX_TAIL; decoys (`00 06 len`
        // reaching the end but not JSON, or JSON that does not parse) on
        // either side of a boundary; no trailer at all.
        let json = |n: usize| format!("{{\"pad\": \"{}\"}}", "x".repeat(n)).into_bytes();
        let trailer = |j: &[u8]| {
            let mut t = b"\x00\x06".to_vec();
            t.extend_from_slice(&(j.len() as u32).to_be_bytes());
            t.extend_from_slice(j);
            t
        };
        let w = FIRST_WINDOW as usize;
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for body in [
            0,
            10,
            w - 20,
            w - 17,
            w - 16,
            w - 15,
            w - 7,
            w,
            w + 3,
            8 * w - 6,
            8 * w + 100,
        ] {
            for pad in [0usize, 1, 7, w] {
                let mut f = vec![0x06u8; pad];
                f.extend(trailer(&json(body)));
                cases.push(f);
            }
        }
        // A decoy inside the real JSON's text is tried first and refused.
        let inner = trailer(b"{not json");
        let mut j = b"{\"s\": \"".to_vec();
        j.extend(std::iter::repeat_n(b'y', 3 * w));
        j.extend(b"\"}");
        let mut f = vec![0u8; 5];
        f.extend(trailer(&j));
        let at = f.len() - w - 2;
        f[at..at + 6].copy_from_slice(&inner[..6]);
        cases.push(f);
        // A trailer further back than MAX_TAIL is not found.
        let mut f = vec![0u8; 3];
        f.extend(trailer(&json(MAX_TAIL as usize)));
        cases.push(f);
        cases.push(vec![0u8; 9 * w]);
        cases.push(b"\x00\x06\x00\x00\x00\x00".to_vec());
        for (i, f) in cases.iter().enumerate() {
            let got = Vmdesc::locate(f).unwrap().map(|v| (v.offset, v.json_len));
            assert_eq!(got, locate_in_one_read(f), "case {i} ({} bytes)", f.len());
        }
        assert!(Vmdesc::locate(cases.last().unwrap()).unwrap().is_none());
        assert!(
            locate_in_one_read(&cases[cases.len() - 3]).is_none(),
            "past MAX_TAIL"
        );
        assert!(locate_in_one_read(&cases[0]).is_some());
    }

    #[test]
    fn windowed_search_agrees_on_random_tails() {
        // Bytes from a small alphabet (EOF, 0x06, braces, quotes, lengths)
        // so candidates are everywhere, with a trailer of random length
        // planted at a random place; sizes across the window boundaries.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let alphabet = [0u8, 6, b'{', b'}', b'"', b'a', 0, 6, 0, 1];
        for case in 0..120 {
            let len = (next() % (3 * FIRST_WINDOW)) as usize + 1;
            let mut f: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if case % 2 == 0 && len > 8 {
                let at = (next() % (len as u64 - 7)) as usize;
                let n = len - at - 6;
                f[at] = 0;
                f[at + 1] = 6;
                f[at + 2..at + 6].copy_from_slice(&(n as u32).to_be_bytes());
                if n >= 2 {
                    f[at + 6] = b'{';
                    f[at + 7..].fill(b' ');
                    f[len - 1] = b'}';
                }
                // Whitespace after the closing brace parses too.
                if case % 4 == 2 && n >= 5 {
                    f[len - 3] = b'}';
                    f[len - 2] = b'\n';
                    f[len - 1] = b'\t';
                }
            }
            let got = Vmdesc::locate(&f).unwrap().map(|v| (v.offset, v.json_len));
            assert_eq!(got, locate_in_one_read(&f), "case {case} ({len} bytes)");
            let copied = Vmdesc::locate(&ReadAtOnly(&f)).unwrap();
            assert_eq!(
                copied.map(|v| (v.offset, v.json_len)),
                got,
                "case {case}: the tail read in place and copied out differ"
            );
        }
    }

    #[test]
    fn a_pinned_cache_answers_for_the_changed_file_as_a_search_does() {
        let mut rng = 0x8F1B_BCDC_2B6E_39A5u64;
        let trailer = encode("pc", &["fixed-ram"], &[]);
        let (mut reused, mut searched) = (0, 0);
        for case in 0..300 {
            // A file ending in a trailer (or not), then a change: none, a
            // byte in the trailer or before it, a cut, or an extension.
            let body = next(&mut rng, 3 * FIRST_WINDOW) as usize + 8;
            let mut f: Vec<u8> = (0..body)
                .map(|_| [0u8, 6, 0, 1][next(&mut rng, 4) as usize])
                .collect();
            if case % 4 != 3 {
                f.extend_from_slice(&[kind::EOF, kind::VMDESCRIPTION]);
                f.extend_from_slice(&(trailer.len() as u32).to_be_bytes());
                f.extend_from_slice(&trailer);
            }
            let mut g = f.clone();
            match next(&mut rng, 5) {
                0 => {}
                1 => {
                    let at = g.len() - 1 - next(&mut rng, trailer.len() as u64) as usize;
                    g[at] ^= 0x20;
                }
                2 => {
                    let at = next(&mut rng, body as u64) as usize;
                    g[at] ^= 6;
                }
                3 => g.truncate(g.len() - 1 - next(&mut rng, 64) as usize),
                _ => g.extend(std::iter::repeat_n(0, next(&mut rng, 5000) as usize)),
            }
            let cache = VmdescCache::new();
            let before = cache.locate(&f).unwrap().map(|v| (v.offset, v.json_len));
            assert_eq!(
                before,
                Vmdesc::locate(&f).unwrap().map(|v| (v.offset, v.json_len))
            );
            let pinned = cache.pinned_to(&ReadAtOnly(&g)).unwrap();
            let want = Vmdesc::locate(&g).unwrap().map(|v| (v.offset, v.json_len));
            for load in 0..2 {
                let got = pinned.locate(&g).unwrap().map(|v| (v.offset, v.json_len));
                assert_eq!(got, want, "case {case}, load {load}");
            }
            if f == g {
                reused += 1;
            } else {
                searched += 1;
            }
        }
        assert!(
            reused > 30 && searched > 200,
            "{reused} unchanged, {searched} changed"
        );
    }

    #[test]
    fn rfind_control_agrees_with_a_byte_by_byte_search() {
        // Lengths across the 64-byte step; control bytes, the whitespace
        // the word test also flags, and bytes at the test's edges (0x20,
        // 0x9f, 0xa0), sparse or dense.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let alphabet = [0u8, 6, 0x1f, b'\t', b'\n', b'\r', 0x20, 0x9f, 0xa0, b'{'];
        for case in 0..3000u64 {
            let len = next(&mut rng, 300) as usize;
            let density = 1 + next(&mut rng, 200);
            let hay: Vec<u8> = (0..len)
                .map(|_| {
                    let k = next(&mut rng, density) as usize;
                    alphabet.get(k).copied().unwrap_or(b'a')
                })
                .collect();
            let cut = next(&mut rng, len as u64 + 1) as usize;
            for h in [&hay[..], &hay[..cut]] {
                assert_eq!(
                    rfind_control(h),
                    h.iter().rposition(|&b| is_control(b)),
                    "case {case}, {} bytes",
                    h.len()
                );
            }
        }
    }

    #[test]
    fn the_trailer_describes_the_configuration_as_qemu_does() {
        let none: Value = serde_json::from_slice(&encode("pc-q35-10.0", &[], &[])).unwrap();
        assert_eq!(none["configuration"]["fields"][1]["size"], 11);
        assert!(none["configuration"].get("subsections").is_none());
        let two: Value =
            serde_json::from_slice(&encode("pc", &["mapped-ram", "x-ignore-shared"], &[])).unwrap();
        let caps = &two["configuration"]["subsections"][0]["fields"][1];
        assert_eq!(caps["name"], "capabilities");
        assert_eq!(caps["array_len"], 2, "a varray is described once");
        assert_eq!(caps["size"], 11, "the first element's size");
        let one: Value = serde_json::from_slice(&encode("pc", &["fixed-ram"], &[])).unwrap();
        let caps = &one["configuration"]["subsections"][0]["fields"][1];
        assert!(caps.get("array_len").is_none());
        assert_eq!(caps["size"], 10);
    }

    #[test]
    fn a_parse_memo_answers_as_parse_does_and_keeps_within_its_bounds() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let memo = ParseMemo::new();
        let entries = |memo: &ParseMemo| memo.slots.lock().unwrap().0.len();
        let known =
            |memo: &ParseMemo, json: &[u8]| memo.slots.lock().unwrap().0.get(json).is_some();
        // Texts from a pool larger than the memo, drawn mostly from a
        // small part of it, so there are hits and replacements; some are
        // broken (cut short), so refusals are remembered too.
        let mut pool = Vec::new();
        for i in 0..MEMO_ENTRIES + 200 {
            let mut text = String::from("{\"devices\":[");
            random_json(&mut rng, 3, &mut text);
            text.push_str(&format!("]}}{}", " ".repeat(i)));
            if i % 5 == 0 {
                text.pop();
                text.push('x');
            }
            pool.push(text.into_bytes());
        }
        let (mut hits, mut refused) = (0, 0);
        let mut distinct = std::collections::HashSet::new();
        for round in 0..9_000u64 {
            let pick = if round % 3 == 0 { pool.len() } else { 40 };
            let json = &pool[next(&mut rng, pick as u64) as usize];
            distinct.insert(json.clone());
            let at = next(&mut rng, 1 << 40);
            let want = Vmdesc::parse(at, json);
            let (before, was_known) = (entries(&memo), known(&memo, json));
            let got = memo.parse(at, json);
            refused += usize::from(want.is_none());
            match (&got, &want) {
                (Some(g), Some(w)) => {
                    assert_eq!((g.offset, g.json_len, g.steps), (w.offset, w.json_len, 0));
                    assert_eq!(g.tree.devices, w.tree.devices, "round {round}");
                    assert_eq!(g.tree.index, w.tree.index, "round {round}");
                }
                (None, None) => {}
                _ => panic!("round {round}: memo and parse disagree on {json:?}"),
            }
            assert!(known(&memo, json), "round {round}: just parsed, so kept");
            assert!(entries(&memo) <= MEMO_ENTRIES);
            let slots = memo.slots.lock().unwrap();
            assert_eq!(slots.0.keys().count(), slots.0.len());
            assert_eq!(
                slots.0.bytes(),
                slots.0.keys().map(|k| k.len()).sum::<usize>()
            );
            drop(slots);
            if was_known {
                hits += 1;
                assert_eq!(entries(&memo), before, "a hit adds nothing");
            }
        }
        assert!(hits > 3_000 && hits < 8_900, "{hits} hits");
        assert!(refused > 500, "{refused} refusals");
        assert!(distinct.len() > MEMO_ENTRIES, "{} texts", distinct.len());
        assert_eq!(entries(&memo), MEMO_ENTRIES, "the pool filled it");
        // A hit hands out the tree parsed before, at the new offset.
        let json = &pool[1];
        let first = memo.parse(0, json).unwrap();
        let again = memo.parse(9, json).unwrap();
        assert!(Arc::ptr_eq(&first.tree, &again.tree));
        assert_eq!(again.offset, 9);
        // Bytes bound the memo too: a JSON of half its bytes, then another,
        // leave at most the second and what fits beside it.
        let half = |c: char| {
            let mut t = String::from("{\"devices\":[]}");
            t.push_str(&c.to_string().repeat(MEMO_BYTES / 2));
            t.replace(c, " ")
        };
        let (a, b) = (half('a'), format!("{}  ", half('b')));
        assert!(memo.parse(0, a.as_bytes()).is_some());
        assert!(memo.parse(0, b.as_bytes()).is_some());
        assert!(known(&memo, b.as_bytes()) && !known(&memo, a.as_bytes()));
        assert!(memo.slots.lock().unwrap().0.bytes() <= MEMO_BYTES);
        // JSON past the memo's bytes is parsed, never kept.
        let big = format!("{}{}", half('c'), " ".repeat(MEMO_BYTES / 2 + 1));
        assert!(memo.parse(0, big.as_bytes()).is_some());
        assert!(!known(&memo, big.as_bytes()));
        // Threads parsing the same texts at once (each parse runs without
        // the lock) keep each text once.
        let shared = ParseMemo::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for json in &pool[..50] {
                        let _ = shared.parse(0, json);
                    }
                });
            }
        });
        let slots = shared.slots.lock().unwrap();
        assert_eq!((slots.0.keys().count(), slots.0.len()), (50, 50));
        assert_eq!(
            slots.0.bytes(),
            pool[..50].iter().map(Vec::len).sum::<usize>()
        );
    }

    /// The trailer as the walk first read it: through a `Value`.
    fn tree_through_value(json: &[u8]) -> Option<Tree> {
        let root: Value = serde_json::from_slice(json).ok()?;
        let listed = root["devices"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let mut index: BTreeMap<String, BTreeMap<u64, usize>> = BTreeMap::new();
        for (i, d) in listed.iter().enumerate() {
            if let (Some(name), Some(inst)) = (d["name"].as_str(), d["instance_id"].as_u64()) {
                index
                    .entry(name.to_string())
                    .or_default()
                    .entry(inst)
                    .or_insert(i);
            }
        }
        let devices = listed.iter().map(Desc::from_json).collect();
        Some(Tree { devices, index })
    }

    /// xorshift64: a number below `n`.
    fn next(rng: &mut u64, n: u64) -> u64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % n
    }

    /// Random JSON text made of the keys a trailer has (and others,
    /// repeated keys, escaped keys, odd numbers, every type anywhere).
    fn random_json(rng: &mut u64, depth: u32, out: &mut String) {
        const KEYS: &[&str] = &[
            "devices",
            "name",
            "instance_id",
            "vmsd_name",
            "type",
            "array_len",
            "size",
            "struct",
            "fields",
            "subsections",
            "other",
            "na\\u006de",
            "\\u0073ize",
            "fields",
            "fields",
            "struct",
            "subsections",
        ];
        const SCALARS: &[&str] = &[
            "null",
            "true",
            "0",
            "-0",
            "1",
            "7",
            "-3",
            "2.0",
            "1e2",
            "4096",
            "18446744073709551615",
            "18446744073709551616",
            r#""capability""#,
            r#""cap\u0061bility""#,
            r#""pci""#,
            r#""""#,
            r#""timer""#,
        ];
        // Mostly objects, so descriptions with fields come up often.
        match if depth == 0 { 0 } else { next(rng, 5) } {
            0 => out.push_str(SCALARS[next(rng, SCALARS.len() as u64) as usize]),
            1 => {
                out.push('[');
                for k in 0..next(rng, 4) {
                    if k > 0 {
                        out.push(',');
                    }
                    random_json(rng, depth - 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for k in 0..next(rng, 6) {
                    if k > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(KEYS[next(rng, KEYS.len() as u64) as usize]);
                    out.push_str("\":");
                    random_json(rng, depth - 1, out);
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn the_trailer_read_straight_is_the_trailer_read_through_a_value() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut described = 0;
        for _ in 0..20_000 {
            let mut text = String::from("{\"devices\":[");
            for k in 0..1 + next(&mut rng, 3) {
                if k > 0 {
                    text.push(',');
                }
                random_json(&mut rng, 6, &mut text);
            }
            text.push_str("]}");
            let want = tree_through_value(text.as_bytes()).expect("valid JSON");
            let got = json::parse(text.as_bytes()).map(|n| Tree::from_devices(n.devices));
            let got = got.expect("valid JSON");
            assert_eq!(got.devices, want.devices, "{text}");
            assert_eq!(got.index, want.index, "{text}");
            described += usize::from(want.devices.iter().any(|d| !d.fields.is_empty()));
        }
        // The generator reaches descriptions with fields, not only empty ones.
        assert!(described > 1_000, "{described}");
        // Not JSON, or JSON with something after it, is refused by both.
        for bad in [&b"{"[..], b"{} x", b"{\"devices\":[1,]}", b"", b"\xff"] {
            assert!(tree_through_value(bad).is_none() && json::parse(bad).is_none());
        }
        // A QEMU trailer.
        let qemu = encode("pc-q35-10.0", &["mapped-ram"], &[]);
        let want = tree_through_value(&qemu).unwrap();
        let got = Tree::from_devices(json::parse(&qemu).unwrap().devices);
        assert_eq!((got.devices, got.index), (want.devices, want.index));
    }
}
