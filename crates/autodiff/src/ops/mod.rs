//! Every differentiable operation, each with its backward written right beside its forward.
//!
//! The pattern of every op: compute the value with a kernel from `adamant-tensor`, then
//! `tape.push_op(value, inputs, backward)` where the `backward` closure receives the output
//! gradient `dy` and accumulates the inputs' gradients, again with kernels. No arithmetic
//! loops live here.

mod arith;
mod conv;
mod dropout;
mod linalg;
mod loss;
mod reduce;
mod unary;

pub use adamant_tensor::kernels::Reduction;
