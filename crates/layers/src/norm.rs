//! Normalization layers with PyTorch's parameters, buffers, defaults and `state_dict` keys:
//! [`LayerNorm`], [`RMSNorm`], [`BatchNorm1d`], [`BatchNorm2d`]. Each calls one fused op of
//! `adamant-autodiff` (`layer_norm`, `rms_norm`, `batch_norm`).

use adamant_autodiff::{Param, Var};
use adamant_tensor::Tensor;

use crate::{Buffer, Module, Params};

/// Layer normalization over the trailing axes `normalized_shape` (PyTorch's
/// `nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)`):
/// `y = (x - mean) / sqrt(var + eps) * weight + bias`. Parameters `weight` (ones) and `bias`
/// (zeros), of shape `normalized_shape`.
#[derive(Module)]
pub struct LayerNorm {
    /// The learned gain, `normalized_shape`; `None` without elementwise affine.
    pub weight: Option<Param>,
    /// The learned shift, `normalized_shape`; `None` without bias.
    pub bias: Option<Param>,
    normalized_shape: Vec<usize>,
    eps: f32,
}

impl LayerNorm {
    /// PyTorch's defaults: eps 1e-5, weight and bias.
    pub fn new(normalized_shape: &[usize]) -> LayerNorm {
        LayerNorm::with_options(normalized_shape, 1e-5, true, true)
    }

    /// Every option: `elementwise_affine` false means neither weight nor bias; `bias` false
    /// keeps the weight only.
    pub fn with_options(
        normalized_shape: &[usize],
        eps: f32,
        elementwise_affine: bool,
        bias: bool,
    ) -> LayerNorm {
        LayerNorm {
            weight: elementwise_affine.then(|| Param::new("weight", Tensor::ones(normalized_shape))),
            bias: (elementwise_affine && bias).then(|| Param::new("bias", Tensor::zeros(normalized_shape))),
            normalized_shape: normalized_shape.to_vec(),
            eps,
        }
    }
}

impl LayerNorm {
    /// The trailing shape this layer normalizes over.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }
}

impl Module for LayerNorm {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let tape = x.tape();
        let w = self.weight.as_ref().map(|p| tape.param(p));
        let b = self.bias.as_ref().map(|p| tape.param(p));
        x.layer_norm(&self.normalized_shape, w, b, self.eps)
    }
}

/// RMS normalization over the trailing axes `normalized_shape` (PyTorch's
/// `nn.RMSNorm(normalized_shape, eps=None, elementwise_affine=True)`):
/// `y = x / sqrt(mean(x^2) + eps) * weight`, eps `None` meaning `f32::EPSILON`. Parameter
/// `weight` (ones).
#[derive(Module)]
#[allow(clippy::upper_case_acronyms)]
pub struct RMSNorm {
    /// The learned gain, `normalized_shape`; `None` without elementwise affine.
    pub weight: Option<Param>,
    normalized_shape: Vec<usize>,
    eps: Option<f32>,
}

impl RMSNorm {
    /// PyTorch's defaults: eps `None` (the dtype's epsilon), a weight.
    pub fn new(normalized_shape: &[usize]) -> RMSNorm {
        RMSNorm::with_options(normalized_shape, None, true)
    }

    /// Every option.
    pub fn with_options(normalized_shape: &[usize], eps: Option<f32>, elementwise_affine: bool) -> RMSNorm {
        RMSNorm {
            weight: elementwise_affine.then(|| Param::new("weight", Tensor::ones(normalized_shape))),
            normalized_shape: normalized_shape.to_vec(),
            eps,
        }
    }
}

impl Module for RMSNorm {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let w = self.weight.as_ref().map(|p| x.tape().param(p));
        x.rms_norm(&self.normalized_shape, w, self.eps)
    }
}

/// What [`BatchNorm1d`] and [`BatchNorm2d`] share: parameters, buffers and the forward.
#[derive(Module)]
struct BatchNorm {
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Option<Buffer>,
    running_var: Option<Buffer>,
    num_batches_tracked: Option<Buffer>,
    eps: f32,
    momentum: Option<f32>,
}

