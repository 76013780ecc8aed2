//! The character-level GPT of issue 22, exactly as the PyTorch reference
//! `bench/torch_char_gpt.py` (its `GPT` and `Block` classes) defines it.

use adamant_autodiff::{Tape, Var};
use adamant_tensor::rng::Rng;
use adamant_tensor::{Ids, Tensor};

use crate::{Dense, Embedding, LayerNorm, Module, Params, TransformerBlock};

/// The sizes of a [`Gpt`]. `Default` is the reference's small CPU configuration (nanoGPT's
/// layout at width 128): vocabulary 78 (the distinct characters of the Shakespeare corpus),
/// context 64, 4 layers, 4 heads, width 128; 811,520 parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptConfig {
    /// Vocabulary size `V`: rows of the token embedding and columns of the logits.
    pub vocab: usize,
    /// Context length `T` (`block_size`): rows of the position embedding, the longest input.
    pub block: usize,
    /// Number of Transformer blocks `n_layer`.
    pub layers: usize,
    /// Attention heads per block `n_head`; must divide `embd`.
    pub heads: usize,
    /// Width `C` (`n_embd`) of the residual stream.
    pub embd: usize,
}

impl Default for GptConfig {
    fn default() -> GptConfig {
        GptConfig { vocab: 78, block: 64, layers: 4, heads: 4, embd: 128 }
    }
}

impl GptConfig {
    /// Checks that every size is positive and that `heads` divides `embd`; the error is one
    /// line naming the field (what a command line reports before [`Gpt::new`] would panic).
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [
            ("vocab", self.vocab),
            ("block", self.block),
            ("layers", self.layers),
            ("heads", self.heads),
            ("embd", self.embd),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("GPT config: {name} must be positive, got 0"));
        }
        if !self.embd.is_multiple_of(self.heads) {
            return Err(format!("GPT config: embd {} must be divisible by heads {}", self.embd, self.heads));
        }
        Ok(())
    }

    /// The number of parameters a [`Gpt`] of this configuration has:
    /// `V C + T C + L (12 C^2 + 13 C) + 2 C` (the tied head adds none).
    pub fn num_params(&self) -> usize {
        let c = self.embd;
        // Per block: two LayerNorms (2 C each), qkv (3 C^2 + 3 C), proj (C^2 + C),
        // fc1 (4 C^2 + 4 C), fc2 (4 C^2 + C).
        let block = 12 * c * c + 13 * c;
        self.vocab * c + self.block * c + self.layers * block + 2 * c
    }
}

/// A decoder-only Transformer over token ids, nanoGPT's layout as in the reference
/// `torch_char_gpt.py`:
///
/// ```text
/// x = wte[ids] + wpe[0..T]                 token embedding [V, C], learned positions [block, C]
/// for each of the n_layer blocks:          a pre-norm TransformerBlock, n_head heads
///     x = x + proj(attn(ln_1(x)))          causal self-attention, qkv one C -> 3C linear
///     x = x + fc2(gelu(fc1(ln_2(x))))      fc1 C -> 4C, fc2 4C -> C, exact (erf) GELU
/// logits = ln_f(x) wte^T                   [B, T, V]: the head is tied to wte
/// ```
///
/// Initialisation is the reference's (GPT-2's): every linear weight and both embeddings
/// `N(0, 0.02)`, except the two projections back into the residual stream (`proj`, `fc2`),
/// `N(0, 0.02 / sqrt(2 n_layer))` so that the stream's variance does not grow with depth;
/// biases 0, LayerNorm weight 1 and bias 0. No dropout.
///
/// Parameter names are PyTorch's `named_parameters()` of the reference (`wte.weight`,
/// `wpe.weight`, `blocks.0.ln_1.weight`, ..., `ln_f.bias`), so its `state_dict` loads with
/// [`serialize::load`](crate::serialize::load). The head has no parameter of its own: the
/// forward reads `wte.weight` once and uses it twice, so its gradient is the sum of the
/// embedding's scatter-add and the head's product.
///
/// ```
/// use adamant_autodiff::{Mode, Tape};
/// use adamant_layers::nets::{Gpt, GptConfig};
/// use adamant_layers::Params;
/// use adamant_tensor::{rng::seeded, Ids};
///
/// let config = GptConfig { vocab: 11, block: 8, layers: 2, heads: 2, embd: 16 };
/// let gpt = Gpt::new(config, &mut seeded(0));
/// assert_eq!(gpt.num_params(), config.num_params());
/// let tape = Tape::new(Mode::Train, 0);
/// let ids = Ids::from_vec(vec![1, 2, 3, 4, 5, 6], &[2, 3]);
/// assert_eq!(gpt.forward(&tape, &ids).shape(), [2, 3, 11]);
/// let targets = Ids::from_vec(vec![2, 3, 4, 5, 6, 7], &[2, 3]);
/// let grads = gpt.loss(&tape, &ids, &targets).backward();
/// assert_eq!(grads.len(), gpt.params().len());
/// ```
#[derive(crate::Module)]
pub struct Gpt {
    /// Token embedding `[V, C]`, also the output head.
    pub wte: Embedding,
    /// Position embedding `[block, C]`.
    pub wpe: Embedding,
    /// The `n_layer` Transformer blocks.
    pub blocks: Vec<TransformerBlock>,
    /// The final LayerNorm before the head.
    pub ln_f: LayerNorm,
    #[module(skip)]
    config: GptConfig,
}

