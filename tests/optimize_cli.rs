//! `examples/optimize.rs` end to end: its argument parsing and run (`adamant_lab::playground`),
//! called directly, and the compiled example once, for its exit status and stderr.

mod common;

use std::process::Command as Process;
use std::time::{Duration, Instant};

use adamant_lab::playground::{execute, parse_args, Command, Noise, OptimizeArgs, Problem, Row};

fn args(line: &[&str]) -> OptimizeArgs {
    match parse_args(line) {
        Ok(Command::Run(a)) => *a,
        other => panic!("{line:?} parsed to {other:?}"),
    }
}

fn error(line: &[&str]) -> String {
    parse_args(line).expect_err("should be refused").to_string()
}

/// Runs `line` and returns the rows and the CSV text it printed.
fn run(line: &[&str]) -> (Vec<Row>, String) {
    let mut out = Vec::new();
    let rows = execute(&args(line), &mut out).expect("runs");
    (rows, String::from_utf8(out).expect("CSV is UTF-8"))
}

/// A scratch directory of this test process, deleted when the test ends.
fn scratch(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("optimize-{name}"))
}

#[test]
fn adam_with_defaults_on_rosenbrock_matches_pytorch() {
    let (rows, csv) =
        run(&["--problem", "rosenbrock", "--start=-1.5,2.0", "--steps", "100", "--optimizer", "adam"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 102, "header + 101 rows");
    assert_eq!(lines[0], "step,loss,x0,x1");
    assert_eq!(lines[1], "0,12.5,-1.5,2");
    // torch.optim.Adam([p]) with its defaults, same loss, printed as f32 (torch 2.x, CPU):
    // step 1 (12.296650886535645, -1.4989999532699585, 2.000999927520752),
    // step 100 (5.943409442901611, -1.4373650550842285, 2.0608596801757812).
    assert_eq!(lines[2], "1,12.296651,-1.499,2.001");
    assert_eq!(lines[101], "100,5.9434094,-1.437365,2.0608597");
    // Adam at lr 1e-3 walks steadily down the valley wall: the loss falls at every step.
    assert!(rows.windows(2).all(|w| w[1].loss < w[0].loss), "loss not decreasing");
    assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), (0..=100).collect::<Vec<_>>());
}

#[test]
fn sgd_with_momentum_converges_on_the_ill_conditioned_quadratic() {
    // lr 0.01 is just under the stability limit 2/100 of the steep direction.
    let (momentum, _) = run(&[
        "--problem",
        "quadratic",
        "--steps",
        "300",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--momentum",
        "0.9",
    ]);
    let (plain, _) = run(&["--problem", "quadratic", "--steps", "300", "--optimizer", "sgd", "--lr", "0.01"]);
    assert_eq!(momentum[0].params, Problem::Quadratic.default_start());
    assert_eq!(momentum[0].loss, 52.0);
    let end = &momentum[300];
    assert!(end.loss < 1e-9, "momentum SGD ended at loss {}", end.loss);
    assert!(end.params.iter().all(|x| x.abs() < 1e-4), "{:?}", end.params);
    // Without momentum the flat direction (curvature 1) shrinks only by 0.99 per step.
    let x = plain[300].params[0];
    assert!((x - -2.0 * 0.99f32.powi(300)).abs() < 1e-3, "plain SGD x = {x}");
    assert!(plain[300].loss > 1e3 * end.loss);
}

#[test]
fn every_optimizer_runs_with_its_defaults() {
    for name in adamant::optim::OPTIMIZER_NAMES {
        for problem in ["quadratic", "matrix"] {
            // Muon takes matrices only; its refusal of the vector is the next test's.
            if name == "muon" && problem != "matrix" {
                continue;
            }
            let (rows, _) = run(&["--problem", problem, "--steps", "20", "--optimizer", name]);
            assert_eq!(rows.len(), 21);
            assert!(
                rows[20].loss < rows[0].loss,
                "{name} on {problem}: {} -> {}",
                rows[0].loss,
                rows[20].loss
            );
        }
    }
}

