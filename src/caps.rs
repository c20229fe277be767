//! The capability checker: which migration capabilities may be on together,
//! which transports they need, and whether a destination accepts a stream's
//! validated capabilities.
//!
//! Rules (the fixed-ram proposal, checked when capabilities are set, in this
//! order): with fixed-ram on, each of multifd, xbzrle, compress and
//! postcopy-ram is refused with its exact message. A refused setting changes
//! nothing. fixed-ram needs a seekable transport. fixed-ram is a
//! *validated* capability: it is listed in the stream's configuration
//! section and the destination's setting must equal the stream's.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A boolean migration option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Every page at a fixed offset in the file.
    FixedRam,
    /// Several channels sending pages.
    Multifd,
    /// XOR-based delta compression of re-sent pages.
    Xbzrle,
    /// Page compression (the pre-9.1 `compress` capability).
    Compress,
    /// Postcopy: the destination runs before all RAM arrived.
    PostcopyRam,
}

impl Capability {
    /// Every capability, in QAPI order.
    pub const ALL: [Capability; 5] = [
        Capability::Xbzrle,
        Capability::Compress,
        Capability::PostcopyRam,
        Capability::Multifd,
        Capability::FixedRam,
    ];

    /// The QAPI / wire name.
    pub fn name(self) -> &'static str {
        match self {
            Capability::FixedRam => "fixed-ram",
            Capability::Multifd => "multifd",
            Capability::Xbzrle => "xbzrle",
            Capability::Compress => "compress",
            Capability::PostcopyRam => "postcopy-ram",
        }
    }

    /// Look a capability up by its QAPI name.
    pub fn from_name(name: &str) -> Option<Capability> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the destination checks that its setting equals the stream's
    /// (and so the capability is listed in the configuration section).
    pub fn validated(self) -> bool {
        matches!(self, Capability::FixedRam)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the migration stream travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// `file:` — seekable.
    File,
    /// `tcp:` socket.
    Tcp,
    /// `unix:` socket.
    Unix,
    /// `exec:` pipe to a command.
    Exec,
    /// `fd:` an inherited file descriptor (treated as a stream by QEMU).
    Fd,
}

impl Transport {
    /// Whether pages can be written at arbitrary offsets.
    pub fn seekable(self) -> bool {
        matches!(self, Transport::File)
    }
}

/// Why a setting, transport or incoming stream was refused. The `Display`
/// text is the exact message a user sees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// fixed-ram together with an incompatible capability.
    #[error("Fixed-ram migration is incompatible with {}", incompatible_words(*.0))]
    IncompatibleWithFixedRam(Capability),
    /// fixed-ram on a transport that cannot seek.
    #[error("Migration requires seekable transport (e.g. file)")]
    NeedsSeekableTransport,
    /// The destination's validated capability differs from the stream's.
    #[error(
        "Capability {cap} is {}, but received capability is {}",
        on_off(*.local),
        on_off(*.received)
    )]
    Mismatch {
        /// The capability.
        cap: Capability,
        /// The destination's setting.
        local: bool,
        /// The stream's setting.
        received: bool,
    },
    /// The stream lists a capability this destination does not know.
    #[error("Received unknown capability {0}")]
    UnknownCapability(String),
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn incompatible_words(c: Capability) -> &'static str {
    match c {
        Capability::Multifd => "multifd",
        Capability::Xbzrle => "xbzrle",
        Capability::Compress => "compression",
        Capability::PostcopyRam => "postcopy ram",
        Capability::FixedRam => "fixed-ram",
    }
}

/// The set of enabled capabilities. Only reachable states are valid ones:
/// every change goes through [`Capabilities::set`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    bits: u8,
}

impl Capabilities {
    /// Nothing enabled.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether `cap` is on.
    pub fn has(&self, cap: Capability) -> bool {
        self.bits & cap.bit() != 0
    }

    /// Enabled capabilities in QAPI order.
    pub fn enabled(&self) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.has(*c))
            .collect()
    }

    /// Apply several settings at once, like `migrate-set-capabilities`: the
    /// resulting set is checked as a whole; on error nothing changes.
    pub fn set(&mut self, settings: &[(Capability, bool)]) -> Result<(), CapsError> {
        let mut new = *self;
        for &(cap, on) in settings {
            if on {
                new.bits |= cap.bit();
            } else {
                new.bits &= !cap.bit();
            }
        }
        new.check()?;
        *self = new;
        Ok(())
    }

    /// Build a set from a list of enabled capabilities.
    pub fn from_enabled(caps: &[Capability]) -> Result<Self, CapsError> {
        let mut c = Self::none();
        let settings: Vec<_> = caps.iter().map(|&c| (c, true)).collect();
        c.set(&settings)?;
        Ok(c)
    }

    fn check(&self) -> Result<(), CapsError> {
        if self.has(Capability::FixedRam) {
            for other in [
                Capability::Multifd,
                Capability::Xbzrle,
                Capability::Compress,
                Capability::PostcopyRam,
            ] {
                if self.has(other) {
                    return Err(CapsError::IncompatibleWithFixedRam(other));
                }
            }
        }
        Ok(())
    }

    /// Check the transport before a migration starts.
    pub fn check_transport(&self, transport: Transport) -> Result<(), CapsError> {
        if self.has(Capability::FixedRam) && !transport.seekable() {
            return Err(CapsError::NeedsSeekableTransport);
        }
        Ok(())
    }

    /// Names of the validated capabilities that are on, in the order the
    /// configuration section lists them.
    pub fn validated_names(&self) -> Vec<&'static str> {
        self.enabled()
            .into_iter()
            .filter(|c| c.validated())
            .map(Capability::name)
            .collect()
    }

    /// Check a stream's listed capabilities against this destination's
    /// settings. `received` are the names in the configuration section.
    pub fn check_incoming(&self, received: &[String]) -> Result<(), CapsError> {
        let mut got = Capabilities::none();
        for name in received {
            match Capability::from_name(name) {
                Some(c) if c.validated() => got.bits |= c.bit(),
                _ => return Err(CapsError::UnknownCapability(name.clone())),
            }
        }
        for cap in Capability::ALL.into_iter().filter(|c| c.validated()) {
            if self.has(cap) != got.has(cap) {
                return Err(CapsError::Mismatch {
                    cap,
                    local: self.has(cap),
                    received: got.has(cap),
                });
            }
        }
        Ok(())
    }
}
