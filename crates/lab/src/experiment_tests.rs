//! Tests of the experiment runner (`experiment.rs`), kept in their own file beside it.

use super::*;
use adamant::tensor::Tensor;

#[test]
fn preprocess_spellings_round_trip_and_bad_ones_are_refused() {
    for p in [Preprocess::None, Preprocess::Standardize, Preprocess::Zca(1e-2), Preprocess::Zca(0.5)] {
        assert_eq!(p.to_string().parse::<Preprocess>(), Ok(p));
    }
    assert_eq!("zca".parse::<Preprocess>(), Ok(Preprocess::Zca(1e-2)));
    for bad in ["", "zca:", "zca:0", "zca:-1", "zca:nan", "standardise", "ZCA"] {
        assert!(bad.parse::<Preprocess>().is_err(), "{bad:?} was accepted");
    }
    let Command::Run(a) = parse_args(["--preprocess", "standardize"]).unwrap() else { panic!("help") };
    assert_eq!(a.preprocess, Some(Preprocess::Standardize));
}

#[test]
fn precision_is_parsed_and_named_in_the_json_line_when_not_f32() {
    let Command::Run(a) = parse_args(["--precision", "bf16"]).unwrap() else { panic!("help") };
    assert_eq!(a.precision, Precision::Bf16);
    let Command::Run(plain) = parse_args(Vec::<String>::new()).unwrap() else { panic!("help") };
    assert_eq!(plain.precision, Precision::F32);
    let Err(e) = parse_args(["--precision", "half"]) else { panic!("accepted") };
    assert_eq!(e.to_string(), "--precision: unknown precision 'half' (expected f32 or bf16)");
    let run = |precision| RunResult {
        optimizer: "adam".to_string(),
        description: String::new(),
        history: Default::default(),
        precision,
    };
    assert!(run(Precision::Bf16).json("t").contains("\"optimizer\": \"adam\", \"precision\": \"bf16\", "));
    assert!(!run(Precision::F32).json("t").contains("precision"));
}

#[test]
fn augment_is_a_flag_for_image_datasets_only() {
    let Command::Run(a) = parse_args(["--augment"]).unwrap() else { panic!("help") };
    assert!(a.augment);
    let Command::Run(plain) = parse_args(Vec::<String>::new()).unwrap() else { panic!("help") };
    assert!(!plain.augment);
    let experiment = Experiment {
        name: "t",
        about: "",
        dataset: "mnist",
        epochs: 1,
        batch_size: 2,
        optimizer: "adam",
        compare: &[],
        defaults: |_| OptimizerOptions::default(),
        schedule: |_, _| Schedule::Constant,
        defaults_doc: "",
        model: |rng| Box::new(adamant::layers::nets::mlp(rng)),
        preprocess: Preprocess::None,
    };
    let splits = |shape: &[usize]| {
        let d = Dataset { images: Tensor::zeros(shape), labels: vec![0; shape[0]] };
        Splits { train: d.clone(), test: d, source: PathBuf::new(), class_names: vec![] }
    };
    assert!(experiment.check_augment(&a, &splits(&[2, 3, 4, 4])).is_ok());
    assert!(experiment.check_augment(&plain, &splits(&[2, 784])).is_ok());
    let e = experiment.check_augment(&a, &splits(&[2, 784])).unwrap_err().to_string();
    assert!(e.contains("--augment") && e.contains("mnist's training set is [2, 784]"), "{e}");
}

#[test]
fn standardize_uses_training_statistics_per_channel_for_images() {
    // Two channels with different offsets and scales; the test split shares them.
    let image = |n: usize, shift: f32| {
        let data: Vec<f32> = (0..n * 2 * 4)
            .map(|i| {
                let c = (i / 4) % 2;
                let v = (i % 7) as f32 + shift;
                if c == 0 {
                    v
                } else {
                    100.0 + 10.0 * v
                }
            })
            .collect();
        Dataset { images: Tensor::from_vec(data, &[n, 2, 2, 2]), labels: vec![0; n] }
    };
    let (train, test) = standardize(&image(6, 0.0), &image(3, 1.0));
    for c in 0..2 {
        let values: Vec<f64> = (0..6)
            .flat_map(|n| (0..4).map(move |j| (n * 8 + c * 4 + j) as usize))
            .map(|i| train.images.data()[i] as f64)
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "channel {c}: mean {mean}, var {var}");
    }
    // The test split is shifted by one raw unit: by 1/std of channel 0, not re-centred.
    let std0 = {
        let raw: Vec<f64> = (0..6).flat_map(|n| (0..4).map(move |j| ((n * 8 + j) % 7) as f64)).collect();
        let m = raw.iter().sum::<f64>() / 24.0;
        (raw.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 24.0).sqrt()
    };
    let shift = test.images.data()[0] - standardize(&image(6, 0.0), &image(3, 0.0)).1.images.data()[0];
    assert!((shift as f64 - 1.0 / std0).abs() < 1e-5, "shift {shift}, 1/std {}", 1.0 / std0);
}

#[test]
fn tensorboard_flags_go_together_and_name_the_run_directory() {
    let dir = std::env::temp_dir().join(format!("adamant-tb-flags-{}", std::process::id()));
    let dir_arg = dir.to_str().unwrap();
    let Command::Run(a) =
        parse_args(["--tensorboard", dir_arg, "--log-every", "100", "--log-optimizer-state"]).unwrap()
    else {
        panic!("help")
    };
    assert!(dir.is_dir(), "checked writable (and created) before training");
    let run =
        cli::tensorboard_run(a.tensorboard.as_deref(), "mnist_mlp_adam", a.log_every, a.log_optimizer_state)
            .unwrap();
    assert_eq!(run.dir, dir.join("mnist_mlp_adam"));
    assert_eq!((run.options.every, run.options.optimizer_state, run.options.histograms), (100, true, true));
    let Command::Run(plain) = parse_args(Vec::<String>::new()).unwrap() else { panic!("help") };
    assert!(cli::tensorboard_run(plain.tensorboard.as_deref(), "x", None, false).is_none());
    assert_eq!(cli::tensorboard_run(Some(&dir), "x", None, false).unwrap().options.every, 10);

    let error = |args: &[&str]| match parse_args(args.iter().copied()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted {args:?}"),
    };
    assert_eq!(error(&["--log-every", "5"]), "--log-every: needs --tensorboard DIR");
    assert_eq!(error(&["--log-optimizer-state"]), "--log-optimizer-state: needs --tensorboard DIR");
    assert!(error(&["--tensorboard", dir_arg, "--log-every", "0"]).starts_with("--log-every: "));
    assert!(error(&["--tensorboard", ""]).starts_with("--tensorboard: expected a path"));
    std::fs::remove_dir_all(&dir).unwrap();
}
