//! The capability checker: which migration capabilities may be on together,
//! which parameters and transports they allow, and whether a destination
//! accepts a stream's validated capabilities.
//!
//! Two rule sets ([`Profile`]):
//!
//! * **fixed-ram** (the original proposal), checked when capabilities are
//!   set, in this order: with fixed-ram on, each of multifd, xbzrle,
//!   compress and postcopy-ram is refused with its exact message; fixed-ram
//!   needs a seekable transport.
//! * **mapped-ram** (QEMU 10.0.2, checked against it: see
//!   `tests/data/qemu/caps/`). When capabilities are set, the first of these
//!   conflicts is reported: postcopy-ram + multifd, multifd + xbzrle,
//!   mapped-ram + xbzrle, mapped-ram + postcopy-ram. Parameters: with
//!   mapped-ram on, multifd-compression and TLS are refused. At `migrate`:
//!   mapped-ram needs a seekable transport, multifd without mapped-ram needs
//!   a multi-channel one (tcp, unix), mapped-ram refuses TLS, then
//!   compression. direct-io only takes effect with mapped-ram + multifd.
//!
//! A refused setting changes nothing. The layout capability (fixed-ram or
//! mapped-ram) is *validated*: it is listed in the stream's configuration
//! section and the destination's setting must equal the stream's.
//!
//! Named divergence from QEMU 10.0.2, `qemu-checks-current-parameters`:
//! QEMU's `migrate-set-parameters` checks the parameters already stored,
//! not the new ones, so it accepts the first `multifd-compression=zlib`
//! with mapped-ram on and refuses every later call; migsim refuses the
//! setting that breaks the rule.

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
    /// QEMU >= 9.0's name for the fixed-offset layout.
    MappedRam,
    /// RAMBlocks on shared memory are not migrated; each block record
    /// carries its guest address (`mr_addr`). Validated: listed in the
    /// configuration section, and the destination must have it too.
    XIgnoreShared,
}

impl Capability {
    /// Every capability, in QAPI order.
    pub const ALL: [Capability; 7] = [
        Capability::Xbzrle,
        Capability::Compress,
        Capability::PostcopyRam,
        Capability::Multifd,
        Capability::XIgnoreShared,
        Capability::FixedRam,
        Capability::MappedRam,
    ];

    /// The QAPI / wire name.
    pub fn name(self) -> &'static str {
        match self {
            Capability::FixedRam => "fixed-ram",
            Capability::Multifd => "multifd",
            Capability::Xbzrle => "xbzrle",
            Capability::Compress => "compress",
            Capability::PostcopyRam => "postcopy-ram",
            Capability::MappedRam => "mapped-ram",
            Capability::XIgnoreShared => "x-ignore-shared",
        }
    }

    /// Look a capability up by its QAPI name.
    pub fn from_name(name: &str) -> Option<Capability> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the destination checks that its setting equals the stream's
    /// (and so the capability is listed in the configuration section).
    pub fn validated(self) -> bool {
        self.is_layout() || self == Capability::XIgnoreShared
    }

    /// Whether the capability selects the fixed-offset layout.
    pub fn is_layout(self) -> bool {
        matches!(self, Capability::FixedRam | Capability::MappedRam)
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

/// Which rule set the checker applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The original proposal: capability `fixed-ram`.
    #[default]
    FixedRam,
    /// QEMU >= 9.0 (checked against 10.0.2): capability `mapped-ram`.
    MappedRam,
}

impl Profile {
    /// The capability that selects the fixed-offset layout.
    pub fn layout_capability(self) -> Capability {
        match self {
            Profile::FixedRam => Capability::FixedRam,
            Profile::MappedRam => Capability::MappedRam,
        }
    }

    /// Whether `cap` exists in this profile.
    pub fn knows(self, cap: Capability) -> bool {
        match self {
            Profile::FixedRam => cap != Capability::MappedRam,
            // compress was removed in QEMU 9.1; fixed-ram never shipped.
            Profile::MappedRam => !matches!(cap, Capability::FixedRam | Capability::Compress),
        }
    }

