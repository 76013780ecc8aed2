//! Attention layers: [`MultiheadAttention`] (PyTorch's `nn.MultiheadAttention`, batch-first)
//! and [`TransformerBlock`] (the pre-norm GPT block), both over the fused
//! [`Var::scaled_dot_product_attention`].

use adamant_autodiff::{Attention, AttentionMask, Param, Var};
use adamant_tensor::{rng::Rng, Tensor};

use crate::{init, Dense, LayerNorm, Module};

/// `[B, T, heads * d]` to `[B, heads, T, d]`: one attention entry per example and head.
fn split_heads<'t>(x: Var<'t>, heads: usize) -> Var<'t> {
    let shape = x.shape();
    let (b, t, e) = (shape[0], shape[1], shape[2]);
    x.reshape(&[b, t, heads, e / heads]).transpose(1, 2)
}

/// `[B, heads, T, d]` back to `[B, T, heads * d]`.
fn merge_heads(x: Var<'_>) -> Var<'_> {
    let shape = x.shape();
    let (b, h, t, d) = (shape[0], shape[1], shape[2], shape[3]);
    x.transpose(1, 2).reshape(&[b, t, h * d])
}

fn check_input(op: &str, x: &[usize], embed_dim: usize) {
    assert!(
        x.len() == 3 && x[2] == embed_dim,
        "{op}: expected [batch, length, {embed_dim}] input (batch first), got shape {x:?}"
    );
}

/// Multi-head attention with PyTorch's `nn.MultiheadAttention(embed_dim, num_heads,
/// dropout=0.0, bias=True, batch_first=True)` parameters and semantics: `q, k, v` are
/// projected by the three row blocks of `in_proj_weight` `[3E, E]` (plus `in_proj_bias`),
/// split into heads, attended with scale `1/sqrt(E / heads)`, merged and projected by
/// `out_proj`. Initialisation as PyTorch: `in_proj_weight` Xavier-uniform, both biases zero,
/// `out_proj.weight` as `nn.Linear`.
///
/// As a [`Module`], `forward(x)` is self-attention, causal when the layer was built
/// [`causal`](MultiheadAttention::causal); [`MultiheadAttention::attend`] takes separate
/// query, key and value and a mask. Returns the attended values only (PyTorch's
/// `need_weights=False`).
#[derive(Module)]
pub struct MultiheadAttention {
    /// `[3 E, E]`: the query, key and value projections stacked by rows.
    pub in_proj_weight: Param,
    /// `[3 E]`, when the layer has biases.
    pub in_proj_bias: Option<Param>,
    /// The output projection `E -> E`.
    pub out_proj: Dense,
    num_heads: usize,
    dropout: f32,
    is_causal: bool,
}

impl MultiheadAttention {
    /// PyTorch's defaults: biases, no dropout, not causal.
    ///
    /// # Panics
    /// If `embed_dim` is not divisible by `num_heads`.
    pub fn new(embed_dim: usize, num_heads: usize, rng: &mut Rng) -> MultiheadAttention {
        MultiheadAttention::with_options(embed_dim, num_heads, 0.0, true, rng)
    }

    /// Every option of PyTorch's constructor that applies: `dropout` on the attention weights
    /// (training only) and `bias`.
    pub fn with_options(
        embed_dim: usize,
        num_heads: usize,
        dropout: f32,
        bias: bool,
        rng: &mut Rng,
    ) -> MultiheadAttention {
        assert!(
            num_heads > 0 && embed_dim.is_multiple_of(num_heads),
            "MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}"
        );
        let in_proj_weight =
            Param::new("in_proj_weight", init::xavier_uniform(&[3 * embed_dim, embed_dim], 1.0, rng));
        let mut out_proj = if bias {
            Dense::new(embed_dim, embed_dim, rng)
        } else {
            Dense::without_bias(embed_dim, embed_dim, rng)
        };
        if let Some(b) = &mut out_proj.bias {
            b.set_value(Tensor::zeros(&[embed_dim]));
        }
        MultiheadAttention {
            in_proj_weight,
            in_proj_bias: bias.then(|| Param::new("in_proj_bias", Tensor::zeros(&[3 * embed_dim]))),
            out_proj,
            num_heads,
            dropout,
            is_causal: false,
        }
    }

    /// The same layer, causal as self-attention: position `i` attends to positions `<= i`.
    pub fn causal(mut self) -> MultiheadAttention {
        self.is_causal = true;
        self
    }

    /// The embedding width `E`.
    pub fn embed_dim(&self) -> usize {
        self.in_proj_weight.shape()[1]
    }

    /// Attention of `query` `[B, T, E]` over `key` and `value` `[B, S, E]`, with an optional
    /// mask (broadcast to `[B, heads, T, S]`) or causal masking; output `[B, T, E]`.
    pub fn attend<'t>(
        &self,
        query: Var<'t>,
        key: Var<'t>,
        value: Var<'t>,
        mask: Option<AttentionMask<'_>>,
        causal: bool,
    ) -> Var<'t> {
        let e = self.embed_dim();
        for x in [query, key, value] {
            check_input("MultiheadAttention", &x.shape(), e);
        }
        let tape = query.tape();
        let w = tape.param(&self.in_proj_weight);
        let b = self.in_proj_bias.as_ref().map(|p| tape.param(p));
        // Rows [i E, (i + 1) E) of the stacked projections: query, key, value.
        let project = |x: Var<'t>, i: usize| {
            let y = x.matmul_nt(w.narrow(0, i * e, e));
            match b {
                Some(b) => y + b.narrow(0, i * e, e),
                None => y,
            }
        };
        let (q, k, v) = if query.index() == key.index() && key.index() == value.index() {
            // Self-attention: one product with the whole [3E, E] weight, then three views.
            let qkv = query.matmul_nt(w);
            let qkv = match b {
                Some(b) => qkv + b,
                None => qkv,
            };
            let parts = qkv.chunk(3, -1);
            (parts[0], parts[1], parts[2])
        } else {
            (project(query, 0), project(key, 1), project(value, 2))
        };
        let h = self.num_heads;
        let options = Attention { mask, causal, dropout_p: self.dropout, scale: None };
        let y =
            split_heads(q, h).scaled_dot_product_attention(split_heads(k, h), split_heads(v, h), &options);
        self.out_proj.forward(merge_heads(y))
    }
}

