//! The fused, numerically stable losses of the paper's networks, and the VAE's
//! reparameterised sample that feeds its KL term.
//!
//! Fusing a loss with its final activation (softmax, sigmoid) avoids ever forming
//! `log(softmax)` or `log(sigmoid)` from rounded probabilities, and gives the famously simple
//! gradients: `softmax - onehot` for cross-entropy, `sigmoid(x) - t` for BCE with logits.
//! The unfused `log_softmax` is in `softmax.rs`.

use adamant_tensor::{kernels as k, pool, rng, Tensor};

use crate::ops::Reduction;
use crate::tape::Var;

fn assert_same_shape(op: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(
        a.shape(),
        b.shape(),
        "{op}: input shape {:?} and target shape {:?} differ",
        a.shape(),
        b.shape()
    );
}

impl<'t> Var<'t> {
    /// Softmax cross-entropy of `[B, K]` logits against integer class labels, averaged over
    /// the batch (PyTorch's `F.cross_entropy`). Returns a scalar.
    ///
    /// # Panics
    /// If the logits are not 2-d, the label count is not `B`, or a label is `>= K`.
    pub fn cross_entropy(self, labels: &[usize]) -> Var<'t> {
        let x = self.value();
        assert_eq!(x.ndim(), 2, "cross_entropy: logits must be [batch, classes], got {:?}", x.shape());
        let (rows, cols) = (x.shape()[0], x.shape()[1]);
        assert_eq!(labels.len(), rows, "cross_entropy: {} labels for logits {:?}", labels.len(), x.shape());
        let mut log_probs = vec![0.0; x.numel()];
        let loss = k::softmax_cross_entropy_forward(x.data(), rows, cols, labels, &mut log_probs);
        let labels = labels.to_vec();
        let i = self.index;
        self.tape.push_op(Tensor::scalar(loss), &[self], move |dy, g| {
            // dx = (softmax - onehot) / B.
            k::softmax_cross_entropy_backward(&log_probs, rows, cols, &labels, dy[0], g.acc(i));
        })
    }

    /// Binary cross-entropy of logits `x` against targets `t` in [0, 1] (PyTorch's
    /// `F.binary_cross_entropy_with_logits`): `max(x, 0) - x t + log(1 + exp(-|x|))`,
    /// summed or averaged over all elements. Returns a scalar.
    pub fn bce_with_logits(self, targets: &Tensor, reduction: Reduction) -> Var<'t> {
        let x = self.value();
        assert_same_shape("bce_with_logits", &x, targets);
        let loss = k::bce_with_logits_forward(x.data(), targets.data(), reduction);
        let t = targets.clone();
        let i = self.index;
        self.tape.push_op(Tensor::scalar(loss), &[self], move |dy, g| {
            // dx = sigmoid(x) - t (divided by n for the mean).
            k::bce_with_logits_backward(x.data(), t.data(), reduction, dy[0], g.acc(i));
        })
    }

    /// Mean (or summed) squared error against a target (PyTorch's `F.mse_loss`).
    pub fn mse(self, target: &Tensor, reduction: Reduction) -> Var<'t> {
        let x = self.value();
        assert_same_shape("mse", &x, target);
        let loss = k::mse_forward(x.data(), target.data(), reduction);
        let t = target.clone();
        let i = self.index;
        self.tape.push_op(Tensor::scalar(loss), &[self], move |dy, g| {
            k::mse_backward(x.data(), t.data(), reduction, dy[0], g.acc(i));
        })
    }

    /// The KL divergence `KL(N(mu, exp(logvar)) || N(0, 1))` of a VAE's encoder, `self` being
    /// `mu`: `-1/2 sum(1 + logvar - mu^2 - exp(logvar))`, summed or averaged over elements.
    pub fn gaussian_kl(self, logvar: Var<'t>, reduction: Reduction) -> Var<'t> {
        let (mu, lv) = (self.value(), logvar.value());
        assert_eq!(
            mu.shape(),
            lv.shape(),
            "gaussian_kl: mu {:?} and logvar {:?} differ",
            mu.shape(),
            lv.shape()
        );
        let loss = k::gaussian_kl_forward(mu.data(), lv.data(), reduction);
        let (im, il) = (self.index, logvar.index);
        self.tape.push_op(Tensor::scalar(loss), &[self, logvar], move |dy, g| {
            let mut dmu = g.take(im);
            let mut dlv = g.take(il);
            // dmu = mu, dlogvar = (exp(logvar) - 1) / 2.
            k::gaussian_kl_backward(mu.data(), lv.data(), reduction, dy[0], &mut dmu, &mut dlv);
            g.put(im, dmu);
            g.put(il, dlv);
        })
    }

    /// The reparameterised sample `z = mu + exp(logvar / 2) * eps`, `eps ~ N(0, 1)` drawn
    /// from the step's seed (so gradients flow to `mu` and `logvar`); `self` is `mu`.
    pub fn reparameterize(self, logvar: Var<'t>) -> Var<'t> {
        let (mu, lv) = (self.value(), logvar.value());
        assert_eq!(
            mu.shape(),
            lv.shape(),
            "reparameterize: mu {:?} and logvar {:?} differ",
            mu.shape(),
            lv.shape()
        );
        let key = self.tape.node_key(self.tape.next_index());
        let eps = Tensor::randn(mu.shape(), 0.0, 1.0, &mut rng::seeded(key));
        // std = exp(logvar / 2); z = mu + std * eps.
        let n = mu.numel();
        let mut half = pool::take_for_overwrite(n);
        k::mul_scalar(lv.data(), 0.5, &mut half);
        let mut std = pool::take_for_overwrite(n);
        k::exp(&half, &mut std);
        let mut noise = pool::take_for_overwrite(n);
        k::mul(&std, mu.shape(), eps.data(), mu.shape(), &mut noise);
        let mut z = pool::take_for_overwrite(n);
        k::add(mu.data(), mu.shape(), &noise, mu.shape(), &mut z);
        pool::recycle(half);
        pool::recycle(std);
        // Kept by the backward closure as a tensor, so that it returns to the pool with it.
        let noise = Tensor::from_vec(noise, mu.shape());
        let (im, il) = (self.index, logvar.index);
        self.tape.push_op(Tensor::from_vec(z, mu.shape()), &[self, logvar], move |dy, g| {
            // dz/dmu = 1;  dz/dlogvar = eps * std / 2 = noise / 2.
            if g.wants(im) {
                k::add_assign(dy, g.acc(im));
            }
            if g.wants(il) {
                let mut t = pool::take_for_overwrite(dy.len());
                k::mul(dy, &[dy.len()], noise.data(), &[dy.len()], &mut t);
                k::axpy(0.5, &t, g.acc(il));
                pool::recycle(t);
            }
        })
    }
}
