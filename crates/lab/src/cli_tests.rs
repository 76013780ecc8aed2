//! Tests of the command-line helpers (`cli.rs`), kept in their own file beside it.
use super::*;

/// Parses `args` with only the optimizer flags known.
fn parse(args: &[&str]) -> Result<OptimizerArgs, CliError> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut o = OptimizerArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            lexopt::Arg::Long(name) => {
                let name = name.to_owned();
                if !o.parse_flag(&name, &mut parser)? {
                    return Err(CliError::UnknownArgument(format!("--{name}")));
                }
            }
            other => return Err(unexpected(other)),
        }
    }
    Ok(o)
}

fn error(args: &[&str]) -> String {
    parse(args).and_then(|o| o.build().map(|_| ())).unwrap_err().to_string()
}

#[test]
fn every_flag_parses_into_its_field() {
    let o = parse(&[
        "--optimizer",
        "adam",
        "--lr",
        "0.1",
        "--betas=0.8,0.99",
        "--eps",
        "1e-6",
        "--weight-decay=0.01",
        "--amsgrad",
        "--momentum",
        "0.9",
        "--dampening",
        "0.5",
        "--nesterov",
        "--alpha",
        "0.95",
        "--centered",
        "--rho",
        "0.8",
        "--lr-decay",
        "0.001",
        "--initial-accumulator-value",
        "0.1",
        "--momentum-decay",
        "0.005",
        "--no-bias-correction",
        "--no-decoupled-weight-decay",
        "--beta2-decay",
        "-0.5",
        "--eps1",
        "1e-30",
        "--eps2",
        "1e-2",
        "--d",
        "2",
        "--ns-steps",
        "3",
        "--adjust-lr-fn",
        "match_rms_adamw",
        "--no-nesterov",
    ])
    .unwrap();
    let expected = OptimizerOptions {
        lr: Some(0.1),
        betas: Some((0.8, 0.99)),
        eps: Some(1e-6),
        weight_decay: Some(0.01),
        amsgrad: true,
        momentum: Some(0.9),
        dampening: Some(0.5),
        nesterov: true,
        alpha: Some(0.95),
        centered: true,
        rho: Some(0.8),
        lr_decay: Some(0.001),
        initial_accumulator_value: Some(0.1),
        momentum_decay: Some(0.005),
        no_bias_correction: true,
        no_decoupled_weight_decay: true,
        beta2_decay: Some(-0.5),
        eps1: Some(1e-30),
        eps2: Some(1e-2),
        d: Some(2.0),
        ns_steps: Some(3),
        adjust_lr_fn: Some("match_rms_adamw"),
        no_nesterov: true,
    };
    assert_eq!(o.name.as_deref(), Some("adam"));
    assert_eq!(o.options, expected);
}

#[test]
fn both_spellings_and_negative_values_are_accepted() {
    let a = parse(&["--optimizer=sgd", "--lr=0.1", "--momentum", "0.9"]).unwrap();
    let b = parse(&["--optimizer", "sgd", "--lr", "0.1", "--momentum=0.9"]).unwrap();
    assert_eq!(a, b);
    // A value may start with '-': it is read as the value, not as a flag.
    assert_eq!(parse(&["--lr", "-0.5"]).unwrap().options.lr, Some(-0.5));
    assert_eq!(parse(&["--betas=-0.5,2"]).unwrap().options.betas, Some((-0.5, 2.0)));
    assert_eq!(parse_pair("-1.5,2.0", "--start", "-1.5,2.0").unwrap(), (-1.5, 2.0));
    // Later flags win, as in most command-line tools.
    assert_eq!(parse(&["--lr", "1", "--lr", "2"]).unwrap().options.lr, Some(2.0));
}

#[test]
fn unknown_flags_are_left_to_the_caller() {
    let mut parser = lexopt::Parser::from_args(["--epochs", "3"]);
    let mut o = OptimizerArgs::default();
    assert!(matches!(parser.next().unwrap(), Some(lexopt::Arg::Long("epochs"))));
    assert!(!o.parse_flag("epochs", &mut parser).unwrap());
    assert_eq!(o, OptimizerArgs::default());
}

#[test]
fn builds_every_optimizer_with_defaults_and_with_options() {
    for name in OPTIMIZER_NAMES {
        let o = parse(&["--optimizer", name]).unwrap();
        assert_eq!(o.build().unwrap().name(), name);
    }
    let o = parse(&["--optimizer", "rmsprop", "--lr", "0.05", "--centered"]).unwrap();
    assert_eq!(o.build().unwrap().lr(), 0.05);
}

