//! # adamant-autodiff
//!
//! Tape-based reverse-mode automatic differentiation.
//!
//! One [`Tape`] records one forward pass. [`Var`] is a cheap `Copy` handle to a value on the
//! tape; operations on `Var`s compute their value immediately with kernels from
//! `adamant-tensor` and record a closure that sends gradients back. [`Var::backward`] walks
//! the tape once in reverse and returns [`Gradients`] keyed by [`ParamId`].
//!
//! ```
//! use adamant_autodiff::{Mode, Param, Tape};
//! use adamant_tensor::Tensor;
//!
//! let w = Param::new("w", Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
//! let tape = Tape::new(Mode::Train, 0);
//! let x = tape.constant(Tensor::from_vec(vec![1.0, -1.0], &[1, 2]));
//! let loss = x.matmul(tape.param(&w)).relu().sum();
//! let grads = loss.backward();
//! // d/dW sum(relu(x W)) = x^T [relu' of each output]: outputs are -2 and -2, both clipped.
//! assert_eq!(grads.get(&w).unwrap().data(), &[0.0, 0.0, 0.0, 0.0]);
//! ```
//!
//! Every op lives in [`ops`](crate) files with its backward beside its forward; each is
//! checked against finite differences with the public [`gradcheck`].
//! An op of your own records its value and a backward closure with [`Tape::custom_op`].

mod gradcheck;
mod gradients;
mod ops;
mod param;
mod tape;

pub use gradcheck::{
    gradcheck, gradcheck_with, GradcheckElement, GradcheckOptions, GradcheckReport, ParamSet,
};
pub use gradients::Gradients;
pub use ops::{Attention, AttentionMask, Reduction};
pub use ops::{ClassTargets, CrossEntropy};
pub use param::{Param, ParamId};
pub use tape::{Mode, Tape, Var};

#[cfg(test)]
mod tests;
