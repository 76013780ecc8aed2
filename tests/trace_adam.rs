//! `examples/trace_adam.rs`: the numbers it prints are what the real `Adam` did and what
//! Algorithm 1 says, its arguments fail with one line, and the compiled example exits 2.

mod common;

use std::process::Command as Process;

use adamant_lab::trace::{
    format_table, parse_args, step_ratio, trace, write_ratio_svg, Command, TraceConfig, MAX_STEPS,
    RATIO_BETA2S, USAGE,
};

/// Algorithm 1 in f64 on `f(x) = x^2 / 2`, from the same start: `(x, m, v, update)` per step.
fn algorithm_1(c: &TraceConfig, bias_correction: bool) -> Vec<(f64, f64, f64, f64)> {
    let (b1, b2) = (c.betas.0 as f64, c.betas.1 as f64);
    let (lr, eps) = (c.lr as f64, c.eps as f64);
    let (mut x, mut m, mut v) = (c.start as f64, 0.0, 0.0);
    let mut rows = Vec::new();
    for t in 1..=c.steps as i32 {
        let g = x;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let (m_hat, v_hat) =
            if bias_correction { (m / (1.0 - b1.powi(t)), v / (1.0 - b2.powi(t))) } else { (m, v) };
        let update = lr * m_hat / (v_hat.sqrt() + eps);
        x -= update;
        rows.push((x, m, v, update));
    }
    rows
}

fn close(a: f32, b: f64, rel: f64) -> bool {
    (a as f64 - b).abs() <= rel * b.abs().max(1e-3)
}

#[test]
fn printed_numbers_are_algorithm_1_with_and_without_correction() {
    for config in [
        TraceConfig::default(),
        TraceConfig { betas: (0.9, 0.9999), lr: 0.1, steps: 20, ..TraceConfig::default() },
        TraceConfig { betas: (0.5, 0.99), start: -3.0, steps: 10, ..TraceConfig::default() },
    ] {
        let rows = trace(&config);
        assert_eq!(rows.len(), config.steps);
        for (variant, corrected) in [("corrected", true), ("uncorrected", false)] {
            let paper = algorithm_1(&config, corrected);
            for (row, &(x, m, v, update)) in rows.iter().zip(&paper) {
                let s = if corrected { row.corrected } else { row.uncorrected };
                let at = format!("{variant} t={} {config:?}", row.t);
                assert!(close(s.x, x, 1e-4), "x {} vs {x} at {at}", s.x);
                assert!(close(s.m, m, 1e-4), "m {} vs {m} at {at}", s.m);
                assert!(close(s.v, v, 1e-4), "v {} vs {v} at {at}", s.v);
                // The update is measured as x before - x after, in f32: a difference of two
                // numbers near `start`, so its error is relative to `start`, not to itself.
                let tolerance = 1e-5 * (config.start.abs() as f64).max(1.0);
                assert!(
                    (s.update as f64 - update).abs() <= tolerance,
                    "update {} vs {update} at {at}",
                    s.update
                );
                if !corrected {
                    assert_eq!((s.m_hat, s.v_hat), (s.m, s.v), "no correction: m_hat = m, v_hat = v");
                }
            }
        }
    }
}

#[test]
fn the_first_step_shows_the_bias() {
    let rows = trace(&TraceConfig::default());
    let (c, u) = (rows[0].corrected, rows[0].uncorrected);
    assert_eq!(rows[0].t, 1);
    assert_eq!((c.g, u.g), (1.0, 1.0));
    // m_1 = (1 - beta1) g and v_1 = (1 - beta2) g^2, corrected back to g and g^2.
    assert!((c.m - 0.1).abs() < 1e-7 && (c.v - 1e-3).abs() < 1e-7);
    assert!((c.m_hat - 1.0).abs() < 1e-6 && (c.v_hat - 1.0).abs() < 1e-5);
    assert!((c.update - 0.01).abs() < 5e-7, "a corrected first step is lr");
    let ratio = u.update / c.update;
    assert!((ratio - 0.1 / 0.001f32.sqrt()).abs() < 1e-3, "ratio {ratio}");
}

#[test]
fn the_table_has_a_header_and_one_line_per_step() {
    let config = TraceConfig { steps: 3, ..TraceConfig::default() };
    let text = format_table(&config, &trace(&config));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4 + 3 + 1, "{text}");
    assert!(lines[0].starts_with("Adam on f(x) = x^2/2 (g = x) from x = 1, lr 0.01, beta1 0.9, beta2 0.999"));
    assert!(lines[3]
        .split_whitespace()
        .eq("t | g m v m_hat v_hat update | g m v update | un/cor".split(' ')));
    let first: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(
        first,
        [
            "1", "|", "1.000000", "0.100000", "0.001000", "1.000000", "1.000000", "0.010000", "|",
            "1.000000", "0.100000", "0.001000", "0.031623", "|", "3.162"
        ]
    );
    assert!(lines[7].starts_with("after 3 steps: x = "));
}

