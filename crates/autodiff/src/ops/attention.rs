//! Scaled dot-product attention as one fused op (PyTorch's
//! `F.scaled_dot_product_attention`): the scores, mask, softmax, dropout and the product with
//! the values in one forward kernel, and one backward kernel that sends gradients to the
//! queries, keys and values (formulas in `adamant-tensor`'s `kernels/attention.rs`).
//!
//! Only the softmax probabilities are saved for the backward (`[..., t, s]`), as PyTorch's
//! math backend does; the dropout mask is redrawn from its key.

use adamant_tensor::{broadcast_shapes, kernels as k, numel, pool, Tensor};

use crate::tape::Var;

/// An attention mask (PyTorch's `attn_mask`), broadcast against the scores `[..., t, s]`.
#[derive(Clone, Copy, Debug)]
pub enum AttentionMask<'a> {
    /// PyTorch's boolean mask: `true` where a query may attend to a key, `false` where not.
    Bool {
        /// The mask values, row-major in `shape`.
        keep: &'a [bool],
        /// Its shape, broadcastable to `[..., t, s]`.
        shape: &'a [usize],
    },
    /// PyTorch's float mask: added to the scaled scores (`-inf` masks a position).
    Additive(&'a Tensor),
}

/// The options of [`Var::scaled_dot_product_attention`], PyTorch's keyword arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attention<'a> {
    /// `attn_mask`; `None` lets every query see every key.
    pub mask: Option<AttentionMask<'a>>,
    /// `is_causal`: query `i` sees keys `j <= i` only (a lower-triangular mask aligned at the
    /// top left, as PyTorch). Not together with `mask`.
    pub causal: bool,
    /// `dropout_p`: dropout on the attention weights, in training mode only (an eval tape
    /// never drops, as everywhere in adamant; PyTorch's functional form drops whenever
    /// `dropout_p > 0`, which `nn.MultiheadAttention` avoids the same way).
    pub dropout_p: f32,
    /// `scale`; `None` is `1 / sqrt(d)` for keys of width `d`.
    pub scale: Option<f32>,
}

impl<'t> Var<'t> {
    /// Scaled dot-product attention of queries `self` `[..., t, d]` over keys `[..., s, d]`
    /// and values `[..., s, dv]` (the same leading axes, e.g. `[batch, heads]`):
    /// `softmax(scale * Q K^T + mask) V`, shape `[..., t, dv]` (PyTorch's
    /// `F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)`).
    ///
    /// A query whose every key is masked gets a zero output (PyTorch gives NaN).
    ///
    /// # Panics
    /// If the shapes do not fit, the mask does not broadcast to `[..., t, s]`, both `mask` and
    /// `causal` are set, or `dropout_p` is outside `[0, 1)`; the message names the shapes.
    pub fn scaled_dot_product_attention(
        self,
        key: Var<'t>,
        value: Var<'t>,
        options: &Attention<'_>,
    ) -> Var<'t> {
        let (q, kk, v) = (self.value(), key.value(), value.value());
        let (qs, ks, vs) = (q.shape(), kk.shape(), v.shape());
        let op = "scaled_dot_product_attention";
        let shapes = format!("query {qs:?}, key {ks:?}, value {vs:?}");
        assert!(
            qs.len() >= 2 && ks.len() == qs.len() && vs.len() == qs.len(),
            "{op}: ranks differ or are below 2: {shapes}"
        );
        let lead = &qs[..qs.len() - 2];
        assert!(
            &ks[..ks.len() - 2] == lead && &vs[..vs.len() - 2] == lead,
            "{op}: leading axes differ: {shapes}"
        );
        let (t, d, s, dv) = (qs[qs.len() - 2], qs[qs.len() - 1], ks[ks.len() - 2], vs[vs.len() - 1]);
        assert!(
            ks[ks.len() - 1] == d && vs[vs.len() - 2] == s,
            "{op}: query/key widths or key/value lengths differ: {shapes}"
        );
        check_options(op, options);

