//! The project's random number generator: ChaCha8 from `rand_chacha`.
//!
//! ChaCha's output stream is fixed by its specification, so a seed gives the same numbers on
//! every platform and with every version of the crate; `Cargo.lock` pins the versions of the
//! distributions (`rand_distr`) drawn on top of it.

use rand::SeedableRng;

/// The seedable generator used for initialisation, shuffling and random tensors.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded from a `u64` (ChaCha8 with `seed_from_u64`).
pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Mixes two 64-bit values into one well-spread seed (SplitMix64 finaliser of a combination).
///
/// Used to derive independent streams, e.g. the seed of training step `step` from the run's
/// seed: `mix(seed, step)`. Unlike `seed ^ step`, nearby inputs give unrelated outputs.
pub fn mix(a: u64, b: u64) -> u64 {
    splitmix64(splitmix64(a) ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The SplitMix64 finaliser: a cheap bijective hash of a `u64`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform `f32` in `[0, 1)` computed from a counter, without any generator state.
///
/// `counter_uniform(key, i)` is a pure function: dropout uses it with `key` derived from the
/// step seed and the tape node, and `i` the element index, so masks are reproducible,
/// independent across layers, and can be drawn in parallel in any order.
#[inline]
pub fn counter_uniform(key: u64, i: u64) -> f32 {
    let bits = splitmix64(key ^ splitmix64(i));
    // The top 24 bits give every representable multiple of 2^-24 in [0, 1).
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u32> = (0..8)
            .map({
                let mut r = seeded(7);
                move |_| r.random()
            })
            .collect();
        let b: Vec<u32> = (0..8)
            .map({
                let mut r = seeded(7);
                move |_| r.random()
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn mix_separates_neighbours() {
        assert_ne!(mix(1, 2), mix(2, 1));
        assert_ne!(mix(0, 1), mix(0, 2));
    }

    #[test]
    fn counter_uniform_is_in_unit_interval_with_mean_half() {
        let n = 100_000;
        let mut sum = 0.0f64;
        for i in 0..n {
            let u = counter_uniform(42, i);
            assert!((0.0..1.0).contains(&u));
            sum += u as f64;
        }
        let mean = sum / n as f64;
        // Standard error of the mean of U(0,1) with n = 1e5 is about 0.0009.
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }
}
