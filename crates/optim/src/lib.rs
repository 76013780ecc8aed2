//! # adamant-optim
//!
//! Adam exactly as Kingma & Ba's Algorithm 1, AdaMax, every baseline the paper compares
//! against (SGD with momentum and Nesterov, AdaGrad, RMSProp, AdaDelta) and the successors
//! users expect (AMSGrad, AdamW, NAdam, RAdam, Adafactor, Muon), each with `torch.optim`'s
//! names, defaults and update formulas (pinned to PyTorch-computed trajectories by the
//! tests); Lion, LAMB and AdaBelief with the defaults and formulas of their reference
//! implementations (pinned to float64 runs of them). Plus gradient clipping, parameter
//! groups, [`Split`] (two optimizers as one: `muon` by name is Muon for the matrices and
//! AdamW for the rest), exact state save/load, and learning-rate [`schedule`]s, pinned to
//! the rates `torch.optim.lr_scheduler` computes where it has them: step, exponential, linear
//! warmup, cosine annealing (with or without warmup), the Adam paper's `1/sqrt(t)`, the
//! Transformer's warmup + inverse square root ("Noam"), one-cycle, and `ReduceLROnPlateau`
//! ([`Plateau`]) on top of any of them.
//!
//! Optimizers see parameters and gradients only, never modules:
//!
//! ```
//! use adamant_autodiff::{Mode, Param, Tape};
//! use adamant_optim::{Adam, AdamConfig, Optimizer};
//! use adamant_tensor::Tensor;
//!
//! let mut w = Param::new("w", Tensor::from_vec(vec![3.0, -2.0], &[2]));
//! let mut adam = Adam::new(AdamConfig { lr: 0.1, ..Default::default() });
//! for _ in 0..200 {
//!     let tape = Tape::new(Mode::Train, 0);
//!     let grads = tape.param(&w).square().sum().backward();
//!     drop(tape);
//!     adam.step(&mut [&mut w], &grads);
//! }
//! assert!(w.value().data().iter().all(|x| x.abs() < 0.05));
//! ```

pub mod average;
pub mod clip;
mod core;
mod inspect;
mod moments;
mod optimizer;
pub mod options;
pub mod schedule;
mod split;
mod state;

pub use average::{AverageError, AverageState, Averaging, ValueKind, WeightAverage};
pub use clip::{clip_grad_norm, clip_grad_value, global_norm};
pub use core::{Hyper, ParamGroup, ParamState, Selector};
pub use inspect::ParamMoments;
pub use optimizer::Optimizer;
pub use options::{build, FromOptions, OptimizerOptions, OptionsError, OPTIMIZER_NAMES};
pub use schedule::{Plateau, PlateauMode, Schedule, ScheduleError, Scheduler, ThresholdMode};
pub use split::Split;
pub use state::{OptimizerState, SavedParamState, StateError};

/// Declares the optimizers: each one's module (its own file), the types it exports, and the
/// ones `options::build` can make by name, in the order of the usage text.
macro_rules! optimizers {
    ($($module:ident: $($export:ident),+ => [$($registered:ident),+];)*) => {
        $(mod $module; pub use $module::{$($export),+};)*

        /// Every optimizer [`options::build`] knows, as `optimizers!` lists them.
        const REGISTERED: &[options::Registration] = &[$($(options::register::<$registered>(),)+)*];
    };
}

// The registry: adding an optimizer is its own file plus one line here.
optimizers! {
    sgd: Sgd, SgdConfig => [Sgd];
    adam: Adam, AdamConfig, AdamW, AdamWConfig => [Adam, AdamW];
    adamax: Adamax, AdamaxConfig => [Adamax];
    nadam: NAdam, NAdamConfig => [NAdam];
    radam: RAdam, RAdamConfig => [RAdam];
    adagrad: Adagrad, AdagradConfig => [Adagrad];
    rmsprop: RmsProp, RmsPropConfig => [RmsProp];
    adadelta: Adadelta, AdadeltaConfig => [Adadelta];
    lion: Lion, LionConfig => [Lion];
    lamb: Lamb, LambConfig => [Lamb];
    adabelief: AdaBelief, AdaBeliefConfig => [AdaBelief];
    adafactor: Adafactor, AdafactorConfig => [Adafactor];
    muon: Muon, MuonConfig, AdjustLr, MuonWithAdamW => [MuonWithAdamW];
}
