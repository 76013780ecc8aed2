//! The numbers the tour's chapters 7 to 9 quote, recomputed from the code that produces them:
//! `adamant_lab::trace` (`examples/trace_adam.rs`), the playground (`examples/optimize.rs`, with
//! the settings of `docs/figures/paths.sh`), Algorithm 1's formulas, and the VAE runs of the
//! README's table (`docs/figures/mnist_vae_*_runs.csv`). Each number is formatted as the text
//! writes it and must appear there, so a number that drifts from the code fails here.

use std::fs;
use std::path::PathBuf;

use adamant::optim::AdamConfig;
use adamant_lab::playground::{execute, parse_args, Command, Row};
use adamant_lab::trace::{format_table, trace, TraceConfig};

fn chapter(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/tour").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether `text` holds `quote` as a whole number: not preceded by a digit or a point, not
/// followed by a digit or by a point and a digit (so `0.82` is not found in `0.8215`).
fn quotes(text: &str, quote: &str) -> bool {
    let b = text.as_bytes();
    text.match_indices(quote).any(|(i, _)| {
        let end = i + quote.len();
        let before = i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.');
        let after = end < b.len()
            && (b[end].is_ascii_digit()
                || (b[end] == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit)));
        !before && !after
    })
}

/// Asserts that the chapter quotes every `(what, text)` pair.
fn assert_quotes(name: &str, expected: &[(&str, String)]) {
    let text = chapter(name);
    let missing: Vec<String> = expected
        .iter()
        .filter(|(_, q)| !quotes(&text, q))
        .map(|(what, q)| format!("{what}: `{q}`"))
        .collect();
    assert!(missing.is_empty(), "{name} does not quote:\n{}", missing.join("\n"));
}

/// The uncorrected-over-corrected step for a constant gradient: `(1 - b1^t) / sqrt(1 - b2^t)`.
fn inflation(b1: f64, b2: f64, t: i32) -> f64 {
    (1.0 - b1.powi(t)) / (1.0 - b2.powi(t)).sqrt()
}

/// The first `t` in 1..=10000 where `f` is largest.
fn argmax(f: impl Fn(i32) -> f64) -> i32 {
    (1..=10_000).max_by(|&a, &b| f(a).total_cmp(&f(b))).unwrap()
}

#[test]
fn chapter_7_quotes_the_default_config() {
    let c = AdamConfig::default();
    let defaults =
        format!("alpha = {:e}, beta1 = {}, beta2 = {}, epsilon = {:e}", c.lr, c.betas.0, c.betas.1, c.eps);
    assert_quotes("07-adam.md", &[("AdamConfig::default()", defaults)]);
}