    /// Profile name.
    pub fn name(self) -> &'static str {
        self.layout_capability().name()
    }
}

/// multifd-compression parameter values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultifdCompression {
    /// No compression.
    #[default]
    None,
    /// zlib.
    Zlib,
    /// zstd.
    Zstd,
}

/// Migration parameters that the rules look at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    /// multifd-compression.
    #[serde(default)]
    pub multifd_compression: MultifdCompression,
    /// direct-io (O_DIRECT page writes; mapped-ram + multifd only).
    #[serde(default)]
    pub direct_io: bool,
    /// tls-creds (empty = no TLS).
    #[serde(default)]
    pub tls_creds: String,
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

    /// Whether several channels can be opened (multifd without mapped-ram).
    pub fn multi_channel(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Unix)
    }
}

/// Why a setting, transport or incoming stream was refused. The `Display`
/// text is the exact message a user sees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// fixed-ram together with an incompatible capability.
    #[error("Fixed-ram migration is incompatible with {}", incompatible_words(*.0))]
    IncompatibleWithFixedRam(Capability),
    /// mapped-ram together with an incompatible capability.
    #[error("Mapped-ram migration is incompatible with {}", if *.0 == Capability::PostcopyRam { "postcopy" } else { .0.name() })]
    IncompatibleWithMappedRam(Capability),
    /// postcopy-ram with multifd (mapped-ram profile).
    #[error("Postcopy is not yet compatible with multifd")]
    PostcopyWithMultifd,
    /// multifd with xbzrle (mapped-ram profile).
    #[error("Multifd is not compatible with xbzrle")]
    MultifdWithXbzrle,
    /// A capability the profile does not have.
    #[error("Capability {cap} does not exist in the {profile} profile")]
    NotInProfile {
        /// The capability.
        cap: Capability,
        /// The profile's name.
        profile: &'static str,
    },
    /// The layout capability on a transport that cannot seek.
    #[error("Migration requires seekable transport (e.g. file)")]
    NeedsSeekableTransport,
    /// multifd (without mapped-ram) on a single-channel transport.
    #[error("Migration requires multi-channel URIs (e.g. tcp)")]
    NeedsMultiChannel,
    /// Setting compression or TLS parameters with mapped-ram on.
    #[error("Mapped-ram only available for non-compressed non-TLS multifd migration")]
    MappedRamParameters,
    /// migrate with mapped-ram and multifd compression.
    #[error("Cannot use compression with mapped-ram")]
    CompressionWithMappedRam,
    /// migrate with mapped-ram and TLS.
    #[error("Cannot use TLS with mapped-ram")]
    TlsWithMappedRam,
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
        Capability::MappedRam => "mapped-ram",
        Capability::XIgnoreShared => "x-ignore-shared",
    }
}

/// The set of enabled capabilities under one [`Profile`]. Only reachable
/// states are valid ones: every change goes through [`Capabilities::set`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    bits: u8,
    profile: Profile,
}

impl Capabilities {
    /// Nothing enabled, fixed-ram profile.
    pub fn none() -> Self {
        Self::default()
    }

    /// Nothing enabled, under `profile`.
    pub fn for_profile(profile: Profile) -> Self {
        Self { bits: 0, profile }
    }

