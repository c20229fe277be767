//! An independent, table-driven model of both capability rule sets
//! (the fixed-ram proposal and QEMU 10.0.2's mapped-ram), for the `caps`
//! target.

use migsim_format::caps::{
    Capabilities, Capability, MigrationConfig, MultifdCompression, Parameters, Profile, Transport,
};

// The model's tables, written from the rules as stated, not from `caps.rs`:
// the fixed-ram proposal (fixed-ram refuses multifd, xbzrle, compress and
// postcopy-ram, each with its message, and needs a seekable transport) and
// QEMU 10.0.2's mapped-ram rules (what QEMU answered in
// tests/data/qemu/caps/, whose README summarises it).

/// The model's capabilities, by index.
pub(crate) const MODEL_NAMES: [&str; 6] = [
    "fixed-ram",
    "multifd",
    "xbzrle",
    "compress",
    "postcopy-ram",
    "mapped-ram",
];
pub(crate) const FIXED_RAM: usize = 0;
pub(crate) const MULTIFD: usize = 1;
pub(crate) const XBZRLE: usize = 2;
pub(crate) const POSTCOPY: usize = 4;
pub(crate) const MAPPED_RAM: usize = 5;
/// QAPI enum order: xbzrle, compress, postcopy-ram, multifd, then fixed-ram
/// (never shipped) and mapped-ram (QEMU's last capability).
pub(crate) const QAPI_ORDER: [usize; 6] = [2, 3, 4, 1, 0, 5];

/// The two rule sets of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModelProfile {
    FixedRam,
    MappedRam,
}

impl ModelProfile {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ModelProfile::FixedRam => "fixed-ram",
            ModelProfile::MappedRam => "mapped-ram",
        }
    }

    /// The layout capability: the only validated one (listed in the
    /// stream, compared on load).
    pub(crate) fn layout(self) -> usize {
        match self {
            ModelProfile::FixedRam => FIXED_RAM,
            ModelProfile::MappedRam => MAPPED_RAM,
        }
    }

    /// Capabilities that exist under the profile: the proposal predates
    /// mapped-ram; QEMU 10 has no fixed-ram and no compress (removed in
    /// 9.1).
    pub(crate) fn has(self, i: usize) -> bool {
        match self {
            ModelProfile::FixedRam => i != MAPPED_RAM,
            ModelProfile::MappedRam => i != FIXED_RAM && i != 3,
        }
    }

    /// Conflicting pairs, checked in this order; the first pair fully on
    /// is refused with its message.
    pub(crate) fn conflicts(self) -> &'static [(usize, usize, &'static str)] {
        match self {
            // With fixed-ram on, each of these is refused.
            ModelProfile::FixedRam => &[
                (0, 1, "Fixed-ram migration is incompatible with multifd"),
                (0, 2, "Fixed-ram migration is incompatible with xbzrle"),
                (0, 3, "Fixed-ram migration is incompatible with compression"),
                (
                    0,
                    4,
                    "Fixed-ram migration is incompatible with postcopy ram",
                ),
            ],
            // QEMU checks the resulting set in this fixed order, whatever
            // order the call lists the capabilities in.
            ModelProfile::MappedRam => &[
                (
                    POSTCOPY,
                    MULTIFD,
                    "Postcopy is not yet compatible with multifd",
                ),
                (MULTIFD, XBZRLE, "Multifd is not compatible with xbzrle"),
                (
                    MAPPED_RAM,
                    XBZRLE,
                    "Mapped-ram migration is incompatible with xbzrle",
                ),
                (
                    MAPPED_RAM,
                    POSTCOPY,
                    "Mapped-ram migration is incompatible with postcopy",
                ),
            ],
        }
    }
}

/// Transports: (transport, seekable, several channels possible).
pub(crate) const TRANSPORTS: [(Transport, bool, bool); 5] = [
    (Transport::File, true, false),
    (Transport::Tcp, false, true),
    (Transport::Unix, false, true),
    (Transport::Exec, false, false),
    (Transport::Fd, false, false),
];
pub(crate) const NEEDS_SEEKABLE: &str = "Migration requires seekable transport (e.g. file)";
pub(crate) const NEEDS_MULTI_CHANNEL: &str = "Migration requires multi-channel URIs (e.g. tcp)";
pub(crate) const MAPPED_RAM_PARAMETERS: &str =
    "Mapped-ram only available for non-compressed non-TLS multifd migration";