/// Issue #21's successors by name on both problems, with the flags named after their
/// hyperparameters; Muon refuses Rosenbrock's vector with one line before it runs.
#[test]
fn the_successors_run_on_both_problems_with_their_flags() {
    let runs: [(&str, &[&str]); 9] = [
        ("lion", &["--lr", "0.01", "--betas", "0.9,0.99", "--weight-decay", "0.1"]),
        ("lamb", &["--lr", "0.05", "--eps", "1e-6", "--weight-decay", "0.01"]),
        ("lamb", &["--lr", "0.05", "--no-bias-correction"]),
        ("adabelief", &["--lr", "0.05", "--eps", "1e-16", "--weight-decay", "0.01"]),
        ("adabelief", &["--lr", "0.05", "--no-decoupled-weight-decay", "--weight-decay", "0.01"]),
        (
            "adafactor",
            &["--lr", "0.05", "--beta2-decay", "-0.8", "--eps1", "1e-30", "--eps2", "1e-3", "--d", "1"],
        ),
        ("muon", &["--lr", "0.02", "--momentum", "0.95", "--nesterov", "--ns-steps", "5"]),
        ("muon", &["--lr", "0.02", "--no-nesterov", "--adjust-lr-fn", "match_rms_adamw", "--eps", "1e-7"]),
        ("muon", &["--lr", "0.02", "--weight-decay", "0", "--adjust-lr-fn", "original"]),
    ];
    for (name, flags) in runs {
        let problems: &[&str] = if name == "muon" { &["matrix"] } else { &["rosenbrock", "matrix"] };
        for problem in problems {
            let line = [&["--problem", problem, "--steps", "50", "--optimizer", name][..], flags].concat();
            let (rows, csv) = run(&line);
            assert!(rows[50].loss < 0.9 * rows[0].loss, "{line:?}: {} -> {}", rows[0].loss, rows[50].loss);
            let columns = csv.lines().next().unwrap().split(',').count();
            assert_eq!(columns, if *problem == "matrix" { 14 } else { 4 }, "{line:?}");
        }
    }
    assert_eq!(
        error(&["--problem", "rosenbrock", "--optimizer", "muon"]),
        "--optimizer: muon updates matrices (parameters with two axes), and none of the parameters is one \
         ('xy' [2]); adamw would update them all (--problem rosenbrock)"
    );
    assert_eq!(
        error(&["--problem", "matrix", "--optimizer", "muon", "--adjust-lr-fn", "spectral"]),
        "--adjust-lr-fn: expected one of original, match_rms_adamw, spectral_unclamped, got 'spectral'"
    );
    assert_eq!(
        error(&["--problem", "matrix", "--optimizer", "muon", "--ns-steps", "0"]),
        "--ns-steps: expected a whole number from 1 to 99, got '0'"
    );
    assert_eq!(
        error(&["--problem", "matrix", "--optimizer", "lion", "--beta2-decay", "-0.8"]),
        "--beta2-decay is not an option of lion"
    );
}

#[test]
fn svg_is_written_with_the_path_over_contours() {
    let dir = scratch("svg");
    let path = dir.join("path.svg");
    let p = path.to_str().unwrap();
    let (rows, _) = run(&["--optimizer", "adam", "--lr", "0.05", "--steps", "200", "--svg", p]);
    let svg = std::fs::read_to_string(&path).expect("SVG written");
    assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("adam --lr 0.05"), "title names the optimizer and options");
    assert!(svg.contains(&format!("loss {}", rows[200].loss)), "subtitle gives the final loss");
    // Contours and the path are polylines: many of them.
    assert!(svg.matches("<polyline").count() > 20);
    // Written atomically: no temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("path.svg")]);

    let missing = dir.join("no-such-dir").join("x.svg");
    let bad = args(&["--optimizer", "adam", "--steps", "1", "--svg", missing.to_str().unwrap()]);
    let e = execute(&bad, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.starts_with(&format!("--svg: cannot write '{}': ", missing.display())), "{e}");

    // Refused before the run, not after the longest one (a million steps, about 3 s).
    let under_a_file = path.join("x.svg");
    let long = args(&["--optimizer", "adam", "--steps", "1000000", "--svg", under_a_file.to_str().unwrap()]);
    let (started, mut csv) = (Instant::now(), Vec::new());
    let e = execute(&long, &mut csv).unwrap_err().to_string();
    assert!(e.starts_with(&format!("--svg: cannot write '{}': ", under_a_file.display())), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1) && csv.is_empty(), "{:?}", started.elapsed());
}

