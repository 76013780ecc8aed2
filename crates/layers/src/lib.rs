//! # adamant-layers
//!
//! What models are built from: the [`Params`] and [`Module`] traits with
//! `#[derive(Module)]`, layers with PyTorch `torch.nn` semantics ([`Dense`], [`Conv2d`],
//! [`MaxPool2d`], [`Dropout`], activations, [`Flatten`], [`Sequential`]), initialisers with
//! PyTorch's formulas ([`init`]), an accuracy metric, the paper's four networks and a
//! character-level GPT ([`nets`]) and safetensors save/load ([`serialize`]).
//!
//! ```
//! use adamant_autodiff::{Mode, Tape};
//! use adamant_layers::{sequential, Dense, Module, Params, ReLU};
//! use adamant_tensor::{rng::seeded, Tensor};
//!
//! let mut rng = seeded(0);
//! let model = sequential![Dense::new(4, 8, &mut rng), ReLU, Dense::new(8, 3, &mut rng)];
//! let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
//!
//! let tape = Tape::new(Mode::Train, 1);
//! let loss = model.forward(tape.constant(Tensor::ones(&[2, 4]))).cross_entropy(&[0, 2]);
//! let grads = loss.backward();
//! assert_eq!(grads.len(), 4);
//! ```

// `#[derive(Module)]` expands to paths through `::adamant_layers`, which this crate's own
// derived layers and nets must be able to name too.
extern crate self as adamant_layers;

mod attention;
mod buffer;
mod conv;
mod dense;
mod embedding;
pub mod init;
mod metrics;
mod module;
pub mod nets;
mod norm;
mod pool;
mod recurrent;
pub mod serialize;
mod simple;

pub use adamant_autodiff::Reduction;
/// `#[derive(Module)]`: implements [`Params`] for a struct of modules, naming each
/// parameter by its field path (`fc1.weight`, `blocks.0.ln_1.bias`); see [`Params`].
pub use adamant_derive::Module;
pub use attention::{MultiheadAttention, TransformerBlock};
pub use buffer::{Buffer, BufferKind};
pub use conv::{Conv1d, Conv2d, MaxPool2d, MaxPool2dReLU};
pub use dense::Dense;
pub use embedding::Embedding;
pub use metrics::{accuracy, correct_count};
#[doc(hidden)]
pub use module::__private;
pub use module::{gradcheck_module, Module, Params, Sequential};
pub use norm::{BatchNorm1d, BatchNorm2d, LayerNorm, RMSNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d};
pub use recurrent::{RecurrentOptions, RnnNonlinearity, GRU, LSTM, RNN};
pub use serialize::{load, save, SerializeError};
pub use simple::{Dropout, Flatten, Identity, ReLU, Sigmoid, Softplus, Tanh};