#[test]
fn chapter_8_quotes_what_trace_adam_prints() {
    let text = chapter("08-bias-correction.md");
    // The two tables, line by line, as the example prints them (the second without its header).
    let default = TraceConfig::default();
    let rows = trace(&default);
    for line in format_table(&default, &rows).lines() {
        assert!(text.contains(line), "the default trace's line is missing:\n{line}");
    }
    let steep_config = TraceConfig { betas: (0.9, 0.9999), steps: 5, ..TraceConfig::default() };
    let steep = trace(&steep_config);
    for line in format_table(&steep_config, &steep).lines().skip(3).take(6) {
        assert!(text.contains(line), "the beta2 = 0.9999 trace's line is missing:\n{line}");
    }
    let flat = trace(&TraceConfig { betas: (0.9, 0.99), steps: 5, ..TraceConfig::default() });

    let lr = default.lr as f64;
    let (far, t_far) = rows
        .iter()
        .map(|r| ((1.0 - r.corrected.update as f64 / lr).abs(), r.t))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    let biggest = rows.iter().max_by(|a, b| a.uncorrected.update.total_cmp(&b.uncorrected.update)).unwrap();
    let last = rows.last().unwrap();
    let ratio = |r: &adamant_lab::trace::TraceRow| r.uncorrected.update / r.corrected.update;
    let f = |b2: f64, t: i32| inflation(0.9, b2, t);
    let peak = argmax(|t| f(0.999, t));
    let steep_peak = argmax(|t| f(0.9999, t));
    let bias = |t: i32| 1.0 - 0.999f64.powi(t);
    assert_quotes(
        "08-bias-correction.md",
        &[
            ("1 - beta2^t at t = 1", format!("{:.3} at `t = 1`", bias(1))),
            ("1 - beta2^t at t = 10", format!("{:.2} at\n`t = 10`", bias(10))),
            ("1 - beta2^t at t = 100", format!("{:.3} at `t = 100`", bias(100))),
            ("1 - beta2^t at t = 1000", format!("{:.2} at `t = 1000`", bias(1000))),
            ("inflation at t = 1", format!("{:.2} at `t = 1`", f(0.999, 1))),
            ("inflation peak", format!("peaks at {:.2} near `t = {peak}`", f(0.999, peak))),
            ("inflation at t = 100", format!("{:.2} at `t = 100`", f(0.999, 100))),
            ("inflation at t = 1000", format!("{:.2} at\n`t = 1000`", f(0.999, 1000))),
            ("formula, first steps", format!("{:.3}, {:.2}, {:.2}", f(0.999, 1), f(0.999, 2), f(0.999, 3))),
            ("corrected updates, furthest from lr", format!("within {:.1}% of `lr`", 100.0 * far)),
            ("... at", format!("{:.6}, at `t = {t_far}`", rows[t_far - 1].corrected.update)),
            (
                "largest uncorrected update",
                format!("({:.6} at `t = {}`)", biggest.uncorrected.update, biggest.t),
            ),
            ("uncorrected x before step 15", format!("starts from `x = {:.2}`", last.uncorrected.g)),
            ("uncorrected g at step 15", format!("gradient of {:.2}", last.uncorrected.g)),
            ("corrected g at step 15", format!("against {:.2} for the", last.corrected.g)),
            ("beta2 0.9999, first ratio", format!("starts\nat {:.0}", ratio(&steep[0]))),
            ("beta2 0.9999, ratio at 5", format!("{:.2} by step 5", ratio(&steep[4]))),
            (
                "beta2 0.9999, formula peak",
                format!("peaks at {:.2} at `t = {steep_peak}`", f(0.9999, steep_peak)),
            ),
            ("beta2 0.99, first ratio", format!("first ratio is exactly {:.0}", ratio(&flat[0]))),
            ("beta2 0.99, ratio at 5", format!("grows only to {:.2}", ratio(&flat[4]))),
        ],
    );
}

/// `(beta1, beta2, log10_lr, bias_correction) -> train_loss` of a runs CSV of docs/figures/.
fn vae_runs(file: &str) -> Vec<(f64, f64, i32, bool, f64)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/figures").join(file);
    let text = fs::read_to_string(&path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
                c[3].parse().unwrap(),
                c[4] == "true",
                c[6].parse().unwrap(),
            )
        })
        .collect()
}

fn loss(runs: &[(f64, f64, i32, bool, f64)], b1: f64, b2: f64, lr: i32, bc: bool) -> f64 {
    runs.iter().find(|r| r.0 == b1 && r.1 == b2 && r.2 == lr && r.3 == bc).unwrap().4
}

fn shown(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x:.digits$}")
    }
}