impl Gpt {
    /// A model with the reference's initialisation, drawn from `rng`.
    ///
    /// # Panics
    /// If the configuration is invalid ([`GptConfig::validate`] says why).
    pub fn new(config: GptConfig, rng: &mut Rng) -> Gpt {
        if let Err(e) = config.validate() {
            panic!("Gpt::new: {e}");
        }
        let GptConfig { vocab, block, layers, heads, embd } = config;
        let normal = |shape: &[usize], std: f32, rng: &mut Rng| Tensor::randn(shape, 0.0, std, rng);
        let residual_std = 0.02 / (2.0 * layers as f32).sqrt();
        // Each linear gets N(0, std) weights and zero biases; the blocks' LayerNorms already
        // start at weight 1, bias 0.
        let reinit = |dense: &mut Dense, std: f32, rng: &mut Rng| {
            dense.weight.set_value(normal(dense.weight.shape(), std, rng));
            if let Some(b) = &mut dense.bias {
                b.set_value(Tensor::zeros(b.shape()));
            }
        };
        let blocks = (0..layers)
            .map(|_| {
                let mut b = TransformerBlock::new(embd, heads, rng);
                reinit(&mut b.qkv, 0.02, rng);
                reinit(&mut b.proj, residual_std, rng);
                reinit(&mut b.fc1, 0.02, rng);
                reinit(&mut b.fc2, residual_std, rng);
                b
            })
            .collect();
        let mut gpt = Gpt {
            wte: Embedding::from_pretrained(normal(&[vocab, embd], 0.02, rng)),
            wpe: Embedding::from_pretrained(normal(&[block, embd], 0.02, rng)),
            blocks,
            ln_f: LayerNorm::new(&[embd]),
            config,
        };
        // Name each Param by its path now, so that `params()` shows `blocks.0.qkv.weight`
        // before the first step too.
        gpt.params_mut();
        gpt
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> GptConfig {
        self.config
    }

    /// Checks token ids for [`Gpt::forward`]: shape `[B, T]` with `B >= 1`,
    /// `1 <= T <= block`, and every id below `vocab`. The error is one line.
    pub fn check_ids(&self, ids: &Ids) -> Result<(), String> {
        let shape = ids.shape();
        let GptConfig { vocab, block, .. } = self.config;
        if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
            return Err(format!("Gpt: expected token ids of shape [batch, length], got {shape:?}"));
        }
        if shape[1] > block {
            return Err(format!("Gpt: input length {} exceeds the context length (block) {block}", shape[1]));
        }
        if let Some(&id) = ids.data().iter().find(|&&i| i >= vocab) {
            return Err(format!("Gpt: token id {id} is out of range for vocabulary size {vocab}"));
        }
        Ok(())
    }

    /// The residual stream after the last block, `[B, T, C]`, given the token embedding's
    /// leaf `wte` (read once per tape so that both uses share its gradient).
    fn hidden<'t>(&self, tape: &'t Tape, ids: &Ids, wte: Var<'t>) -> Var<'t> {
        if let Err(e) = self.check_ids(ids) {
            panic!("{e}");
        }
        let t = ids.shape()[1];
        // Positions 0..T are the first T rows of wpe, broadcast over the batch.
        let positions = tape.param(&self.wpe.weight).narrow(0, 0, t);
        let mut x = wte.embedding(ids) + positions;
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }

