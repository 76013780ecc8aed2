//! Every differentiable operation, each with its backward written right beside its forward.
//!
//! The pattern of every op: compute the value with a kernel from `adamant-tensor`, then
//! `tape.push_op(value, inputs, backward)` where the `backward` closure receives the output
//! gradient `dy` and accumulates the inputs' gradients, again with kernels. No arithmetic
//! loops live here.
//!
//! One file per op family, named like the kernel file it calls where there is one:
//! `arith` (broadcasting `+ - * /`, scalars, negation), `unary` (elementwise functions),
//! `reduce` (sums and means), `shape` (reshape, flatten), `softmax` (log-softmax), `loss`
//! (fused losses, the VAE's sample), `linalg` (matrix products), `conv`, `pool` (max-pooling)
//! `dropout`, `embedding` (row lookup by integer ids) and `custom` (the public
//! [`Tape::custom_op`](crate::Tape::custom_op) for ops defined outside this crate).

mod arith;
mod conv;
mod custom;
mod dropout;
mod embedding;
mod gather;
mod linalg;
mod loss;
mod pool;
mod reduce;
mod shape;
mod softmax;
mod unary;

pub use adamant_tensor::kernels::CrossEntropy;
pub use adamant_tensor::kernels::Reduction;
pub use loss::ClassTargets;
