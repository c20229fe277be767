//! The `caps` target: a sequence of capability and parameter settings,
//! checked call by call against [`caps_model`](super::caps_model).

use std::collections::BTreeMap;

use arbitrary::Arbitrary;

use migsim_format::caps::{Capabilities, Capability, MigrationConfig, Profile};

use super::typed_input;

use super::caps_model::*;

/// Input of the [`caps`] target.
#[derive(Clone, Debug, Arbitrary)]
pub struct CapsInput {
    /// The rule set, mapped by [`profile_of`]: even is fixed-ram, odd is
    /// mapped-ram.
    pub profile: u8,
    /// Rotation used when replaying the successful settings.
    pub rotate: u8,
    /// Names a stream's configuration section lists, for `check_incoming`.
    pub received: Vec<ReceivedName>,
    /// `migrate-set-capabilities` and `migrate-set-parameters` calls, in
    /// order.
    pub steps: Vec<CapsStep>,
}

/// One call of the [`caps`] target.
#[derive(Clone, Debug, Arbitrary)]
pub enum CapsStep {
    /// `MigrationConfig::set_capabilities`: (capability, on) pairs, the
    /// capability mapped by [`capability_of`].
    Capabilities(Vec<(u8, bool)>),
    /// `MigrationConfig::set_parameters`.
    Parameters {
        /// multifd-compression: none, zlib, zstd (by the byte mod 3).
        compression: u8,
        /// tls-creds set (`"tls0"`) or empty.
        tls: bool,
        /// direct-io.
        direct_io: bool,
    },
}

/// A capability name received in a stream.
#[derive(Clone, Debug, Arbitrary)]
pub enum ReceivedName {
    /// One of a table of interesting names.
    Known(u8),
    /// Anything.
    Raw(String),
}

/// Structure-aware capability checker target (see the module docs).
pub fn caps(input: CapsInput) {
    let profile = profile_of(input.profile);
    let mprofile = model_profile(profile);
    let steps: Vec<&CapsStep> = input.steps.iter().take(32).collect();

    let mut real = MigrationConfig::new(profile);
    let mut model = Model::new(mprofile);
    let mut succeeded: Vec<Vec<(usize, Capability, bool)>> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        let before = real.clone();
        let context = || format!("after step {n} {step:?} of {steps:?} ({profile:?} profile)");
        let refused = match step {
            CapsStep::Capabilities(pairs) => {
                let step: Vec<(usize, Capability, bool)> = pairs
                    .iter()
                    .take(8)
                    .map(|&(b, on)| {
                        let (i, cap) = capability_of(b);
                        (i, cap, on)
                    })
                    .collect();
                let settings: Vec<(Capability, bool)> =
                    step.iter().map(|&(_, c, on)| (c, on)).collect();
                let got = err_text(real.set_capabilities(&settings));
                let want = model.set(&step.iter().map(|&(i, _, on)| (i, on)).collect::<Vec<_>>());
                assert_eq!(
                    got,
                    want,
                    "set_capabilities(): checker vs model, {}",
                    context()
                );
                // Building the same enabled set in one go.
                let on: Vec<Capability> = step.iter().filter(|s| s.2).map(|s| s.1).collect();
                let mut m = Model::new(mprofile);
                let one_go = m.set(
                    &step
                        .iter()
                        .filter(|s| s.2)
                        .map(|s| (s.0, true))
                        .collect::<Vec<_>>(),
                );
                match Capabilities::from_enabled_in(profile, &on) {
                    Ok(c) => {
                        assert_eq!(
                            Ok(()),
                            one_go,
                            "from_enabled_in({profile:?}, {on:?}) accepted"
                        );
                        agree(&c, &m, &|| format!("from_enabled_in({profile:?}, {on:?})"));
                    }
                    Err(e) => assert_eq!(
                        Err(e.to_string()),
                        one_go,
                        "from_enabled_in({profile:?}, {on:?})"
                    ),
                }
                if got.is_ok() {
                    succeeded.push(step);
                }
                got.is_err()
            }
            CapsStep::Parameters {
                compression,
                tls,
                direct_io,
            } => {
                let (p, mp) = parameters_of(*compression, *tls, *direct_io);
                let got = err_text(real.set_parameters(p));
                let want = model.set_params(mp);
                assert_eq!(
                    got,
                    want,
                    "set_parameters(): checker vs model, {}",
                    context()
                );
                got.is_err()
            }
        };
        if refused {
            assert_eq!(
                real,
                before,
                "a refused call changed the state, {}",
                context()
            );
        }
        agree_config(&real, &model, &context);
    }

    order_independence(profile, &real.caps, &succeeded, input.rotate);

    // Load-time check of the stream's listed capabilities.
    let names: Vec<String> = input
        .received
        .iter()
        .take(8)
        .map(|r| match r {
            ReceivedName::Known(i) => RECEIVED_NAMES[usize::from(*i) % RECEIVED_NAMES.len()].into(),
            ReceivedName::Raw(s) => s.chars().take(64).collect(),
        })
        .collect();
    let layout = profile.layout_capability();
    let layout_only = Capabilities::from_enabled_in(profile, &[layout]).expect("valid");
    let mut layout_model = Model::new(mprofile);
    layout_model.on[mprofile.layout()] = true;
    let layout_name = vec![layout.name().to_string()];
    let other_name = vec![match profile {
        Profile::FixedRam => "mapped-ram".to_string(),
        Profile::MappedRam => "fixed-ram".to_string(),
    }];
    for (local, m) in [
        (real.caps, model),
        (Capabilities::for_profile(profile), Model::new(mprofile)),
        (layout_only, layout_model),
    ] {
        for received in [&names[..], &layout_name, &other_name, &[]] {
            assert_eq!(
                err_text(local.check_incoming(received)),
                m.incoming(received),
                "check_incoming({received:?}) with local {:?} ({profile:?} profile)",
                m.enabled()
            );
        }
    }
}

