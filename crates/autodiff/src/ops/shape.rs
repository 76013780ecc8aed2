//! Shape ops: views (`reshape`, `squeeze`, `flatten`, ...), which keep the elements in the
//! same row-major order, and data movement (`permute`, `narrow`/`slice`/`select`, `concat`,
//! `expand`), which copies them with the kernels of `kernels::layout`.
//!
//! The backward of a view is the reverse view: the gradient arrives in the output's shape
//! with the elements in the same order, so it is added as is. The backward of a movement is
//! its adjoint: a permute back, a scatter-add into the sliced items of the input's gradient,
//! the items of each part taken back out of a concatenation, a sum over the broadcast axes.
//! PyTorch returns views for several of these; here every result is contiguous, so a
//! transpose followed by a reshape is always legal (PyTorch's `view` would need
//! `.contiguous()` first).

use std::ops::{Bound, RangeBounds};

use adamant_tensor::{broadcast_shapes, infer_shape, kernels as k, numel, pool, Axis, ShapeSpec, Tensor};

use crate::tape::Var;

/// An axis in `0..=rank`, where a new axis can be inserted (PyTorch's `unsqueeze(dim)`, whose
/// `-1` is the new last axis).
fn insert_position(op: &str, axis: impl Axis, shape: &[usize]) -> usize {
    let mut extended = shape.to_vec();
    extended.push(1);
    axis.resolve(op, &extended)
}

