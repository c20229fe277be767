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
//! end of the file and whose JSON parses.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::ram::PAGE_SIZE;
use crate::writer::DeviceState;

use crate::error::LoadError;
use crate::io::MigFile;
use crate::stream::kind;
use crate::wire::Cursor;

/// How far from the end the trailer is searched for.
pub const MAX_TAIL: u64 = 16 << 20;
/// Upper bound on walk steps over the whole file (all device sections
/// together), so neither hostile `array_len`s nor many sections repeating
/// an expensive walk can hang the reader. QEMU's own files need a few
/// thousand.
const MAX_STEPS: u64 = 1 << 20;

/// A parsed vmdesc trailer.
#[derive(Debug, Clone)]
pub struct Vmdesc {
    /// Offset of the 0x06 byte.
    pub offset: u64,
    /// JSON length.
    pub json_len: u64,
    root: Value,
    /// Walk steps spent so far in this file.
    steps: u64,
    /// (name, instance_id) -> index into `devices`, first entry wins.
    index: BTreeMap<(String, u64), usize>,
}

impl Vmdesc {
    /// Find and parse the trailer, if the file has one.
    /// migsim's trailers after it (an integrity trailer, a durable save's
    /// completion mark: [`crate::integrity::stream_end`]) are not part of
    /// it.
    pub fn locate<F: MigFile + ?Sized>(file: &F) -> Result<Option<Vmdesc>, LoadError> {
        let len = crate::integrity::stream_end(file)?;
        let tail_len = len.min(MAX_TAIL);
        let start = len - tail_len;
        let mut tail = vec![0; tail_len as usize];
        if file.read_at(start, &mut tail)? != tail.len() {
            return Ok(None);
        }
        // p: index of the 0x06 byte in `tail`; needs the EOF byte before it.
        for p in (1..tail.len().saturating_sub(5)).rev() {
            if tail[p] != kind::VMDESCRIPTION || tail[p - 1] != kind::EOF {
                continue;
            }
            let n = u32::from_be_bytes(tail[p + 1..p + 5].try_into().expect("4 bytes")) as usize;
            if p + 5 + n != tail.len() || tail.get(p + 5) != Some(&b'{') {
                continue;
            }
            if let Some(v) = Self::parse(start + p as u64, &tail[p + 5..]) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Parse a trailer's JSON read directly.
    pub fn parse(offset: u64, json: &[u8]) -> Option<Vmdesc> {
        let root: Value = serde_json::from_slice(json).ok()?;
        let mut index = BTreeMap::new();
        for (i, d) in root["devices"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            if let (Some(name), Some(inst)) = (d["name"].as_str(), d["instance_id"].as_u64()) {
                index.entry((name.to_string(), inst)).or_insert(i);
            }
        }
        Some(Vmdesc {
            offset,
            json_len: json.len() as u64,
            root,
            steps: 0,
            index,
        })
    }

    /// Number of devices described.
    pub fn device_count(&self) -> usize {
        self.root["devices"].as_array().map_or(0, Vec::len)
    }

    fn device(&self, idstr: &str, instance: u32) -> Option<&Value> {
        let i = *self.index.get(&(idstr.to_string(), u64::from(instance)))?;
        self.root["devices"].get(i)
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

fn charge(steps: &mut u64) -> Result<(), String> {
    *steps += 1;
    if *steps > MAX_STEPS {
        return Err("vmdesc walk exceeds its step budget".into());
    }
    Ok(())
}

fn walk_struct<F: MigFile + ?Sized>(
    desc: &Value,
    cur: &mut Cursor<'_, F>,
    steps: &mut u64,
    depth: u32,
) -> Result<(), String> {
    if depth > 64 {
        return Err("vmdesc nests too deeply".into());
    }
    for field in desc["fields"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        charge(steps)?;
        let count = field["array_len"].as_u64().unwrap_or(1);
        let name = field["name"].as_str().unwrap_or("?");
        if let Some(inner) = field.get("struct") {
            for _ in 0..count {
                charge(steps)?;
                walk_struct(inner, cur, steps, depth + 1)?;
            }
        } else if field["type"].as_str() == Some("capability") {
            for _ in 0..count {
                charge(steps)?;
                cur.short_str("capability field")
                    .map_err(|e| e.to_string())?;
            }
        } else {
            let size = field["size"]
                .as_u64()
                .ok_or_else(|| format!("field {name} has no size"))?;
            let total = size
                .checked_mul(count)
                .ok_or_else(|| format!("field {name} size overflows"))?;
            cur.skip("device field", total).map_err(|e| e.to_string())?;
        }
    }
    for sub in desc["subsections"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        charge(steps)?;
        let want = sub["vmsd_name"].as_str().unwrap_or("?");
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
        if got != want {
            return Err(format!(
                "subsection at {at:#x} is {got}, vmdesc expects {want}"
            ));
        }
        cur.be32("subsection version").map_err(|e| e.to_string())?;
        walk_struct(sub, cur, steps, depth + 1)?;
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
}