    /// The rule set in force.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Whether the fixed-offset layout (fixed-ram or mapped-ram) is on.
    pub fn fixed_layout(&self) -> bool {
        self.has(self.profile.layout_capability())
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

    /// Build a set from a list of enabled capabilities (fixed-ram profile).
    pub fn from_enabled(caps: &[Capability]) -> Result<Self, CapsError> {
        Self::from_enabled_in(Profile::FixedRam, caps)
    }

    /// Build a set from a list of enabled capabilities under `profile`.
    pub fn from_enabled_in(profile: Profile, caps: &[Capability]) -> Result<Self, CapsError> {
        let mut c = Self::for_profile(profile);
        let settings: Vec<_> = caps.iter().map(|&c| (c, true)).collect();
        c.set(&settings)?;
        Ok(c)
    }

    fn check(&self) -> Result<(), CapsError> {
        if let Some(cap) = self.enabled().into_iter().find(|c| !self.profile.knows(*c)) {
            return Err(CapsError::NotInProfile {
                cap,
                profile: self.profile.name(),
            });
        }
        if self.profile == Profile::MappedRam {
            use Capability::*;
            if self.has(PostcopyRam) && self.has(Multifd) {
                return Err(CapsError::PostcopyWithMultifd);
            }
            if self.has(Multifd) && self.has(Xbzrle) {
                return Err(CapsError::MultifdWithXbzrle);
            }
            if self.has(MappedRam) {
                for other in [Xbzrle, PostcopyRam] {
                    if self.has(other) {
                        return Err(CapsError::IncompatibleWithMappedRam(other));
                    }
                }
            }
            return Ok(());
        }
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

    /// Check the transport before a migration starts (or an incoming one
    /// is accepted).
    pub fn check_transport(&self, transport: Transport) -> Result<(), CapsError> {
        if self.fixed_layout() && !transport.seekable() {
            return Err(CapsError::NeedsSeekableTransport);
        }
        if self.profile == Profile::MappedRam
            && self.has(Capability::Multifd)
            && !self.fixed_layout()
            && !transport.multi_channel()
        {
            return Err(CapsError::NeedsMultiChannel);
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
        let mut got = Capabilities::for_profile(self.profile);
        for name in received {
            match Capability::from_name(name) {
                Some(c) if c.validated() && self.profile.knows(c) => got.bits |= c.bit(),
                _ => return Err(CapsError::UnknownCapability(name.clone())),
            }
        }
        let profile = self.profile;
        for cap in Capability::ALL
            .into_iter()
            .filter(|c| c.validated() && profile.knows(*c))
        {
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

/// Capabilities plus the parameters the rules look at: the whole state a
/// `migrate` is checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationConfig {
    /// Capabilities (and the profile).
    pub caps: Capabilities,
    /// Parameters.
    pub params: Parameters,
}

impl MigrationConfig {
    /// Nothing enabled, default parameters, under `profile`.
    pub fn new(profile: Profile) -> Self {
        Self {
            caps: Capabilities::for_profile(profile),
            params: Parameters::default(),
        }
    }

    /// `migrate-set-capabilities`.
    pub fn set_capabilities(&mut self, settings: &[(Capability, bool)]) -> Result<(), CapsError> {
        self.caps.set(settings)
    }

    /// `migrate-set-parameters`: with mapped-ram on, compression and TLS are
    /// refused (the new values are checked; see the module's note on
    /// QEMU's divergence). A refused call changes nothing.
    pub fn set_parameters(&mut self, new: Parameters) -> Result<(), CapsError> {
        if self.caps.has(Capability::MappedRam)
            && (new.multifd_compression != MultifdCompression::None || !new.tls_creds.is_empty())
        {
            return Err(CapsError::MappedRamParameters);
        }
        self.params = new;
        Ok(())
    }

    /// `migrate` on `transport`: transport rules first, then (mapped-ram)
    /// TLS, then compression, in QEMU's order (`tests/data/qemu/caps/tls.json`:
    /// with both stored, QEMU 10.0.2 reports TLS).
    pub fn check_migrate(&self, transport: Transport) -> Result<(), CapsError> {
        self.caps.check_transport(transport)?;
        if self.caps.has(Capability::MappedRam) {
            if !self.params.tls_creds.is_empty() {
                return Err(CapsError::TlsWithMappedRam);
            }
            if self.params.multifd_compression != MultifdCompression::None {
                return Err(CapsError::CompressionWithMappedRam);
            }
        }
        Ok(())
    }

    /// `migrate-incoming` on `transport` (QEMU checks no parameters there).
    pub fn check_incoming_transport(&self, transport: Transport) -> Result<(), CapsError> {
        self.caps.check_transport(transport)
    }

    /// Whether direct-io takes effect: only with mapped-ram and multifd.
    pub fn direct_io_effective(&self) -> bool {
        self.params.direct_io
            && self.caps.has(Capability::MappedRam)
            && self.caps.has(Capability::Multifd)
    }
}