/// The settings that succeeded, keeping per capability only the value it
/// ended with, reach the same state in any order: a call-by-call replay
/// reversed and rotated (every call must succeed: each intermediate state
/// only has capabilities on that are on at the end, and under both
/// profiles a subset of a valid set is valid) and one call with all of
/// them. Parameters do not take part in capability checks.
pub(crate) fn order_independence(
    profile: Profile,
    final_state: &Capabilities,
    succeeded: &[Vec<(usize, Capability, bool)>],
    rotate: u8,
) {
    let mut last: BTreeMap<usize, bool> = BTreeMap::new();
    for step in succeeded {
        for &(i, _, on) in step.iter() {
            last.insert(i, on);
        }
    }
    let calls: Vec<Vec<(Capability, bool)>> = succeeded
        .iter()
        .map(|step| {
            step.iter()
                .filter(|&&(i, _, on)| last[&i] == on)
                .map(|&(_, c, on)| (c, on))
                .collect()
        })
        .collect();
    let mut orders: Vec<Vec<&Vec<(Capability, bool)>>> = vec![calls.iter().rev().collect()];
    if !calls.is_empty() {
        let k = usize::from(rotate) % calls.len();
        orders.push(calls[k..].iter().chain(&calls[..k]).collect());
    }
    for order in orders {
        let mut c = Capabilities::for_profile(profile);
        for call in &order {
            let mut reversed = (*call).clone();
            reversed.reverse();
            if let Err(e) = c.set(&reversed) {
                panic!(
                    "replaying successful settings in another order refused {reversed:?}: {e} (order {order:?}, {profile:?} profile)"
                );
            }
        }
        assert_eq!(
            c, *final_state,
            "the final state depends on the order {order:?} ({profile:?} profile)"
        );
    }
    let all: Vec<(Capability, bool)> = calls.iter().rev().flatten().copied().collect();
    let mut c = Capabilities::for_profile(profile);
    c.set(&all).unwrap_or_else(|e| {
        panic!("all successful settings in one call {all:?}: {e} ({profile:?} profile)")
    });
    assert_eq!(
        c, *final_state,
        "all successful settings in one call {all:?} ({profile:?} profile)"
    );
}

/// [`caps`] from raw bytes, as libFuzzer's typed target builds its input.
pub fn caps_bytes(data: &[u8]) {
    if let Some(input) = typed_input::<CapsInput>(data) {
        caps(input);
    }
}
