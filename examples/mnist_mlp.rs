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
        // Muon's orthogonalised step has unit spectral norm: the rate of Muon's own recipes
        // (torch's default 1e-3 barely moves this net), AdamW's for the biases. No weight
        // decay, as for the others: torch's 0.1 is meant for its rate 1e-3, and at 2e-2 it
        // shrinks the matrices by 0.2% a step (a 1-epoch run with it stalls at 96%).
        "muon" => OptimizerOptions { lr: Some(2e-2), weight_decay: Some(0.0), ..Default::default() },
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
                       lion: --lr 1e-4\n  adafactor: --lr 1e-2\n  muon: --lr 2e-2 --weight-decay 0 (AdamW for the biases at the same rate)\n  \
                       sgd: --lr 0.05 --momentum 0.9 --nesterov\n  adagrad: --lr 0.01\n  adadelta: --lr 1.0",
        model,
        preprocess: Preprocess::None,
    });
}
