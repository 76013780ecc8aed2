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

/// What a random stream is for. Streams of different purposes are derived with different
/// constants, so the shuffle of epoch 3 and the dropout of step 3 never share numbers, and
/// adding a use of randomness of one purpose does not shift the streams of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Initialising parameters (index: 0, or the model's number when a run builds several).
    Init,
    /// The order of the training examples (index: the epoch).
    Shuffle,
    /// The tape of a training step: dropout masks and the noise drawn in a forward pass, such
    /// as a VAE's reparameterisation (index: the global step).
    Step,
    /// Drawing from a trained model, such as sampling text (index: the sample).
    Sample,
    /// Choosing data: subsets, splits and augmentation (index: what the caller numbers).
    Data,
}

impl Purpose {
    /// A distinct odd constant per purpose (digits of pi), mixed into the seed first.
    fn key(self) -> u64 {
        match self {
            Purpose::Init => 0x243F_6A88_85A3_08D3,
            Purpose::Shuffle => 0x1319_8A2E_0370_7345,
            Purpose::Step => 0xA409_3822_299F_31D1,
            Purpose::Sample => 0x082E_FA98_EC4E_6C89,
            Purpose::Data => 0x4528_21E6_38D0_1377,
        }
    }
}

/// The seed of stream `index` of `purpose` under a run's `seed`: `mix(mix(seed, key), index)`
/// with a constant per purpose. Use it where a seed is wanted (a [`Tape`]'s step seed); use
/// [`stream`] where a generator is.
///
/// [`Tape`]: https://docs.rs/adamant-autodiff
pub fn stream_seed(seed: u64, purpose: Purpose, index: u64) -> u64 {
    mix(mix(seed, purpose.key()), index)
}

/// A generator for stream `index` of `purpose` under a run's `seed` (see [`stream_seed`]):
/// `stream(seed, Purpose::Shuffle, epoch)` orders epoch `epoch`.
pub fn stream(seed: u64, purpose: Purpose, index: u64) -> Rng {
    seeded(stream_seed(seed, purpose, index))
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
    fn streams_of_different_purposes_do_not_collide() {
        use std::collections::HashSet;
        let purposes = [Purpose::Init, Purpose::Shuffle, Purpose::Step, Purpose::Sample, Purpose::Data];
        let mut seen = HashSet::new();
        for seed in 0..4 {
            for p in purposes {
                for index in 0..64 {
                    assert!(seen.insert(stream_seed(seed, p, index)), "{seed} {p:?} {index}");
                }
            }
        }
        // The old scheme gave the shuffle of epoch e and the tape of step e one seed.
        assert_ne!(stream_seed(0, Purpose::Shuffle, 3), stream_seed(0, Purpose::Step, 3));
        let a: u64 = stream(5, Purpose::Init, 0).random();
        let b: u64 = stream(5, Purpose::Init, 0).random();
        assert_eq!(a, b, "a stream is a pure function of (seed, purpose, index)");
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