pub(crate) const TLS_WITH_MAPPED_RAM: &str = "Cannot use TLS with mapped-ram";
pub(crate) const COMPRESSION_WITH_MAPPED_RAM: &str = "Cannot use compression with mapped-ram";
/// Names tried as received capabilities.
pub(crate) const RECEIVED_NAMES: [&str; 14] = [
    "fixed-ram",
    "mapped-ram",
    "multifd",
    "xbzrle",
    "compress",
    "postcopy-ram",
    "x-ignore-shared",
    "validate-uuid",
    "",
    "FIXED-RAM",
    "fixed-ram\0",
    "fixed_ram",
    "Mapped-ram",
    "mapped-ram ",
];

/// Map a byte to (model index, capability).
pub fn capability_of(b: u8) -> (usize, Capability) {
    let i = usize::from(b % 6);
    let cap = match i {
        0 => Capability::FixedRam,
        1 => Capability::Multifd,
        2 => Capability::Xbzrle,
        3 => Capability::Compress,
        4 => Capability::PostcopyRam,
        _ => Capability::MappedRam,
    };
    (i, cap)
}

/// Map a byte to the checker's profile.
pub fn profile_of(b: u8) -> Profile {
    if b.is_multiple_of(2) {
        Profile::FixedRam
    } else {
        Profile::MappedRam
    }
}

pub(crate) fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The model's parameters: compression index (0 = none), TLS, direct-io.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ModelParams {
    pub(crate) compression: u8,
    pub(crate) tls: bool,
    pub(crate) direct_io: bool,
}

/// The independent model of the capability rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) profile: ModelProfile,
    pub(crate) on: [bool; 6],
    pub(crate) params: ModelParams,
}

impl Model {
    pub(crate) fn new(profile: ModelProfile) -> Self {
        Self {
            profile,
            on: [false; 6],
            params: ModelParams::default(),
        }
    }

    /// `migrate-set-capabilities`: the resulting set is checked as a whole
    /// (a capability the profile lacks may not be on, then the conflicts in
    /// order); a refused call changes nothing. Parameters play no part.
    pub(crate) fn set(&mut self, settings: &[(usize, bool)]) -> Result<(), String> {
        let mut next = self.on;
        for &(i, on) in settings {
            next[i] = on;
        }
        if let Some(&i) = QAPI_ORDER
            .iter()
            .find(|&&i| next[i] && !self.profile.has(i))
        {
            return Err(format!(
                "Capability {} does not exist in the {} profile",
                MODEL_NAMES[i],
                self.profile.name()
            ));
        }
        for &(a, b, message) in self.profile.conflicts() {
            if next[a] && next[b] {
                return Err(message.to_string());
            }
        }
        self.on = next;
        Ok(())
    }

    /// `migrate-set-parameters`. mapped-ram: while it is on, compression
    /// and TLS are refused. QEMU 10.0.2 checks the values already stored
    /// instead (named divergence `qemu-checks-current-parameters`); migsim
    /// checks the new ones. The proposal has no parameter rule.
    pub(crate) fn set_params(&mut self, p: ModelParams) -> Result<(), String> {
        if self.profile == ModelProfile::MappedRam
            && self.on[MAPPED_RAM]
            && (p.compression != 0 || p.tls)
        {
            return Err(MAPPED_RAM_PARAMETERS.to_string());
        }
        self.params = p;
        Ok(())
    }

    /// The transport rules of `migrate` and `migrate-incoming`: the layout
    /// needs a seekable transport; (mapped-ram) multifd without mapped-ram
    /// needs one with several channels.
    pub(crate) fn transport(&self, seekable: bool, multi_channel: bool) -> Result<(), String> {
        let layout = self.on[self.profile.layout()];
        if layout && !seekable {
            return Err(NEEDS_SEEKABLE.to_string());
        }
        if self.profile == ModelProfile::MappedRam && self.on[MULTIFD] && !layout && !multi_channel
        {
            return Err(NEEDS_MULTI_CHANNEL.to_string());
        }
        Ok(())
    }

    /// `migrate`: the transport first, then (mapped-ram on) TLS, then
    /// compression, in the order QEMU's `migrate_prepare` checks them.
    pub(crate) fn migrate(&self, seekable: bool, multi_channel: bool) -> Result<(), String> {
        self.transport(seekable, multi_channel)?;
        if self.profile == ModelProfile::MappedRam && self.on[MAPPED_RAM] {
            if self.params.tls {
                return Err(TLS_WITH_MAPPED_RAM.to_string());
            }
            if self.params.compression != 0 {
                return Err(COMPRESSION_WITH_MAPPED_RAM.to_string());
            }
        }
        Ok(())
    }

