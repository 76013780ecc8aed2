//! Matrix products: 2-d, and batched with broadcast batch axes (PyTorch's `@`).
//!
//! For C = op(A) op(B) with `op` the identity or the transpose, the gradients are the four
//! textbook cases, each a single GEMM reading the stored operands through strides (no copy):
//!
//! | forward      | dA (stored like A)     | dB (stored like B)     |
//! |--------------|------------------------|------------------------|
//! | A B          | dC B^T                 | A^T dC                 |
//! | A^T B        | B dC^T                 | A dC                   |
//! | A B^T        | dC B                   | dC^T A                 |
//! | A^T B^T      | B^T dC^T               | dC^T A^T               |
//!
//! Batched operands `[..., m, k] @ [..., k, n]` use the same table matrix by matrix
//! (`kernels::batched_matmul`: one GEMM per batch, into slices of one buffer). An operand
//! broadcast over batches (`[4, 1, m, k] @ [3, k, n]`) has one gradient, into which the
//! products of every batch it served are accumulated with the GEMM's accumulate flag. A 2-d
//! right operand under a batched left one (`[B, T, C] @ [C, D]`, not transposed) is one GEMM
//! over all `B*T` rows.

use adamant_tensor::{broadcast_shapes, kernels as k, numel, pool, Tensor};

use crate::tape::Var;

/// The dimensions `(rows, cols)` of a 2-d shape, or a panic naming the op.
fn dims2(op: &str, what: &str, shape: &[usize]) -> (usize, usize) {
    assert_eq!(shape.len(), 2, "{op}: {what} must be 2-d, got shape {shape:?}");
    (shape[0], shape[1])
}

