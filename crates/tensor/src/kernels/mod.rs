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
//! | [`reduce`]  | sums, means, maxima, minima, variances and norms over everything or one axis (+ backward); `sum_rows` |
//! | [`softmax`] | `logsumexp`, `log_softmax`, `softmax` over the last axis (`_rows`) or any axis (`_axis`), + backward |
//! | [`loss`]    | fused losses, forward + backward: softmax cross-entropy, BCE with logits, MSE, Gaussian KL |
//! | [`matmul`](mod@matmul), [`gemm`] | the matrix product (its backward is two more products) and the packed GEMM under it |
//! | [`conv`]    | `im2col` / `col2im`, `conv2d_forward` / `conv2d_backward`                  |
//! | [`pool`]    | `max_pool2d_forward` / `max_pool2d_backward`; `avg_pool2d_*`, `adaptive_avg_pool2d_*` (forward / backward) |
//! | [`dropout`] | `dropout_forward` / `dropout_backward`                                     |
//! | [`embedding`] | `embedding_forward` (row lookup) / `embedding_backward` (scatter-add of rows) |
//! | [`norm`]  | `layer_norm`, `rms_norm` and `batch_norm` forward / backward (statistics in f64) |
//! | [`attention`] | scaled dot-product attention forward / backward (masks, causal, dropout on the weights) |
//! | [`layout`]  | data movement + backward: `permute`, `slice_axis` (narrow, step, select), `concat` |
//! | [`gather`]  | `gather_forward` (`torch.gather` along an axis) / `gather_backward` (its scatter-add) |
//! | [`parallel`] | when and how kernels split their work over rayon                         |
//!
//! Every kernel is also re-exported here, so `kernels::log_softmax_rows` works whatever file
//! it lives in.

pub mod activation;
pub mod attention;
pub mod binary;
pub mod conv;
mod conv_bf16;
mod conv_f32;
mod conv_shift;
pub mod dropout;
pub mod embedding;
mod erf;
pub mod gather;
pub mod gemm;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod unary;
mod vecmath;

pub use activation::*;
pub use attention::*;
pub use binary::*;
pub use conv::*;
pub use dropout::*;
pub use embedding::*;
pub use gather::*;
pub use gemm::*;
pub use layout::*;
pub use loss::*;
pub use matmul::*;
pub use norm::*;
pub use pool::*;
pub use reduce::*;
pub use softmax::*;
pub use unary::*;
