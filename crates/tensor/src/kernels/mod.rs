//! Numeric kernels: plain functions on `f32` slices.
//!
//! Every kernel here has a naive reference loop in its tests. Kernels that are worth
//! parallelising split their work into fixed-size chunks (see [`parallel`]) and run them on
//! rayon above a size threshold; because the chunking does not depend on the number of
//! threads, the parallel and serial paths give bit-identical results.

pub mod binary;
pub mod conv;
pub mod dropout;
pub mod gemm;
pub mod loss;
pub mod matmul;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod unary;
mod vecmath;

pub use binary::*;
pub use conv::*;
pub use dropout::*;
pub use gemm::*;
pub use loss::*;
pub use matmul::*;
pub use pool::*;
pub use reduce::*;
pub use unary::*;
