//! The paper's second experiment (figure 2): a multi-layer network on MNIST, 784-1000-1000-10
//! with ReLU, dropout 0.2 on the input and 0.5 on both hidden layers, minibatch 128.
//! `--compare` runs AdaGrad, RMSProp, SGD with Nesterov momentum, AdaDelta and Adam, and
//! Adam's successors: Lion, LAMB, AdaBelief, Adafactor and Muon (with AdamW for the biases).
//!
//! ```text
//! cargo run --release --example mnist_mlp -- --epochs 1
//! cargo run --release --example mnist_mlp -- --compare --epochs 5 --out runs/mlp
//! ```

use adamant::layers::nets;
use adamant::optim::{OptimizerOptions, Schedule};
use adamant::tensor::rng::Rng;
use adamant_lab::experiment::{run_main, BoxedModel, Experiment, Preprocess};

fn defaults(optimizer: &str) -> OptimizerOptions {
    match optimizer {
        "sgd" => {
            OptimizerOptions { lr: Some(0.05), momentum: Some(0.9), nesterov: true, ..Default::default() }
        }
        "adagrad" => OptimizerOptions { lr: Some(0.01), ..Default::default() },
        "adadelta" => OptimizerOptions { lr: Some(1.0), ..Default::default() },
        // Lion's sign update moves every coordinate by the full rate: its paper takes a rate
        // 3-10x below AdamW's, and lion-pytorch's default.
        "lion" => OptimizerOptions { lr: Some(1e-4), ..Default::default() },
        // Adafactor's rate is relative to the weights' scale, capped by 1/sqrt(t): torch's 1e-2.
        "adafactor" => OptimizerOptions { lr: Some(1e-2), ..Default::default() },
        // Moonshot's recipe: Muon's update scaled to AdamW's typical size (match_rms_adamw), so
        // one rate, Adam's, serves Muon's matrices and the AdamW part's biases. (Keller
        // Jordan's 2e-2 with "original" scaling would give the biases' AdamW 2e-2 too: a first
        // run so stalled at 96.5%.) No weight decay, as for every other optimizer here.
        "muon" => OptimizerOptions {
            lr: Some(1e-3),
            adjust_lr_fn: Some("match_rms_adamw"),
            weight_decay: Some(0.0),
            ..Default::default()
        },
        _ => OptimizerOptions { lr: Some(1e-3), ..Default::default() },
    }
}

fn model(rng: &mut Rng) -> BoxedModel {
    Box::new(nets::mlp(rng))
}

fn main() {
    run_main(&Experiment {
        name: "mnist_mlp",
        about: "784-1000-1000-10 ReLU MLP with dropout on MNIST (the paper's figure 2)",
        dataset: "mnist",
        epochs: 20,
        batch_size: 128,
        optimizer: "adam",
        compare: &["adagrad", "rmsprop", "sgd", "adadelta", "adam", "lion", "lamb", "adabelief", "adafactor", "muon"],
        defaults,
        schedule: |_, _| Schedule::Constant,
        defaults_doc: "  constant learning rate (--schedule constant), no weight decay (but muon's AdamW part\n  \
                       keeps AdamW's 0.01 on the biases)\n  \
                       adam, rmsprop, lamb, adabelief (and others not listed): --lr 1e-3\n  \
                       lion: --lr 1e-4\n  adafactor: --lr 1e-2\n  muon: --lr 1e-3 --adjust-lr-fn match_rms_adamw --weight-decay 0 (AdamW for the biases at\n  \
                       the same rate)\n  \
                       sgd: --lr 0.05 --momentum 0.9 --nesterov\n  adagrad: --lr 0.01\n  adadelta: --lr 1.0",
        model,
        preprocess: Preprocess::None,
    });
}
