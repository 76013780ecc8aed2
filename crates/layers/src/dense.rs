//! The fully connected layer.

use adamant_autodiff::{Param, Var};
use adamant_tensor::rng::Rng;

use crate::{init, Module};

/// A fully connected layer with PyTorch `nn.Linear` semantics: `y = x W^T + b`, the weight
/// stored `[out_features, in_features]`. Parameters `weight` and `bias`.
#[derive(Module)]
pub struct Dense {
    /// `[out_features, in_features]`.
    pub weight: Param,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param>,
}

impl Dense {
    /// A layer with PyTorch's default initialisation (weight and bias uniform on
    /// `±1/sqrt(in_features)`).
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Dense {
        let weight = init::torch_default_weight(&[out_features, in_features], rng);
        let bias = init::torch_default_bias(out_features, in_features, rng);
        Dense { weight: Param::new("weight", weight), bias: Some(Param::new("bias", bias)) }
    }

    /// A layer without bias.
    pub fn without_bias(in_features: usize, out_features: usize, rng: &mut Rng) -> Dense {
        let weight = init::torch_default_weight(&[out_features, in_features], rng);
        Dense { weight: Param::new("weight", weight), bias: None }
    }

    /// Number of inputs.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Number of outputs.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Dense {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let tape = x.tape();
        let y = x.matmul_nt(tape.param(&self.weight));
        match &self.bias {
            Some(b) => y + tape.param(b),
            None => y,
        }
    }
}
