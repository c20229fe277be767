//! Framing of the QEMU migration stream (version 3).
//!
//! ```text
//! offset 0   be32 0x5145564D "QEVM"
//!        4   be32 3                       stream version
//!        8   u8 0x07                      CONFIGURATION (no id, no footer)
//!            be32 n, n bytes              machine type, e.g. "pc-i440fx-10.0"
//!            [u8 0x05 SUBSECTION, short "configuration/capabilities",
//!             be32 1, be32 count, count x short capability name]
//! then sections, each one of:
//!   0x01 START  be32 id, short idstr, be32 instance, be32 version, payload, footer
//!   0x02 PART   be32 id, payload, footer
//!   0x03 END    be32 id, payload, footer
//!   0x04 FULL   like START
//!   0x08 COMMAND be16 cmd, be16 len, len bytes   (0x000B SWITCHOVER_START, len 0)
//!   footer = 0x7E be32 id (same id as the section)
//! 0x00 EOF
//! optional trailer: 0x06 VMDESCRIPTION be32 len, len bytes of JSON
//! ```

use std::fmt;

use serde::Serialize;

use crate::wire::Encoder;

/// "QEVM".
pub const MAGIC: u32 = 0x5145_564D;
/// The only stream version QEMU accepts today.
pub const VERSION: u32 = 3;

/// Section type bytes.
pub mod kind {
    /// End of sections.
    pub const EOF: u8 = 0x00;
    /// First section of an iterative device.
    pub const START: u8 = 0x01;
    /// Middle section of an iterative device.
    pub const PART: u8 = 0x02;
    /// Last section of an iterative device.
    pub const END: u8 = 0x03;
    /// A non-iterative device's whole state.
    pub const FULL: u8 = 0x04;
    /// Subsection inside a vmstate or the configuration.
    pub const SUBSECTION: u8 = 0x05;
    /// The JSON trailer after EOF.
    pub const VMDESCRIPTION: u8 = 0x06;
    /// The configuration section right after the header.
    pub const CONFIGURATION: u8 = 0x07;
    /// A command.
    pub const COMMAND: u8 = 0x08;
    /// Section footer.
    pub const FOOTER: u8 = 0x7E;
}

/// The command QEMU >= 10.0 sends just before the END sections.
pub const CMD_SWITCHOVER_START: u16 = 0x000B;

/// Name of the configuration subsection listing validated capabilities.
pub const CAPS_SUBSECTION: &str = "configuration/capabilities";

/// idstr of the RAM section.
pub const RAM_IDSTR: &str = "ram";
/// RAM section version.
pub const RAM_VERSION: u32 = 4;

/// Header plus configuration section.
pub fn encode_preamble(e: &mut Encoder, machine: &str, caps: &[&str]) {
    e.be32(MAGIC).be32(VERSION);
    e.u8(kind::CONFIGURATION)
        .be32(machine.len() as u32)
        .bytes(machine.as_bytes());
    if !caps.is_empty() {
        e.u8(kind::SUBSECTION)
            .short_str(CAPS_SUBSECTION)
            .be32(1)
            .be32(caps.len() as u32);
        for c in caps {
            e.short_str(c);
        }
    }
}

/// Header of a START or FULL section.
pub fn encode_section_start(
    e: &mut Encoder,
    kind: u8,
    id: u32,
    idstr: &str,
    instance: u32,
    version: u32,
) {
    e.u8(kind)
        .be32(id)
        .short_str(idstr)
        .be32(instance)
        .be32(version);
}

/// Section footer.
pub fn encode_footer(e: &mut Encoder, id: u32) {
    e.u8(kind::FOOTER).be32(id);
}

/// A section or command as the reader lists it (EOF ends the list and
/// is not one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SectionKind {
    /// 0x01: first section of an iterative device.
    Start,
    /// 0x02: middle section of an iterative device.
    Part,
    /// 0x03: last section of an iterative device.
    End,
    /// 0x04: a non-iterative device's whole state.
    Full,
    /// 0x08: a command.
    Command,
}

impl SectionKind {
    /// The kind of a section type byte, if it is one of the five.
    pub fn from_byte(k: u8) -> Option<SectionKind> {
        Some(match k {
            kind::START => SectionKind::Start,
            kind::PART => SectionKind::Part,
            kind::END => SectionKind::End,
            kind::FULL => SectionKind::Full,
            kind::COMMAND => SectionKind::Command,
            _ => return None,
        })
    }

    /// `START`, `PART`, `END`, `FULL`, `COMMAND`.
    pub fn name(self) -> &'static str {
        kind_name(self.byte())
    }

    /// The type byte.
    pub fn byte(self) -> u8 {
        match self {
            SectionKind::Start => kind::START,
            SectionKind::Part => kind::PART,
            SectionKind::End => kind::END,
            SectionKind::Full => kind::FULL,
            SectionKind::Command => kind::COMMAND,
        }
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Human name of a section type byte.
pub fn kind_name(k: u8) -> &'static str {
    match k {
        kind::EOF => "EOF",
        kind::START => "START",
        kind::PART => "PART",
        kind::END => "END",
        kind::FULL => "FULL",
        kind::SUBSECTION => "SUBSECTION",
        kind::VMDESCRIPTION => "VMDESCRIPTION",
        kind::CONFIGURATION => "CONFIGURATION",
        kind::COMMAND => "COMMAND",
        kind::FOOTER => "FOOTER",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_lists_capabilities_only_when_there_are_some() {
        let mut e = Encoder::new();
        encode_preamble(&mut e, "pc", &[]);
        let mut want = vec![
            b'Q', b'E', b'V', b'M', 0, 0, 0, 3, 0x07, 0, 0, 0, 2, b'p', b'c',
        ];
        assert_eq!(e.buf, want, "no capabilities: no subsection");
        let mut e = Encoder::new();
        encode_preamble(&mut e, "pc", &["fixed-ram"]);
        want.push(0x05);
        want.push(26);
        want.extend_from_slice(b"configuration/capabilities");
        want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 9]);
        want.extend_from_slice(b"fixed-ram");
        assert_eq!(e.buf, want);
    }

    #[test]
    fn section_type_bytes_have_their_names() {
        let names = [
            (0x00, "EOF"),
            (0x01, "START"),
            (0x02, "PART"),
            (0x03, "END"),
            (0x04, "FULL"),
            (0x05, "SUBSECTION"),
            (0x06, "VMDESCRIPTION"),
            (0x07, "CONFIGURATION"),
            (0x08, "COMMAND"),
            (0x7E, "FOOTER"),
            (0x09, "unknown"),
            (0xFF, "unknown"),
        ];
        for (k, name) in names {
            assert_eq!(kind_name(k), name, "{k:#04x}");
        }
    }
}
