//! Seed derivation: one independent ChaCha stream per component, so a new
//! random draw in one component never shifts another's.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A 64-bit value derived from the scenario seed and a component label.
pub fn derive(seed: u64, label: &str) -> u64 {
    // FNV-1a over the label, mixed with the seed through splitmix64.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream of one component.
pub fn stream(seed: u64, label: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, label))
}
