//! The [`Optimizer`] trait.

use adamant_autodiff::{Gradients, Param};

use crate::core::ParamGroup;
use crate::inspect::ParamMoments;
use crate::state::{OptimizerState, StateError};

/// Updates parameters in place from their gradients.
///
/// Every optimizer keeps per-parameter state (moments, step counts) keyed by parameter id in
/// memory and by parameter name when saved, matches `torch.optim`'s defaults and update
/// formulas, and skips parameters that have no gradient.
pub trait Optimizer {
    /// One update of every parameter that has a gradient in `grads`.
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients);

    /// The current (base) learning rate.
    fn lr(&self) -> f32;

    /// Sets the base learning rate (schedules call this every step).
    fn set_lr(&mut self, lr: f32);

    /// The optimizer's name as the command line and saved state spell it (`"adam"`).
    fn name(&self) -> &'static str;

    /// Adds a parameter group with its own learning-rate multiplier or weight decay; the
    /// first matching group applies.
    fn add_param_group(&mut self, group: ParamGroup);

    /// The complete state, exact to the bit, keyed by parameter name.
    fn state_dict(&self) -> OptimizerState;

    /// Restores state saved by [`Optimizer::state_dict`] of the same kind of optimizer. State
    /// is attached to parameters by name when they next take a step. On error nothing changes.
    fn load_state_dict(&mut self, state: OptimizerState) -> Result<(), StateError>;

    /// Whether this optimizer can update `params`: an error of one line naming a parameter it
    /// cannot take. Most optimizers take any parameter; [`Muon`](crate::Muon) takes matrices
    /// only and panics at its first step on anything else, as `torch.optim.Muon` refuses
    /// them. Code whose parameters and optimizer come from outside input (a command line)
    /// calls this before stepping, to report the mismatch instead of panicking.
    fn check_params(&self, params: &[&Param]) -> Result<(), String> {
        let _ = params;
        Ok(())
    }

    /// The moment estimates of each of `params` that has taken a step, read-only, in the
    /// order of `params`: for the optimizers that keep Adam's `m` and `v` (Adam, AdamW,
    /// AMSGrad, NAdam, RAdam, AdaBelief, LAMB, and the parts of a [`Split`](crate::Split) that
    /// do); empty for the others. For logging (TensorBoard's `optim/` plots): reading it
    /// changes no state.
    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        let _ = params;
        Vec::new()
    }
}

/// Implements the parts of [`Optimizer`] that only touch the optimizer's `core` field, given
/// the body of `step`.
macro_rules! optimizer_common {
    () => {
        fn lr(&self) -> f32 {
            self.core.lr
        }
        fn set_lr(&mut self, lr: f32) {
            self.core.lr = lr;
        }
        fn name(&self) -> &'static str {
            self.core.kind
        }
        fn add_param_group(&mut self, group: $crate::core::ParamGroup) {
            self.core.groups.push(group);
        }
        fn state_dict(&self) -> $crate::state::OptimizerState {
            self.core.state_dict(Default::default())
        }
        fn load_state_dict(
            &mut self,
            state: $crate::state::OptimizerState,
        ) -> Result<(), $crate::state::StateError> {
            self.core.load_state_dict(state).map(|_| ())
        }
    };
}
pub(crate) use optimizer_common;
