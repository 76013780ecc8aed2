//! Every differentiable operation, each with its backward written right beside its forward.
//!
//! The pattern of every op: compute the value with a kernel from `adamant-tensor`, then
//! `tape.push_op(value, inputs, backward)` where the `backward` closure receives the output
//! gradient `dy` and accumulates the inputs' gradients, again with kernels. No arithmetic
//! loops live here.
//!
//! One file per op family, named like the kernel file it calls where there is one:
//!
//! - `arith`: broadcasting `+ - * /`, scalars, negation; `unary`: elementwise functions;
//! - `reduce`: sums, means, extrema, arg-extrema, logsumexp, variance and norms along any axis;
//! - `softmax`: softmax and log-softmax along any axis; `loss`: fused losses (cross-entropy of
//!   any rank with `ignore_index` and label smoothing), the VAE's sample; `gather`;
//! - `shape`: views, permute, slicing, concat, expand; `linalg`: matrix products, batched;
//! - `conv`; `pool`: max-pooling; `dropout`; `embedding`: row lookup by integer ids;
//! - `attention`: fused scaled dot-product attention; `norm`: fused layer, RMS and batch norm;
//! - `custom`: the public [`Tape::custom_op`](crate::Tape::custom_op) for ops defined
//!   outside this crate.

mod arith;
mod attention;
mod conv;
mod custom;
mod dropout;
mod embedding;
mod gather;
mod linalg;
mod loss;
mod norm;
mod pool;
mod reduce;
mod shape;
mod softmax;
mod unary;

pub use adamant_tensor::kernels::CrossEntropy;
pub use adamant_tensor::kernels::Reduction;
pub use attention::{Attention, AttentionMask};
pub use loss::ClassTargets;
