//! Three of today's small models written as a user would, with layers and `Var` ops only (no
//! tensor data touched by hand), each trained briefly on a task it can only solve if the
//! model is what it claims to be:
//!
//! - a GRU over `[B, T, C]` input that must recall the first token of its sequence at the
//!   last step (chance: 25%; a model without memory cannot beat it);
//! - a causal self-attention block (`TransformerBlock` with token and position embeddings)
//!   that must predict, at every position, the token one step back (chance 1/8), and whose
//!   outputs at a position never depend on later tokens;
//! - a batch-norm CNN on the bundled MNIST subset, whose running statistics evaluation uses.

use adamant::autodiff::{Mode, Tape, Var};
use adamant::data::{self, BatchOptions, Batches};
use adamant::layers::{
    BatchNorm2d, Conv2d, Dense, Embedding, Flatten, LayerNorm, MaxPool2d, Module, Params, ReLU,
    RecurrentOptions, Sequential, TransformerBlock, GRU,
};
use adamant::optim::{Adam, AdamConfig, Optimizer};
use adamant::prelude::*;
use adamant::tensor::Ids;

/// Random tokens `[batch, len]` in `0..vocab` from a seeded stream.
fn random_tokens(batch: usize, len: usize, vocab: usize, rng: &mut Rng) -> Ids {
    Ids::from_vec((0..batch * len).map(|_| rng.random_range(0..vocab)).collect(), &[batch, len])
}

fn adam(lr: f32) -> Adam {
    Adam::new(AdamConfig { lr, ..AdamConfig::default() })
}

/// Fraction of rows whose argmax over the last axis equals the target.
fn accuracy(logits: Var<'_>, targets: &[usize]) -> f64 {
    let predicted = logits.argmax(-1, false);
    predicted.data().iter().zip(targets).filter(|(p, t)| p == t).count() as f64 / targets.len() as f64
}

#[derive(adamant::layers::Module)]
struct Recall {
    embed: Embedding,
    gru: GRU,
    head: Dense,
}

impl Recall {
    /// Logits `[B, vocab]` read from the GRU's last output.
    fn forward<'t>(&self, tape: &'t Tape, tokens: &Ids) -> Var<'t> {
        let x = self.embed.forward(tape, tokens); // [B, T, C]
        let steps = x.shape()[1];
        let h = self.gru.forward(x); // [B, T, H]
        self.head.forward(h.select(1, steps - 1))
    }
}

#[test]
fn a_gru_over_batch_time_channels_remembers_the_first_token() {
    let (vocab, steps, batch) = (4, 6, 32);
    let rng = &mut seeded(0);
    let gru_options = RecurrentOptions { batch_first: true, ..RecurrentOptions::default() };
    let mut model = Recall {
        embed: Embedding::new(vocab, 8, rng),
        gru: GRU::with_options(8, 24, gru_options, rng),
        head: Dense::new(24, vocab, rng),
    };
    let mut opt = adam(1e-2);
    for step in 0..400 {
        let tokens = random_tokens(batch, steps, vocab, rng);
        let targets: Vec<usize> = (0..batch).map(|b| tokens.data()[b * steps]).collect();
        let tape = Tape::new(Mode::Train, step);
        let grads = model.forward(&tape, &tokens).cross_entropy(&targets).backward();
        opt.step(&mut model.params_mut(), &grads);
    }
    let tokens = random_tokens(512, steps, vocab, &mut seeded(1));
    let targets: Vec<usize> = (0..512).map(|b| tokens.data()[b * steps]).collect();
    let tape = Tape::inference();
    let acc = accuracy(model.forward(&tape, &tokens), &targets);
    eprintln!("recall accuracy {acc}");
    assert!(acc > 0.95, "recall accuracy {acc} (chance 0.25)");
}

#[derive(adamant::layers::Module)]
struct TinyGpt {
    tokens: Embedding,
    positions: Embedding,
    block: TransformerBlock,
    norm: LayerNorm,
    head: Dense,
}

impl TinyGpt {
    /// Logits `[B, T, vocab]`.
    fn forward<'t>(&self, tape: &'t Tape, tokens: &Ids) -> Var<'t> {
        let steps = tokens.shape()[1];
        let positions = Ids::from_vec((0..steps).collect(), &[steps]);
        let x = self.tokens.forward(tape, tokens) + self.positions.forward(tape, &positions);
        self.head.forward(self.norm.forward(self.block.forward(x)))
    }
}

