//! The four networks of the Adam paper, exactly as PyTorch's reference script
//! `torch_paper_nets.py` (run by `bench/compare_pytorch.sh`) defines them, and the
//! character-level [`Gpt`] of `torch_char_gpt.py` (issue 22), with PyTorch-compatible
//! parameter names.

use adamant_autodiff::{Reduction, Var};
use adamant_tensor::rng::Rng;

mod gpt;

pub use gpt::{Gpt, GptConfig};

use crate::{
    sequential, Conv2d, Dense, Dropout, Flatten, Identity, MaxPool2dReLU, Module, Params, ReLU, Sequential,
};

/// Logistic regression on MNIST: 784 -> 10 (softmax in the loss). 7,850 parameters.
pub fn logistic_regression(rng: &mut Rng) -> Sequential {
    sequential![Dense::new(784, 10, rng)]
}

/// The MNIST multi-layer network: 784-1000-1000-10 with ReLU, dropout 0.2 on the input and
/// 0.5 on both hidden layers. 1,796,010 parameters; names `1.*`, `4.*`, `7.*`.
pub fn mlp(rng: &mut Rng) -> Sequential {
    sequential![
        Dropout::new(0.2),
        Dense::new(784, 1000, rng),
        ReLU,
        Dropout::new(0.5),
        Dense::new(1000, 1000, rng),
        ReLU,
        Dropout::new(0.5),
        Dense::new(1000, 10, rng),
    ]
}

/// The MLP without dropout (to measure what dropout costs).
pub fn mlp_without_dropout(rng: &mut Rng) -> Sequential {
    sequential![
        Dense::new(784, 1000, rng),
        ReLU,
        Dense::new(1000, 1000, rng),
        ReLU,
        Dense::new(1000, 10, rng)
    ]
}

/// The CIFAR-10 network c64-c64-c128-1000: three stages of conv 5x5 pad 2 + ReLU + max-pool
/// 3x3 stride 2 pad 1 (32 -> 16 -> 8 -> 4), then FC 2048 -> 1000 ReLU, dropout 0.5, FC 10.
/// 2,371,266 parameters, named as the reference script's `nn.Sequential`: `0.*`, `3.*`,
/// `6.*`, `10.*`, `13.*`.
///
/// Each stage's ReLU and max-pool run as one [`MaxPool2dReLU`] (pooling first, on a 4x
/// smaller tensor); an [`Identity`] holds the ReLU's index so that the parameter names stay
/// PyTorch's.
pub fn cnn(rng: &mut Rng) -> Sequential {
    sequential![
        Conv2d::new(3, 64, 5, 1, 2, rng),
        Identity,
        MaxPool2dReLU::new(3, 2, 1),
        Conv2d::new(64, 64, 5, 1, 2, rng),
        Identity,
        MaxPool2dReLU::new(3, 2, 1),
        Conv2d::new(64, 128, 5, 1, 2, rng),
        Identity,
        MaxPool2dReLU::new(3, 2, 1),
        Flatten,
        Dense::new(2048, 1000, rng),
        ReLU,
        Dropout::new(0.5),
        Dense::new(1000, 10, rng),
    ]
}

/// The variational autoencoder of the paper's bias-correction study: 784-500 softplus ->
/// 50-d mean and log-variance -> reparameterised sample -> 50-500 softplus -> 784 logits of a
/// Bernoulli decoder. 860,884 parameters, named as the reference script's `enc`, `mu`, `lv`,
/// `dec`, `out` (`enc.weight`, `enc.bias`, ...).
#[derive(Module)]
pub struct Vae {
    /// Encoder hidden layer, 784 -> 500.
    pub enc: Dense,
    /// Mean head, 500 -> 50.
    pub mu: Dense,
    /// Log-variance head, 500 -> 50.
    pub lv: Dense,
    /// Decoder hidden layer, 50 -> 500.
    pub dec: Dense,
    /// Decoder output (logits), 500 -> 784.
    pub out: Dense,
}

impl Vae {
    /// The paper's VAE with PyTorch's default initialisation.
    pub fn new(rng: &mut Rng) -> Vae {
        let mut vae = Vae {
            enc: Dense::new(784, 500, rng),
            mu: Dense::new(500, 50, rng),
            lv: Dense::new(500, 50, rng),
            dec: Dense::new(50, 500, rng),
            out: Dense::new(500, 784, rng),
        };
        // Name each Param by its path now, as `Sequential::new` does, so that `params()`
        // shows `enc.weight` before the first step too.
        vae.params_mut();
        vae
    }

    /// Reconstruction logits, mean and log-variance of `x` (`[B, 784]` in [0, 1]).
    pub fn forward_parts<'t>(&self, x: Var<'t>) -> (Var<'t>, Var<'t>, Var<'t>) {
        let h = self.enc.forward(x).softplus();
        let (mu, lv) = (self.mu.forward(h), self.lv.forward(h));
        let z = mu.reparameterize(lv);
        (self.out.forward(self.dec.forward(z).softplus()), mu, lv)
    }

    /// The negative evidence lower bound per example: (BCE summed over pixels + KL) / B.
    pub fn loss<'t>(&self, x: Var<'t>) -> Var<'t> {
        let batch = x.shape()[0] as f32;
        let target = x.value();
        let (logits, mu, lv) = self.forward_parts(x);
        (logits.bce_with_logits(&target, Reduction::Sum) + mu.gaussian_kl(lv, Reduction::Sum)) / batch
    }
}

impl Module for Vae {
    /// The reconstruction logits.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.forward_parts(x).0
    }
}