#[test]
fn noise_is_seeded_and_zero_noise_changes_nothing() {
    let base = ["--problem", "quadratic", "--steps", "100", "--optimizer", "sgd", "--lr", "0.01"];
    let with = |extra: &[&str]| run(&[&base[..], extra].concat()).1;
    let exact = with(&[]);
    assert_eq!(with(&["--noise", "0"]), exact, "noise 0 is the exact gradient");
    assert_eq!(with(&["--noise", "0", "--seed", "9"]), exact);
    let noisy = with(&["--noise", "5", "--seed", "1"]);
    assert_eq!(with(&["--noise=5", "--seed=1"]), noisy, "same seed, same path");
    assert_ne!(with(&["--noise", "5", "--seed", "2"]), noisy);
    assert_ne!(noisy, exact);
    assert_eq!(noisy.lines().nth(1), exact.lines().nth(1), "row 0 is the start either way");

    assert_eq!(args(&["--optimizer", "sgd"]).noise, Noise::default());
    assert_eq!(
        args(&["--optimizer", "sgd", "--noise", "1000", "--seed", "7"]).noise,
        Noise { sigma: 1000.0, seed: 7 }
    );

    let dir = scratch("noise-svg");
    let path = dir.join("noisy.svg");
    let svg_flag = ["--svg", path.to_str().unwrap()];
    run(&[&base[..], &["--noise", "5", "--seed", "1"], &svg_flag[..]].concat());
    let svg = std::fs::read_to_string(&path).expect("SVG written");
    assert!(svg.contains("sgd --lr 0.01, gradient noise sigma 5 (seed 1)"), "the title names the noise");
}

#[test]
fn defaults_help_and_spellings() {
    let a = args(&["--optimizer", "sgd"]);
    assert_eq!((a.problem, a.start, a.steps, a.svg), (Problem::Rosenbrock, vec![-1.5, 2.0], 100, None));
    assert_eq!(args(&["--problem=quadratic", "--optimizer=sgd"]).start, [-2.0, 1.0]);
    assert_eq!(args(&["--optimizer", "sgd", "--start", "-0.5,-2"]).start, [-0.5, -2.0]);
    assert_eq!(args(&["--optimizer", "sgd", "--start=3,4"]).start, [3.0, 4.0]);
    assert_eq!(parse_args(["--help"]).unwrap(), Command::Help);
    assert_eq!(
        parse_args(["--optimizer", "nope", "-h"]).unwrap_err().to_string().split(':').next(),
        Some("--optimizer")
    );
    assert_eq!(parse_args(["--steps", "5", "-h"]).unwrap(), Command::Help);
}