#[test]
fn each_error_is_one_line_naming_the_argument() {
    let cases: [(&[&str], &str); 14] = [
        (&["--lr", "abc"], "--lr: invalid number 'abc'"),
        (&["--eps="], "--eps: invalid number ''"),
        (&["--lr", "nan"], "--lr: expected a finite number, got 'nan'"),
        (&["--momentum", "inf"], "--momentum: expected a finite number, got 'inf'"),
        (&["--betas", "0.9"], "--betas: expected two numbers like 0.9,0.999, got '0.9'"),
        (&["--betas", "0.9,x"], "--betas: expected two numbers like 0.9,0.999, got '0.9,x'"),
        (&["--lr"], "--lr: missing value"),
        (&["--foo"], "unknown argument '--foo'"),
        (&["-x"], "unknown argument '-x'"),
        (&["stray"], "unknown argument 'stray'"),
        (&["--amsgrad=yes"], "--amsgrad: takes no value, got 'yes'"),
        (
            &["--optimizer", "adamm"],
            "--optimizer: unknown optimizer 'adamm' (expected one of: sgd, adam, adamw, adamax, nadam, radam, adagrad, rmsprop, adadelta, lion, lamb, adabelief, adafactor, muon)",
        ),
        (&["--lr", "0.1"], "--optimizer: missing; expected one of: sgd, adam, adamw, adamax, nadam, radam, adagrad, rmsprop, adadelta, lion, lamb, adabelief, adafactor, muon"),
        (&["--lr", "bad\nline"], "--lr: invalid number 'bad\\nline'"),
    ];
    for (args, expected) in cases {
        assert_eq!(error(args), expected, "args {args:?}");
        assert!(!error(args).contains('\n'));
    }
}

#[test]
fn options_the_optimizer_refuses_are_errors() {
    assert_eq!(error(&["--optimizer", "adam", "--lr", "-0.1"]), "--lr must be >= 0, got -0.1");
    assert_eq!(error(&["--optimizer", "adam", "--momentum", "0.9"]), "--momentum is not an option of adam");
    assert_eq!(error(&["--optimizer", "sgd", "--betas", "0.9,0.99"]), "--betas is not an option of sgd");
    assert!(error(&["--optimizer", "adam", "--betas", "1.5,0.999"])
        .starts_with("--betas must be in [0, 1), got 1.5"));
}