impl<'t> Var<'t> {
    /// The matrix product `self @ rhs` (PyTorch's `torch.matmul`, `@`): `[m, k] @ [k, n]`,
    /// batched `[..., m, k] @ [..., k, n]` with broadcast batch axes (`[B, H, T, d] @
    /// [B, H, d, T]`, `[B, T, C] @ [C, D]`, `[4, 1, m, k] @ [3, k, n]` is `[4, 3, m, n]`), and
    /// 1-d operands as in PyTorch (a vector on the left is a row, on the right a column, and
    /// its axis is removed from the result).
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Tape};
    /// use adamant_tensor::Tensor;
    ///
    /// let tape = Tape::new(Mode::Train, 0);
    /// let q = tape.constant(Tensor::zeros(&[2, 4, 5, 8]));
    /// let k = tape.constant(Tensor::zeros(&[2, 4, 5, 8]));
    /// assert_eq!(q.matmul_nt(k).shape(), vec![2, 4, 5, 5]); // q @ k^T, per batch and head
    /// let w = tape.constant(Tensor::zeros(&[8, 3]));
    /// assert_eq!(q.matmul(w).shape(), vec![2, 4, 5, 3]);
    /// ```
    ///
    /// # Panics
    /// If an operand is a scalar, the inner dimensions differ or the batch axes do not
    /// broadcast; the message names the shapes.
    pub fn matmul(self, rhs: Var<'t>) -> Var<'t> {
        self.matmul_t(rhs, false, false)
    }

    /// `self @ rhs^T` for `rhs` stored `[..., n, k]` (`a @ b.transpose(-2, -1)` in PyTorch,
    /// without the copy): a dense layer with PyTorch's `[out, in]` weight layout, or
    /// attention's `q @ k^T`.
    pub fn matmul_nt(self, rhs: Var<'t>) -> Var<'t> {
        self.matmul_t(rhs, false, true)
    }

    /// `op(self) @ op(rhs)` where `op` transposes the last two axes when its flag is set
    /// (the operands are read in place, never copied); shapes as in [`Var::matmul`]. A 1-d
    /// operand is the same vector whichever its flag.
    pub fn matmul_t(self, rhs: Var<'t>, trans_a: bool, trans_b: bool) -> Var<'t> {
        let (a, b) = (self.value(), rhs.value());
        let (ra, rb) = (a.ndim(), b.ndim());
        if ra == 2 && rb == 2 {
            return self.matmul_2d(rhs, a, b, trans_a, trans_b);
        }
        let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
        assert!(
            ra >= 1 && rb >= 1,
            "matmul: operands must have at least one axis, got shapes {sa:?} @ {sb:?}"
        );
        if ra == 1 || rb == 1 {
            // PyTorch's rule: a vector is a [1, k] row on the left, a [k, 1] column on the
            // right (stored transposed under the flag, the same numbers), its axis removed.
            let a = if ra == 1 { self.reshape(&if trans_a { [sa[0], 1] } else { [1, sa[0]] }) } else { self };
            let b = if rb == 1 { rhs.reshape(&if trans_b { [1, sb[0]] } else { [sb[0], 1] }) } else { rhs };
            let y = a.matmul_t(b, trans_a, trans_b);
            let mut shape = y.shape();
            if rb == 1 {
                shape.pop();
            }
            if ra == 1 {
                shape.remove(shape.len() - 1 - usize::from(rb != 1));
            }
            return y.reshape(&shape);
        }
        if rb == 2 && !trans_a {
            // [..., m, k] @ [k, n]: the leading axes are more rows of one GEMM.
            let rows = numel(&sa[..ra - 1]);
            let flat = self.reshape(&[rows, sa[ra - 1]]);
            let y = flat.matmul_2d(rhs, flat.value(), b, false, trans_b);
            let mut shape = sa[..ra - 1].to_vec();
            shape.push(y.shape()[1]);
            return y.reshape(&shape);
        }
        self.matmul_batched(rhs, trans_a, trans_b)
    }

    /// [`Var::matmul_t`] of two 2-d values: the hot path of every dense layer.
    /// `a` and `b` are the operands' values, already read by the caller.
    fn matmul_2d(self, rhs: Var<'t>, a: Tensor, b: Tensor, trans_a: bool, trans_b: bool) -> Var<'t> {
        let (ar, ac) = dims2("matmul", "left operand", a.shape());
        let (br, bc) = dims2("matmul", "right operand", b.shape());
        let (m, ka) = if trans_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
        assert_eq!(
            ka,
            kb,
            "matmul: inner dimensions differ: {:?}{} @ {:?}{}",
            a.shape(),
            if trans_a { "^T" } else { "" },
            b.shape(),
            if trans_b { "^T" } else { "" }
        );
        let kk = ka;
        let p = self.tape.precision();
        let mut out = pool::take_for_overwrite(m * n);
        k::matmul_in(p, a.data(), b.data(), &mut out, m, kk, n, trans_a, trans_b, false);
        let (ia, ib) = (self.index, rhs.index);
        self.tape.push_op(Tensor::from_vec(out, &[m, n]), &[self, rhs], move |dc, g| {
            let (a, b) = (a.data(), b.data());
            // A gradient seen for the first time is written by the GEMM (beta = 0) instead of
            // being zero-filled and then accumulated into.
            if g.wants(ia) {
                let (da, fresh) = g.slot(ia);
                let acc = !fresh;
                match (trans_a, trans_b) {
                    (false, false) => k::matmul_in(p, dc, b, da, m, n, kk, false, true, acc),
                    (true, false) => k::matmul_in(p, b, dc, da, kk, n, m, false, true, acc),
                    (false, true) => k::matmul_in(p, dc, b, da, m, n, kk, false, false, acc),
                    (true, true) => k::matmul_in(p, b, dc, da, kk, n, m, true, true, acc),
                }
            }
            if g.wants(ib) {
                let (db, fresh) = g.slot(ib);
                let acc = !fresh;
                match (trans_a, trans_b) {
                    (false, false) => k::matmul_in(p, a, dc, db, kk, m, n, true, false, acc),
                    (true, false) => k::matmul_in(p, a, dc, db, kk, m, n, false, false, acc),
                    (false, true) => k::matmul_in(p, dc, a, db, n, m, kk, true, false, acc),
                    (true, true) => k::matmul_in(p, dc, a, db, n, m, kk, true, true, acc),
                }
            }
        })
    }

    /// `self @ weight^T + bias` over the last axis (PyTorch's `F.linear`): `self` `[..., in]`,
    /// `weight` `[out, in]`, `bias` `[out]`, result `[..., out]`.
    ///
    /// One op: the leading axes are rows of one GEMM (no reshape nodes) and the GEMM adds the
    /// bias to each tile of the output as it completes it, so a dense layer on `[B, T, in]`
    /// records one node instead of four, makes no second pass over its output and its
    /// backward copies no gradient. The values and gradients are those of
    /// `self.reshape([rows, in]).matmul_nt(weight) + bias` reshaped back, bit for bit:
    ///
    /// ```text
    /// y = x W^T + b          dx = dy W          dW = dy^T x          db = sum over rows of dy
    /// ```
    ///
    /// # Panics
    /// If `self` is a scalar, `weight` is not `[out, in]` for `self`'s last axis, or `bias` is
    /// not `[out]`; the message names the shapes.
    pub fn linear(self, weight: Var<'t>, bias: Option<Var<'t>>) -> Var<'t> {
        let (x, w) = (self.value(), weight.value());
        let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
        assert!(
            !xs.is_empty() && ws.len() == 2 && ws[1] == xs[xs.len() - 1],
            "linear: input {xs:?} and weight {ws:?} do not fit (the weight is [out, in])"
        );
        let (n_in, n_out) = (ws[1], ws[0]);
        let rows = numel(&xs[..xs.len() - 1]);
        let p = self.tape.precision();
        let mut out = pool::take_for_overwrite(rows * n_out);
        let mut inputs = vec![self, weight];
        match bias {
            Some(b) => {
                let b_value = b.value();
                assert!(
                    b_value.shape() == [n_out],
                    "linear: bias {:?} does not fit weight {ws:?} (it is [out])",
                    b_value.shape()
                );
                // The GEMM adds the bias to each tile as it completes it.
                let (xm, wm) = (
                    k::StridedMat::row_major(x.data(), rows, n_in, false),
                    k::StridedMat::row_major(w.data(), n_in, n_out, true),
                );
                k::sgemm_bias_in(p, xm, wm, b_value.data(), &mut out);
                inputs.push(b);
            }
            None => k::matmul_in(p, x.data(), w.data(), &mut out, rows, n_in, n_out, false, true, false),
        }
        let mut out_shape = xs;
        *out_shape.last_mut().expect("not a scalar") = n_out;
        let (ix, iw, ib) = (self.index, weight.index, bias.map(|b| b.index));
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &inputs, move |dy, g| {
            if let Some(ib) = ib.filter(|&i| g.wants(i)) {
                k::sum_to_shape(dy, &[rows, n_out], &[n_out], g.acc(ib));
            }
            // First gradients are written by the GEMM (beta = 0), as in `matmul`'s backward.
            if g.wants(ix) {
                let (dx, fresh) = g.slot(ix);
                k::matmul_in(p, dy, w.data(), dx, rows, n_out, n_in, false, false, !fresh);
            }
            if g.wants(iw) {
                let (dw, fresh) = g.slot(iw);
                k::matmul_in(p, dy, x.data(), dw, n_out, rows, n_in, true, false, !fresh);
            }
        })
    }

    /// [`Var::matmul_t`] of operands of rank >= 2, at least one of them batched.
    fn matmul_batched(self, rhs: Var<'t>, trans_a: bool, trans_b: bool) -> Var<'t> {
        let (a, b) = (self.value(), rhs.value());
        let (sa, sb) = (a.shape(), b.shape());
        let (ra, rb) = (sa.len(), sb.len());
        let (a_batch, b_batch) = (sa[..ra - 2].to_vec(), sb[..rb - 2].to_vec());
        let (m, ka) = if trans_a { (sa[ra - 1], sa[ra - 2]) } else { (sa[ra - 2], sa[ra - 1]) };
        let (kb, n) = if trans_b { (sb[rb - 1], sb[rb - 2]) } else { (sb[rb - 2], sb[rb - 1]) };
        let t = |flag: bool| if flag { "^T" } else { "" };
        assert_eq!(ka, kb, "matmul: inner dimensions differ: {sa:?}{} @ {sb:?}{}", t(trans_a), t(trans_b));
        let batch = broadcast_shapes(&a_batch, &b_batch).unwrap_or_else(|| {
            panic!("matmul: batch axes do not broadcast: {sa:?}{} @ {sb:?}{}", t(trans_a), t(trans_b))
        });
        let kk = ka;
        let p = self.tape.precision();
        let mut out = pool::take_for_overwrite(numel(&batch) * m * n);
        k::batched_matmul_in(
            p,
            a.data(),
            &a_batch,
            b.data(),
            &b_batch,
            &mut out,
            &batch,
            m,
            kk,
            n,
            trans_a,
            trans_b,
            false,
        );
        let mut out_shape = batch.clone();
        out_shape.extend_from_slice(&[m, n]);
        let (ia, ib) = (self.index, rhs.index);
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self, rhs], move |dc, g| {
            let (a, b) = (a.data(), b.data());
            let (ab, bb, cb) = (&a_batch[..], &b_batch[..], &batch[..]);
            // The 2-d table, matrix by matrix; each gradient keeps its operand's batch shape.
            if g.wants(ia) {
                let da = g.acc(ia);
                match (trans_a, trans_b) {
                    (false, false) => {
                        k::batched_matmul_in(p, dc, cb, b, bb, da, ab, m, n, kk, false, true, true)
                    }
                    (true, false) => {
                        k::batched_matmul_in(p, b, bb, dc, cb, da, ab, kk, n, m, false, true, true)
                    }
                    (false, true) => {
                        k::batched_matmul_in(p, dc, cb, b, bb, da, ab, m, n, kk, false, false, true)
                    }
                    (true, true) => {
                        k::batched_matmul_in(p, b, bb, dc, cb, da, ab, kk, n, m, true, true, true)
                    }
                }
            }
            if g.wants(ib) {
                let db = g.acc(ib);
                match (trans_a, trans_b) {
                    (false, false) => {
                        k::batched_matmul_in(p, a, ab, dc, cb, db, bb, kk, m, n, true, false, true)
                    }
                    (true, false) => {
                        k::batched_matmul_in(p, a, ab, dc, cb, db, bb, kk, m, n, false, false, true)
                    }
                    (false, true) => {
                        k::batched_matmul_in(p, dc, cb, a, ab, db, bb, n, m, kk, true, false, true)
                    }
                    (true, true) => {
                        k::batched_matmul_in(p, dc, cb, a, ab, db, bb, n, m, kk, true, true, true)
                    }
                }
            }
        })
    }
}
