//! The `char_gpt` net of the benchmark: one training step of issue 22's character-level GPT
//! with the AdamW recipe, timed as `torch_char_gpt.py --time-steps N` times it.
//!
//! The reference's timed step (its `step(s)`) is: draw a batch of 12 windows of 64 + 1
//! characters, forward, cross-entropy, backward, clip the global gradient norm to 1.0, one
//! AdamW step (lr 1e-3, betas (0.9, 0.99), eps 1e-8, weight decay 0.1 on tensors of rank >= 2
//! and 0 on the rest), then fold the weights into an EMA (decay 0.99). Here the windows come
//! from a seeded stream of uniform ids below the vocabulary size (78) instead of the corpus:
//! the cost of a step does not depend on which characters it sees, and the benchmark needs no
//! data file. The learning rate is the constant 1e-3: setting a scheduled rate costs nothing.

use std::time::Instant;

use adamant::autodiff::{Mode, Tape};
use adamant::layers::nets::{Gpt, GptConfig};
use adamant::layers::Params;
use adamant::optim::{clip_grad_norm, Optimizer, WeightAverage};
use adamant::tensor::rng::{self, Purpose};
use adamant::tensor::{Ids, Precision, Tensor};

use crate::char_gpt::Recipe;

/// Minibatch size of the reference (`--batch 12`).
pub const BATCH: usize = 12;

/// Characters of the training split of `shakespeare/input.txt` (the first 90% of its
/// 1,158,419), for the seconds-per-epoch estimate: an epoch is `TRAIN_CHARS / block` windows.
pub const TRAIN_CHARS: usize = 1_042_577;

/// The model, its optimizer and its weight average: what a training step updates.
pub struct CharGpt {
    /// The reference configuration's model ([`GptConfig::default`]).
    pub model: Gpt,
    optimizer: Box<dyn Optimizer + Send>,
    ema: WeightAverage,
    clip: f32,
}

/// Wall times of the three phases of one step, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phases {
    /// Tape, forward and loss.
    pub forward: f64,
    /// Backward and dropping the tape.
    pub backward: f64,
    /// Clipping, AdamW, the EMA update and dropping the gradients.
    pub update: f64,
}

impl CharGpt {
    /// The reference's model (GPT-2 initialisation drawn from `seed`'s init stream), AdamW
    /// with its two parameter groups, and an empty EMA.
    pub fn new(seed: u64) -> CharGpt {
        // The recipe's own optimizer (its decay groups) and average, as `char_gpt` trains with.
        let recipe = Recipe::default();
        let model = Gpt::new(GptConfig::default(), &mut rng::stream(seed, Purpose::Init, 0));
        let (optimizer, _) = recipe.build_optimizer().expect("the reference recipe builds");
        let ema = WeightAverage::new(recipe.average.expect("the reference recipe keeps an EMA"));
        CharGpt { model, optimizer, ema, clip: recipe.clip.expect("the reference recipe clips") }
    }

    /// One training step on `inputs` and `targets` (`[B, T]` ids) with tape seed `seed` and
    /// the matrix products in `precision`; returns the loss before the step and the time of
    /// each phase.
    pub fn step(&mut self, inputs: &Ids, targets: &Ids, seed: u64, precision: Precision) -> (f32, Phases) {
        let t0 = Instant::now();
        let tape = Tape::new(Mode::Train, seed);
        tape.set_precision(precision);
        let loss = self.model.loss(&tape, inputs, targets);
        let t1 = Instant::now();
        let mut grads = loss.backward();
        let value = loss.item();
        drop(tape);
        let t2 = Instant::now();
        clip_grad_norm(&mut grads, self.clip);
        self.optimizer.step(&mut self.model.params_mut(), &grads);
        drop(grads);
        adamant::average::update(&mut self.ema, &self.model);
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        (value, Phases { forward: ms(t0, t1), backward: ms(t1, t2), update: ms(t2, t3) })
    }
}