/// The previous-token targets of every position but the first, and their logits `[N, vocab]`.
fn shifted<'t>(logits: Var<'t>, tokens: &Ids) -> (Var<'t>, Vec<usize>) {
    let (batch, steps) = (tokens.shape()[0], tokens.shape()[1]);
    let vocab = logits.shape()[2];
    let targets =
        (0..batch).flat_map(|b| (0..steps - 1).map(move |t| tokens.data()[b * steps + t])).collect();
    (logits.narrow(1, 1, steps - 1).reshape(&[batch * (steps - 1), vocab]), targets)
}

#[test]
fn a_causal_attention_block_learns_to_look_back_and_never_ahead() {
    let (vocab, steps, width) = (8, 10, 32);
    let rng = &mut seeded(2);
    let mut model = TinyGpt {
        tokens: Embedding::new(vocab, width, rng),
        positions: Embedding::new(steps, width, rng),
        block: TransformerBlock::new(width, 4, rng),
        norm: LayerNorm::new(&[width]),
        head: Dense::new(width, vocab, rng),
    };
    let mut opt = adam(3e-3);
    for step in 0..300 {
        let tokens = random_tokens(16, steps, vocab, rng);
        let tape = Tape::new(Mode::Train, step);
        let (logits, targets) = shifted(model.forward(&tape, &tokens), &tokens);
        let grads = logits.cross_entropy(&targets).backward();
        opt.step(&mut model.params_mut(), &grads);
    }
    let tokens = random_tokens(64, steps, vocab, &mut seeded(3));
    let tape = Tape::inference();
    let (logits, targets) = shifted(model.forward(&tape, &tokens), &tokens);
    let acc = accuracy(logits, &targets);
    eprintln!("previous-token accuracy {acc}");
    assert!(acc > 0.95, "previous-token accuracy {acc} (chance 0.125)");

    // Causality: changing the last token changes no earlier position's output.
    let mut changed = tokens.data().to_vec();
    changed[steps - 1] = (changed[steps - 1] + 1) % vocab;
    let changed = Ids::from_vec(changed, tokens.shape());
    let first = |ids: &Ids| model.forward(&tape, ids).select(0, 0).narrow(0, 0, steps - 1).value();
    assert_eq!(first(&tokens), first(&changed));
}

#[test]
fn a_batch_norm_cnn_trains_on_mnist_and_evaluates_with_running_statistics() {
    let splits = data::mnist_mini().expect("the bundled datasets/mnist-mini");
    let rng = &mut seeded(4);
    let mut model = Sequential::new(vec![
        Box::new(Conv2d::new(1, 8, 3, 1, 1, rng)),
        Box::new(BatchNorm2d::new(8)),
        Box::new(ReLU),
        Box::new(MaxPool2d::new(2, 2, 0)),
        Box::new(Conv2d::new(8, 16, 3, 1, 1, rng)),
        Box::new(BatchNorm2d::new(16)),
        Box::new(ReLU),
        Box::new(MaxPool2d::new(2, 2, 0)),
        Box::new(Flatten),
        Box::new(Dense::new(16 * 7 * 7, 10, rng)),
    ]);
    let mut opt = adam(2e-3);
    let options = BatchOptions { batch_size: 64, shuffle: true, drop_last: true, seed: 0, epoch: 0 };
    for (step, batch) in Batches::new(&splits.train, options).take(150).enumerate() {
        let tape = Tape::new(Mode::Train, step as u64);
        let images = tape.constant(batch.images).reshape(&[-1, 1, 28, 28]);
        let grads = model.forward(images).cross_entropy(&batch.labels).backward();
        opt.step(&mut model.params_mut(), &grads);
    }
    // 150 batches were counted and the running statistics moved away from (0, 1).
    let buffers = model.named_buffers();
    assert_eq!(buffers.iter().find(|(n, _)| n == "1.num_batches_tracked").unwrap().1.value().item(), 150.0);
    let running_var = &buffers.iter().find(|(n, _)| n == "1.running_var").unwrap().1.value();
    assert!(running_var.data().iter().any(|&v| (v - 1.0).abs() > 0.05), "{running_var:?}");

    let test = splits.test.take(2000);
    let tape = Tape::inference();
    let logits = model.forward(tape.constant(test.images.clone()).reshape(&[-1, 1, 28, 28]));
    let acc = accuracy(logits, &test.labels);
    eprintln!("bn cnn test accuracy {acc}");
    assert!(acc > 0.93, "test accuracy {acc} after 150 steps");
}
