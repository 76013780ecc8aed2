//! 2-d convolution on NCHW values.
//!
//! Convolution is im2col + GEMM per image (kernels `conv2d_forward` / `conv2d_backward`):
//! with `col = im2col(x_i)`, the forward is `y_i = W col (+ b)`, and the backward is
//! `dW += dy_i col^T`, `db += sum of dy_i over positions`, `dx_i += col2im(W^T dy_i)`.
//! 1-d convolution is the 2-d one on a plane of height 1. Max-pooling is in `pool.rs`.

use adamant_tensor::{kernels as k, pool, Tensor};

use crate::tape::Var;

impl<'t> Var<'t> {
    /// 2-d convolution (PyTorch's `F.conv2d`, no dilation, no groups).
    ///
    /// `self` is `[N, C, H, W]`, `weight` is `[OC, C, KH, KW]`, `bias` is `[OC]`; the result is
    /// `[N, OC, OH, OW]` with `OH = (H + 2 padding - KH) / stride + 1`.
    pub fn conv2d(self, weight: Var<'t>, bias: Option<Var<'t>>, stride: usize, padding: usize) -> Var<'t> {
        self.conv_nchw(weight, bias, [stride, stride], [padding, padding], "conv2d")
    }

    /// 1-d convolution (PyTorch's `F.conv1d`, no dilation, no groups).
    ///
    /// `self` is `[N, C, L]`, `weight` is `[OC, C, K]`, `bias` is `[OC]`; the result is
    /// `[N, OC, OL]` with `OL = (L + 2 padding - K) / stride + 1`. Computed as a 2-d
    /// convolution of height 1 (the same im2col + GEMM kernels), through free reshapes.
    pub fn conv1d(self, weight: Var<'t>, bias: Option<Var<'t>>, stride: usize, padding: usize) -> Var<'t> {
        let (xs, ws) = (self.shape(), weight.shape());
        assert!(
            xs.len() == 3 && ws.len() == 3 && xs[1] == ws[1],
            "conv1d: input {xs:?} must be [N, C, L] and weight {ws:?} [OC, C, K] with the same C"
        );
        assert!(
            xs[2] + 2 * padding >= ws[2],
            "conv1d: kernel {} larger than the padded input {xs:?} (padding {padding})",
            ws[2]
        );
        let x = self.reshape(&[xs[0], xs[1], 1, xs[2]]);
        let w = weight.reshape(&[ws[0], ws[1], 1, ws[2]]);
        let y = x.conv_nchw(w, bias, [1, stride], [0, padding], "conv1d");
        let ys = y.shape();
        y.reshape(&[ys[0], ys[1], ys[3]])
    }

    /// The convolution of [`Var::conv2d`] with separate (height, width) strides and paddings;
    /// `op` names the public op in panics.
    fn conv_nchw(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        [stride_h, stride_w]: [usize; 2],
        [pad_h, pad_w]: [usize; 2],
        op: &str,
    ) -> Var<'t> {
        let (x, w) = (self.value(), weight.value());
        let b = bias.map(|b| b.value());
        let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
        assert!(
            xs.len() == 4 && ws.len() == 4 && xs[1] == ws[1],
            "{op}: input {xs:?} must be [N, C, H, W] and weight {ws:?} [OC, C, KH, KW] with the same C"
        );
        assert!(stride_h > 0 && stride_w > 0, "{op}: stride must be positive");
        let (n, oc) = (xs[0], ws[0]);
        assert!(
            xs[2] + 2 * pad_h >= ws[2] && xs[3] + 2 * pad_w >= ws[3],
            "{op}: kernel {:?} larger than the padded input {xs:?} (padding {pad_w})",
            &ws[2..]
        );
        if let Some(b) = &b {
            assert_eq!(b.shape(), &[oc], "{op}: bias shape {:?} for weight {ws:?}", b.shape());
        }
        let geom = k::Conv2dGeometry {
            channels: xs[1],
            height: xs[2],
            width: xs[3],
            kernel_h: ws[2],
            kernel_w: ws[3],
            stride_h,
            stride_w,
            pad_h,
            pad_w,
        };
        let (oh, ow) = (geom.out_h(), geom.out_w());
        let p = self.tape.precision();
        let mut out = pool::take_for_overwrite(n * oc * oh * ow);
        k::conv2d_forward_in(p, x.data(), n, &geom, w.data(), oc, b.as_ref().map(|b| b.data()), &mut out);
        let y = Tensor::from_vec(out, &[n, oc, oh, ow]);

        let (ix, iw, ib) = (self.index, weight.index, bias.map(|b| b.index));
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        self.tape.push_op(y, &inputs, move |dy, g| {
            let want_x = g.wants(ix);
            let mut dx = want_x.then(|| g.take(ix));
            let mut dw = g.take(iw);
            let mut db = ib.filter(|&i| g.wants(i)).map(|i| g.take(i));
            k::conv2d_backward_in(
                p,
                x.data(),
                n,
                &geom,
                w.data(),
                oc,
                dy,
                dx.as_deref_mut(),
                &mut dw,
                db.as_deref_mut(),
            );
            if let Some(dx) = dx {
                g.put(ix, dx);
            }
            g.put(iw, dw);
            if let (Some(i), Some(db)) = (ib, db) {
                g.put(i, db);
            }
        })
    }
}
