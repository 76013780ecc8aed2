//! Memory stays flat over a long run: the resident set after 10,000 training steps of the
//! MNIST MLP (dropout, Adam, the real `fit` loop) is within 5% of what it is after 100.
//!
//! Each step allocates its activations and gradients afresh and frees them when the tape
//! drops; a leak of one gradient buffer per step (a tape kept alive, an optimizer slot per
//! step) would add megabytes per hundred steps. The test is alone in its binary because RSS
//! is per process.

use std::cell::{Cell, RefCell};

use adamant::autodiff::Var;
use adamant::layers::{nets, Module};
use adamant::optim::{Adam, AdamConfig};
use adamant::tensor::rng::seeded;
use adamant::train::{fit, Classification, FitConfig, StepOutput, Task};

const EARLY_STEP: usize = 100;
const LATE_STEP: usize = 10_000;

/// The process's resident set now (`VmRSS`), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// Classification that also records the RSS when training step `EARLY_STEP` and
/// `LATE_STEP` begin (evaluation passes are not counted).
struct RssProbe {
    train_steps: Cell<usize>,
    samples: RefCell<Vec<(usize, u64)>>,
}

impl<M: Module + ?Sized> Task<M> for RssProbe {
    fn forward<'t>(&self, model: &M, images: Var<'t>, labels: &[usize]) -> StepOutput<'t> {
        if images.tape().is_training() {
            let step = self.train_steps.get() + 1;
            self.train_steps.set(step);
            if step == EARLY_STEP || step == LATE_STEP {
                self.samples.borrow_mut().push((step, rss_kib()));
            }
        }
        Classification.forward(model, images, labels)
    }
}

#[test]
#[ignore = "long: 10,000 MLP training steps, about 5 minutes on 2 cores (.ci/run runs it)"]
fn rss_after_10000_mlp_steps_is_within_5_percent_of_rss_after_100() {
    let mut splits = adamant::data::mnist_mini().unwrap();
    splits.test = splits.test.take(500);
    let steps_per_epoch = splits.train.len().div_ceil(128);
    let mut model = nets::mlp(&mut seeded(0));
    let mut adam = Adam::new(AdamConfig::default());
    let probe = RssProbe { train_steps: Cell::new(0), samples: RefCell::new(vec![]) };
    let config = FitConfig {
        name: "memory_soak".into(),
        epochs: LATE_STEP.div_ceil(steps_per_epoch),
        batch_size: 128,
        progress: false,
        ..Default::default()
    };
    fit(&mut model, &probe, &mut adam, None, &splits.train, &splits.test, &config).unwrap();
    let samples = probe.samples.into_inner();
    let [(_, early), (_, late)] = samples[..] else { panic!("samples: {samples:?}") };
    let growth = late as f64 / early as f64 - 1.0;
    eprintln!(
        "RSS at step {EARLY_STEP}: {:.1} MiB, at step {LATE_STEP}: {:.1} MiB ({:+.2}%)",
        early as f64 / 1024.0,
        late as f64 / 1024.0,
        100.0 * growth
    );
    assert!(growth <= 0.05, "RSS grew by {:.1}% from step {EARLY_STEP} to {LATE_STEP}", 100.0 * growth);
}