    /// direct-io is only used by mapped-ram's multifd channels.
    pub(crate) fn direct_io_effective(&self) -> bool {
        self.params.direct_io && self.on[MAPPED_RAM] && self.on[MULTIFD]
    }

    pub(crate) fn enabled(&self) -> Vec<&'static str> {
        QAPI_ORDER
            .iter()
            .filter(|&&i| self.on[i])
            .map(|&i| MODEL_NAMES[i])
            .collect()
    }

    /// Load time: every received name must be a validated capability (the
    /// profile's layout capability or x-ignore-shared), and each one's
    /// setting must equal the destination's, x-ignore-shared first (QAPI
    /// order). The model's destinations never set x-ignore-shared.
    pub(crate) fn incoming(&self, received: &[String]) -> Result<(), String> {
        let layout = self.profile.layout();
        let mut got = false;
        let mut shared = false;
        for name in received {
            if name == MODEL_NAMES[layout] {
                got = true;
            } else if name == "x-ignore-shared" {
                shared = true;
            } else {
                return Err(format!("Received unknown capability {name}"));
            }
        }
        if shared {
            return Err(
                "Capability x-ignore-shared is off, but received capability is on".to_string(),
            );
        }
        if self.on[layout] != got {
            return Err(format!(
                "Capability {} is {}, but received capability is {}",
                MODEL_NAMES[layout],
                on_off(self.on[layout]),
                on_off(got)
            ));
        }
        Ok(())
    }
}

pub(crate) fn err_text<E: std::fmt::Display>(r: Result<(), E>) -> Result<(), String> {
    r.map_err(|e| e.to_string())
}

pub(crate) fn model_profile(p: Profile) -> ModelProfile {
    match p {
        Profile::FixedRam => ModelProfile::FixedRam,
        Profile::MappedRam => ModelProfile::MappedRam,
    }
}

pub(crate) fn parameters_of(
    compression: u8,
    tls: bool,
    direct_io: bool,
) -> (Parameters, ModelParams) {
    let c = compression % 3;
    let real = Parameters {
        multifd_compression: match c {
            0 => MultifdCompression::None,
            1 => MultifdCompression::Zlib,
            _ => MultifdCompression::Zstd,
        },
        direct_io,
        tls_creds: if tls { "tls0".into() } else { String::new() },
    };
    (
        real,
        ModelParams {
            compression: c,
            tls,
            direct_io,
        },
    )
}

/// The checker's capabilities must be the model's, seen through every
/// accessor.
pub(crate) fn agree(real: &Capabilities, model: &Model, context: &dyn Fn() -> String) {
    assert_eq!(
        model_profile(real.profile()),
        model.profile,
        "profile(), {}",
        context()
    );
    for b in 0..6u8 {
        let (i, cap) = capability_of(b);
        assert_eq!(
            real.has(cap),
            model.on[i],
            "{cap}: checker vs model, {}",
            context()
        );
    }
    let enabled: Vec<&str> = real.enabled().into_iter().map(Capability::name).collect();
    assert_eq!(enabled, model.enabled(), "enabled(), {}", context());
    let layout = model.profile.layout();
    let validated: Vec<&str> = if model.on[layout] {
        vec![MODEL_NAMES[layout]]
    } else {
        Vec::new()
    };
    assert_eq!(
        real.validated_names(),
        validated,
        "validated_names(), {}",
        context()
    );
    assert_eq!(
        real.fixed_layout(),
        model.on[layout],
        "fixed_layout(), {}",
        context()
    );
    for (t, seekable, multi) in TRANSPORTS {
        assert_eq!(
            err_text(real.check_transport(t)),
            model.transport(seekable, multi),
            "check_transport({t:?}), {}",
            context()
        );
    }
}

/// The whole configuration must be the model's: capabilities, parameters,
/// and every decision taken from them.
pub(crate) fn agree_config(real: &MigrationConfig, model: &Model, context: &dyn Fn() -> String) {
    agree(&real.caps, model, context);
    let (params, _) = parameters_of(
        model.params.compression,
        model.params.tls,
        model.params.direct_io,
    );
    assert_eq!(real.params, params, "parameters, {}", context());
    for (t, seekable, multi) in TRANSPORTS {
        assert_eq!(
            err_text(real.check_migrate(t)),
            model.migrate(seekable, multi),
            "check_migrate({t:?}), {}",
            context()
        );
        assert_eq!(
            err_text(real.check_incoming_transport(t)),
            model.transport(seekable, multi),
            "check_incoming_transport({t:?}), {}",
            context()
        );
    }
    assert_eq!(
        real.direct_io_effective(),
        model.direct_io_effective(),
        "direct_io_effective(), {}",
        context()
    );
}