#[test]
fn chapter_8_quotes_the_vae_runs() {
    let full = vae_runs("mnist_vae_full_runs.csv");
    let l = |b1, b2, lr, bc| loss(&full, b1, b2, lr, bc);
    let row = |bc: bool| {
        let cells: Vec<String> = (-5..=-2).map(|lr| shown(l(0.9, 0.9999, lr, bc), 1)).collect();
        format!("| {} |", cells.join(" | "))
    };
    // The best step size with correction is 1e-3 for every beta2; without it, for 0.9999, 1e-4.
    let best = |b2: f64, bc: bool| {
        (-5..=-2).min_by(|&a, &b| l(0.9, b2, a, bc).total_cmp(&l(0.9, b2, b, bc))).unwrap()
    };
    for b2 in [0.99, 0.999, 0.9999] {
        assert_eq!(best(b2, true), -3, "beta2 {b2}");
    }
    assert_eq!(best(0.9999, false), -4);
    assert!(l(0.0, 0.9999, -3, false).is_nan() && !l(0.0, 0.9999, -3, true).is_nan());
    let reduced = vae_runs("mnist_vae_reduced_runs.csv");
    let r = |b2, lr, bc| loss(&reduced, 0.9, b2, lr, bc);
    let survivors: Vec<_> = reduced.iter().filter(|x| x.2 == -2 && !x.4.is_nan()).collect();
    assert_eq!(survivors.len(), 1, "one alpha = 1e-2 run lasts 100 epochs");
    assert_quotes(
        "08-bias-correction.md",
        &[
            ("with correction", format!("with correction {}", row(true))),
            ("without", format!("without {}", row(false))),
            ("cost at 1e-3", format!("{:.1} points", l(0.9, 0.9999, -3, false) - l(0.9, 0.9999, -3, true))),
            (
                "100 epochs without",
                format!("ends at {:.2} against {:.2}", r(0.9999, -3, false), r(0.9999, -3, true)),
            ),
            ("100 epochs, 1e-2", format!("({:.2})", r(0.9999, -2, true))),
        ],
    );
}

/// The rows of `optimize` run with these flags.
fn path(flags: &str) -> Vec<Row> {
    let Command::Run(args) = parse_args(flags.split(' ')).unwrap() else { panic!("{flags}") };
    execute(&args, &mut Vec::new()).unwrap()
}

