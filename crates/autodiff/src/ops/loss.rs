//! The fused, numerically stable losses of the paper's networks, and the VAE's
//! reparameterised sample that feeds its KL term.
//!
//! Fusing a loss with its final activation (softmax, sigmoid) avoids ever forming
//! `log(softmax)` or `log(sigmoid)` from rounded probabilities, and gives the famously simple
//! gradients: `softmax - onehot` for cross-entropy, `sigmoid(x) - t` for BCE with logits.
//! The unfused `log_softmax` is in `softmax.rs`.

use adamant_tensor::{kernels as k, pool, rng, Ids, Tensor};

use crate::ops::{CrossEntropy, Reduction};
use crate::tape::Var;

/// Integer class targets for [`Var::cross_entropy`]: one class id per position of the
/// logits' leading shape. Implemented for `[usize]`, `Vec<usize>`, `[usize; N]` (checked by
/// count) and [`Ids`] (checked by shape).
pub trait ClassTargets {
    /// The class ids, in row-major order of the leading shape.
    fn class_ids(&self) -> &[usize];
    /// The targets' own shape, when they carry one (then it must equal the leading shape).
    fn target_shape(&self) -> Option<&[usize]> {
        None
    }
}

impl ClassTargets for [usize] {
    fn class_ids(&self) -> &[usize] {
        self
    }
}

impl ClassTargets for Vec<usize> {
    fn class_ids(&self) -> &[usize] {
        self
    }
}

impl<const N: usize> ClassTargets for [usize; N] {
    fn class_ids(&self) -> &[usize] {
        self
    }
}

impl ClassTargets for Ids {
    fn class_ids(&self) -> &[usize] {
        self.data()
    }
    fn target_shape(&self) -> Option<&[usize]> {
        Some(self.shape())
    }
}

impl<T: ClassTargets + ?Sized> ClassTargets for &T {
    fn class_ids(&self) -> &[usize] {
        (**self).class_ids()
    }
    fn target_shape(&self) -> Option<&[usize]> {
        (**self).target_shape()
    }
}