impl BatchNorm {
    fn new(
        num_features: usize,
        eps: f32,
        momentum: Option<f32>,
        affine: bool,
        track_running_stats: bool,
    ) -> BatchNorm {
        let c = [num_features];
        BatchNorm {
            weight: affine.then(|| Param::new("weight", Tensor::ones(&c))),
            bias: affine.then(|| Param::new("bias", Tensor::zeros(&c))),
            running_mean: track_running_stats.then(|| Buffer::new(Tensor::zeros(&c))),
            running_var: track_running_stats.then(|| Buffer::new(Tensor::ones(&c))),
            num_batches_tracked: track_running_stats.then(|| Buffer::count(0)),
            eps,
            momentum,
        }
    }

    /// PyTorch's `_BatchNorm.forward`: in training, count the batch and update the running
    /// statistics with `momentum` (or, when it is `None`, the cumulative average
    /// `1 / num_batches_tracked`); batch statistics normalize in training and whenever no
    /// running statistics are kept.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let tape = x.tape();
        let training = tape.is_training();
        let w = self.weight.as_ref().map(|p| tape.param(p));
        let b = self.bias.as_ref().map(|p| tape.param(p));
        let (Some(mean), Some(var), Some(count)) =
            (&self.running_mean, &self.running_var, &self.num_batches_tracked)
        else {
            return x.batch_norm(w, b, None, true, 0.0, self.eps);
        };
        let mut factor = self.momentum.unwrap_or(0.0);
        if training {
            let batches = count.update(|t| {
                t.data_mut()[0] += 1.0;
                t.item()
            });
            if self.momentum.is_none() {
                factor = 1.0 / batches;
            }
        }
        mean.update(|m| var.update(|v| x.batch_norm(w, b, Some((m, v)), training, factor, self.eps)))
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $ranks:expr, $ranks_text:literal) => {
        $(#[$doc])*
        pub struct $name(BatchNorm);

        impl $name {
            /// PyTorch's defaults: eps 1e-5, momentum 0.1, affine, tracking running statistics.
            pub fn new(num_features: usize) -> $name {
                $name::with_options(num_features, 1e-5, Some(0.1), true, true)
            }

            /// Every option; `momentum` `None` is the cumulative moving average.
            pub fn with_options(
                num_features: usize,
                eps: f32,
                momentum: Option<f32>,
                affine: bool,
                track_running_stats: bool,
            ) -> $name {
                $name(BatchNorm::new(num_features, eps, momentum, affine, track_running_stats))
            }

            /// The running mean (`None` when running statistics are not tracked).
            pub fn running_mean(&self) -> Option<Tensor> {
                self.0.running_mean.as_ref().map(Buffer::value)
            }

            /// The running (unbiased) variance (`None` when not tracked).
            pub fn running_var(&self) -> Option<Tensor> {
                self.0.running_var.as_ref().map(Buffer::value)
            }
        }

        impl Params for $name {
            fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
                self.0.visit_params(prefix, f)
            }
            fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
                self.0.visit_params_mut(prefix, f)
            }
            fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
                self.0.visit_buffers(prefix, f)
            }
        }

        impl Module for $name {
            fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
                let shape = x.shape();
                assert!(
                    $ranks.contains(&shape.len()),
                    concat!(stringify!($name), ": expected ", $ranks_text, " input, got shape {:?}"),
                    shape
                );
                self.0.forward(x)
            }
        }
    };
}

batch_norm_layer!(
    /// Batch normalization of `[N, C]` or `[N, C, L]` input (PyTorch's
    /// `nn.BatchNorm1d(num_features, eps=1e-5, momentum=0.1, affine=True,
    /// track_running_stats=True)`). Parameters `weight` (ones), `bias` (zeros); buffers
    /// `running_mean` (zeros), `running_var` (ones), `num_batches_tracked` (0, saved as `I64`).
    /// Training mode (the tape's [`Mode`](adamant_autodiff::Mode)) normalizes with the batch's
    /// statistics and updates the running ones; evaluation uses the running ones.
    BatchNorm1d, [2, 3], "[N, C] or [N, C, L]"
);

batch_norm_layer!(
    /// Batch normalization of `[N, C, H, W]` input (PyTorch's `nn.BatchNorm2d`), with the
    /// parameters, buffers, defaults and modes of [`BatchNorm1d`].
    BatchNorm2d, [4], "[N, C, H, W]"
);
