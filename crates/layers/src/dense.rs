//! The fully connected layer.

use adamant_autodiff::{Param, Var};
use adamant_tensor::rng::Rng;

use crate::{init, Module};

/// A fully connected layer with PyTorch `nn.Linear` semantics: `y = x W^T + b`, the weight
/// stored `[out_features, in_features]`. Parameters `weight` and `bias`.
///
/// The input is `[..., in_features]` of any rank >= 1 and the output `[..., out_features]`:
/// the leading axes are viewed as rows of one product (a reshape, no copy), so a `[B, T, C]`
/// sequence is one GEMM of `B*T` rows, as `nn.Linear` does.
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
        let shape = x.shape();
        assert!(!shape.is_empty(), "Dense: input must have at least one axis, got a scalar");
        let tape = x.tape();
        // [..., in] -> [..., out] in one op: the leading axes are the GEMM's rows.
        x.linear(tape.param(&self.weight), self.bias.as_ref().map(|b| tape.param(b)))
    }
}