/// `(rows, V)` of `[..., V]` logits against targets of the leading shape, checked.
fn class_rows<T: ClassTargets + ?Sized>(op: &str, shape: &[usize], targets: &T) -> (usize, usize) {
    assert!(!shape.is_empty(), "{op}: logits must be [..., classes], got a scalar");
    let (lead, cols) = (&shape[..shape.len() - 1], shape[shape.len() - 1]);
    let rows: usize = lead.iter().product();
    if let Some(ts) = targets.target_shape() {
        assert_eq!(
            ts, lead,
            "{op}: targets of shape {ts:?} for logits {shape:?} (want the leading shape {lead:?})"
        );
    }
    let n = targets.class_ids().len();
    assert_eq!(n, rows, "{op}: {n} targets for logits {shape:?} (want {rows}, the leading numel)");
    (rows, cols)
}

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
    /// Softmax cross-entropy of logits `[..., V]` (classes on the LAST axis) against integer
    /// class targets of the leading shape, averaged over all target positions (PyTorch's
    /// `F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))`, which for `[B, V]` is
    /// `F.cross_entropy(logits, targets)`). Returns a scalar. `targets` is a `&[usize]` (or
    /// `&Vec<usize>`, `&[usize; N]`) of the leading numel, or `&Ids` of the leading shape.
    /// Options (`ignore_index`, `label_smoothing`, sum) are [`Var::cross_entropy_with`].
    ///
    /// Note that PyTorch puts the classes of a K-dimensional input on axis 1 (`[B, V, T]`);
    /// here they are last (`[B, T, V]`, a language model's logits), as most models make them.
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Tape};
    /// use adamant_tensor::{Ids, Tensor};
    ///
    /// let tape = Tape::new(Mode::Eval, 0);
    /// // Uniform logits over V = 4 classes at [B, T] = [2, 3] positions: loss ln 4.
    /// let logits = tape.constant(Tensor::zeros(&[2, 3, 4]));
    /// let targets = Ids::from_vec(vec![0, 1, 2, 3, 0, 1], &[2, 3]);
    /// assert!((logits.cross_entropy(&targets).item() - 4f32.ln()).abs() < 1e-6);
    /// assert!((logits.cross_entropy(&[3, 2, 1, 0, 3, 2]).item() - 4f32.ln()).abs() < 1e-6);
    /// ```
    ///
    /// # Panics
    /// If the logits are a scalar, the number of targets is not the leading numel (or `Ids`
    /// do not have the leading shape), or a target is `>= V`.
    pub fn cross_entropy<T: ClassTargets + ?Sized>(self, targets: &T) -> Var<'t> {
        let x = self.value();
        let (rows, cols) = class_rows("cross_entropy", x.shape(), targets);
        let labels = targets.class_ids();
        let mut log_probs = vec![0.0; x.numel()];
        let loss = k::softmax_cross_entropy_forward(x.data(), rows, cols, labels, &mut log_probs);
        let labels = labels.to_vec();
        let i = self.index;
        self.tape.push_op(Tensor::scalar(loss), &[self], move |dy, g| {
            // dx = (softmax - onehot) / rows.
            k::softmax_cross_entropy_backward(&log_probs, rows, cols, &labels, dy[0], g.acc(i));
        })
    }

    /// [`Var::cross_entropy`] with PyTorch's options of `F.cross_entropy`: `ignore_index`
    /// (targets equal to it contribute nothing and are left out of the mean), `label_smoothing`
    /// (the target distribution is `(1 - eps) onehot + eps / V`) and the reduction.
    ///
    /// When every target is ignored, the mean is NaN (0 / 0) and the gradient zero, as in
    /// PyTorch; the sum is 0.
    ///
    /// ```
    /// use adamant_autodiff::{CrossEntropy, Mode, Reduction, Tape};
    /// use adamant_tensor::Tensor;
    ///
    /// let tape = Tape::new(Mode::Eval, 0);
    /// let logits = tape.constant(Tensor::from_vec(vec![2.0, 0.0, 0.0, 0.0, 2.0, 0.0], &[2, 3]));
    /// // Padding id 0 marks the first position: only the second counts.
    /// let opts = CrossEntropy { ignore_index: Some(0), label_smoothing: 0.1, reduction: Reduction::Mean };
    /// let loss = logits.cross_entropy_with(&[0, 1], opts).item();
    /// let lse = (2f32.exp() + 2.0).ln();
    /// let want = 0.9 * (lse - 2.0) + 0.1 / 3.0 * (3.0 * lse - 2.0);
    /// assert!((loss - want).abs() < 1e-6);
    /// // Everything ignored: NaN, as PyTorch.
    /// assert!(logits.cross_entropy_with(&[0, 0], opts).item().is_nan());
    /// ```
    ///
    /// # Panics
    /// As [`Var::cross_entropy`], and if `label_smoothing` is outside `[0, 1]`; a target equal
    /// to `ignore_index` may be `>= V`.
    pub fn cross_entropy_with<T: ClassTargets + ?Sized>(self, targets: &T, opts: CrossEntropy) -> Var<'t> {
        let x = self.value();
        let (rows, cols) = class_rows("cross_entropy_with", x.shape(), targets);
        let labels = targets.class_ids();
        let mut log_probs = vec![0.0; x.numel()];
        let loss = k::softmax_cross_entropy_with_forward(x.data(), rows, cols, labels, &opts, &mut log_probs);
        let labels = labels.to_vec();
        let i = self.index;
        self.tape.push_op(Tensor::scalar(loss), &[self], move |dy, g| {
            // dx = f * (softmax - target distribution) on the rows that count.
            k::softmax_cross_entropy_with_backward(&log_probs, rows, cols, &labels, &opts, dy[0], g.acc(i));
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
    /// from the step's seed (so gradients flow to `mu` and `logvar`); `self` is `mu`. Each
    /// example's (row's) noise has its own stream, keyed by its index in the whole batch
    /// ([`Tape::set_example_offset`](crate::Tape::set_example_offset)), so a batch split
    /// across processes draws what one process draws.
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
        let rows = mu.shape().first().copied().unwrap_or(1).max(1);
        let row_len = mu.numel() / rows;
        let first = self.tape.example_offset();
        let eps_rows: Vec<f32> = (0..rows)
            .flat_map(|r| {
                let mut stream = rng::seeded(rng::mix(key, (first + r) as u64));
                Tensor::randn(&[row_len], 0.0, 1.0, &mut stream).into_vec()
            })
            .collect();
        let eps = Tensor::from_vec(eps_rows, mu.shape());
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