#[test]
fn bad_arguments_give_one_line_errors() {
    let names = adamant::optim::OPTIMIZER_NAMES.join(", ");
    let cases: Vec<(&[&str], String)> = vec![
        (
            &["--optimizer", "adan"],
            format!("--optimizer: unknown optimizer 'adan' (expected one of: {names})"),
        ),
        (&["--steps", "10"], format!("--optimizer: missing; expected one of: {names}")),
        (&["--optimizer", "adam", "--lr", "fast"], "--lr: invalid number 'fast'".into()),
        (&["--optimizer", "adam", "--lr", "-0.1"], "--lr must be >= 0, got -0.1".into()),
        (&["--optimizer", "adam", "--lr=NaN"], "--lr: expected a finite number, got 'NaN'".into()),
        (&["--optimizer", "adam", "--eps"], "--eps: missing value".into()),
        (&["--optimizer", "adam", "--foo"], "unknown argument '--foo'".into()),
        (&["--optimizer", "adam", "extra"], "unknown argument 'extra'".into()),
        (
            &["--optimizer", "adam", "--steps", "0"],
            "--steps: expected a whole number from 1 to 1000000, got '0'".into(),
        ),
        (
            &["--optimizer", "adam", "--steps=-5"],
            "--steps: expected a whole number from 1 to 1000000, got '-5'".into(),
        ),
        (
            &["--optimizer", "adam", "--steps", "ten"],
            "--steps: expected a whole number from 1 to 1000000, got 'ten'".into(),
        ),
        // Before the bound, `steps + 1` wrapped to 0 and the run went on until memory ran out.
        (
            &["--optimizer", "adam", "--steps", "18446744073709551615"],
            "--steps: expected a whole number from 1 to 1000000, got '18446744073709551615'".into(),
        ),
        (&["--optimizer", "adam", "--momentum", "0.9"], "--momentum is not an option of adam".into()),
        (&["--optimizer", "rmsprop", "--nesterov"], "--nesterov is not an option of rmsprop".into()),
        (&["--optimizer", "sgd", "--nesterov"], "--nesterov needs momentum > 0 and dampening 0".into()),
        (
            &["--optimizer", "adam", "--betas", "0.9"],
            "--betas: expected two numbers like 0.9,0.999, got '0.9'".into(),
        ),
        (
            &["--optimizer", "adam", "--start", "1"],
            "--start: expected two numbers like -1.5,2.0, got '1'".into(),
        ),
        (
            &["--optimizer", "adam", "--start=1,2,3"],
            "--start: expected two numbers like -1.5,2.0, got '1,2,3'".into(),
        ),
        (
            &["--optimizer", "adam", "--problem", "beale"],
            "--problem: unknown problem 'beale' (expected one of: rosenbrock, quadratic, matrix)".into(),
        ),
        (
            &["--optimizer", "adam", "--problem", "matrix", "--start", "1,2"],
            "--start: the matrix problem starts from its fixed W; --start sets (x, y) of a 2-d problem"
                .into(),
        ),
        (&["--optimizer", "adam", "--svg="], "--svg: expected a path, got ''".into()),
        (
            &["--optimizer", "adam", "--svg", "a\nb.svg"],
            "--svg: the path 'a\\nb.svg' contains a control character".into(),
        ),
        (&["--optimizer", "adam", "--amsgrad=1"], "--amsgrad: takes no value, got '1'".into()),
        (
            &["--optimizer", "adam", "--noise", "-1"],
            "--noise: expected a number from 0 to 1000, got '-1'".into(),
        ),
        (
            &["--optimizer", "adam", "--noise", "1e4"],
            "--noise: expected a number from 0 to 1000, got '1e4'".into(),
        ),
        (&["--optimizer", "adam", "--noise", "inf"], "--noise: expected a finite number, got 'inf'".into()),
        (&["--optimizer", "adam", "--noise", "loud"], "--noise: invalid number 'loud'".into()),
        (&["--optimizer", "adam", "--noise"], "--noise: missing value".into()),
        (&["--optimizer", "adam", "--seed", "-3"], "--seed: expected a whole number, got '-3'".into()),
    ];
    for (line, expected) in cases {
        assert_eq!(error(line), expected, "{line:?}");
    }
}

#[test]
fn the_example_exits_2_with_one_line_on_stderr() {
    let bin = common::example_binary("optimize");
    let out = Process::new(&bin).args(["--optimizer", "adam", "--lr", "abc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: --lr: invalid number 'abc'\n");
    assert!(out.stdout.is_empty());

    let out =
        Process::new(&bin).args(["--optimizer", "sgd", "--steps", "3", "--start=-1.5,2.0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert_eq!(csv.lines().nth(1), Some("0,12.5,-1.5,2"));

    let out = Process::new(&bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--problem NAME") && help.contains("--initial-accumulator-value F"), "{help}");
    assert!(help.contains("--noise SIGMA") && help.contains("--seed S"), "{help}");
}
