//! 2-d max-pooling on NCHW values, forward beside backward.
//!
//! The forward remembers the argmax of each window (kernel `max_pool2d_forward`); the
//! backward routes each output gradient to it (`max_pool2d_backward`), adding where windows
//! overlap.

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
            k::max_pool2d_backward(dy, &argmax, n, c, h, w, oh, ow, g.acc(i));
        })
    }
}
