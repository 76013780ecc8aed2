//! Average-pooling layers (NCHW): fixed windows, and adaptive ones that produce a given
//! output size. Neither has parameters or buffers.

use adamant_autodiff::Var;

use crate::Module;

/// 2-d average pooling (PyTorch `nn.AvgPool2d(kernel, stride, padding)` with its defaults
/// `count_include_pad=True`, `ceil_mode=False`): zero padding counts in the divisor.
/// PyTorch's default stride is the kernel size: `AvgPool2d::new(k, k, 0)`.
#[derive(Clone, Copy, Debug, crate::Module)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Implicit zero padding on each side (at most `kernel / 2`).
    pub padding: usize,
}

impl AvgPool2d {
    /// A pooling layer ([`Var::avg_pool2d`]).
    pub fn new(kernel: usize, stride: usize, padding: usize) -> AvgPool2d {
        AvgPool2d { kernel, stride, padding }
    }
}

impl Module for AvgPool2d {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        x.avg_pool2d(self.kernel, self.stride, self.padding)
    }
}

/// 2-d adaptive average pooling to a fixed output size (PyTorch
/// `nn.AdaptiveAvgPool2d((out_h, out_w))`); `AdaptiveAvgPool2d::new(1, 1)` is global average
/// pooling.
#[derive(Clone, Copy, Debug, crate::Module)]
pub struct AdaptiveAvgPool2d {
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl AdaptiveAvgPool2d {
    /// A pooling layer to `[N, C, out_h, out_w]` ([`Var::adaptive_avg_pool2d`]).
    pub fn new(out_h: usize, out_w: usize) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d { out_h, out_w }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        x.adaptive_avg_pool2d(self.out_h, self.out_w)
    }
}