/// Batch `index` of `seed`'s data stream: `B` windows of `T + 1` uniform ids below the
/// vocabulary size, split as the reference splits a window into inputs (the first `T`) and
/// targets (the last `T`).
pub fn batch(config: GptConfig, seed: u64, index: u64) -> (Ids, Ids) {
    let (b, t, vocab) = (BATCH, config.block, config.vocab);
    let rng = &mut rng::stream(seed, Purpose::Data, index);
    let u = Tensor::rand_uniform(&[b * (t + 1)], 0.0, vocab as f32, rng);
    let ids: Vec<usize> = u.data().iter().map(|&x| (x as usize).min(vocab - 1)).collect();
    let windows: Vec<&[usize]> = ids.chunks_exact(t + 1).collect();
    let inputs = windows.iter().flat_map(|w| &w[..t]).copied().collect();
    let targets = windows.iter().flat_map(|w| &w[1..]).copied().collect();
    (Ids::from_vec(inputs, &[b, t]), Ids::from_vec(targets, &[b, t]))
}

/// Floating-point operations of one training step at batch `b` of `config`, counted as the
/// other nets' are (3 times the forward's matrix products: forward, weight gradient and input
/// gradient; the embedding's gather needs none): per block the `C -> 3C`, `C -> C`, `C -> 4C`
/// and `4C -> C` linears over `B T` rows and the two attention products `Q K^T` and `P V`
/// (whole `T x T` matrices, as nanoGPT's estimate counts them), plus the tied head `C -> V`.
pub fn flops(config: GptConfig, b: usize) -> f64 {
    let (t, c, v, layers) =
        (config.block as f64, config.embd as f64, config.vocab as f64, config.layers as f64);
    let rows = b as f64 * t;
    let linears = 2.0 * rows * (3.0 * c * c + c * c + 4.0 * c * c + 4.0 * c * c);
    let attention = 2.0 * 2.0 * b as f64 * t * t * c;
    let head = 2.0 * rows * c * v;
    3.0 * (layers * (linears + attention) + head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_shifted_windows_of_valid_ids_and_differ_by_index() {
        let config = GptConfig::default();
        let (x, y) = batch(config, 0, 0);
        assert_eq!((x.shape(), y.shape()), (&[12, 64][..], &[12, 64][..]));
        assert!(x.data().iter().chain(y.data()).all(|&i| i < 78));
        // The targets are the inputs shifted by one inside each window.
        for r in 0..12 {
            assert_eq!(x.data()[r * 64 + 1..(r + 1) * 64], y.data()[r * 64..(r + 1) * 64 - 1]);
        }
        assert_eq!(batch(config, 0, 0), (x.clone(), y));
        assert_ne!(batch(config, 0, 1).0, x);
        // All 78 ids occur in a few batches (the cast does not lose the top one).
        let mut seen = [false; 78];
        (0..4).flat_map(|i| batch(config, 0, i).0.data().to_vec()).for_each(|i| seen[i] = true);
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn flops_count_the_reference_configuration() {
        // Per block: 2 * 768 * 12 * 128^2 (linears) + 4 * 12 * 64^2 * 128 (attention), times 4,
        // plus the head 2 * 768 * 128 * 78; all times 3.
        let per_block = 2.0 * 768.0 * 12.0 * 16384.0 + 4.0 * 12.0 * 4096.0 * 128.0;
        let want = 3.0 * (4.0 * per_block + 2.0 * 768.0 * 128.0 * 78.0);
        assert_eq!(flops(GptConfig::default(), BATCH), want);
    }

    #[test]
    fn a_few_steps_lower_the_loss_on_a_repeated_batch() {
        let mut gpt = CharGpt::new(0);
        let (x, y) = batch(gpt.model.config(), 0, 0);
        let first = gpt.step(&x, &y, 0, Precision::F32).0;
        // ln 78 = 4.36 at initialisation.
        assert!((first - 78f32.ln()).abs() < 0.1, "initial loss {first}");
        let last = (1..6).map(|s| gpt.step(&x, &y, s, Precision::F32).0).last().unwrap();
        assert!(last < first - 0.05, "loss went from {first} to {last}");
    }
}