/// Muon's whole-number and one-word flags: a bad word, a count that is not one, and
/// counts out of the option's range (or torch's limit) are one line naming the flag.
#[test]
fn count_and_choice_flags_parse_and_refuse_bad_values() {
    let o =
        parse(&["--optimizer", "muon", "--ns-steps", "7", "--adjust-lr-fn", "spectral_unclamped"]).unwrap();
    assert_eq!((o.options.ns_steps, o.options.adjust_lr_fn), (Some(7), Some("spectral_unclamped")));
    assert!(o.build().is_ok());
    let cases: [(&[&str], &str); 5] = [
        (
            &["--optimizer", "muon", "--adjust-lr-fn", "orginal"],
            "--adjust-lr-fn: expected one of original, match_rms_adamw, spectral_unclamped, got 'orginal'",
        ),
        (&["--optimizer", "muon", "--adjust-lr-fn"], "--adjust-lr-fn: missing value"),
        (
            &["--optimizer", "muon", "--ns-steps", "2.5"],
            "--ns-steps: expected a whole number from 1 to 99, got '2.5'",
        ),
        (
            &["--optimizer", "muon", "--ns-steps", "0"],
            "--ns-steps: expected a whole number from 1 to 99, got '0'",
        ),
        (
            &["--optimizer", "muon", "--ns-steps", "100"],
            "--ns-steps: expected a whole number from 1 to 99, got '100'",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(error(args), expected, "args {args:?}");
    }
    assert_eq!(error(&["--optimizer", "adam", "--ns-steps", "3"]), "--ns-steps is not an option of adam");
    assert_eq!(error(&["--optimizer", "adafactor", "--d", "0.5"]), "--d must be >= 1, got 0.5");
    assert_eq!(
        error(&["--optimizer", "adafactor", "--beta2-decay", "0.1"]),
        "--beta2-decay must be <= 0, got 0.1"
    );
}

#[test]
fn number_helpers() {
    assert_eq!(parse_f32("1e-3", "--lr").unwrap(), 1e-3);
    assert_eq!(parse_count("100", "--steps", 1000).unwrap(), 100);
    assert_eq!(parse_count("1000", "--steps", 1000).unwrap(), 1000);
    assert_eq!(parse_whole("0", "--warmup", 0, 10).unwrap(), 0);
    for bad in ["0", "-3", "1.5", "x", "", "1001", "18446744073709551615", "18446744073709551616"] {
        let e = parse_count(bad, "--steps", 1000).unwrap_err().to_string();
        assert_eq!(e, format!("--steps: expected a whole number from 1 to 1000, got '{bad}'"));
    }
    let e = parse_whole("11", "--warmup", 0, 10).unwrap_err().to_string();
    assert_eq!(e, "--warmup: expected a whole number from 0 to 10, got '11'");
    let e = parse_count("1\n2", "--epochs", MAX_EPOCHS).unwrap_err().to_string();
    assert_eq!(e, "--epochs: expected a whole number from 1 to 1000000, got '1\\n2'");
}

#[test]
fn paths_must_be_non_empty_and_free_of_control_characters() {
    assert_eq!(check_path("runs/a b".into(), "--out").unwrap(), PathBuf::from("runs/a b"));
    assert_eq!(check_path("données/ü".into(), "--data").unwrap(), PathBuf::from("données/ü"));
    let error = |v: &str| check_path(v.into(), "--out").unwrap_err().to_string();
    assert_eq!(error(""), "--out: expected a path, got ''");
    assert_eq!(error("runs\nx"), "--out: the path 'runs\\nx' contains a control character");
    assert_eq!(error("a\tb"), "--out: the path 'a\\tb' contains a control character");
    assert_eq!(error("\u{1b}[31mred"), "--out: the path '\\u{1b}[31mred' contains a control character");
    let mut parser = lexopt::Parser::from_args(["--out="]);
    parser.next().unwrap();
    assert_eq!(path_value(&mut parser, "--out").unwrap_err().to_string(), "--out: expected a path, got ''");
}

#[test]
fn output_directories_are_created_and_probed_and_unwritable_ones_refused() {
    let scratch = std::env::temp_dir().join(format!("adamant-cli-out-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let dir = scratch.join("a/b");
    check_out_dir("--out", &dir).unwrap();
    assert!(dir.is_dir());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "the probe file was left behind");
    // A directory below a regular file cannot exist, even for root.
    let file = scratch.join("file");
    fs::write(&file, b"x").unwrap();
    let under_file = file.join("out");
    let e = check_out_dir("--out", &under_file).unwrap_err().to_string();
    assert!(e.starts_with(&format!("--out: cannot write to '{}': ", under_file.display())), "{e}");
    assert!(!e.contains('\n'));
    // A file: its directory must exist already; a directory is not a file.
    check_out_file("--svg", &scratch.join("plot.svg")).unwrap();
    let e = check_out_file("--svg", &scratch.join("missing/plot.svg")).unwrap_err().to_string();
    assert!(e.starts_with("--svg: cannot write '") && e.contains("missing/plot.svg"), "{e}");
    assert!(!scratch.join("missing").exists());
    let e = check_out_file("--svg", &dir).unwrap_err().to_string();
    assert!(e.ends_with("is a directory"), "{e}");
    fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn one_line_escapes_control_characters_only() {
    assert_eq!(one_line("a\nb\tc\u{1b}d"), "a\\nb\\tc\\u{1b}d");
    assert_eq!(one_line("'quoted' C:\\path é"), "'quoted' C:\\path é");
}

#[test]
fn mirrors_parse_like_the_environment_variable() {
    let parse = |v: &str| parse_mirror(OsStr::new(v), "--mirror");
    assert_eq!(parse("https://example.org/sets/").unwrap(), Mirror::Url("https://example.org/sets".into()));
    assert_eq!(parse(".").unwrap(), Mirror::Dir(".".into()));
    assert_eq!(
        parse("ftp://example.org").unwrap_err().to_string(),
        "--mirror: 'ftp://example.org': unsupported scheme (expected http://, https://, file:// or a directory)"
    );
    assert_eq!(
        parse("/nonexistent/adamant-mirror").unwrap_err().to_string(),
        "--mirror: '/nonexistent/adamant-mirror': no such directory"
    );
}

#[test]
fn describe_lists_the_flags_given() {
    let o = parse(&["--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9", "--nesterov"]).unwrap();
    assert_eq!(o.describe(), "sgd --lr 0.01 --momentum 0.9 --nesterov");
    assert_eq!(parse(&["--optimizer", "adam"]).unwrap().describe(), "adam (defaults)");
    let o = parse(&["--optimizer", "adam", "--betas", "0.5,0.9"]).unwrap();
    assert_eq!(o.describe(), "adam --betas 0.5,0.9");
}
