//! TensorBoard logging from `fit`: it changes no result, a resumed run continues its event
//! file without repeating a step (also after a kill left events past the checkpoint and a torn
//! record), and a damaged file is refused with its name. TensorBoard's own reader checks the
//! files in tests/tensorboard_reader.rs.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use adamant::layers::{sequential, Dense, Params, ReLU, Sequential};
use adamant::optim::{build, Averaging, OptimizerOptions};
use adamant::tensor::rng::seeded;
use adamant::tensorboard::{event_files, read_events, record, scalar, EventWriter, LogOptions, TensorBoard};
use adamant::train::{fit, Classification, FitConfig, TrainError};

fn model() -> Sequential {
    let mut rng = seeded(3);
    sequential![Dense::new(8, 16, &mut rng), ReLU, Dense::new(16, 3, &mut rng)]
}

fn config(dir: &Path, epochs: usize, tensorboard: bool) -> FitConfig {
    let options = LogOptions { every: 4, optimizer_state: true, ..LogOptions::default() };
    FitConfig {
        name: "run".into(),
        epochs,
        batch_size: 32,
        seed: 7,
        out_dir: Some(dir.to_path_buf()),
        progress: false,
        tensorboard: tensorboard.then(|| TensorBoard { dir: dir.join("tb"), options }),
        ..Default::default()
    }
}

