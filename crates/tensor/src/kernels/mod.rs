//! Numeric kernels: plain functions on `f32` slices.
//!
//! Every kernel here has a naive reference loop in its tests. Kernels that are worth
//! parallelising split their work into fixed-size chunks (see [`parallel`]) and run them on
//! rayon above a size threshold; because the chunking does not depend on the number of
//! threads, the parallel and serial paths give bit-identical results.
//!
//! One file per op family, each op's backward right beside its forward:
//!
//! | module      | ops                                                                        |
//! |-------------|----------------------------------------------------------------------------|
//! | [`binary`]  | `add`, `sub`, `mul`, `div`, `maximum` (+ backward) with broadcasting; `broadcast_to` and its adjoint `sum_to_shape` |
//! | [`unary`]   | elementwise functions (`exp`, `relu`, `sigmoid`, ...), each followed by its `_backward`; scalar arithmetic; the in-place updates gradients are summed with (`axpy`, `add_assign`) |
//! | [`reduce`]  | sums, means and maxima over everything or one axis; `sum_rows`            |
//! | [`softmax`] | `logsumexp_rows`, `log_softmax_rows` + `log_softmax_backward`, `softmax_rows` |
//! | [`loss`]    | fused losses, forward + backward: softmax cross-entropy, BCE with logits, MSE, Gaussian KL |
//! | [`matmul`](mod@matmul), [`gemm`] | the matrix product (its backward is two more products) and the packed GEMM under it |
//! | [`conv`]    | `im2col` / `col2im`, `conv2d_forward` / `conv2d_backward`                  |
//! | [`pool`]    | `max_pool2d_forward` / `max_pool2d_backward`; `avg_pool2d_*`, `adaptive_avg_pool2d_*` (forward / backward) |
//! | [`dropout`] | `dropout_forward` / `dropout_backward`                                     |
//! | [`embedding`] | `embedding_forward` (row lookup) / `embedding_backward` (scatter-add of rows) |
//! | [`parallel`] | when and how kernels split their work over rayon                         |
//!
//! Every kernel is also re-exported here, so `kernels::log_softmax_rows` works whatever file
//! it lives in.

pub mod activation;
pub mod binary;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod gemm;
pub mod loss;
pub mod matmul;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod unary;
mod vecmath;

pub use activation::*;
pub use binary::*;
pub use conv::*;
pub use dropout::*;
pub use embedding::*;
pub use gemm::*;
pub use loss::*;
pub use matmul::*;
pub use pool::*;
pub use reduce::*;
pub use softmax::*;
pub use unary::*;