        let dims = k::AttentionDims { batch: numel(lead), t, s, d, dv };
        // The first axis is the example: a piece of a batch starts this many entries in.
        let dropout_first_entry =
            self.tape.example_offset() * (numel(lead) / lead.first().copied().unwrap_or(1).max(1));
        let scores_shape: Vec<usize> = lead.iter().copied().chain([t, s]).collect();
        let bias = options.mask.map(|mask| additive_mask(op, mask, &scores_shape));
        let dropout = (options.dropout_p > 0.0 && self.tape.is_training())
            .then(|| (options.dropout_p, self.tape.node_key(self.tape.next_index())));
        let scale = options.scale.unwrap_or(1.0 / (d as f32).sqrt());
        let causal = options.causal;

        let mut probs = pool::take_for_overwrite(numel(&scores_shape));
        let mut out = pool::take_for_overwrite(dims.batch * t * dv);
        let precision = self.tape.precision();
        let forward_options = k::AttentionOptions {
            scale,
            bias: bias.as_deref(),
            causal,
            dropout,
            dropout_first_entry,
            precision,
        };
        k::attention_forward(q.data(), kk.data(), v.data(), dims, forward_options, &mut probs, &mut out);
        let out_shape: Vec<usize> = lead.iter().copied().chain([t, dv]).collect();
        // Masked positions have probability 0 and the backward never reads the mask itself.
        drop(bias);
        let probs = Tensor::from_vec(probs, &scores_shape);
        let (iq, ik, iv) = (self.index, key.index, value.index);
        self.tape.push_op(Tensor::from_vec(out, &out_shape), &[self, key, value], move |dy, g| {
            // Overwritten by the kernel.
            let (mut dq, mut dk, mut dvg) = (
                pool::take_for_overwrite(q.numel()),
                pool::take_for_overwrite(kk.numel()),
                pool::take_for_overwrite(v.numel()),
            );
            let options =
                k::AttentionOptions { scale, bias: None, causal, dropout, dropout_first_entry, precision };
            k::attention_backward(
                q.data(),
                kk.data(),
                v.data(),
                probs.data(),
                dims,
                options,
                dy,
                &mut dq,
                &mut dk,
                &mut dvg,
            );
            // Added, not put: the three operands may be one node (self-attention on one Var).
            // A node without a gradient yet takes the buffer itself.
            for (i, grad) in [(iq, dq), (ik, dk), (iv, dvg)] {
                if g.wants(i) {
                    g.add_owned(i, grad);
                } else {
                    pool::recycle(grad);
                }
            }
        })
    }
}

