//! Fused normalizations: `layer_norm`, `rms_norm`, `batch_norm`, each one op whose backward
//! is one kernel call (the formulas are in `adamant-tensor`'s `kernels/norm.rs`), rather than
//! the ten small ops of a normalization written from means and divisions.
//!
//! The forward saves the statistics it computed (mean and `rstd = 1/sqrt(var + eps)` per row
//! or channel), so the backward never recomputes them.

use adamant_tensor::{kernels as k, numel, pool, Tensor};

use crate::tape::{GradSink, Var};

/// The values of an optional operand, or `None`.
fn values(v: Option<Var<'_>>) -> Option<Tensor> {
    v.map(|v| v.value())
}

/// The gradient buffers of the inputs `indices` that want one (`None` for an absent operand
/// or one that needs no gradient), taken out so that one kernel call fills them all.
fn take_wanted<const N: usize>(g: &mut GradSink, indices: [Option<usize>; N]) -> [Option<Vec<f32>>; N] {
    indices.map(|i| i.filter(|&i| g.wants(i)).map(|i| g.take(i)))
}

/// Gives back the buffers of [`take_wanted`].
fn put_back<const N: usize>(g: &mut GradSink, indices: [Option<usize>; N], grads: [Option<Vec<f32>>; N]) {
    for (i, grad) in indices.into_iter().zip(grads) {
        if let (Some(i), Some(grad)) = (i, grad) {
            g.put(i, grad);
        }
    }
}

/// Checks that an optional affine operand has `shape`, naming the op and the operand.
fn check_affine(op: &str, what: &str, v: &Option<Tensor>, shape: &[usize]) {
    if let Some(t) = v {
        assert_eq!(t.shape(), shape, "{op}: {what} has shape {:?}, want {shape:?}", t.shape());
    }
}

/// The number of values normalized together: `x`'s trailing axes must be `normalized_shape`.
fn trailing_cols(op: &str, x: &[usize], normalized_shape: &[usize]) -> usize {
    assert!(
        !normalized_shape.is_empty() && x.ends_with(normalized_shape),
        "{op}: input shape {x:?} does not end with normalized_shape {normalized_shape:?}"
    );
    numel(normalized_shape)
}

