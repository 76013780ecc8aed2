//! # adamant-tensor
//!
//! Dense, contiguous, row-major `f32` tensors and the numeric kernels that the rest of
//! adamant is built from. There is no autodiff here: `adamant-autodiff` records which of
//! these kernels ran and calls their backward counterparts.
//!
//! * [`Tensor`] is a shape plus reference-counted storage: cloning is O(1) and
//!   [`Tensor::data_mut`] copies only if the storage is shared (copy-on-write).
//! * [`Ids`] is the integer counterpart: token ids and labels with a shape, never floats.
//! * [`kernels`] holds plain functions on slices (`matmul`, `im2col`, `max_pool2d_forward`,
//!   `log_softmax`, ...). Each is tested against a naive reference loop, and large inputs
//!   are split over rayon's threads with a fixed chunking, so that results are bit-identical
//!   whatever the number of threads.
//! * [`io`] is the one file format (named tensors in safetensors, with metadata) and the
//!   atomic write every file of adamant goes through.
//! * [`pool`] keeps freed buffers for the next training step, so that a step's speed does not
//!   depend on the program's allocator; tensors return their storage to it when dropped.
//! * [`rng`] gives the project's one portable, seedable random generator (ChaCha8).
//! * [`sample`] draws ids from categorical distributions (`torch.multinomial`, sampling
//!   logits with temperature and top-k).
//! * `testing` (hidden from these docs) holds the helpers the tests of every crate share:
//!   seeded inputs, tolerance and bit comparisons, the serial-versus-parallel check.
//!
//! Shape errors are programmer errors: they panic with a message naming the op and the
//! shapes involved.

mod dims;
mod ids;
pub mod io;
pub mod kernels;
pub mod pool;
pub mod rng;
pub mod sample;
mod shape;
mod tensor;
#[doc(hidden)]
pub mod testing;

pub use dims::{infer_shape, ShapeSpec};
pub use ids::Ids;
pub use kernels::Precision;
pub use shape::{broadcast_shapes, numel, strides, Axis};
pub use tensor::Tensor;
