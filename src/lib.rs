//! # adamant
//!
//! A deep-learning training framework written from scratch in Rust, built to reproduce
//! Kingma & Ba's *Adam: A Method for Stochastic Optimization* (2014) end to end.
//!
//! This facade re-exports the member crates, so a user depends on `adamant` alone:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`tensor`] | `adamant-tensor` | dense `f32` tensors and their kernels |
//! | [`autodiff`] | `adamant-autodiff` | the tape-based reverse-mode engine |
//! | [`layers`] | `adamant-layers` | modules, losses, initialisers, save/load |
//! | [`optim`] | `adamant-optim` | Adam (Algorithm 1) and its baselines, schedules |
//! | [`data`] | `adamant-data` | MNIST / CIFAR-10 readers, batching, preprocessing |
//!
//! `use adamant::prelude::*;` brings the names a training script needs.
//!
//! adamant sets no global allocator: a training step reuses its own buffers
//! ([`tensor::pool`]), so its speed does not depend on the allocator your program picks.

pub use adamant_autodiff as autodiff;
pub use adamant_data as data;
/// The layers crate, `adamant-layers`: [`Module`](layers::Module) and [`Params`](layers::Params),
/// layers, losses, initialisers, the paper's nets, save/load.
pub mod layers {
    /// `#[derive(Module)]` (see [`Params`]), expanding to paths through `::adamant::layers`
    /// so that a crate depending on `adamant` alone can use it.
    pub use adamant_derive::ModuleViaFacade as Module;
    #[doc(no_inline)]
    pub use adamant_layers::*;
}
pub use adamant_optim as optim;
pub use adamant_tensor as tensor;

pub mod average;
pub mod checkpoint;
pub mod distributed;
pub mod history;
#[cfg(feature = "tensorboard")]
pub mod tensorboard;
pub mod train;

/// The names most training scripts use, in one import.
///
/// It brings the random traits too, so the seeded generator (the type [`Rng`](prelude::Rng),
/// ChaCha8) can be drawn from directly: `rand`'s `Rng` trait is imported anonymously (its
/// methods, `random`, `random_range`, `random_bool`, without clashing with the type `Rng`),
/// with `RngCore`, `SeedableRng` and `rand_distr`'s `Distribution`. The crates themselves are
/// [`rand`] and [`rand_distr`] for distributions (`Normal`, `Uniform`, ...).
///
/// ```
/// use adamant::prelude::*;
///
/// let mut rng = seeded(42);
/// let u: f64 = rng.random(); // rand::Rng
/// let k = rng.random_range(0..10);
/// let bits = rng.next_u64(); // RngCore
/// let normal = adamant::rand_distr::Normal::new(0.0f32, 1.0).unwrap();
/// let z = normal.sample(&mut rng); // Distribution
/// assert!((0.0..1.0).contains(&u) && k < 10 && z.is_finite());
/// // SeedableRng: the same seed, the same stream.
/// let mut again = Rng::seed_from_u64(42);
/// assert_eq!(again.random::<f64>(), u);
/// # let _ = bits;
/// // Sampling ids from logits (temperature 1, no top-k).
/// let logits = Tensor::from_vec(vec![0.0, 5.0, 0.0], &[1, 3]);
/// let ids = adamant::tensor::sample::categorical(&logits, 1.0, None, &mut rng);
/// assert_eq!(ids.shape(), &[1]);
/// ```
pub mod prelude {
    pub use adamant_tensor::rng::{seeded, Rng};
    pub use adamant_tensor::Tensor;
    pub use rand::{Rng as _, RngCore, SeedableRng};
    pub use rand_distr::Distribution;
}

/// The random-number crate of the prelude's traits (`rand` 0.9), re-exported so that its
/// distributions and traits are the versions adamant's generator implements.
pub use rand;
/// Probability distributions (`Normal`, `Uniform`, ...) for the seeded generator (`rand_distr`).
pub use rand_distr;

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The tour's code blocks (`docs/tour.md` and its chapters), compiled and run as doctests so
/// that the teaching text cannot drift from the code it teaches.
#[cfg(doctest)]
pub mod tour_doctests {
    #[doc = include_str!("../docs/tour.md")]
    pub struct Index;
    #[doc = include_str!("../docs/tour/01-backprop-on-one-page.md")]
    pub struct BackpropOnOnePage;
    #[doc = include_str!("../docs/tour/02-tape.md")]
    pub struct Tape;
    #[doc = include_str!("../docs/tour/03-backward.md")]
    pub struct Backward;
    #[doc = include_str!("../docs/tour/04-gradcheck.md")]
    pub struct Gradcheck;
    #[doc = include_str!("../docs/tour/05-networks.md")]
    pub struct Networks;
    #[doc = include_str!("../docs/tour/06-momentum-to-adam.md")]
    pub struct MomentumToAdam;
    #[doc = include_str!("../docs/tour/07-adam.md")]
    pub struct Adam;
    #[doc = include_str!("../docs/tour/08-bias-correction.md")]
    pub struct BiasCorrection;
    #[doc = include_str!("../docs/tour/09-the-family.md")]
    pub struct TheFamily;
    #[doc = include_str!("../docs/tour/10-a-language-model.md")]
    pub struct ALanguageModel;
    #[doc = include_str!("../docs/tour/11-watching-adam-train.md")]
    pub struct WatchingAdamTrain;
}