impl<'t> Var<'t> {
    /// Layer normalization over the trailing axes `normalized_shape` (PyTorch's
    /// `F.layer_norm(x, normalized_shape, weight, bias, eps)`):
    /// `y = (x - mean) / sqrt(var + eps) * weight + bias`, with the mean and the biased variance
    /// of each group of `numel(normalized_shape)` values. `weight` and `bias` (shape
    /// `normalized_shape`) are optional.
    ///
    /// # Panics
    /// If `x` does not end with `normalized_shape`, or an affine operand has another shape.
    pub fn layer_norm(
        self,
        normalized_shape: &[usize],
        weight: Option<Var<'t>>,
        bias: Option<Var<'t>>,
        eps: f32,
    ) -> Var<'t> {
        let x = self.value();
        let cols = trailing_cols("layer_norm", x.shape(), normalized_shape);
        let (w, b) = (values(weight), values(bias));
        check_affine("layer_norm", "weight", &w, normalized_shape);
        check_affine("layer_norm", "bias", &b, normalized_shape);
        let rows = x.numel() / cols;
        let mut y = pool::take_for_overwrite(x.numel());
        let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
        k::layer_norm_forward(
            x.data(),
            w.as_ref().map(Tensor::data),
            b.as_ref().map(Tensor::data),
            cols,
            eps,
            &mut y,
            &mut mean,
            &mut rstd,
        );
        let inputs: Vec<Var<'t>> = [Some(self), weight, bias].into_iter().flatten().collect();
        let (ix, iw, ib) = (self.index, weight.map(|v| v.index), bias.map(|v| v.index));
        self.tape.push_op(Tensor::from_vec(y, x.shape()), &inputs, move |dy, g| {
            let indices = [Some(ix), iw, ib];
            let [mut dx, mut dw, mut db] = take_wanted(g, indices);
            k::layer_norm_backward(
                x.data(),
                w.as_ref().map(Tensor::data),
                &mean,
                &rstd,
                dy,
                cols,
                dx.as_deref_mut(),
                dw.as_deref_mut(),
                db.as_deref_mut(),
            );
            put_back(g, indices, [dx, dw, db]);
        })
    }

    /// RMS normalization over the trailing axes `normalized_shape` (PyTorch's
    /// `F.rms_norm(x, normalized_shape, weight, eps)`): `y = x / sqrt(mean(x^2) + eps) * weight`.
    /// `eps` `None` is PyTorch's default, `f32::EPSILON`.
    ///
    /// # Panics
    /// If `x` does not end with `normalized_shape`, or `weight` has another shape.
    pub fn rms_norm(self, normalized_shape: &[usize], weight: Option<Var<'t>>, eps: Option<f32>) -> Var<'t> {
        let x = self.value();
        let cols = trailing_cols("rms_norm", x.shape(), normalized_shape);
        let w = values(weight);
        check_affine("rms_norm", "weight", &w, normalized_shape);
        let eps = eps.unwrap_or(f32::EPSILON);
        let rows = x.numel() / cols;
        let mut y = pool::take_for_overwrite(x.numel());
        let mut rstd = vec![0.0; rows];
        k::rms_norm_forward(x.data(), w.as_ref().map(Tensor::data), cols, eps, &mut y, &mut rstd);
        let inputs: Vec<Var<'t>> = [Some(self), weight].into_iter().flatten().collect();
        let (ix, iw) = (self.index, weight.map(|v| v.index));
        self.tape.push_op(Tensor::from_vec(y, x.shape()), &inputs, move |dy, g| {
            let indices = [Some(ix), iw];
            let [mut dx, mut dw] = take_wanted(g, indices);
            k::rms_norm_backward(
                x.data(),
                w.as_ref().map(Tensor::data),
                &rstd,
                dy,
                cols,
                dx.as_deref_mut(),
                dw.as_deref_mut(),
            );
            put_back(g, indices, [dx, dw]);
        })
    }

    /// Batch normalization of `[N, C, *]` input over every axis but the channel axis 1
    /// (PyTorch's `F.batch_norm(x, running_mean, running_var, weight, bias, training,
    /// momentum, eps)`).
    ///
    /// - `training`: normalize with the batch's mean and biased variance; when `running` is
    ///   given, update it in place as PyTorch does:
    ///   `mean_r <- (1 - momentum) mean_r + momentum mean`,
    ///   `var_r <- (1 - momentum) var_r + momentum var * n / (n - 1)` (the unbiased variance,
    ///   `n` values per channel).
    /// - not `training`: normalize with the running statistics, which are constants.
    ///
    /// # Panics
    /// If `x` has fewer than two axes, an operand's shape is not `[C]`, evaluation has no
    /// running statistics, or training sees one value per channel (no variance to estimate).
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        self,
        weight: Option<Var<'t>>,
        bias: Option<Var<'t>>,
        running: Option<(&mut Tensor, &mut Tensor)>,
        training: bool,
        momentum: f32,
        eps: f32,
    ) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        assert!(shape.len() >= 2, "batch_norm: input must be [N, C, *], got shape {shape:?}");
        let layout = k::ChannelLayout { batch: shape[0], channels: shape[1], inner: numel(&shape[2..]) };
        let channels = [layout.channels];
        let (w, b) = (values(weight), values(bias));
        check_affine("batch_norm", "weight", &w, &channels);
        check_affine("batch_norm", "bias", &b, &channels);
        let (mean, var) = if training {
            let n = layout.count();
            assert!(
                n > 1,
                "batch_norm: training needs more than one value per channel, got input shape {shape:?}"
            );
            let (mut mean, mut var) = (vec![0.0; layout.channels], vec![0.0; layout.channels]);
            k::batch_norm_stats(x.data(), layout, &mut mean, &mut var);
            if let Some((running_mean, running_var)) = running {
                check_affine("batch_norm", "running_mean", &Some(running_mean.clone()), &channels);
                check_affine("batch_norm", "running_var", &Some(running_var.clone()), &channels);
                let unbiased = n as f32 / (n - 1) as f32;
                for (r, &m) in running_mean.data_mut().iter_mut().zip(&mean) {
                    *r = (1.0 - momentum) * *r + momentum * m;
                }
                for (r, &v) in running_var.data_mut().iter_mut().zip(&var) {
                    *r = (1.0 - momentum) * *r + momentum * v * unbiased;
                }
            }
            (mean, var)
        } else {
            let (running_mean, running_var) = running.unwrap_or_else(|| {
                panic!("batch_norm: evaluation (training = false) needs running statistics, got none")
            });
            check_affine("batch_norm", "running_mean", &Some(running_mean.clone()), &channels);
            check_affine("batch_norm", "running_var", &Some(running_var.clone()), &channels);
            (running_mean.data().to_vec(), running_var.data().to_vec())
        };
        let rstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let mut y = pool::take_for_overwrite(x.numel());
        k::batch_norm_apply(
            x.data(),
            layout,
            &mean,
            &rstd,
            w.as_ref().map(Tensor::data),
            b.as_ref().map(Tensor::data),
            &mut y,
        );
        let inputs: Vec<Var<'t>> = [Some(self), weight, bias].into_iter().flatten().collect();
        let (ix, iw, ib) = (self.index, weight.map(|v| v.index), bias.map(|v| v.index));
        self.tape.push_op(Tensor::from_vec(y, &shape), &inputs, move |dy, g| {
            let indices = [Some(ix), iw, ib];
            let [mut dx, mut dw, mut db] = take_wanted(g, indices);
            k::batch_norm_backward(
                x.data(),
                layout,
                &mean,
                &rstd,
                w.as_ref().map(Tensor::data),
                dy,
                training,
                dx.as_deref_mut(),
                dw.as_deref_mut(),
                db.as_deref_mut(),
            );
            put_back(g, indices, [dx, dw, db]);
        })
    }
}