    /// Logits `[B, T, V]` of the next token at every position of `ids` `[B, T]`.
    ///
    /// # Panics
    /// If `ids` is not `[B, T]` with `1 <= T <= block` and ids below `vocab`
    /// ([`Gpt::check_ids`] gives the message as an error).
    pub fn forward<'t>(&self, tape: &'t Tape, ids: &Ids) -> Var<'t> {
        let wte = tape.param(&self.wte.weight);
        let x = self.hidden(tape, ids, wte);
        self.ln_f.forward(x).matmul_nt(wte)
    }

    /// Logits `[B, V]` of the token after the last position of `ids` `[B, T]`: what a sampler
    /// needs, without the head's product at the other `T - 1` positions. A sampler whose text
    /// has grown past `block` characters passes the last `block` ids, as nanoGPT crops.
    ///
    /// # Panics
    /// As [`Gpt::forward`].
    pub fn forward_last<'t>(&self, tape: &'t Tape, ids: &Ids) -> Var<'t> {
        let wte = tape.param(&self.wte.weight);
        let x = self.hidden(tape, ids, wte);
        let last = x.select(1, ids.shape()[1] - 1);
        self.ln_f.forward(last).matmul_nt(wte)
    }

    /// The mean cross-entropy of the logits of `inputs` `[B, T]` against `targets` `[B, T]`
    /// (the next characters), over all `B T` positions: PyTorch's
    /// `F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))`.
    ///
    /// # Panics
    /// As [`Gpt::forward`], and if `targets` does not have the shape of `inputs` or holds an
    /// id not below `vocab`.
    pub fn loss<'t>(&self, tape: &'t Tape, inputs: &Ids, targets: &Ids) -> Var<'t> {
        self.forward(tape, inputs).cross_entropy(targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_autodiff::{GradcheckOptions, Mode};
    use adamant_tensor::rng::seeded;

    use crate::gradcheck_module;

    fn tiny() -> GptConfig {
        GptConfig { vocab: 7, block: 5, layers: 2, heads: 2, embd: 8 }
    }

    #[test]
    fn config_errors_are_one_line_naming_the_field() {
        let bad = GptConfig { heads: 3, ..GptConfig::default() };
        assert_eq!(bad.validate().unwrap_err(), "GPT config: embd 128 must be divisible by heads 3");
        let zero = GptConfig { layers: 0, ..GptConfig::default() };
        assert_eq!(zero.validate().unwrap_err(), "GPT config: layers must be positive, got 0");
        assert!(GptConfig::default().validate().is_ok());
    }

    #[test]
    fn check_ids_rejects_bad_shapes_lengths_and_ids() {
        let gpt = Gpt::new(tiny(), &mut seeded(0));
        assert!(gpt.check_ids(&Ids::from_vec(vec![0; 10], &[2, 5])).is_ok());
        let long = gpt.check_ids(&Ids::from_vec(vec![0; 6], &[1, 6])).unwrap_err();
        assert_eq!(long, "Gpt: input length 6 exceeds the context length (block) 5");
        let flat = gpt.check_ids(&Ids::from_slice(&[0, 1])).unwrap_err();
        assert_eq!(flat, "Gpt: expected token ids of shape [batch, length], got [2]");
        let big = gpt.check_ids(&Ids::from_vec(vec![0, 7], &[1, 2])).unwrap_err();
        assert_eq!(big, "Gpt: token id 7 is out of range for vocabulary size 7");
    }

    #[test]
    #[should_panic(expected = "Gpt: input length 6 exceeds the context length (block) 5")]
    fn forward_panics_past_the_context() {
        let gpt = Gpt::new(tiny(), &mut seeded(0));
        gpt.forward(&Tape::inference(), &Ids::from_vec(vec![0; 6], &[1, 6]));
    }

    #[test]
    fn last_position_logits_are_the_full_forwards_last_row() {
        let gpt = Gpt::new(tiny(), &mut seeded(3));
        let tape = Tape::new(Mode::Eval, 0);
        let ids = Ids::from_vec(vec![1, 4, 2, 6, 0, 3, 3, 5], &[2, 4]);
        let full = gpt.forward(&tape, &ids).value();
        let last = gpt.forward_last(&tape, &ids).value();
        assert_eq!(last.shape(), [2, 7]);
        for b in 0..2 {
            let row = &full.data()[(b * 4 + 3) * 7..(b * 4 + 4) * 7];
            for (o, w) in last.data()[b * 7..(b + 1) * 7].iter().zip(row) {
                assert!((o - w).abs() <= 1e-6, "batch {b}: {o} vs {w}");
            }
        }
    }

    #[test]
    fn gradients_of_every_parameter_match_finite_differences_tied_head_included() {
        let config = GptConfig { vocab: 5, block: 4, layers: 1, heads: 2, embd: 4 };
        let mut gpt = Gpt::new(config, &mut seeded(5));
        // Weights of N(0, 0.5) instead of the init's 0.02, so that every gradient (the head's
        // share of wte's above all) is far above the check's absolute tolerance.
        let rng = &mut seeded(6);
        for p in gpt.params_mut() {
            p.set_value(Tensor::randn(p.shape(), 0.0, 0.5, rng));
        }
        let inputs = Ids::from_vec(vec![0, 3, 1, 4, 2, 2, 0, 1], &[2, 4]);
        let targets = Ids::from_vec(vec![3, 1, 4, 2, 2, 0, 1, 3], &[2, 4]);
        let report = gradcheck_module(
            &mut gpt,
            |tape, m| m.loss(tape, &inputs, &targets),
            GradcheckOptions { eps: 1e-2, rtol: 2e-2, ..GradcheckOptions::default() },
        );
        assert!(report.passed, "{report}");
        assert_eq!(report.checked, config.num_params());
    }
}
