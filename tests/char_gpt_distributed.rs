//! `char_gpt::run` data-parallel over a `ThreadGroup` (2 ranks as 2 threads; the MPI run of
//! the example is in tests/mpi.rs): the ranks end with the same weights, within 1e-5 of one
//! process's (they differ by the order of the gradient sum only), the same bits on every
//! run, and rank 0 alone writes the checkpoint, which holds those weights.

mod common;

use std::path::Path;
use std::sync::Arc;

use adamant::checkpoint::Checkpoint;
use adamant::data::text::CharCorpus;
use adamant::distributed::{Communicator, ThreadGroup};
use adamant::layers::Params;
use adamant::train::TrainError;
use adamant_lab::char_gpt::{self, Recipe, RunOptions, Trainer};

const MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/shakespeare-mini");

/// Every parameter's values, by name.
type Weights = Vec<(String, Vec<f32>)>;

/// A tiny recipe: 6 steps of 2 accumulated minibatches of 4 windows, validated twice.
fn recipe() -> Recipe {
    Recipe {
        steps: 6,
        batch_size: 4,
        accumulate: 2,
        block: 16,
        layers: 1,
        heads: 2,
        embd: 16,
        warmup: 2,
        eval_every: 3,
        ..Recipe::default()
    }
}

/// `char_gpt::run` of `recipe` on `ranks` threads (1: no communicator), writing to `out`;
/// each rank's final weights and validation losses, or its error.
fn run(
    corpus: &CharCorpus,
    recipe: &Recipe,
    ranks: usize,
    out: Option<&Path>,
) -> Vec<Result<(Weights, Vec<f64>), TrainError>> {
    let run_one = |comm: Option<Arc<dyn Communicator>>| {
        let trainer = Trainer::new(recipe, corpus.vocab.len(), &corpus.train).unwrap();
        let options = RunOptions {
            out: out.map(Path::to_path_buf),
            name: "char_gpt".to_string(),
            resume: false,
            resume_override: false,
            verbose: false,
            progress: false,
            interrupt: None,
            tensorboard: None,
            distributed: comm,
        };
        char_gpt::run(trainer, corpus, &options).map(|report| {
            let weights = report
                .model
                .params()
                .iter()
                .map(|p| (p.name().to_string(), p.value().data().to_vec()))
                .collect();
            (weights, report.history.epochs.iter().map(|e| e.test_loss).collect())
        })
    };
    if ranks == 1 {
        return vec![run_one(None)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::ranks(ranks)
            .into_iter()
            .map(|rank| {
                let run_one = &run_one;
                s.spawn(move || run_one(Some(Arc::new(rank))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The largest `||a - b|| / ||a||` over the parameter tensors.
fn relative_difference(a: &Weights, b: &Weights) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((n, x), (m, y))| {
            assert_eq!(n, m);
            let norm = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            let diff = x.iter().zip(y).map(|(&u, &v)| (u as f64 - v as f64).powi(2)).sum::<f64>().sqrt();
            diff / norm
        })
        .fold(0.0, f64::max)
}

fn bits(w: &Weights) -> Vec<u32> {
    w.iter().flat_map(|(_, v)| v.iter().map(|x| x.to_bits())).collect()
}

#[test]
fn two_ranks_take_the_steps_one_process_takes_and_repeat_their_bits() {
    let corpus = CharCorpus::read(format!("{MINI}/input.txt"), char_gpt::TRAIN_FRACTION).unwrap();
    let recipe = recipe();
    let (single, single_val) = run(&corpus, &recipe, 1, None).pop().unwrap().unwrap();

    let dir = common::Scratch::new("char-gpt-dp");
    let first: Vec<_> = run(&corpus, &recipe, 2, Some(&dir)).into_iter().map(Result::unwrap).collect();
    let (weights, val) = &first[0];
    assert!(bits(&first[1].0) == bits(weights), "the ranks' weights differ");
    assert_eq!(first[1].1, *val, "the ranks validated differently");
    // The keys' bias (the middle third of `qkv.bias`) moves no score: softmax ignores a
    // shift common to a query's scores, so its gradient is 0 up to rounding, and AdamW turns
    // that rounding into steps (here |bias| ~ 1e-7, and 2 ranks' differ by their own size).
    // Compared absolutely; every other tensor, and the queries' and values' biases, relative.
    let embd = recipe.embd;
    let split_key_bias = |w: &Weights| -> (Weights, Vec<f32>) {
        let mut keys = Vec::new();
        let mut rest = Vec::new();
        for (name, v) in w {
            if name.ends_with("qkv.bias") {
                keys.extend_from_slice(&v[embd..2 * embd]);
                rest.push((format!("{name}[q]"), v[..embd].to_vec()));
                rest.push((format!("{name}[v]"), v[2 * embd..].to_vec()));
            } else {
                rest.push((name.clone(), v.clone()));
            }
        }
        (rest, keys)
    };
    let ((single_rest, single_keys), (rest, keys)) = (split_key_bias(&single), split_key_bias(weights));
    let difference = relative_difference(&single_rest, &rest);
    assert!(difference < 1e-5, "2 ranks end {difference:e} from one process (relative)");
    let key_difference = single_keys.iter().zip(&keys).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(key_difference < 1e-5, "the keys' bias on 2 ranks is {key_difference:e} from one process's");
    assert_eq!(val.len(), single_val.len());
    for (a, b) in val.iter().zip(&single_val) {
        assert!((a - b).abs() < 1e-4 * b, "validation {a} on 2 ranks against {b} on one");
    }

    // Rank 0 wrote the checkpoint: the weights the ranks ended with.
    let checkpoint = Checkpoint::read(&dir.join("char_gpt.ckpt")).unwrap();
    assert_eq!(checkpoint.step, recipe.steps as u64);
    let mut saved: Weights = checkpoint.model.into_iter().map(|(name, t)| (name, t.into_vec())).collect();
    let mut ended = weights.clone();
    saved.sort_by(|a, b| a.0.cmp(&b.0));
    ended.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(saved.iter().map(|w| &w.0).eq(ended.iter().map(|w| &w.0)), "the checkpoint names other tensors");
    assert!(bits(&saved) == bits(&ended), "the checkpoint holds other weights");

    let again = run(&corpus, &recipe, 2, None);
    for rank in again {
        assert!(bits(&rank.unwrap().0) == bits(weights), "a second 2-rank run gave other bits");
    }
}

#[test]
fn a_batch_the_ranks_cannot_share_is_refused() {
    let corpus = CharCorpus::read(format!("{MINI}/input.txt"), char_gpt::TRAIN_FRACTION).unwrap();
    let recipe = Recipe { batch_size: 5, ..recipe() };
    for result in run(&corpus, &recipe, 2, None) {
        match result {
            Err(TrainError::Distributed(what)) => assert!(what.contains("batch of 5"), "{what}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a batch of 5 was shared by 2 ranks"),
        }
    }
}
