//! Convolution (1-d and 2-d) and max-pooling layers (NCHW), and max-pooling fused with the ReLU before it.

use adamant_autodiff::{Param, Var};
use adamant_tensor::rng::Rng;

use crate::{init, Module};

/// A 2-d convolution with PyTorch `nn.Conv2d` semantics (square kernel, stride and padding;
/// no dilation or groups). Input `[N, C, H, W]`, weight `[OC, C, K, K]`, output
/// `[N, OC, OH, OW]`. Parameters `weight` and `bias`.
#[derive(Module)]
pub struct Conv2d {
    /// `[out_channels, in_channels, kernel, kernel]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Step of the kernel over the input.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl Conv2d {
    /// A convolution with PyTorch's default initialisation.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        rng: &mut Rng,
    ) -> Conv2d {
        let shape = [out_channels, in_channels, kernel, kernel];
        let weight = init::torch_default_weight(&shape, rng);
        let (fan_in, _) = init::fans(&shape);
        let bias = init::torch_default_bias(out_channels, fan_in, rng);
        Conv2d { weight: Param::new("weight", weight), bias: Some(Param::new("bias", bias)), stride, padding }
    }
}

impl Module for Conv2d {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let tape = x.tape();
        x.conv2d(
            tape.param(&self.weight),
            self.bias.as_ref().map(|b| tape.param(b)),
            self.stride,
            self.padding,
        )
    }
}

/// 2-d max-pooling (PyTorch `nn.MaxPool2d(kernel, stride, padding)`), with `-inf` padding.
#[derive(Clone, Copy, Debug, Module)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Implicit `-inf` padding on each side.
    pub padding: usize,
}

impl MaxPool2d {
    /// A pooling layer.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> MaxPool2d {
        MaxPool2d { kernel, stride, padding }
    }
}

impl Module for MaxPool2d {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        x.max_pool2d(self.kernel, self.stride, self.padding)
    }
}

/// `ReLU` then [`MaxPool2d`] in one layer, computed the cheaper way round: pool first, then
/// the ReLU on a tensor `stride^2` times smaller (for the CIFAR-10 CNN, one pass over 8M
/// elements and their gradient fewer per stage). Use it in place of `ReLU, MaxPool2d`.
///
/// The two orders agree because ReLU is monotone: the window maximum of `relu(x)` is `relu`
/// of the window maximum of `x`, and when that maximum is positive the first-maximum rule
/// picks the same cell either way, so outputs and gradients are bit-identical. When it is
/// not positive, the output is a zero and every gradient through it is zero, wherever it is
/// routed. The one difference is the sign of such a zero: pooling first keeps the sign of
/// the first zero of the window, so a window whose first cell is negative and whose largest
/// value is `-0.0` gives `-0.0` here and `+0.0` from `ReLU` then `MaxPool2d` (they compare
/// equal; a later layer's sum sees the difference only if all its terms are zeros).
#[derive(Clone, Copy, Debug, Module)]
pub struct MaxPool2dReLU {
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Implicit `-inf` padding on each side.
    pub padding: usize,
}

impl MaxPool2dReLU {
    /// `relu(max_pool2d(x, kernel, stride, padding))`.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> MaxPool2dReLU {
        MaxPool2dReLU { kernel, stride, padding }
    }
}

impl Module for MaxPool2dReLU {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        x.max_pool2d(self.kernel, self.stride, self.padding).relu()
    }
}

/// A 1-d convolution with PyTorch `nn.Conv1d` semantics (no dilation or groups). Input
/// `[N, C, L]`, weight `[OC, C, K]`, output `[N, OC, OL]` with
/// `OL = (L + 2 padding - K) / stride + 1`. Parameters `weight` and `bias`.
#[derive(Module)]
pub struct Conv1d {
    /// `[out_channels, in_channels, kernel]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Step of the kernel along the input.
    pub stride: usize,
    /// Zero padding on each end.
    pub padding: usize,
}

impl Conv1d {
    /// A convolution with PyTorch's default initialisation (uniform in `±1/sqrt(C K)` for
    /// the bias, Kaiming-uniform with `a = sqrt(5)` for the weight).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        rng: &mut Rng,
    ) -> Conv1d {
        let shape = [out_channels, in_channels, kernel];
        let weight = init::torch_default_weight(&shape, rng);
        let (fan_in, _) = init::fans(&shape);
        let bias = init::torch_default_bias(out_channels, fan_in, rng);
        Conv1d { weight: Param::new("weight", weight), bias: Some(Param::new("bias", bias)), stride, padding }
    }
}

impl Module for Conv1d {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let tape = x.tape();
        x.conv1d(
            tape.param(&self.weight),
            self.bias.as_ref().map(|b| tape.param(b)),
            self.stride,
            self.padding,
        )
    }
}