#[test]
fn chapter_9_quotes_the_formulas_and_the_paths() {
    // AMSGrad: the factor sqrt(1 - beta2^t) / (1 - beta1^t) of a fixed vmax.
    let factor = |t| 1.0 / inflation(0.9, 0.999, t);
    let low = argmax(|t| -factor(t));
    // RAdam's rectifier.
    let b2 = 0.999f64;
    let rho_inf = 2.0 / (1.0 - b2) - 1.0;
    let rho = |t: i32| rho_inf - 2.0 * t as f64 * b2.powi(t) / (1.0 - b2.powi(t));
    let rect = |t: i32| {
        let r = rho(t);
        ((r - 4.0) * (r - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * r)).sqrt()
    };
    assert!(rho(5) <= 5.0 && rho(6) > 5.0, "the first rectified step is t = 6");

    let adam_q = path("--problem quadratic --steps 200 --optimizer adam --lr 0.1");
    let sgd_q = path("--problem quadratic --steps 200 --optimizer sgd --lr 0.019");
    let adam_r = path("--problem rosenbrock --steps 500 --optimizer adam --lr 0.1");
    let ams_r = path("--problem rosenbrock --steps 500 --optimizer adam --lr 0.1 --amsgrad");
    let adamw_r = path("--problem rosenbrock --steps 500 --optimizer adamw --lr 0.1");
    let adamax_r = path("--problem rosenbrock --steps 500 --optimizer adamax --lr 1");
    let radam_r = path("--problem rosenbrock --steps 8 --optimizer radam --lr 0.01");
    let radam_fast = path("--problem rosenbrock --steps 500 --optimizer radam --lr 0.03");

    // Adam on the bowl: the first step, the angle to the minimum, the overshoots.
    let step1 = [adam_q[1].params[0] - adam_q[0].params[0], adam_q[1].params[1] - adam_q[0].params[1]];
    let [x0, y0] = adam_q[0].params;
    let angle = |dx: f32, dy: f32| (dy.abs() / dx.abs()).atan().to_degrees();
    let low_y = adam_q.iter().min_by(|a, b| a.params[1].total_cmp(&b.params[1])).unwrap();
    let high_x = adam_q.iter().max_by(|a, b| a.params[0].total_cmp(&b.params[0])).unwrap();
    let x_cross = adam_q.iter().find(|r| r.params[0] > 0.0).unwrap().step;
    let y_cross = adam_q.iter().find(|r| r.params[1] < 0.0).unwrap().step;
    let q = |s: usize| &adam_q[s];
    let last = |rows: &[Row]| *rows.last().unwrap();
    let end = |rows: &[Row]| format!("`({:.2}, {:.2})`", last(rows).params[0], last(rows).params[1]);
    let pair = |a: f32, b: f32| format!("({a:+}, {b:+})");

    assert_quotes(
        "09-the-family.md",
        &[
            ("AMSGrad factor at t = 1", format!("{:.2} at `t = 1`", factor(1))),
            ("AMSGrad factor minimum", format!("{:.2} at `t = {low}`", factor(low))),
            ("AMSGrad factor at t = 1000", format!("{:.2} at `t = 1000`", factor(1000))),
            ("AMSGrad growth", format!("about {:.1} times", factor(1000) / factor(low))),
            ("rho_inf", format!("({rho_inf:.0} for `beta2 = 0.999`")),
            ("rect at 6", format!("{:.3} at `t = 6`", rect(6))),
            ("rect at 10", format!("{:.3} at `t = 10`", rect(10))),
            ("rect at 100", format!("{:.2} at `t = 100`", rect(100))),
            ("rect at 1000", format!("{:.2} at `t = 1000`", rect(1000))),
            ("AMSGrad's Rosenbrock loss", format!("losses {:.4} and", last(&ams_r).loss)),
            ("Adam's Rosenbrock loss", format!("{:.4} after 500 steps", last(&adam_r).loss)),
            ("Adam's Rosenbrock loss, again", format!("Adam ends at loss\n{:.4}", last(&adam_r).loss)),
            ("AdamW's end", format!("AdamW ends at\n{}", end(&adamw_r))),
            ("Adam's end", format!("Adam reaches {}", end(&adam_r))),
            (
                "AdaMax's first step",
                format!(
                    "is exactly `{}`",
                    pair(
                        adamax_r[1].params[0] - adamax_r[0].params[0],
                        adamax_r[1].params[1] - adamax_r[0].params[1],
                    )
                ),
            ),
            (
                "RAdam's first step",
                format!("from `(-1.5, 2)` to `({:.2}, {:.1})`", radam_r[1].params[0], radam_r[1].params[1]),
            ),
            ("RAdam's losses", format!("from {:.1} to {:.1}", radam_r[0].loss, radam_r[1].loss)),
            ("SGD's x after 200", format!("`x` is still {:.3} after 200 steps", last(&sgd_q).params[0])),
            ("Adam's first step on the bowl", format!("`({:+.1}, {:+.1})`", step1[0], step1[1])),
            ("its angle", format!("first step is a sign vector, {:.0} degrees", angle(step1[0], step1[1]))),
            ("the minimum's angle", format!("the minimum is {:.0} degrees", angle(x0, y0))),
            ("y after 11", format!("`y` (1 from its minimum) is at {:.3}", q(11).params[1])),
            ("x after 11", format!("is\nonly at {:.2}", q(11).params[0])),
            ("y crosses after", format!("after {} steps", y_cross - 1)),
            ("y's overshoot", format!("overshoots to {:.2} at step {}", low_y.params[1], low_y.step)),
            (
                "loss before and at the overshoot",
                format!("from {:.2} to\n{:.2}", q(y_cross - 1).loss, low_y.loss),
            ),
            ("x crosses", format!("`x` crosses 0 at step {x_cross}")),
            ("x's overshoot", format!("to {:.2} at step {}", high_x.params[0], high_x.step)),
            ("Adam's end on the bowl", format!("loss {:.1e} after 200", last(&adam_q).loss)),
        ],
    );
    assert_eq!(low_y.step, 19);
    assert!(radam_fast.last().unwrap().loss.is_nan(), "RAdam at --lr 0.03 diverges to NaN");
}