impl Module for MultiheadAttention {
    /// Self-attention of `x` `[B, T, E]`, causal if the layer is.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.attend(x, x, x, None, self.is_causal)
    }
}

/// The pre-norm Transformer block of GPT-2 and nanoGPT, with a GELU MLP:
///
/// ```text
/// x = x + proj(attention(ln_1(x)))        causal self-attention, `heads` heads
/// x = x + fc2(gelu(fc1(ln_2(x))))         fc1: C -> 4C, fc2: 4C -> C, exact (erf) GELU
/// ```
///
/// Parameter names are those of the block in `torch_char_gpt.py` (the PyTorch reference of the
/// character-level GPT experiment): `ln_1`, `qkv` (one `C -> 3C` linear for queries, keys and
/// values), `proj`, `ln_2`, `fc1`, `fc2`; so its `state_dict` loads here. Initialisation is
/// PyTorch's default for each layer; a GPT re-initialises as its recipe says.
#[derive(Module)]
pub struct TransformerBlock {
    /// The norm before attention.
    pub ln_1: LayerNorm,
    /// Queries, keys and values: `C -> 3C`.
    pub qkv: Dense,
    /// The attention's output projection `C -> C`.
    pub proj: Dense,
    /// The norm before the MLP.
    pub ln_2: LayerNorm,
    /// The MLP's expansion `C -> 4C`.
    pub fc1: Dense,
    /// The MLP's projection `4C -> C`.
    pub fc2: Dense,
    heads: usize,
    is_causal: bool,
    dropout: f32,
}

impl TransformerBlock {
    /// A causal block of width `embed_dim` with `heads` heads and no dropout.
    ///
    /// # Panics
    /// If `embed_dim` is not divisible by `heads`.
    pub fn new(embed_dim: usize, heads: usize, rng: &mut Rng) -> TransformerBlock {
        assert!(
            heads > 0 && embed_dim.is_multiple_of(heads),
            "TransformerBlock: embed_dim {embed_dim} must be divisible by heads {heads}"
        );
        let c = embed_dim;
        TransformerBlock {
            ln_1: LayerNorm::new(&[c]),
            qkv: Dense::new(c, 3 * c, rng),
            proj: Dense::new(c, c, rng),
            ln_2: LayerNorm::new(&[c]),
            fc1: Dense::new(c, 4 * c, rng),
            fc2: Dense::new(4 * c, c, rng),
            heads,
            is_causal: true,
            dropout: 0.0,
        }
    }

    /// The same block attending in both directions (an encoder block).
    pub fn bidirectional(mut self) -> TransformerBlock {
        self.is_causal = false;
        self
    }

    /// The same block with dropout `p` on the attention weights and after each residual
    /// branch (training only), as GPT-2.
    pub fn with_dropout(mut self, p: f32) -> TransformerBlock {
        self.dropout = p;
        self
    }
}

impl Module for TransformerBlock {
    /// `[B, T, C]` to `[B, T, C]`.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let c = self.ln_1.normalized_shape()[0];
        check_input("TransformerBlock", &x.shape(), c);
        // Attention reads the heads where the projection wrote them: no split or merge copies.
        let options = Attention { causal: self.is_causal, dropout_p: self.dropout, ..Attention::default() };
        let attended = self.qkv.forward(self.ln_1.forward(x)).packed_self_attention(self.heads, &options);
        let x = x + self.proj.forward(attended).dropout(self.dropout);
        let mlp = self.fc2.forward(self.fc1.forward(self.ln_2.forward(x)).gelu());
        x + mlp.dropout(self.dropout)
    }
}
