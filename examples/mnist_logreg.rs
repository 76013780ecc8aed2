//! The paper's first experiment (figure 1): multi-class logistic regression on MNIST,
//! 784 -> 10 softmax, minibatch 128, step size decayed as alpha / sqrt(t) with L2 weight
//! decay. `--compare` runs SGD with Nesterov momentum, AdaGrad and Adam.
//!
//! ```text
//! cargo run --release --example mnist_logreg -- --epochs 5
//! cargo run --release --example mnist_logreg -- --compare --out runs/logreg
//! ```

use adamant::layers::nets;
use adamant::optim::{OptimizerOptions, Schedule};
use adamant::tensor::rng::Rng;
use adamant_lab::experiment::{run_main, BoxedModel, Experiment, Preprocess, RunLength};

fn defaults(optimizer: &str) -> OptimizerOptions {
    let wd = Some(1e-4);
    match optimizer {
        "sgd" => OptimizerOptions {
            lr: Some(0.3),
            momentum: Some(0.9),
            nesterov: true,
            weight_decay: wd,
            ..Default::default()
        },
        "adagrad" => OptimizerOptions { lr: Some(0.1), weight_decay: wd, ..Default::default() },
        _ => OptimizerOptions { lr: Some(0.03), weight_decay: wd, ..Default::default() },
    }
}

fn schedule(optimizer: &str, _: RunLength) -> Schedule {
    if optimizer == "adagrad" {
        Schedule::Constant
    } else {
        Schedule::InverseSqrt
    }
}

fn model(rng: &mut Rng) -> BoxedModel {
    Box::new(nets::logistic_regression(rng))
}

fn main() {
    run_main(&Experiment {
        name: "mnist_logreg",
        about: "logistic regression 784 -> 10 on MNIST (the paper's figure 1)",
        dataset: "mnist",
        epochs: 5,
        batch_size: 128,
        optimizer: "adam",
        compare: &["sgd", "adagrad", "adam"],
        defaults,
        schedule,
        defaults_doc: "  every optimizer: --weight-decay 1e-4 (L2)\n  \
                       adam (and others not listed): --lr 0.03 with --schedule inverse-sqrt (alpha / sqrt(t), t = iteration)\n  \
                       sgd: --lr 0.3 --momentum 0.9 --nesterov, --schedule inverse-sqrt\n  \
                       adagrad: --lr 0.1, --schedule constant (AdaGrad anneals by itself)",
        model,
        preprocess: Preprocess::None,
    });
}