#[test]
fn arguments_parse_and_errors_are_one_line() {
    let run = |line: &[&str]| match parse_args(line) {
        Ok(Command::Run(c)) => c,
        other => panic!("{line:?} parsed to {other:?}"),
    };
    assert_eq!(run(&[]), TraceConfig::default());
    let c = run(&[
        "--lr",
        "0.1",
        "--beta1=0.5",
        "--beta2",
        "0.99",
        "--eps",
        "1e-6",
        "--start",
        "-2",
        "--steps",
        "7",
    ]);
    assert_eq!(c, TraceConfig { lr: 0.1, betas: (0.5, 0.99), eps: 1e-6, start: -2.0, steps: 7 });
    assert_eq!(parse_args(["--help"]).unwrap(), Command::Help);
    assert_eq!(parse_args(["-h"]).unwrap(), Command::Help);
    assert_eq!(run(&["--steps", &MAX_STEPS.to_string()]).steps, MAX_STEPS);
    assert!(USAGE.contains(&format!("1 to {MAX_STEPS} ")), "{USAGE}");

    let cases: [(&[&str], &str); 10] = [
        (&["--beta2", "1"], "--beta2: expected a number in [0, 1), got '1'"),
        (&["--beta1", "-0.1"], "--beta1: expected a number in [0, 1), got '-0.1'"),
        (&["--lr", "-1"], "--lr: expected a number >= 0, got '-1'"),
        (&["--lr", "abc"], "--lr: invalid number 'abc'"),
        (&["--steps", "0"], "--steps: expected a whole number from 1 to 1000000, got '0'"),
        // Before the bound, this panicked with "capacity overflow" (exit 101).
        (
            &["--steps", "18446744073709551615"],
            "--steps: expected a whole number from 1 to 1000000, got '18446744073709551615'",
        ),
        (&["--steps", "1000001"], "--steps: expected a whole number from 1 to 1000000, got '1000001'"),
        (&["--start", "nan"], "--start: expected a finite number, got 'nan'"),
        (&["--eps"], "--eps: missing value"),
        (&["--optimizer", "sgd"], "unknown argument '--optimizer'"),
    ];
    for (line, expected) in cases {
        let e = parse_args(line).expect_err("should be refused").to_string();
        assert_eq!(e, expected, "{line:?}");
    }
}

#[test]
fn the_example_prints_the_table_and_exits_2_on_bad_arguments() {
    let bin = common::example_binary("trace_adam");
    let out = Process::new(&bin).args(["--steps", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = TraceConfig { steps: 2, ..TraceConfig::default() };
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format_table(&config, &trace(&config)));

    let out = Process::new(&bin).args(["--beta2", "1.5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --beta2: expected a number in [0, 1), got '1.5'\n"
    );
    assert!(out.stdout.is_empty());

    let out = Process::new(&bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("--beta2 F"));
}

#[test]
fn the_ratio_figure_is_drawn_and_its_numbers_are_the_optimizers() {
    // At t = 1 every gradient is constant so far: the formula is what the real Adam did.
    for beta2 in RATIO_BETA2S {
        let rows = trace(&TraceConfig { betas: (0.9, beta2), steps: 1, ..TraceConfig::default() });
        let measured = rows[0].uncorrected.update as f64 / rows[0].corrected.update as f64;
        assert!((measured - step_ratio((0.9, beta2), 1)).abs() < 1e-3, "beta2 {beta2}: {measured}");
    }
    // The numbers chapter 8 quotes for the paper's defaults.
    let at = |t| step_ratio((0.9, 0.999), t);
    assert!((at(1) - 3.162).abs() < 1e-3 && (at(12) - 6.57).abs() < 1e-2 && (at(1000) - 1.26).abs() < 1e-2);

    let dir = common::Scratch::new("trace-ratio");
    let path = dir.join("ratio.svg");
    let p = path.to_str().unwrap();
    assert_eq!(
        parse_args(["--beta1", "0.8", "--ratio-svg", p]).unwrap(),
        Command::Ratio { beta1: 0.8, path: path.clone() }
    );
    let bin = common::example_binary("trace_adam");
    let out = Process::new(&bin).args(["--ratio-svg", p]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(summary, write_ratio_svg(0.9, &dir.join("again.svg")).unwrap());
    assert!(summary.contains("beta2 0.999: t=1 3.162, "), "{summary}");
    let svg = std::fs::read_to_string(&path).expect("SVG written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for beta2 in RATIO_BETA2S {
        assert!(svg.contains(&format!("beta2 = {beta2}")), "legend names beta2 {beta2}");
    }
    assert!(svg.len() < 100_000, "a small figure: {} bytes", svg.len());

    // Bad paths are refused in one line, before anything is drawn.
    assert_eq!(parse_args(["--ratio-svg="]).unwrap_err().to_string(), "--ratio-svg: expected a path, got ''");
    let missing = dir.join("no-such-dir").join("r.svg");
    let out = Process::new(&bin).args(["--ratio-svg", missing.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: --ratio-svg: ") && stderr.lines().count() == 1, "{stderr}");
    assert!(out.stdout.is_empty());
}
