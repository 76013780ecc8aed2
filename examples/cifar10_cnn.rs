//! The paper's third experiment (figure 3): the c64-c64-c128-1000 convolutional network on
//! ZCA-whitened CIFAR-10: three stages of 5x5 convolution (pad 2) + ReLU + 3x3 max-pooling
//! (stride 2, pad 1), a 1000-unit ReLU layer with dropout 0.5, and a softmax over 10 classes.
//! `--compare` runs AdaGrad, SGD with Nesterov momentum and Adam.
//!
//! ```text
//! cargo run --release --example cifar10_cnn -- --epochs 1
//! ```

use adamant::experiment::{run_main, BoxedModel, Experiment, Preprocess};
use adamant::layers::nets;
use adamant::optim::{OptimizerOptions, Schedule};
use adamant::tensor::rng::Rng;

fn defaults(optimizer: &str) -> (OptimizerOptions, Schedule) {
    let o = match optimizer {
        "sgd" => {
            OptimizerOptions { lr: Some(0.01), momentum: Some(0.9), nesterov: true, ..Default::default() }
        }
        "adagrad" => OptimizerOptions { lr: Some(0.01), ..Default::default() },
        _ => OptimizerOptions { lr: Some(1e-3), ..Default::default() },
    };
    (o, Schedule::Constant)
}

fn model(rng: &mut Rng) -> BoxedModel {
    Box::new(nets::cnn(rng))
}

fn main() {
    run_main(&Experiment {
        name: "cifar10_cnn",
        about: "c64-c64-c128-1000 CNN on ZCA-whitened CIFAR-10 (the paper's figure 3)",
        dataset: "cifar10",
        epochs: 10,
        batch_size: 128,
        optimizer: "adam",
        compare: &["adagrad", "sgd", "adam"],
        defaults,
        defaults_doc: "  constant learning rate, no weight decay; input ZCA-whitened (epsilon 1e-2) with statistics of the training set\n  \
                       adam (and others not listed): --lr 1e-3\n  sgd: --lr 0.01 --momentum 0.9 --nesterov\n  adagrad: --lr 0.01",
        model,
        preprocess: Preprocess::Zca(1e-2),
    });
}
