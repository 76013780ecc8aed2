//! The tape: values of one forward pass in creation order, and how to send gradients back.
//!
//! Nodes are appended as operations run, so creation order is a topological order: every
//! node's inputs come before it. `backward` therefore needs no graph search; it walks the
//! nodes once from the loss down to the leaves, calling each node's backward closure.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use adamant_tensor::{pool, rng, Precision, Tensor};

use crate::gradients::Gradients;
use crate::param::{Param, ParamId};

/// Whether layers behave as in training (dropout active) or evaluation (dropout is the
/// identity). PyTorch's `model.train()` / `model.eval()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout draws masks.
    Train,
    /// Evaluation: dropout passes its input through.
    Eval,
}

/// A gradient buffer on its way back. Shared (`Rc`) so that a node whose gradient flows on
/// unchanged to several inputs (a residual sum) hands them all the same buffer; whoever then
/// writes into a shared buffer gets its own copy first ([`Rc::make_mut`]), which in a
/// residual network is nobody: one branch only reads it, and by the time the other
/// accumulates into it the reader has dropped it.
type GradBuf = Rc<Vec<f32>>;

/// The buffer to write into: copied first if another node shares it.
fn writable(buf: &mut GradBuf) -> &mut [f32] {
    Rc::<Vec<f32>>::make_mut(buf).as_mut_slice()
}

/// The buffer itself if no other node shares it, else a copy.
fn unshare(buf: GradBuf) -> Vec<f32> {
    Rc::try_unwrap(buf).unwrap_or_else(|shared| (*shared).clone())
}

/// Where an op's backward closure sends gradients: one lazily zeroed buffer per node, taken
/// from the buffer pool (the previous step's gradients of the same size).
pub(crate) struct GradSink<'a> {
    nodes: &'a [Node],
    grads: &'a mut [Option<GradBuf>],
}

impl GradSink<'_> {
    /// Whether node `i` needs a gradient (it depends on a parameter). Ops skip the work of
    /// gradients nobody needs, e.g. the input gradient of a network's first layer.
    pub(crate) fn wants(&self, i: usize) -> bool {
        self.nodes[i].needs_grad
    }

    /// The gradient buffer of node `i`, zero-filled on first use; ops accumulate into it.
    pub(crate) fn acc(&mut self, i: usize) -> &mut [f32] {
        let n = self.nodes[i].value.numel();
        writable(self.grads[i].get_or_insert_with(|| Rc::new(pool::take_zeroed(n))))
    }

    /// Node `i`'s gradient buffer and whether it is fresh. A fresh buffer holds arbitrary
    /// values (it skips [`GradSink::acc`]'s zero fill): the op must overwrite every element,
    /// as a GEMM without accumulation or a copy does; otherwise it accumulates as into `acc`.
    pub(crate) fn slot(&mut self, i: usize) -> (&mut [f32], bool) {
        let fresh = self.grads[i].is_none();
        let n = self.nodes[i].value.numel();
        (writable(self.grads[i].get_or_insert_with(|| Rc::new(pool::take_for_overwrite(n)))), fresh)
    }

    /// Adds `grad` (node `i`'s shape) to node `i`'s gradient. The first contribution is
    /// copied in rather than added to zeros: the same values, except that a `-0.0` stays
    /// `-0.0` where `0.0 + -0.0` would give `0.0`.
    pub(crate) fn add(&mut self, i: usize, grad: &[f32]) {
        match &mut self.grads[i] {
            Some(acc) => adamant_tensor::kernels::add_assign(grad, writable(acc)),
            None => {
                let mut fresh = pool::take_for_overwrite(grad.len());
                fresh.copy_from_slice(grad);
                self.grads[i] = Some(Rc::new(fresh));
            }
        }
    }

    /// [`GradSink::add`] of a buffer the op owns: the first contribution becomes the gradient
    /// itself, no copy.
    pub(crate) fn add_owned(&mut self, i: usize, grad: Vec<f32>) {
        match &mut self.grads[i] {
            Some(acc) => {
                adamant_tensor::kernels::add_assign(&grad, writable(acc));
                pool::recycle(grad);
            }
            None => self.grads[i] = Some(Rc::new(grad)),
        }
    }

    /// [`GradSink::add`] of a buffer that other nodes may hold too: the first contribution
    /// shares it, no copy.
    fn add_shared(&mut self, i: usize, grad: &GradBuf) {
        match &mut self.grads[i] {
            Some(acc) => adamant_tensor::kernels::add_assign(grad, writable(acc)),
            None => self.grads[i] = Some(Rc::clone(grad)),
        }
    }

    /// Takes node `i`'s gradient buffer out, so that an op can write several inputs'
    /// gradients at once; give it back with [`GradSink::put`].
    pub(crate) fn take(&mut self, i: usize) -> Vec<f32> {
        let n = self.nodes[i].value.numel();
        self.grads[i].take().map_or_else(|| pool::take_zeroed(n), unshare)
    }

    /// Returns a buffer taken with [`GradSink::take`].
    pub(crate) fn put(&mut self, i: usize, grad: Vec<f32>) {
        debug_assert!(self.grads[i].is_none(), "GradSink::put: node {i} already has a buffer");
        self.grads[i] = Some(Rc::new(grad));
    }
}

