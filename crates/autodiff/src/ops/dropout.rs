//! Inverted dropout (PyTorch's `F.dropout`).
//!
//! In training each element is zeroed with probability `p` and the survivors are scaled by
//! `1 / (1 - p)`, so the expected value is unchanged and evaluation needs no rescaling. The
//! mask is a pure function of (step seed, this node's index, element index), drawn by a
//! counter-based generator: nothing is stored for backward, which redraws the same mask. The
//! element index is the one in the whole batch ([`Tape::set_example_offset`]), so a batch
//! split across processes draws the same masks as one process.
//!
//! [`Tape::set_example_offset`]: crate::Tape::set_example_offset

use adamant_tensor::{kernels as k, pool, Tensor};

use crate::tape::Var;

impl<'t> Var<'t> {
    /// Inverted dropout with drop probability `p`; the identity in eval mode or when `p = 0`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1)`.
    pub fn dropout(self, p: f32) -> Var<'t> {
        assert!((0.0..1.0).contains(&p), "dropout: probability must be in [0, 1), got {p}");
        if !self.tape.is_training() || p == 0.0 {
            return self;
        }
        let x = self.value();
        let key = self.tape.node_key(self.tape.next_index());
        // Element index in the whole batch when this tape holds a piece of it: the first
        // axis is the batch, so the piece starts `offset` rows of `numel / rows` elements in.
        let rows = x.shape().first().copied().unwrap_or(1).max(1);
        let first = self.tape.example_offset() * (x.numel() / rows);
        let mut out = pool::take_for_overwrite(x.numel());
        k::dropout_forward_from(x.data(), p, key, first, &mut out);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, x.shape()), &[self], move |dy, g| {
            // The first gradient into x is written, not added to a zero fill: the same values.
            let (dx, fresh) = g.slot(i);
            k::dropout_backward_from(dy, p, key, first, dx, !fresh);
        })
    }
}
