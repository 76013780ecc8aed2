//! Matrix products of 2-d values.
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

use adamant_tensor::{kernels as k, pool, Tensor};

use crate::tape::Var;

/// The dimensions `(rows, cols)` of a 2-d shape, or a panic naming the op.
fn dims2(op: &str, what: &str, shape: &[usize]) -> (usize, usize) {
    assert_eq!(shape.len(), 2, "{op}: {what} must be 2-d, got shape {shape:?}");
    (shape[0], shape[1])
}

impl<'t> Var<'t> {
    /// The matrix product `self @ rhs` of `[m, k]` and `[k, n]` values.
    pub fn matmul(self, rhs: Var<'t>) -> Var<'t> {
        self.matmul_t(rhs, false, false)
    }

    /// `self @ rhs^T` for `rhs` stored `[n, k]`: a dense layer with PyTorch's `[out, in]`
    /// weight layout.
    pub fn matmul_nt(self, rhs: Var<'t>) -> Var<'t> {
        self.matmul_t(rhs, false, true)
    }

    /// `op(self) @ op(rhs)` where `op` transposes when its flag is set.
    pub fn matmul_t(self, rhs: Var<'t>, trans_a: bool, trans_b: bool) -> Var<'t> {
        let (a, b) = (self.value(), rhs.value());
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
        let mut out = pool::take_for_overwrite(m * n);
        k::matmul(a.data(), b.data(), &mut out, m, kk, n, trans_a, trans_b, false);
        let (ia, ib) = (self.index, rhs.index);
        self.tape.push_op(Tensor::from_vec(out, &[m, n]), &[self, rhs], move |dc, g| {
            let (a, b) = (a.data(), b.data());
            if g.wants(ia) {
                let da = g.acc(ia);
                match (trans_a, trans_b) {
                    (false, false) => k::matmul(dc, b, da, m, n, kk, false, true, true),
                    (true, false) => k::matmul(b, dc, da, kk, n, m, false, true, true),
                    (false, true) => k::matmul(dc, b, da, m, n, kk, false, false, true),
                    (true, true) => k::matmul(b, dc, da, kk, n, m, true, true, true),
                }
            }
            if g.wants(ib) {
                let db = g.acc(ib);
                match (trans_a, trans_b) {
                    (false, false) => k::matmul(a, dc, db, kk, m, n, true, false, true),
                    (true, false) => k::matmul(a, dc, db, kk, m, n, false, false, true),
                    (false, true) => k::matmul(dc, a, db, n, m, kk, true, false, true),
                    (true, true) => k::matmul(dc, a, db, n, m, kk, true, true, true),
                }
            }
        })
    }
}