/// An op's backward: given the output gradient `dy`, accumulate input gradients. The
/// closure owns (shared, O(1) clones of) whatever forward values it needs.
pub(crate) type BackwardFn = Box<dyn Fn(&[f32], &mut GradSink)>;

/// How a node sends its gradient back.
pub(crate) enum Backward {
    /// An op's closure.
    Op(BackwardFn),
    /// The gradient flows on unchanged (a reshape; a sum of same-shape values) to these
    /// inputs, which share the buffer.
    Identity(Vec<usize>),
}

pub(crate) struct Node {
    value: Tensor,
    /// True when the node depends on a parameter and the tape records.
    needs_grad: bool,
    /// Set on leaves made by [`Tape::param`].
    param: Option<ParamId>,
    pub(crate) backward: Option<Backward>,
}

/// The record of one forward pass (one training step).
///
/// Make a fresh tape per step, read parameters into it with [`Tape::param`], compose
/// [`Var`] operations, call [`Var::backward`] on the loss, then drop the tape: every buffer
/// of the step is freed with it.
pub struct Tape {
    mode: Mode,
    seed: u64,
    record: bool,
    /// The precision of the products recorded from now on (see [`Tape::set_precision`]).
    precision: Cell<Precision>,
    /// The global index of this tape's first example (see [`Tape::set_example_offset`]).
    example_offset: Cell<usize>,
    pub(crate) nodes: RefCell<Vec<Node>>,
}

impl Tape {
    /// A recording tape. `seed` drives the step's randomness (dropout masks, VAE noise):
    /// the same seed and the same sequence of ops give the same draws.
    pub fn new(mode: Mode, seed: u64) -> Tape {
        Tape::with_options(mode, seed, true)
    }

    /// A tape for evaluation: eval mode and no recording. Ops compute values only; no
    /// backward closure, mask or saved buffer is kept (PyTorch's `torch.no_grad()` with
    /// `model.eval()`).
    pub fn inference() -> Tape {
        Tape::with_options(Mode::Eval, 0, false)
    }

    /// A tape with every option explicit.
    pub fn with_options(mode: Mode, seed: u64, record: bool) -> Tape {
        Tape {
            mode,
            seed,
            record,
            precision: Cell::new(Precision::F32),
            example_offset: Cell::new(0),
            nodes: RefCell::new(Vec::new()),
        }
    }

    /// Says that the batch on this tape is examples `first..` of a larger batch, split across
    /// processes (data-parallel training): the per-example randomness of the step (dropout
    /// masks, the VAE's noise) is keyed by the example's index in the whole batch, so each
    /// piece draws its share of what one process draws for the whole batch. 0 by default.
    /// Ops read it when they are recorded; it applies to tensors whose first axis is the batch.
    pub fn set_example_offset(&self, first: usize) {
        self.example_offset.set(first);
    }

    /// The global index of this tape's first example ([`Tape::set_example_offset`]).
    pub fn example_offset(&self) -> usize {
        self.example_offset.get()
    }

    /// The precision of the matrix products recorded from now on: [`Precision::F32`] unless
    /// changed with [`Tape::set_precision`] or [`Tape::autocast`].
    pub fn precision(&self) -> Precision {
        self.precision.get()
    }