impl<'t> Var<'t> {
    /// The same values with another shape of equal size (`torch.reshape`). One size may be
    /// `-1`, inferred from the others: `x.reshape(&[4, -1])`, `x.reshape(&[b as i32, -1])`,
    /// `x.reshape(&[b, t, c])` with `usize` sizes. O(1) forward: the storage is shared.
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Tape};
    /// use adamant_tensor::Tensor;
    ///
    /// let tape = Tape::new(Mode::Train, 0);
    /// let x = tape.constant(Tensor::zeros(&[2, 3, 4]));
    /// assert_eq!(x.reshape(&[-1, 4]).shape(), vec![6, 4]);
    /// assert_eq!(x.reshape(&[2usize, 12]).shape(), vec![2, 12]);
    /// ```
    ///
    /// # Panics
    /// If the number of elements differs, or the `-1` cannot be inferred.
    pub fn reshape<S: ShapeSpec + ?Sized>(self, shape: &S) -> Var<'t> {
        let x = self.value();
        let shape = infer_shape("reshape", shape, x.shape());
        self.view_as_shape(x, &shape)
    }

    /// [`Var::reshape`] under PyTorch's other name (`Tensor.view`): values are always
    /// contiguous here, so every reshape is a view.
    pub fn view<S: ShapeSpec + ?Sized>(self, shape: &S) -> Var<'t> {
        self.reshape(shape)
    }

    /// `x` (this node's value) viewed with `shape`: the reshape op every view goes through.
    fn view_as_shape(self, x: Tensor, shape: &[usize]) -> Var<'t> {
        self.tape.push_identity(x.reshape(shape), &[self])
    }

    /// Flattens every axis after the first: `[B, C, H, W]` to `[B, C*H*W]` (`nn.Flatten`; see
    /// [`Var::flatten_range`] for `torch.flatten`).
    pub fn flatten(self) -> Var<'t> {
        let shape = self.shape();
        assert!(!shape.is_empty(), "flatten: needs at least one axis, got a scalar");
        let rest = numel(&shape[1..]);
        self.reshape(&[shape[0], rest])
    }

    /// Merges axes `start..=end` into one (`torch.flatten(x, start, end)`):
    /// `flatten_range(1, -1)` of `[B, C, H, W]` is `[B, C*H*W]`. A scalar becomes `[1]`.
    ///
    /// # Panics
    /// If an axis is out of range or `start` comes after `end`.
    pub fn flatten_range(self, start: impl Axis, end: impl Axis) -> Var<'t> {
        let shape = self.shape();
        if shape.is_empty() {
            return self.reshape(&[1usize]);
        }
        let (s, e) = (start.resolve("flatten_range", &shape), end.resolve("flatten_range", &shape));
        assert!(s <= e, "flatten_range: start axis {s} comes after end axis {e} (shape {shape:?})");
        let mut out = shape[..s].to_vec();
        out.push(numel(&shape[s..=e]));
        out.extend_from_slice(&shape[e + 1..]);
        self.reshape(&out)
    }

    /// Removes axis `axis` if its size is 1 (`torch.squeeze(x, dim)`); as in PyTorch, an axis
    /// of another size is left as it is.
    pub fn squeeze(self, axis: impl Axis) -> Var<'t> {
        let mut shape = self.shape();
        let a = axis.resolve("squeeze", &shape);
        if shape[a] != 1 {
            return self;
        }
        shape.remove(a);
        self.reshape(&shape)
    }

    /// Inserts an axis of size 1 at position `axis` of the result (`torch.unsqueeze`):
    /// `0..=rank`, or `-1` for a new last axis.
    pub fn unsqueeze(self, axis: impl Axis) -> Var<'t> {
        let mut shape = self.shape();
        let a = insert_position("unsqueeze", axis, &shape);
        shape.insert(a, 1);
        self.reshape(&shape)
    }

    /// Reorders the axes: axis `i` of the result is axis `axes[i]` of `self`
    /// (`torch.permute`): `[B, T, H, d].permute(&[0, 2, 1, 3])` is `[B, H, T, d]`. The
    /// backward permutes the gradient back.
    ///
    /// # Panics
    /// If `axes` is not a permutation of the axes.
    pub fn permute<A: Axis>(self, axes: &[A]) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        let axes: Vec<usize> = axes.iter().map(|a| a.resolve("permute", &shape)).collect();
        let mut out = pool::take_for_overwrite(x.numel());
        k::permute(x.data(), &shape, &axes, &mut out);
        let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self], move |dy, g| {
            k::permute_backward(dy, &shape, &axes, g.acc(i));
        })
    }

    /// Swaps two axes (`torch.transpose(x, a, b)`): `x.transpose(-2, -1)` transposes the last
    /// two. For a product with a transposed operand, [`Var::matmul_t`] reads it in place
    /// instead.
    pub fn transpose(self, a: impl Axis, b: impl Axis) -> Var<'t> {
        let shape = self.shape();
        let (a, b) = (a.resolve("transpose", &shape), b.resolve("transpose", &shape));
        let mut axes: Vec<usize> = (0..shape.len()).collect();
        axes.swap(a, b);
        self.permute(&axes)
    }

    /// This value repeated along its size-1 (or missing leading) axes to `shape`
    /// (`torch.broadcast_to`; NumPy's broadcasting rules). The backward sums the gradient
    /// over the repeated axes.
    ///
    /// # Panics
    /// If the shape does not broadcast to `shape`.
    pub fn broadcast_to(self, shape: &[usize]) -> Var<'t> {
        let x = self.value();
        let from = x.shape().to_vec();
        assert!(
            broadcast_shapes(&from, shape).as_deref() == Some(shape),
            "broadcast_to: cannot broadcast shape {from:?} to {shape:?}"
        );
        let mut out = pool::take_for_overwrite(numel(shape));
        k::broadcast_to(x.data(), &from, shape, &mut out);
        let to = shape.to_vec();
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, shape), &[self], move |dy, g| {
            k::sum_to_shape(dy, &to, &from, g.acc(i));
        })
    }

    /// [`Var::broadcast_to`] with PyTorch's `Tensor.expand` sizes: `-1` keeps the size of the
    /// matching axis (`x.expand(&[4, -1, -1])`).
    ///
    /// # Panics
    /// If a `-1` has no matching axis or the shape does not broadcast.
    pub fn expand<S: ShapeSpec + ?Sized>(self, shape: &S) -> Var<'t> {
        let from = self.shape();
        let dims = shape.dims();
        assert!(dims.len() >= from.len(), "expand: shape {dims:?} has fewer axes than {from:?}");
        let skip = dims.len() - from.len();
        let to: Vec<usize> = dims
            .iter()
            .enumerate()
            .map(|(d, &s)| match s {
                -1 if d >= skip => from[d - skip],
                s if s >= 0 => s as usize,
                _ => panic!("expand: size {s} at axis {d} of {dims:?} is invalid for shape {from:?}"),
            })
            .collect();
        self.broadcast_to(&to)
    }

    /// Concatenates values along `axis` (`torch.cat`); the other axes must agree. Each
    /// part's gradient is its items of the output's gradient.
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Tape, Var};
    /// use adamant_tensor::Tensor;
    ///
    /// let tape = Tape::new(Mode::Train, 0);
    /// let a = tape.constant(Tensor::zeros(&[2, 3]));
    /// let b = tape.constant(Tensor::ones(&[2, 1]));
    /// assert_eq!(Var::concat(&[a, b], -1).shape(), vec![2, 4]);
    /// assert_eq!(Var::stack(&[a, a], 0).shape(), vec![2, 2, 3]);
    /// ```
    ///
    /// # Panics
    /// If `parts` is empty, or the shapes differ in another axis.
    pub fn concat(parts: &[Var<'t>], axis: impl Axis) -> Var<'t> {
        assert!(!parts.is_empty(), "concat: no values to concatenate");
        let values: Vec<Tensor> = parts.iter().map(|p| p.value()).collect();
        let shapes: Vec<&[usize]> = values.iter().map(|v| v.shape()).collect();
        let axis = axis.resolve("concat", shapes[0]);
        let (out_shape, outer, sizes, inner) = k::concat_layout("concat", &shapes, axis);
        let data: Vec<&[f32]> = values.iter().map(|v| v.data()).collect();
        let mut out = pool::take_for_overwrite(numel(&out_shape));
        k::concat(&data, &sizes, outer, inner, &mut out);
        let indices: Vec<usize> = parts.iter().map(|p| p.index).collect();
        parts[0].tape.push_op(Tensor::from_vec(out, &out_shape), parts, move |dy, g| {
            for (p, &i) in indices.iter().enumerate() {
                if g.wants(i) {
                    k::concat_backward(dy, &sizes, outer, inner, p, g.acc(i));
                }
            }
        })
    }

    /// Stacks values of one shape along a new axis `axis` (`torch.stack`): `n` values of
    /// shape `[a, b]` stacked on axis 1 give `[a, n, b]`.
    ///
    /// # Panics
    /// If `parts` is empty or the shapes differ.
    pub fn stack(parts: &[Var<'t>], axis: impl Axis) -> Var<'t> {
        assert!(!parts.is_empty(), "stack: no values to stack");
        let first = parts[0].shape();
        for p in parts {
            let s = p.shape();
            assert!(s == first, "stack: shapes differ: {s:?} and {first:?}");
        }
        let a = insert_position("stack", axis, &first);
        let expanded: Vec<Var<'t>> = parts.iter().map(|p| p.unsqueeze(a)).collect();
        Var::concat(&expanded, a)
    }

    /// Items `start..start + len` of axis `axis` (`torch.narrow`). The gradient is added to
    /// those items of the input's gradient, zero elsewhere.
    ///
    /// # Panics
    /// If the range goes past the axis.
    pub fn narrow(self, axis: impl Axis, start: usize, len: usize) -> Var<'t> {
        let shape = self.shape();
        let a = axis.resolve("narrow", &shape);
        self.slice_items("narrow", a, start, len, 1, false)
    }

    /// Every `step`-th item of `range` along `axis`: PyTorch's `x[:, a:b:step]` is
    /// `x.slice(1, a..b, step)`; `..`, `a..`, `..b` and `a..=b` work too. Unlike Python, a
    /// range that goes past the axis panics instead of being clipped.
    ///
    /// # Panics
    /// If the range goes past the axis or `step` is 0.
    pub fn slice(self, axis: impl Axis, range: impl RangeBounds<usize>, step: usize) -> Var<'t> {
        let shape = self.shape();
        let a = axis.resolve("slice", &shape);
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e + 1,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => shape[a],
        };
        assert!(step >= 1, "slice: step must be at least 1, got {step} (shape {shape:?})");
        assert!(
            start <= end && end <= shape[a],
            "slice: range {start}..{end} is out of bounds for axis {a} of shape {shape:?}"
        );
        let len = (end - start).div_ceil(step);
        self.slice_items("slice", a, start, len, step, false)
    }

    /// Item `index` of axis `axis`, the axis removed (PyTorch's `x[:, t]`, `torch.select`):
    /// time step `t` of a `[B, T, C]` sequence is `x.select(1, t)`, `[B, C]`.
    ///
    /// # Panics
    /// If `index` is past the axis.
    pub fn select(self, axis: impl Axis, index: usize) -> Var<'t> {
        let shape = self.shape();
        let a = axis.resolve("select", &shape);
        assert!(index < shape[a], "select: index {index} is out of range for axis {a} of shape {shape:?}");
        self.slice_items("select", a, index, 1, 1, true)
    }

    /// `len` items from `start` every `step` along axis `a`, copied by `kernels::slice_axis`,
    /// with its scatter-add backward; `drop_axis` removes the (size-1) axis from the shape.
    fn slice_items(
        self,
        op: &str,
        a: usize,
        start: usize,
        len: usize,
        step: usize,
        drop_axis: bool,
    ) -> Var<'t> {
        let x = self.value();
        let shape = x.shape().to_vec();
        assert!(
            len == 0 || start + (len - 1) * step < shape[a],
            "{op}: {len} items from {start} (step {step}) go past the {} items of axis {a} of shape {shape:?}",
            shape[a]
        );
        let mut out_shape = shape.clone();
        out_shape[a] = len;
        let mut out = pool::take_for_overwrite(numel(&out_shape));
        k::slice_axis(x.data(), &shape, a, start, len, step, &mut out);
        if drop_axis {
            out_shape.remove(a);
        }
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self], move |dy, g| {
            k::slice_axis_backward(dy, &shape, a, start, len, step, g.acc(i));
        })
    }

    /// Splits axis `axis` into pieces of `size` items, the last one smaller if `size` does
    /// not divide the axis (`torch.split(x, size, dim)`).
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn split(self, size: usize, axis: impl Axis) -> Vec<Var<'t>> {
        let shape = self.shape();
        let a = axis.resolve("split", &shape);
        assert!(size >= 1, "split: size must be at least 1, got 0 (shape {shape:?})");
        let n = shape[a];
        if n == 0 {
            return vec![self.narrow(a, 0, 0)];
        }
        (0..n).step_by(size).map(|s| self.narrow(a, s, size.min(n - s))).collect()
    }

    /// Splits axis `axis` into pieces of the given sizes, which must add up to the axis
    /// (`torch.split(x, [s0, s1, ...], dim)`).
    ///
    /// # Panics
    /// If the sizes do not add up to the axis.
    pub fn split_sizes(self, sizes: &[usize], axis: impl Axis) -> Vec<Var<'t>> {
        let shape = self.shape();
        let a = axis.resolve("split_sizes", &shape);
        let total: usize = sizes.iter().sum();
        assert_eq!(
            total, shape[a],
            "split_sizes: sizes {sizes:?} add up to {total}, axis {a} of shape {shape:?} has {}",
            shape[a]
        );
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let piece = self.narrow(a, start, len);
                start += len;
                piece
            })
            .collect()
    }

    /// Splits axis `axis` into `chunks` pieces of `ceil(size / chunks)` items, the last
    /// smaller, so there may be fewer than `chunks` pieces (`torch.chunk`).
    ///
    /// # Panics
    /// If `chunks` is 0.
    pub fn chunk(self, chunks: usize, axis: impl Axis) -> Vec<Var<'t>> {
        let shape = self.shape();
        let a = axis.resolve("chunk", &shape);
        assert!(chunks >= 1, "chunk: chunks must be at least 1, got 0 (shape {shape:?})");
        let size = shape[a].div_ceil(chunks).max(1);
        self.split(size, a)
    }
}
