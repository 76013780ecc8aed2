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
        let shape = self.shape();
        assert_eq!(shape.len(), 2, "embedding: the table must be 2-d [V, D], got shape {shape:?}");
        self.lookup_rows("embedding", ids)
    }

    /// The items of axis `axis` at the 1-d `ids`, in order (`torch.index_select`): for a
    /// `[V, ...rest]` value, `[ids.len(), ...rest]`. Repeated ids accumulate their gradients,
    /// as in [`Var::embedding`]. Only `axis = 0` is implemented (the rows of a table, a
    /// minibatch gather that stays differentiable).
    ///
    /// # Panics
    /// If `axis` is not 0, `ids` is not 1-d, the value has no axis, or an id is not below `V`.
    pub fn index_select(self, axis: usize, ids: &Ids) -> Var<'t> {
        assert_eq!(axis, 0, "index_select: only axis 0 is implemented, got axis {axis}");
        assert_eq!(ids.shape().len(), 1, "index_select: ids must be 1-d, got shape {:?}", ids.shape());
        assert!(!self.shape().is_empty(), "index_select: needs at least one axis, got a scalar");
        self.lookup_rows("index_select", ids)
    }

    /// Rows `ids` of a `[V, ...rest]` value: `[...ids.shape, ...rest]`, with the scatter-add
    /// backward. Shared by [`Var::embedding`] and [`Var::index_select`].
    fn lookup_rows(self, op: &str, ids: &Ids) -> Var<'t> {
        let table = self.value();
        let shape = table.shape();
        let v = shape[0];
        let d: usize = shape[1..].iter().product(); // one row: D for an embedding table
        ids.check_below(op, v);
        // out: [...ids.shape, ...rest]
        let mut out = pool::take_for_overwrite(ids.numel() * d);
        k::embedding_forward(table.data(), d, ids.data(), &mut out);
        let mut out_shape = ids.shape().to_vec();
        out_shape.extend_from_slice(&shape[1..]);
        // The backward needs only the ids (not the table): dtable [V, D] += scatter(dy).
        let ids = ids.data().to_vec();
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self], move |dy, g| {
            k::embedding_backward(dy, d, &ids, g.acc(i));
        })
    }
}
