//! 2-d max and average pooling on NCHW values, forward beside backward.
//!
//! The max forward remembers the argmax of each window (kernel `max_pool2d_forward`); the
//! backward routes each output gradient to it (`max_pool2d_backward`), adding where windows
//! overlap. Average pooling (fixed windows, or adaptive ones that split the plane into a
//! given output size) spreads each output gradient evenly over its window.

use adamant_tensor::{kernels as k, pool, Tensor};

use crate::tape::Var;

impl<'t> Var<'t> {
    /// 2-d max-pooling over `[N, C, H, W]` (PyTorch's `F.max_pool2d`): square windows of
    /// `kernel` cells moved by `stride`, with implicit `-inf` padding. The gradient goes to
    /// the first maximal cell of each window.
    pub fn max_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Var<'t> {
        let x = self.value();
        let xs = x.shape().to_vec();
        assert_eq!(xs.len(), 4, "max_pool2d: input must be [N, C, H, W], got {xs:?}");
        assert!(
            kernel > 0 && stride > 0 && 2 * padding <= kernel,
            "max_pool2d: kernel {kernel}, stride {stride}, padding {padding}: need kernel, stride > 0 and padding <= kernel / 2"
        );
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
        assert!(
            h + 2 * padding >= kernel && w + 2 * padding >= kernel,
            "max_pool2d: kernel {kernel} larger than the padded input {xs:?}"
        );
        let (oh, ow) =
            (k::pool_out_size(h, kernel, stride, padding), k::pool_out_size(w, kernel, stride, padding));
        let mut out = pool::take_for_overwrite(n * c * oh * ow);
        let mut argmax = vec![0u32; out.len()];
        k::max_pool2d_forward(x.data(), n, c, h, w, kernel, stride, padding, &mut out, &mut argmax);
        let y = Tensor::from_vec(out, &[n, c, oh, ow]);
        let i = self.index;
        self.tape.push_op(y, &[self], move |dy, g| {
            // A fresh buffer is zero-filled plane by plane inside the kernel's tasks.
            let (dx, fresh) = g.slot(i);
            k::max_pool2d_backward_into(dy, &argmax, n, c, h, w, oh, ow, dx, !fresh);
        })
    }
    /// 2-d average pooling over `[N, C, H, W]` (PyTorch's `F.avg_pool2d(x, kernel, stride,
    /// padding)` with its defaults `count_include_pad=True`, `ceil_mode=False`): square windows
    /// of `kernel` cells moved by `stride`, zero padding counted in the `kernel * kernel`
    /// divisor. Output `[N, C, OH, OW]` with `OH = (H + 2 padding - kernel) / stride + 1`.
    pub fn avg_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Var<'t> {
        let xs = self.value().shape().to_vec();
        assert_eq!(xs.len(), 4, "avg_pool2d: input must be [N, C, H, W], got {xs:?}");
        assert!(
            kernel > 0 && stride > 0 && 2 * padding <= kernel,
            "avg_pool2d: kernel {kernel}, stride {stride}, padding {padding}: need kernel, stride > 0 and padding <= kernel / 2"
        );
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
        assert!(
            h + 2 * padding >= kernel && w + 2 * padding >= kernel,
            "avg_pool2d: kernel {kernel} larger than the padded input {xs:?}"
        );
        let (oh, ow) =
            (k::pool_out_size(h, kernel, stride, padding), k::pool_out_size(w, kernel, stride, padding));
        let mut out = pool::take_for_overwrite(n * c * oh * ow);
        k::avg_pool2d_forward(self.value().data(), n * c, h, w, kernel, stride, padding, &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &[n, c, oh, ow]), &[self], move |dy, g| {
            k::avg_pool2d_backward(dy, n * c, h, w, kernel, stride, padding, g.acc(i));
        })
    }

    /// 2-d adaptive average pooling of `[N, C, H, W]` to `[N, C, out_h, out_w]` (PyTorch's
    /// `F.adaptive_avg_pool2d(x, (out_h, out_w))`): output `(i, j)` averages input rows
    /// `floor(i H / out_h)..ceil((i + 1) H / out_h)` and the columns likewise, so
    /// `adaptive_avg_pool2d(1, 1)` is global average pooling.
    pub fn adaptive_avg_pool2d(self, out_h: usize, out_w: usize) -> Var<'t> {
        let xs = self.value().shape().to_vec();
        assert!(
            xs.len() == 4 && out_h > 0 && out_w > 0 && xs[2] > 0 && xs[3] > 0,
            "adaptive_avg_pool2d: input must be [N, C, H, W] with H, W > 0 and the output size positive, got {xs:?} to {out_h}x{out_w}"
        );
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
        let mut out = pool::take_for_overwrite(n * c * out_h * out_w);
        k::adaptive_avg_pool2d_forward(self.value().data(), n * c, h, w, out_h, out_w, &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &[n, c, out_h, out_w]), &[self], move |dy, g| {
            k::adaptive_avg_pool2d_backward(dy, n * c, h, w, out_h, out_w, g.acc(i));
        })
    }
}