impl<'t> Var<'t> {
    /// Causal or masked self-attention over a packed `qkv` (this value, `[B, T, 3C]`: the
    /// output of one `C -> 3C` projection, queries in columns `0..C`, keys in `C..2C`, values
    /// in `2C..3C`, each cut into `heads` heads of width `d = C / heads`), heads merged in the
    /// output `[B, T, C]`. The same as
    ///
    /// ```text
    /// q, k, v = qkv.split(C, dim=2)                                   # [B, T, C] each
    /// q, k, v = (z.view(B, T, heads, d).transpose(1, 2) for z in (q, k, v))
    /// F.scaled_dot_product_attention(q, k, v, ...).transpose(1, 2).reshape(B, T, C)
    /// ```
    ///
    /// bit for bit, without the five copies of that route and their backwards: the kernel
    /// reads each head's queries, keys and values where the projection wrote them, writes each
    /// head's output into its columns of the merged rows, and its backward writes the packed
    /// gradient directly. A mask broadcasts against the scores `[B, heads, T, T]`.
    ///
    /// # Panics
    /// If this value is not `[B, T, 3C]` with `C` divisible by `heads`, or as
    /// [`Var::scaled_dot_product_attention`] for the options.
    pub fn packed_self_attention(self, heads: usize, options: &Attention<'_>) -> Var<'t> {
        let qkv = self.value();
        let shape = qkv.shape().to_vec();
        let op = "packed_self_attention";
        assert!(
            shape.len() == 3 && heads > 0 && shape[2].is_multiple_of(3 * heads),
            "{op}: expected qkv of shape [batch, length, 3 * C] with C divisible by heads = {heads}, got {shape:?}"
        );
        let (examples, t, c) = (shape[0], shape[1], shape[2] / 3);
        let d = c / heads;
        check_options(op, options);
        let dims = k::AttentionDims { batch: examples * heads, t, s: t, d, dv: d };
        let dropout_first_entry = self.tape.example_offset() * heads;
        let scores_shape = [examples, heads, t, t];
        let bias = options.mask.map(|mask| additive_mask(op, mask, &scores_shape));
        let dropout = (options.dropout_p > 0.0 && self.tape.is_training())
            .then(|| (options.dropout_p, self.tape.node_key(self.tape.next_index())));
        let scale = options.scale.unwrap_or(1.0 / (d as f32).sqrt());
        let causal = options.causal;

        let merged = k::OperandLayout::contiguous(t, c);
        let mut probs = pool::take_for_overwrite(numel(&scores_shape));
        let mut out = pool::take_for_overwrite(examples * t * c);
        let precision = self.tape.precision();
        let forward_options = k::AttentionOptions {
            scale,
            bias: bias.as_deref(),
            causal,
            dropout,
            dropout_first_entry,
            precision,
        };
        let inputs = k::AttentionInputs::packed(qkv.data(), dims, heads);
        k::attention_forward_with(inputs, dims, forward_options, &mut probs, &mut out, merged);
        drop(bias);
        let probs = Tensor::from_vec(probs, &scores_shape);
        let i = self.index;
        self.tape.push_op(Tensor::from_vec(out, &[examples, t, c]), &[self], move |dy, g| {
            let options =
                k::AttentionOptions { scale, bias: None, causal, dropout, dropout_first_entry, precision };
            let inputs = k::AttentionInputs::packed(qkv.data(), dims, heads);
            let backward = |dqkv: &mut [f32]| {
                let grads = k::AttentionGrads::Packed(dqkv);
                k::attention_backward_with(inputs, probs.data(), dims, options, dy, merged, grads);
            };
            // The kernel overwrites every float of the packed gradient.
            let (acc, fresh) = g.slot(i);
            if fresh {
                backward(acc);
            } else {
                let mut dqkv = pool::take_for_overwrite(acc.len());
                backward(&mut dqkv);
                k::add_assign(&dqkv, acc);
                pool::recycle(dqkv);
            }
        })
    }
}

/// The checks of the options that do not depend on the shapes.
fn check_options(op: &str, options: &Attention<'_>) {
    assert!(!(options.causal && options.mask.is_some()), "{op}: give either a mask or causal, not both");
    assert!(
        (0.0..1.0).contains(&options.dropout_p),
        "{op}: dropout_p must be in [0, 1), got {}",
        options.dropout_p
    );
}

/// The mask as additive `f32` values broadcast to `scores_shape` (`false` becomes `-inf`).
fn additive_mask(op: &str, mask: AttentionMask<'_>, scores_shape: &[usize]) -> Vec<f32> {
    let (values, shape): (Vec<f32>, &[usize]) = match mask {
        AttentionMask::Bool { keep, shape } => {
            assert_eq!(
                keep.len(),
                numel(shape),
                "{op}: a boolean mask of {} values for shape {shape:?}",
                keep.len()
            );
            (keep.iter().map(|&k| if k { 0.0 } else { f32::NEG_INFINITY }).collect(), shape)
        }
        AttentionMask::Additive(t) => (t.data().to_vec(), t.shape()),
    };
    assert!(
        broadcast_shapes(shape, scores_shape).as_deref() == Some(scores_shape),
        "{op}: mask of shape {shape:?} does not broadcast to the scores' shape {scores_shape:?}"
    );
    let mut full = vec![0.0; numel(scores_shape)];
    k::broadcast_to(&values, shape, scores_shape, &mut full);
    full
}