/// Trains (or resumes) for `epochs` epochs; the model's values as bits.
fn train(dir: &Path, epochs: usize, resume: bool, tensorboard: bool) -> Result<Vec<u32>, TrainError> {
    let (train, test) = (common::blobs(300, 1), common::blobs(100, 2));
    let mut m = model();
    let mut adam = build("adam", &OptimizerOptions { lr: Some(0.01), ..Default::default() }).unwrap();
    let config = FitConfig { resume, ..config(dir, epochs, tensorboard) };
    fit(&mut m, &Classification, adam.as_mut(), None, &train, &test, &config)?;
    Ok(m.params()
        .iter()
        .flat_map(|p| p.value().data().iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        .collect())
}

/// The run's TensorBoard scalars ([`common::tensorboard_scalars`]), from its one event file.
fn scalars(dir: &Path) -> (BTreeMap<(i64, String), f32>, usize) {
    let files = event_files(&dir.join("tb")).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    common::tensorboard_scalars(&dir.join("tb"))
}

#[test]
fn logging_changes_no_weight() {
    let (with, without) = (common::Scratch::new("tb-with"), common::Scratch::new("tb-without"));
    assert_eq!(train(&with, 2, false, true).unwrap(), train(&without, 2, false, false).unwrap());
    let (values, count) = scalars(&with);
    // 10 steps per epoch: steps 1, 4, 8, 12, 16, 20 logged; the epochs at 10 and 20.
    let steps: Vec<i64> = values.keys().filter(|(_, t)| t == "train/loss").map(|(s, _)| *s).collect();
    assert_eq!(steps, vec![1, 4, 8, 12, 16, 20]);
    assert_eq!(values[&(10, "test/loss".to_string())], {
        let csv = std::fs::read_to_string(with.join("run_epochs.csv")).unwrap();
        csv.lines().nth(1).unwrap().split(',').nth(4).unwrap().parse::<f64>().unwrap() as f32
    });
    assert!(values.contains_key(&(20, "optim/2.weight/effective_lr_median".to_string())), "{values:?}");
    assert!(values.contains_key(&(4, "optim/0.bias/coord_15/v_hat".to_string())));
    assert_eq!(values.len(), count, "no step is logged twice");
}

#[test]
fn a_resumed_run_continues_its_file_without_repeating_a_step() {
    let (straight, resumed) = (common::Scratch::new("tb-straight"), common::Scratch::new("tb-resumed"));
    let expected = train(&straight, 3, false, false).unwrap();
    let _ = train(&straight, 3, false, true).unwrap();
    train(&resumed, 1, false, true).unwrap();
    // A run killed after the checkpoint of step 10 had logged steps 12 and 16, and was torn
    // in the middle of a record.
    let file = event_files(&resumed.join("tb")).unwrap().pop().unwrap();
    {
        let mut writer = EventWriter::resume(&resumed.join("tb"), u64::MAX).unwrap();
        writer.write_values(12, vec![scalar("train/loss", 99.0)]).unwrap();
        writer.write_values(16, vec![scalar("train/loss", 98.0)]).unwrap();
        writer.flush().unwrap();
        let mut torn = Vec::new();
        record::write_record(&mut torn, b"a record cut short by the kill").unwrap();
        let mut out = OpenOptions::new().append(true).open(&file).unwrap();
        out.write_all(&torn[..20]).unwrap();
    }
    assert_eq!(train(&resumed, 3, true, true).unwrap(), expected, "the resume is exact");
    let (straight_values, _) = scalars(&straight);
    let (resumed_values, count) = scalars(&resumed);
    assert_eq!(resumed_values.len(), count, "no step is logged twice");
    assert_eq!(resumed_values, straight_values);
    assert_eq!(event_files(&resumed.join("tb")).unwrap(), vec![file], "the same file, continued");
}

#[test]
fn a_new_run_replaces_the_event_file_and_a_damaged_one_is_refused_by_name() {
    let dir = common::Scratch::new("tb-damaged");
    train(&dir, 1, false, true).unwrap();
    let first = event_files(&dir.join("tb")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    train(&dir, 1, false, true).unwrap();
    let second = event_files(&dir.join("tb")).unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first, second, "a fresh run starts a fresh file");

    // Flip a byte in the middle of the file: a resume refuses it, naming it.
    let mut bytes = std::fs::read(&second[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&second[0], &bytes).unwrap();
    let error = train(&dir, 2, true, true).unwrap_err().to_string();
    assert!(error.contains(&*second[0].to_string_lossy()), "{error}");
    assert!(error.contains("damaged event file"), "{error}");
}

#[test]
fn the_averaged_weights_test_metrics_are_logged_as_test_ema() {
    let dir = common::Scratch::new("tb-ema");
    let (train, test) = (common::blobs(300, 1), common::blobs(100, 2));
    let mut m = model();
    let mut adam = build("adam", &OptimizerOptions { lr: Some(0.01), ..Default::default() }).unwrap();
    let config = FitConfig { average: Some(Averaging::Ema { decay: 0.9 }), ..config(&dir, 2, true) };
    let history = fit(&mut m, &Classification, adam.as_mut(), None, &train, &test, &config).unwrap();
    let (values, _) = scalars(&dir);
    for epoch in &history.epochs {
        let at = |tag: &str| values[&(epoch.step as i64, tag.to_string())];
        assert_eq!(at("test_ema/loss"), epoch.averaged_test_loss.unwrap() as f32);
        assert_eq!(at("test_ema/accuracy"), epoch.averaged_test_accuracy.unwrap() as f32);
        assert_eq!(at("test/accuracy"), epoch.test_accuracy.unwrap() as f32);
        assert_eq!(at("train/epoch_loss"), epoch.train_loss as f32);
    }
}

#[test]
fn adams_internals_at_its_first_step_are_the_ones_algorithm_1_gives() {
    use adamant::autodiff::{Gradients, Param};
    use adamant::tensor::Tensor;
    use adamant::tensorboard::{Logger, StepScalars};

    let dir = common::Scratch::new("tb-first-step");
    let mut w = Param::new("w", Tensor::from_vec(vec![1.0, -2.0, 2.0, 4.0], &[4]));
    let g = [0.5f32, -0.25, 2.0, 0.125];
    let mut grads = Gradients::new();
    grads.accumulate(w.id(), Tensor::from_vec(g.to_vec(), &[4]));
    let mut adam = build("adam", &OptimizerOptions { lr: Some(0.1), ..Default::default() }).unwrap();
    let options =
        LogOptions { every: 1, optimizer_state: true, traced_coordinates: 2, ..LogOptions::default() };
    let mut logger = Logger::create(&dir, options).unwrap();
    logger.before_update(1, &[&w]);
    adam.step(&mut [&mut w], &grads);
    let scalars = StepScalars { loss: 1.0, lr: adam.lr(), step_ms: 1.0, examples_per_second: 1.0 };
    logger.after_update(1, &scalars, &[&w], &grads, adam.as_ref()).unwrap();

    let file = event_files(&dir).unwrap().pop().unwrap();
    let values: BTreeMap<String, f32> = read_events(&file)
        .unwrap()
        .into_iter()
        .flat_map(|e| e.summary.map(|s| s.value).unwrap_or_default())
        .filter_map(|v| Some((v.tag, v.simple_value?)))
        .collect();
    let close = |tag: &str, expected: f64| {
        let got = values[tag] as f64;
        assert!((got - expected).abs() <= 1e-5 * expected.abs().max(1e-12), "{tag}: {got} vs {expected}");
    };
    // At t = 1, m_hat = g and v_hat = g^2: every coordinate moves by lr (up to epsilon).
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    let g64: Vec<f64> = g.iter().map(|&x| x as f64).collect();
    close("optim/w/grad_norm", norm(&g64));
    close("optim/w/m_norm", 0.1 * norm(&g64));
    close("optim/w/update_norm", 0.1 * 2.0);
    close("optim/w/update_to_weight", 0.2 / norm(&[1.0, -2.0, 2.0, 4.0]));
    close("optim/w/sqrt_v_hat_mean", g64.iter().map(|x| x.abs()).sum::<f64>() / 4.0);
    // lr / |g| for |g| = 0.125, 0.25, 0.5, 2: the median of 0.8, 0.4, 0.2, 0.05 is 0.3.
    close("optim/w/effective_lr_median", 0.3);
    close("optim/bias_correction1", 1.0 - 0.9f32 as f64);
    close("optim/w/coord_3/m", 0.1 * 0.125);
    close("optim/w/coord_3/m_hat", 0.125);
    close("optim/w/coord_0/v_hat", 0.25);
}