    /// Sets the precision of the matrix products recorded from now on (mixed precision,
    /// PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)` for a whole step).
    ///
    /// With [`Precision::Bf16`], the ops built on a GEMM ([`Var::matmul`] and its transposed
    /// forms, [`Var::linear`], [`Var::conv2d`], [`Var::conv1d`], and the products of
    /// [`Var::scaled_dot_product_attention`] and [`Var::packed_self_attention`]) round their
    /// operands to bf16 and sum the products in f32, in the forward pass and in their
    /// backward products (which keep the precision their op was recorded with). Their
    /// results, and every other op (elementwise, reductions, softmax, losses,
    /// normalisations), stay f32, as do the parameters, the gradients and the optimizer's
    /// state: PyTorch's CPU autocast list for bf16.
    /// Where the CPU lacks AVX512_BF16 the same products come from the f32 GEMM on rounded
    /// operands (slower, not faster than f32).
    pub fn set_precision(&self, precision: Precision) {
        self.precision.set(precision);
    }

    /// Runs `f` with the matrix products in `precision`, then restores the previous one
    /// (PyTorch's `with torch.autocast(...)` block); see [`Tape::set_precision`].
    ///
    /// ```
    /// use adamant_autodiff::{Mode, Tape};
    /// use adamant_tensor::{Precision, Tensor};
    ///
    /// let tape = Tape::new(Mode::Train, 0);
    /// let x = tape.constant(Tensor::from_vec(vec![1.0 + 1.0 / 512.0, 1.0], &[1, 2]));
    /// let w = tape.constant(Tensor::from_vec(vec![1.0, 1.0], &[2, 1]));
    /// let exact = x.matmul(w);
    /// let rounded = tape.autocast(Precision::Bf16, || x.matmul(w));
    /// assert_eq!(exact.value().data(), &[2.0 + 1.0 / 512.0]);
    /// assert_eq!(rounded.value().data(), &[2.0]); // 1 + 2^-9 has no bf16: it rounds to 1
    /// assert_eq!(tape.precision(), Precision::F32);
    /// ```
    pub fn autocast<R>(&self, precision: Precision, f: impl FnOnce() -> R) -> R {
        /// Puts the previous precision back, also when `f` panics.
        struct Restore<'a>(&'a Tape, Precision);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.precision.set(self.1);
            }
        }
        let _restore = Restore(self, self.precision.replace(precision));
        f()
    }

    /// Train or eval.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether dropout is active.
    pub fn is_training(&self) -> bool {
        self.mode == Mode::Train
    }

    /// Whether ops record how to compute gradients.
    pub fn is_recording(&self) -> bool {
        self.record
    }

    /// The step seed given at creation.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether no node has been recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.borrow().is_empty()
    }

    /// A leaf reading a parameter. O(1): the value's storage is shared, not copied.
    pub fn param(&self, p: &Param) -> Var<'_> {
        self.push_node(Node {
            value: p.value().clone(),
            needs_grad: self.record,
            param: Some(p.id()),
            backward: None,
        })
    }

    /// A leaf holding data that needs no gradient (inputs, targets).
    ///
    /// Nothing flows back through a constant, even when it was computed from a parameter's
    /// value: `tape.constant(table.value().gather_rows(..))` freezes the table. Use
    /// [`Var::embedding`] to read rows of a trainable table.
    pub fn constant(&self, t: Tensor) -> Var<'_> {
        self.push_node(Node { value: t, needs_grad: false, param: None, backward: None })
    }

    /// The random key of node `index` in this step: a mix of the tape's seed and the index,
    /// so that two random ops of one step never share their draws.
    pub(crate) fn node_key(&self, index: usize) -> u64 {
        rng::mix(self.seed, index as u64)
    }

    /// Index the next pushed node will get.
    pub(crate) fn next_index(&self) -> usize {
        self.nodes.borrow().len()
    }

    fn push_node(&self, node: Node) -> Var<'_> {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        Var { tape: self, index: nodes.len() - 1 }
    }

    /// Records an op's result. `backward` is kept only when the tape records and some input
    /// needs a gradient; otherwise it is dropped at once with whatever it captured.
    pub(crate) fn push_op<F>(&self, value: Tensor, inputs: &[Var<'_>], backward: F) -> Var<'_>
    where
        F: Fn(&[f32], &mut GradSink) + 'static,
    {
        let needs_grad = self.record && {
            let nodes = self.nodes.borrow();
            inputs.iter().any(|v| {
                assert!(std::ptr::eq(v.tape, self), "an op mixed Vars of two different tapes");
                nodes[v.index].needs_grad
            })
        };
        let backward = needs_grad.then(|| Backward::Op(Box::new(backward)));
        self.push_node(Node { value, needs_grad, param: None, backward })
    }

    /// Records a value whose gradient is its output gradient, unchanged, for each input
    /// (same number of elements): a view, or a sum of same-shape values. The backward passes
    /// the buffer on instead of copying it.
    pub(crate) fn push_identity(&self, value: Tensor, inputs: &[Var<'_>]) -> Var<'_> {
        let needs_grad = self.record && {
            let nodes = self.nodes.borrow();
            inputs.iter().any(|v| {
                assert!(std::ptr::eq(v.tape, self), "an op mixed Vars of two different tapes");
                debug_assert_eq!(nodes[v.index].value.numel(), value.numel());
                nodes[v.index].needs_grad
            })
        };
        let backward = needs_grad.then(|| Backward::Identity(inputs.iter().map(|v| v.index).collect()));
        self.push_node(Node { value, needs_grad, param: None, backward })
    }

    fn backward_from(&self, root: usize) -> Gradients {
        let nodes = self.nodes.borrow();
        let root_node = &nodes[root];
        assert_eq!(
            root_node.value.numel(),
            1,
            "backward: the loss must be a single value, got shape {:?}",
            root_node.value.shape()
        );
        assert!(self.record, "backward: this tape does not record (made by Tape::inference)");
        let mut grads: Vec<Option<GradBuf>> = Vec::with_capacity(root + 1);
        grads.resize_with(root + 1, || None);
        grads[root] = Some(Rc::new(vec![1.0]));
        let mut out = Gradients::new();
        for i in (0..=root).rev() {
            // Taking the buffer out frees it as soon as this node has passed it on.
            let Some(dy) = grads[i].take() else { continue };
            let node = &nodes[i];
            if let Some(id) = node.param {
                out.accumulate(id, Tensor::from_vec(unshare(dy), node.value.shape()));
                continue;
            }
            let mut sink = GradSink { nodes: &nodes, grads: &mut grads[..i] };
            match &node.backward {
                Some(Backward::Op(backward)) => backward(&dy, &mut sink),
                Some(Backward::Identity(inputs)) => {
                    for &j in inputs {
                        if sink.wants(j) {
                            sink.add_shared(j, &dy);
                        }
                    }
                }
                None => {}
            }
            // Passed on: unless an input shares it, the next gradient of this size (this
            // step's or the next's) reuses it.
            if let Ok(buf) = Rc::try_unwrap(dy) {
                pool::recycle(buf);
            }
        }
        out
    }
}

/// A value on a tape: a cheap `Copy` handle (the tape and a node index).
///
/// Operations on `Var`s compute their value at once and record how to propagate gradients.
#[derive(Clone, Copy)]
pub struct Var<'t> {
    pub(crate) tape: &'t Tape,
    pub(crate) index: usize,
}

impl<'t> Var<'t> {
    /// The tape this value lives on.
    pub fn tape(self) -> &'t Tape {
        self.tape
    }

    /// The position of this value's node on its tape.
    pub fn index(self) -> usize {
        self.index
    }

    /// The value. O(1): shares the node's storage.
    pub fn value(self) -> Tensor {
        self.tape.nodes.borrow()[self.index].value.clone()
    }

    /// The shape of the value.
    pub fn shape(self) -> Vec<usize> {
        self.tape.nodes.borrow()[self.index].value.shape().to_vec()
    }

    /// The single value of a one-element `Var` (e.g. a loss).
    pub fn item(self) -> f32 {
        self.tape.nodes.borrow()[self.index].value.item()
    }

    /// Whether gradients flow through this value.
    pub fn requires_grad(self) -> bool {
        self.tape.nodes.borrow()[self.index].needs_grad
    }

    /// The same value as a constant: gradients stop here (PyTorch's `detach`).
    pub fn detach(self) -> Var<'t> {
        self.tape.constant(self.value())
    }

    /// Reverse-mode differentiation of this scalar with respect to every parameter it depends
    /// on. Gradients of a `Var` used several times are summed.
    ///
    /// # Panics
    /// If the value is not a single element or the tape does not record.
    pub fn backward(self) -> Gradients {
        self.tape.backward_from(self.index)
    }
}

impl std::fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var#{} {:?}", self.index, self.value())
    }
}
