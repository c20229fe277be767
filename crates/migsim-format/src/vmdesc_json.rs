//! The vmdesc JSON read straight into the walk's descriptions, with no
//! `serde_json::Value` tree in between: on QEMU's 30 KiB trailer,
//! building and dropping that tree was a third of a fuzz execution.
//!
//! Every key is read as indexing a `Value` reads it (`Desc::from_json`
//! in the tests is that reading, and the tests compare the two): a
//! missing or mistyped key takes its default (what `as_str`, `as_u64`
//! or `as_array` give for it: `None`), an element that is not an object
//! describes nothing, a repeated key's last value wins, and the document
//! must be valid JSON within serde_json's recursion limit (128), which
//! also bounds the recursion here.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Desc, Field, FieldKind, Subsection};

/// Any JSON value, read for the keys a trailer, device, field or
/// subsection object has (one kind of node serves them all; a value that
/// is not an object reads as `Node::default()`).
#[derive(Default)]
pub(super) struct Node {
    pub(super) name: Option<String>,
    pub(super) instance_id: Option<u64>,
    vmsd_name: Option<String>,
    capability: bool,
    array_len: Option<u64>,
    size: Option<u64>,
    /// `struct`: present (with any value) or not.
    structure: Option<Box<Node>>,
    fields: Vec<Node>,
    subsections: Vec<Node>,
    pub(super) devices: Vec<Node>,
}

impl Node {
    /// The description this object gives a walk (`fields`,
    /// `subsections`).
    pub(super) fn desc(self) -> Desc {
        Desc {
            fields: self.fields.into_iter().map(Node::field).collect(),
            subsections: self
                .subsections
                .into_iter()
                .map(|mut sub| Subsection {
                    vmsd_name: sub.vmsd_name.take().unwrap_or_else(|| "?".into()),
                    desc: sub.desc(),
                })
                .collect(),
        }
    }

    fn field(self) -> Field {
        Field {
            name: self.name.unwrap_or_else(|| "?".into()),
            count: self.array_len.unwrap_or(1),
            kind: match self.structure {
                Some(inner) => FieldKind::Struct(inner.desc()),
                None if self.capability => FieldKind::Capability,
                None => FieldKind::Sized(self.size),
            },
        }
    }
}

/// Skip what is left of an array or object.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Visitor methods giving the reader's default (`Default::default()`)
/// for the JSON values named: `bool`, `i64`, `u64`, `f64`, `str`,
/// `unit` (null), and `seq` and `map` (arrays and objects, skipped).
macro_rules! default_for {
    ($($kind:ident)*) => {
        $(default_for!(@$kind);)*
    };
    (@bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@i64) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@u64) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@f64) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|()| Default::default())
        }
    };
    (@map) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|()| Default::default())
        }
    };
}

/// A value as `Value::as_str` reads it.
struct Str(Option<String>);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Some(s.to_string()))
            }
            default_for!(bool i64 u64 f64 unit seq map);
        }
        d.deserialize_any(V).map(Str)
    }
}

/// A value as `Value::as_u64` reads it: a non-negative integer that
/// fits (serde_json hands integers past `u64` over as floats).
struct U64(Option<u64>);

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(v).ok())
            }
            default_for!(bool f64 str unit seq map);
        }
        d.deserialize_any(V).map(U64)
    }
}

/// A value as `Value::as_array` reads it, each element a [`Node`]; not
/// an array: no elements.
struct Nodes(Vec<Node>);

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Node>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<Node>()? {
                    out.push(n);
                }
                Ok(out)
            }
            default_for!(bool i64 u64 f64 str unit map);
        }
        d.deserialize_any(V).map(Nodes)
    }
}

/// The keys a [`Node`] reads; every other key is skipped.
enum Key {
    Name,
    InstanceId,
    VmsdName,
    Type,
    ArrayLen,
    Size,
    Struct,
    Fields,
    Subsections,
    Devices,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "name" => Key::Name,
                    "instance_id" => Key::InstanceId,
                    "vmsd_name" => Key::VmsdName,
                    "type" => Key::Type,
                    "array_len" => Key::ArrayLen,
                    "size" => Key::Size,
                    "struct" => Key::Struct,
                    "fields" => Key::Fields,
                    "subsections" => Key::Subsections,
                    "devices" => Key::Devices,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut n = Node::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Name => n.name = map.next_value::<Str>()?.0,
                        Key::InstanceId => n.instance_id = map.next_value::<U64>()?.0,
                        Key::VmsdName => n.vmsd_name = map.next_value::<Str>()?.0,
                        Key::Type => {
                            n.capability =
                                map.next_value::<Str>()?.0.as_deref() == Some("capability")
                        }
                        Key::ArrayLen => n.array_len = map.next_value::<U64>()?.0,
                        Key::Size => n.size = map.next_value::<U64>()?.0,
                        Key::Struct => n.structure = Some(Box::new(map.next_value::<Node>()?)),
                        Key::Fields => n.fields = map.next_value::<Nodes>()?.0,
                        Key::Subsections => n.subsections = map.next_value::<Nodes>()?.0,
                        Key::Devices => n.devices = map.next_value::<Nodes>()?.0,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(n)
            }
            default_for!(bool i64 u64 f64 str unit seq);
        }
        d.deserialize_any(V)
    }
}

/// The trailer's JSON, or `None` when it is not valid JSON.
pub(super) fn parse(json: &[u8]) -> Option<Node> {
    serde_json::from_slice(json).ok()
}
