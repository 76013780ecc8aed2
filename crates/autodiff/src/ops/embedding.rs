//! Embedding lookup: rows of a `[V, D]` table picked by integer ids.
//!
//! The forward copies rows (`kernels::embedding_forward`); the backward is its adjoint, a
//! scatter-add into the table's gradient (`kernels::embedding_backward`), so an id that
//! appears several times gets the sum of its rows' gradients, as in PyTorch.

use adamant_tensor::{kernels as k, pool, Ids, Tensor};

use crate::tape::Var;

impl<'t> Var<'t> {
    /// Looks up rows of this `[V, D]` table: the result is `[...ids.shape, D]`, row `k` being
    /// `table[ids[k]]` (`torch.nn.functional.embedding`; with 1-d ids, `index_select` on
    /// axis 0). The table's gradient is the scatter-add of the output's rows, so repeated
    /// ids accumulate.
    ///
    /// This is the way to read a trainable table. Gathering rows of its *value*, as in
    /// `tape.constant(table.value().gather_rows(..))`, makes a constant: no gradient reaches
    /// the table and it silently stays frozen.
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Param, Tape};
    /// use adamant_tensor::{Ids, Tensor};
    ///
    /// let w = Param::new("wte", Tensor::from_vec(vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0], &[3, 2]));
    /// let tape = Tape::new(Mode::Train, 0);
    /// let x = tape.param(&w).embedding(&Ids::from_vec(vec![2, 0, 2], &[1, 3]));
    /// assert_eq!(x.shape(), vec![1, 3, 2]);
    /// let grads = x.sum().backward();
    /// // Row 2 was read twice, row 1 never.
    /// assert_eq!(grads.get(&w).unwrap().data(), &[1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// If the table is not 2-d, or an id is not below `V` (the message names the op, the id
    /// and `V`).
    pub fn embedding(self, ids: &Ids) -> Var<'t> {
        let table = self.value();
        let shape = table.shape();
        assert_eq!(shape.len(), 2, "embedding: the table must be 2-d [V, D], got shape {shape:?}");
        let (v, d) = (shape[0], shape[1]);
        ids.check_below("embedding", v);
        // out: [...ids.shape, D]
        let mut out = pool::take_for_overwrite(ids.numel() * d);
        k::embedding_forward(table.data(), d, ids.data(), &mut out);
        let mut out_shape = ids.shape().to_vec();
        out_shape.push(d);
        // The backward needs only the ids (not the table): dtable [V, D] += scatter(dy).
        let ids = ids.data().to_vec();
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self], move |dy, g| {
            k::embedding_backward(dy, d, &ids, g.acc(i));
        })
    }
}
