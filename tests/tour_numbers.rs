//! The numbers the tour's chapters 1 to 9 quote, recomputed from the code that produces them:
//! the tape (the hand-worked values and gradients of chapters 1 to 3), `gradcheck` (chapter 4),
//! the paper's nets (chapter 5), `adamant_lab::trace` (`examples/trace_adam.rs`), the playground
//! (`examples/optimize.rs`, with the settings of `docs/figures/buildup.sh` and
//! `docs/figures/paths.sh`), Algorithm 1's formulas, and the VAE runs of the README's table
//! (`docs/figures/mnist_vae_*_runs.csv`). Each number is formatted as the text writes it and must
//! appear there, so a number that drifts from the code fails here. Numbers from full training
//! runs (the quickstart's accuracy, the paper's experiments) are not recomputed: the chapters
//! cite the README's results table for them.

use std::fs;
use std::path::PathBuf;

use adamant::autodiff::{gradcheck, GradcheckOptions, GradcheckReport, Mode, Param, Tape, Var};
use adamant::layers::{gradcheck_module, nets, sequential, Conv2d, Flatten, MaxPool2d, Module, Params, ReLU};
use adamant::optim::{AdamConfig, RmsPropConfig};
use adamant::tensor::{rng::seeded, Tensor};
use adamant_lab::playground::{execute, parse_args, Command, Problem, Row};
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
fn chapter_9_quotes_the_successors_paths() {
    let last = |rows: &[Row]| rows.last().unwrap().clone();
    let lion_q = last(&path("--problem quadratic --steps 200 --optimizer lion --lr 0.01"));
    let adam_q = last(&path("--problem quadratic --steps 200 --optimizer adam --lr 0.1"));
    let lamb_r = path("--problem rosenbrock --steps 500 --optimizer lamb --lr 0.03");
    let adabelief_r = last(&path("--problem rosenbrock --steps 500 --optimizer adabelief --lr 0.1"));
    let adam_r = last(&path("--problem rosenbrock --steps 500 --optimizer adam --lr 0.1"));
    let adafactor_q = last(&path("--problem quadratic --steps 200 --optimizer adafactor --lr 0.1"));
    let muon_m = path("--problem matrix --steps 100 --optimizer muon --lr 0.1");
    let adam_m = path("--problem matrix --steps 100 --optimizer adam --lr 0.05");
    // The least-squares minimum, where plain gradient descent settles (A has rank 2, so the
    // minimiser is not unique, but the minimum is).
    let minimum = last(&path("--problem matrix --steps 3000 --optimizer sgd --lr 0.02")).loss;

    // LAMB's walk into the origin: it shrinks by a constant factor, every 50 steps.
    let norm = |r: &Row| r.params.iter().map(|x| x * x).sum::<f32>().sqrt();
    let shrink: Vec<f32> = (3..8).map(|k| norm(&lamb_r[50 * (k + 1)]) / norm(&lamb_r[50 * k])).collect();
    assert!(shrink.iter().all(|&f| (0.15..0.3).contains(&f)), "{shrink:?}");
    let lamb_end = last(&lamb_r);
    assert!(muon_m[100].loss > muon_m[50].loss, "Muon passes the minimum again");

    assert_quotes(
        "09-the-family.md",
        &[
            ("Lion's end on the bowl", format!("`y = {:.4}` with loss {:.4}", lion_q.params[1], lion_q.loss)),
            ("Adam's end on the bowl", format!("where Adam reaches {:.1e}", adam_q.loss)),
            (
                "LAMB's end",
                format!(
                    "`({:.4}, {:.4})` with loss {:.4}",
                    lamb_end.params[0], lamb_end.params[1], lamb_end.loss
                ),
            ),
            ("AdaBelief's end", format!("ends at loss {:.4}, Adam at {:.4}", adabelief_r.loss, adam_r.loss)),
            ("Adafactor's x", format!("`x = {:.4}` after 200 steps", adafactor_q.params[0])),
            ("Muon at 50", format!("Muon is at loss {:.4} after 50 steps", muon_m[50].loss)),
            ("the minimum", format!("{:.4}", minimum)),
            ("Adam at 50", format!("`--lr 0.05` is at {:.4}", adam_m[50].loss)),
            ("Muon at 100", format!("to {:.4} at step 100", muon_m[100].loss)),
        ],
    );
    assert_eq!(format!("{:.4}", muon_m[50].loss), format!("{minimum:.4}"), "the minimum to four digits");
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
    let [x0, y0] = adam_q[0].params[..] else { unreachable!() };
    let angle = |dx: f32, dy: f32| (dy.abs() / dx.abs()).atan().to_degrees();
    let low_y = adam_q.iter().min_by(|a, b| a.params[1].total_cmp(&b.params[1])).unwrap();
    let high_x = adam_q.iter().max_by(|a, b| a.params[0].total_cmp(&b.params[0])).unwrap();
    let x_cross = adam_q.iter().find(|r| r.params[0] > 0.0).unwrap().step;
    let y_cross = adam_q.iter().find(|r| r.params[1] < 0.0).unwrap().step;
    let q = |s: usize| &adam_q[s];
    let last = |rows: &[Row]| rows.last().unwrap().clone();
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

/// A one-element tensor.
fn one(v: f32) -> Tensor {
    Tensor::from_vec(vec![v], &[1])
}

/// `f` on a fresh tape with `v` as its one parameter: the value of `f` and its derivative.
fn value_and_grad(v: f32, f: impl for<'t> Fn(Var<'t>) -> Var<'t>) -> (f32, f32) {
    let p = Param::new("v", one(v));
    let tape = Tape::new(Mode::Train, 0);
    let y = f(tape.param(&p));
    let value = y.value().data()[0];
    let grads = y.sum().backward();
    (value, grads.get(&p).map_or(0.0, |g| g.data()[0]))
}

/// A constant on `v`'s tape.
fn c(v: Var<'_>, x: f32) -> Var<'_> {
    v.tape().constant(one(x))
}

#[test]
fn chapter_1_quotes_what_the_tape_computes() {
    let (x, y, w1, w2) = (2.0f32, 1.0f32, 0.5f32, 3.0f32);
    // The forward table, one value per node, each from the tape.
    let (z, _) = value_and_grad(w1, |w| w * c(w, x));
    let (h, _) = value_and_grad(z, |z| z.relu());
    let (p, _) = value_and_grad(h, |h| c(h, w2) * h);
    let (r, _) = value_and_grad(p, |p| p - c(p, y));
    let (l, _) = value_and_grad(r, |r| r.square());
    // The local derivatives, one op each, and the derivative of the loss with respect to each
    // node, from the whole rest of the computation.
    let (_, l_r) = value_and_grad(r, |r| r.square());
    let (_, l_p) = value_and_grad(p, |p| p - c(p, y));
    let (_, l_w2) = value_and_grad(w2, |w| w * c(w, h));
    let (_, l_h) = value_and_grad(h, |h| c(h, w2) * h);
    let (_, l_z) = value_and_grad(z, |z| z.relu());
    let (_, l_w1) = value_and_grad(w1, |w| w * c(w, x));
    let (_, g_r) = value_and_grad(r, |r| r.square());
    let (_, g_p) = value_and_grad(p, |p| (p - c(p, y)).square());
    let (_, g_h) = value_and_grad(h, |h| (c(h, w2) * h - c(h, y)).square());
    let (_, g_z) = value_and_grad(z, |z| (c(z, w2) * z.relu() - c(z, y)).square());
    let (_, g_w2) = value_and_grad(w2, |w| (w * c(w, h) - c(w, y)).square());
    let full = |w1: f32| value_and_grad(w1, |w| (c(w, w2) * (w * c(w, x)).relu() - c(w, y)).square());
    let (big_l, g_w1) = full(w1);
    assert_eq!(big_l, l);
    // The chain rule: each node's derivative is the one above times the local derivative.
    assert_eq!((g_p, g_w2, g_h, g_z, g_w1), (g_r * l_p, g_p * l_w2, g_p * l_h, g_h * l_z, g_z * l_w1));
    // The unit switched off.
    let off = -w1;
    let (z_off, _) = value_and_grad(off, |w| w * c(w, x));
    let (h_off, _) = value_and_grad(z_off, |z| z.relu());
    let (_, g_off) = full(off);
    // The nudge.
    let nudge = 0.001f32;
    let (zn, pn) = (((w1 + nudge) * x) as f64, ((w1 + nudge) * x * w2) as f64);
    let (l_nudged, _) = full(w1 + nudge);
    assert_eq!(format!("{:.0}", (l_nudged - l) / nudge), format!("{g_w1}"));
    assert_quotes(
        "01-backprop-on-one-page.md",
        &[
            ("the inputs", format!("Take `x = {x}`, `y = {y}`, `w1 = {w1}` and `w2 = {w2}`.")),
            ("z", format!("| `z` | `w1 * x = {w1} * {x}` | {z} |")),
            ("h", format!("| `h` | `relu({z})` | {h} |")),
            ("p", format!("| `p` | `w2 * h = {w2} * {h}` | {p} |")),
            ("r", format!("| `r` | `p - y = {p} - {y}` | {r} |")),
            ("L", format!("| `L` | `r^2 = {r}^2` | {l} |")),
            ("dL/dr", format!("| `r` | `dL/dr = 2 r = {l_r}` | `1 * {l_r} = {g_r}` |")),
            ("dL/dp", format!("| `p` | `dr/dp = {l_p}` | `{g_r} * {l_p} = {g_p}` |")),
            ("dL/dw2", format!("| `w2` | `dp/dw2 = h = {l_w2}` | `{g_p} * {l_w2} = {g_w2}` |")),
            ("dL/dh", format!("| `h` | `dp/dh = w2 = {l_h}` | `{g_p} * {l_h} = {g_h}` |")),
            ("dL/dz", format!("| `z` | `dh/dz = {l_z}`, because `z > 0` | `{g_h} * {l_z} = {g_z}` |")),
            ("dL/dw1", format!("| `w1` | `dz/dw1 = x = {l_w1}` | `{g_z} * {l_w1} = {g_w1}` |")),
            ("the result", format!("So `dL/dw1 = {g_w1}` and `dL/dw2 = {g_w2}`.")),
            ("dL/dh shared", format!("`dL/dh = {g_h}` serves")),
            (
                "off",
                format!("With `w1 = {off}`, `z = {z_off}`, `h = {h_off}`, and `dL/dw1` would be {g_off}"),
            ),
            ("nudge", format!("Raise `w1` by `{nudge}`")),
            (
                "nudged values",
                format!("`z = {zn:.3}`, `p = {pn:.3}`, `r = {:.3}` and `L = {l_nudged:.6}`", pn - y as f64),
            ),
            ("the rise", format!("The loss rose by `{:.6}`", l_nudged - l)),
            ("the prediction", format!("`{g_w1} * {nudge}`, as `dL/dw1 = {g_w1}` predicts")),
        ],
    );
}

/// The English word for a small count, as the prose writes it.
fn word(n: usize) -> &'static str {
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"][n]
}

#[test]
fn chapter_2_quotes_what_the_tape_computes() {
    let (x, y, w, b) = (3.0f32, 1.0f32, 2.0f32, 0.5f32);
    let wp = Param::new("w", one(w));
    let bp = Param::new("b", one(b));
    let tape = Tape::new(Mode::Train, 0);
    let (xc, yc) = (tape.constant(one(x)), tape.constant(one(y)));
    let r = tape.param(&wp) * xc + tape.param(&bp) - yc;
    let r_value = r.value().data()[0];
    let loss = r.square().sum();
    let (leaves, nodes) = (4, tape.len());
    let grads = loss.backward();
    let (gw, gb) = (grads.get(&wp).unwrap().data()[0], grads.get(&bp).unwrap().data()[0]);
    assert_eq!((gw, gb), (2.0 * r_value * x, 2.0 * r_value));
    assert_quotes(
        "02-tape.md",
        &[
            ("the point", format!("At `x = {x}, y = {y}, w = {w}, b = {b}`")),
            ("r and the gradients", format!("`r = {r_value}`, so the\ngradients are {gw} and {gb}")),
            ("the nodes", format!("The tape has {} nodes: {} leaves", word(nodes), word(leaves))),
            ("the ops", format!("and {} ops", word(nodes - leaves))),
            ("sent back", format!("`2 r * 1 = {gb}`")),
            ("x", format!("multiplies by `x = {x}`")),
        ],
    );
}

#[test]
fn chapter_3_quotes_what_the_tape_computes() {
    let x = Param::new("x", Tensor::zeros(&[1, 4]));
    let tape = Tape::new(Mode::Train, 0);
    let grads = tape.param(&x).cross_entropy(&[2]).backward();
    let dx: Vec<String> = grads.get(&x).unwrap().data().iter().map(|g| format!("{g:.2}")).collect();
    // Inverted dropout's scale for p = 0.5: a survivor's gradient.
    let ones = Param::new("ones", Tensor::ones(&[64]));
    let tape = Tape::new(Mode::Train, 7);
    let grads = tape.param(&ones).dropout(0.5).sum().backward();
    let scale = grads.get(&ones).unwrap().data().iter().copied().fold(0.0f32, f32::max);
    assert_quotes(
        "03-backward.md",
        &[
            ("four equal logits", format!("`dx = p - onehot = [{}]`", dx.join(", "))),
            ("dropout's scale", format!("scaled by 1 / (1 - p) = {scale} and get gradient {scale}")),
        ],
    );
}

/// `gradcheck_module` of `model` on the mean square of its output for `x`.
fn mean_square_check<M: Module>(model: &mut M, x: &Tensor, opts: GradcheckOptions) -> GradcheckReport {
    gradcheck_module(model, |tape, m| m.forward(tape.constant(x.clone())).square().mean(), opts)
}

#[test]
fn chapter_4_quotes_what_gradcheck_reports() {
    let defaults = GradcheckOptions::default();
    let rounding = f32::EPSILON as f64 / 2.0;
    // The small classifier.
    let mut w = Param::new("w", Tensor::randn(&[3, 4], 0.0, 0.5, &mut seeded(1)));
    let mut b = Param::new("b", Tensor::randn(&[3], 0.0, 0.5, &mut seeded(2)));
    let x = Tensor::randn(&[5, 4], 0.0, 1.0, &mut seeded(3));
    let labels = [0usize, 2, 1, 1, 0];
    let (nw, nb) = (w.value().numel(), b.value().numel());
    let classifier = gradcheck(
        &mut [&mut w, &mut b],
        |tape: &Tape, p| {
            let h = tape.constant(x.clone()).matmul_nt(tape.param(&*p[0])) + tape.param(&*p[1]);
            h.tanh().cross_entropy(&labels)
        },
        defaults.clone(),
    );
    assert!(classifier.passed, "{classifier}");
    // The ReLU kink at 0.
    let mut k = Param::new("x", Tensor::from_vec(vec![0.0, 1.0], &[2]));
    let kink = gradcheck(&mut [&mut k], |tape: &Tape, p| tape.param(&*p[0]).relu().sum(), defaults.clone());
    let kinked = kink.worst.unwrap();
    assert_eq!((kinked.index, kinked.analytic), (0, 0.0));
    assert!((kinked.numeric - 0.5).abs() < 1e-6, "half of the slope 1: {}", kinked.numeric);
    // The convolution block, at the default step and at 1e-3.
    let mut rng = seeded(0);
    let mut model = sequential![Conv2d::new(2, 3, 3, 1, 1, &mut rng), ReLU, MaxPool2d::new(2, 2, 0), Flatten];
    let x = Tensor::randn(&[2, 2, 4, 4], 0.0, 1.0, &mut seeded(5));
    let conv = Conv2d::new(2, 3, 3, 1, 1, &mut seeded(0));
    let outputs = conv.forward(Tape::inference().constant(x.clone())).value().numel();
    let fed_by_one_weight = outputs / 3; // one output channel
    let check = |model: &mut _, eps| {
        let opts = GradcheckOptions { eps, max_elements_per_param: 20, ..Default::default() };
        mean_square_check(model, &x, opts)
    };
    let fails = check(&mut model, defaults.eps);
    assert!(!fails.passed);
    assert!(check(&mut model, 1e-3).passed);
    let worst = fails.worst.unwrap();
    let small_eps = 1e-3;
    assert_quotes(
        "04-gradcheck.md",
        &[
            ("f32 rounding", format!("a rounding error of about `{rounding:.0e} |L|`")),
            (
                "the default eps",
                format!("near `eps = {:.0e}`, the default of `GradcheckOptions::eps`", defaults.eps),
            ),
            ("elements checked", format!("assert_eq!(report.checked, {nw} + {nb});")),
            ("the report", format!("gradcheck passed: {} elements", classifier.checked)),
            (
                "the failing default",
                format!("With the default `eps = {:.0e}` this check fails", defaults.eps),
            ),
            (
                "outputs fed",
                format!("weight by {}\nmoves all {fed_by_one_weight} conv outputs", defaults.eps),
            ),
            (
                "the worst",
                format!(
                    "`worst {}[{}]: analytic {:.6e}, numeric\n{:.6e}`",
                    worst.param, worst.index, worst.analytic, worst.numeric
                ),
            ),
            ("the cure", format!("a smaller step, here `{small_eps:.0e}`")),
            ("its rounding", format!("over `2 eps` is about `{:.0e}`", rounding / (2.0 * small_eps))),
        ],
    );
}

/// `n` with a comma between groups of three digits: `1,796,010`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The distinct first components of a model's parameter names, as `` `1.*` ``.
fn prefixes(model: &impl Params) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, _) in model.named_params() {
        let p = format!("`{}.*`", name.split('.').next().unwrap());
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

#[test]
fn chapter_5_quotes_the_nets() {
    let mlp = nets::mlp(&mut seeded(0));
    let cnn = nets::cnn(&mut seeded(0));
    // The MLP's count, layer by layer: in*out + out.
    let shapes: Vec<Vec<usize>> =
        mlp.named_params().iter().map(|(_, p)| p.value().shape().to_vec()).collect();
    let terms: Vec<String> =
        shapes.chunks(2).map(|wb| format!("{}*{} + {}", wb[0][1], wb[0][0], wb[1][0])).collect();
    // The CNN's stages: channels, and the size after each pooling.
    let cnn_shapes: Vec<Vec<usize>> =
        cnn.named_params().iter().map(|(_, p)| p.value().shape().to_vec()).collect();
    let channels: Vec<usize> = cnn_shapes.iter().filter(|s| s.len() == 4).map(|s| s[0]).collect();
    let dense: Vec<&Vec<usize>> = cnn_shapes.iter().filter(|s| s.len() == 2).collect();
    let pool = |n: usize| (n + 2 - 3) / 2 + 1;
    let sizes = [pool(32), pool(pool(32)), pool(pool(pool(32)))];
    let flat = channels[2] * sizes[2] * sizes[2];
    assert_eq!(dense[0][1], flat, "the first dense layer takes the flattened stages");
    let tape = Tape::inference();
    assert_eq!(cnn.forward(tape.constant(Tensor::zeros(&[1, 3, 32, 32]))).shape(), vec![1, 10]);
    let (mlp_names, cnn_names) = (prefixes(&mlp), prefixes(&cnn));
    // The quickstart's settings, read from its source: `const BATCH: usize = 128;`, the
    // default `epochs: 10` and `AdamConfig { lr: 1e-3, .. }`.
    let quickstart =
        fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.rs")).unwrap();
    let after = |key: &str| {
        let rest = &quickstart[quickstart.find(key).unwrap_or_else(|| panic!("{key}")) + key.len()..];
        rest[..rest.find([',', ';']).unwrap()].trim().to_string()
    };
    // The default epochs: the `epochs:` field of the `Args { .. }` that `parse_args` starts from.
    let args_start = quickstart.find("let mut a = Args {").expect("quickstart's default Args");
    let defaults = &quickstart[args_start..];
    let epochs_at = defaults.find("epochs:").expect("an epochs field") + "epochs:".len();
    let epochs = defaults[epochs_at..][..defaults[epochs_at..].find([',', ';']).unwrap()].trim().to_string();
    let (batch, lr) = (after("const BATCH: usize ="), after("AdamConfig { lr:"));
    assert_quotes(
        "05-networks.md",
        &[
            ("MLP count", format!("`{} = {}` parameters", terms.join(" + "), thousands(mlp.num_params()))),
            (
                "MLP names",
                format!("dense layers are {}, {} and {}", mlp_names[0], mlp_names[1], mlp_names[2]),
            ),
            (
                "CNN name",
                format!("c{}-c{}-c{}-{}: three stages", channels[0], channels[1], channels[2], dense[0][0]),
            ),
            (
                "pooling",
                format!(
                    "`floor((32 + 2*1 - 3) / 2) + 1 = {}`, then {}, then {}",
                    sizes[0], sizes[1], sizes[2]
                ),
            ),
            ("flattened", format!("`{} * {} * {} = {flat}`", channels[2], sizes[2], sizes[2])),
            (
                "CNN count",
                format!("assert_eq!(cnn.num_params(), {});", thousands(cnn.num_params()).replace(',', "_")),
            ),
            ("CNN names", format!("{},\n> {}.", cnn_names[..2].join(", "), cnn_names[2..].join(", "))),
            ("log 2", format!("log(2) = {:.2}", 2f64.ln())),
            ("the quickstart's lr", format!("`Adam::new(AdamConfig {{ lr: {lr}, .. }})`")),
            ("the quickstart's run", format!("for {epochs}\nepochs of minibatches of {batch}.")),
        ],
    );
}

/// The mean loss over steps 101 to 200 of a run's rows.
fn late_loss(rows: &[Row]) -> f64 {
    rows[101..].iter().map(|r| r.loss as f64).sum::<f64>() / 100.0
}

/// The root mean square of coordinate `i` over steps 101 to 200.
fn late_rms(rows: &[Row], i: usize) -> f64 {
    (rows[101..].iter().map(|r| (r.params[i] as f64).powi(2)).sum::<f64>() / 100.0).sqrt()
}

/// `x` to three significant digits, without an exponent: `0.0000665`, `31.1`.
fn three_digits(x: f64) -> String {
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// `x` as NumPy prints a float64 in an array: `-5.69026665e-05`.
fn numpy(x: f64) -> String {
    let s = format!("{x:.8e}");
    let (mantissa, exp) = s.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Algorithm 1 in `f64`, as the chapter's NumPy runs it on the bowl.
fn adam_f64(lr: f64, steps: i32) -> [f64; 2] {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let (mut theta, mut m, mut v) = ([-2.0f64, 1.0], [0.0f64; 2], [0.0f64; 2]);
    for t in 1..=steps {
        let g = [theta[0], 100.0 * theta[1]];
        for i in 0..2 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let m_hat = m[i] / (1.0 - b1.powf(t as f64));
            let v_hat = v[i] / (1.0 - b2.powf(t as f64));
            theta[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
    theta
}

#[test]
fn chapter_6_quotes_the_paths() {
    let bowl = |flags: &str| path(&format!("--problem quadratic {flags}"));
    let sgd = bowl("--steps 100 --optimizer sgd --lr 0.019");
    let momentum = bowl("--steps 100 --optimizer sgd --lr 0.019 --momentum 0.9");
    let adagrad = bowl("--steps 100 --optimizer adagrad --lr 0.3");
    let rmsprop = bowl("--steps 100 --optimizer rmsprop --lr 0.03");
    let adam = bowl("--steps 100 --optimizer adam --lr 0.1");
    let adam_200 = bowl("--steps 200 --optimizer adam --lr 0.1");
    let noisy = |optimizer: &str, sigma: u32| {
        bowl(&format!("--steps 200 --optimizer {optimizer} --noise {sigma} --seed 1"))
    };
    let last = |rows: &[Row]| rows.last().unwrap().clone();
    let furthest =
        |rows: &[Row]| rows.iter().max_by(|a, b| a.params[0].total_cmp(&b.params[0])).unwrap().clone();
    let step = |rows: &[Row], t: usize| {
        [rows[t].params[0] - rows[t - 1].params[0], rows[t].params[1] - rows[t - 1].params[1]]
    };
    let at1 = |rows: &[Row]| format!("`({:.1}, {:.1})`", rows[1].params[0], rows[1].params[1]);

    // The start: the loss and its gradient, from the tape.
    let start = &sgd;
    let p = Param::new("xy", Tensor::from_vec(start[0].params.to_vec(), &[2]));
    let tape = Tape::new(Mode::Train, 0);
    let grads = Problem::Quadratic.loss(tape.param(&p)).backward();
    let g = grads.get(&p).unwrap().data().to_vec();
    assert_eq!(g[1] / -g[0], 50.0, "fifty times larger across");
    // SGD: the factors per step along y and x.
    let lr = 0.019f32;
    let (fy, fx) = (1.0 - 100.0 * lr, 1.0 - lr);
    // RMSProp's first step: lr g / (sqrt(1 - alpha) |g|).
    let alpha = RmsPropConfig::default().alpha as f64;
    let rms_first = step(&rmsprop, 1);
    let ada_first = step(&adagrad, 1);
    assert!((rms_first[0] - ada_first[0]).abs() < 1e-6 && (rms_first[1] - ada_first[1]).abs() < 1e-6);
    // The noise table and the root mean squares.
    let mut table = Vec::new();
    for sigma in [0, 1, 5, 20] {
        let (s, a) = (late_loss(&noisy("sgd --lr 0.019", sigma)), late_loss(&noisy("adam --lr 0.1", sigma)));
        table.push((
            format!("sigma {sigma}"),
            format!("| {sigma} | {} | {} |", three_digits(s), three_digits(a)),
        ));
    }
    let (sgd_20, adam_20) = (noisy("sgd --lr 0.019", 20), noisy("adam --lr 0.1", 20));
    let (sgd_late, adam_late) = (late_loss(&sgd_20), late_loss(&adam_20));
    let sgd_slow = late_loss(&noisy("sgd --lr 0.005", 20));
    let sgd_slower = late_loss(&noisy("sgd --lr 0.002", 20));
    // The NumPy end point and the playground's.
    let numpy_end = adam_f64(0.1, 200);
    let end = last(&adam_200).params;
    for i in 0..2 {
        assert_eq!(
            format!("{:.4e}", numpy_end[i]),
            format!("{:.4e}", end[i]),
            "the same point to five digits"
        );
    }

    let mut expected = vec![
        ("f at the start", format!("where `f = {}`", start[0].loss)),
        ("the gradient there", format!("the gradient is\n`({}, {})`", g[0], g[1])),
        ("the factor along y", format!("(the factor is `{fy:.1}`)")),
        ("the factor along x", format!("`1 - lr = {fx:.3}`")),
        ("SGD's x", format!("`x = {:.3}` (`-2 * {fx:.3}^100`)", last(&sgd).params[0])),
        ("SGD's loss", format!("loss {:.4}, while", last(&sgd).loss)),
        ("SGD's y", format!("already down to `{:.1e}`", last(&sgd).params[1])),
        ("SGD's step 1", format!("step 1 is at\n`({}, {})`", sgd[1].params[0], sgd[1].params[1])),
        ("SGD's step 2", format!("step 2 at `({:.3}, {:.2})`", sgd[2].params[0], sgd[2].params[1])),
        ("momentum's gain", format!("`1 / (1 - mu) = {:.0}`", 1.0 / (1.0 - 0.9))),
        ("momentum's loss", format!("the loss is {:.5}", last(&momentum).loss)),
        (
            "... against SGD's",
            format!("{:.0} times lower than SGD's", last(&sgd).loss / last(&momentum).loss),
        ),
        (
            "momentum's overshoot",
            format!("`x = {:.3}` (step {})", furthest(&momentum).params[0], furthest(&momentum).step),
        ),
        ("AdaGrad's first step", format!("`({:+.1}, {:+.1})` here", ada_first[0], ada_first[1])),
        ("AdaGrad's step 1", format!("The CSV's step 1 is {},", at1(&adagrad))),
        ("AdaGrad's loss", format!("the loss is `{:.1e}`, without", last(&adagrad).loss)),
        ("RMSProp's memory", format!("`1 / (1 - alpha) = {:.0}`", 1.0 / (1.0 - alpha))),
        ("RMSProp's first v", format!("`v = {:.2} g^2`", 1.0 - alpha)),
        (
            "RMSProp's first step",
            format!("`lr g / ({:.1} |g|) = {:.0} lr`", (1.0 - alpha).sqrt(), 1.0 / (1.0 - alpha).sqrt()),
        ),
        ("both first steps", format!("a first step of {:.1}", rms_first[0].abs())),
        ("RMSProp's step 1", format!("The CSV's step 1 is {}, as AdaGrad's", at1(&rmsprop))),
        ("RMSProp's loss", format!("the loss is `{:.1e}`", last(&rmsprop).loss)),
        (
            "... against AdaGrad's",
            format!(
                "{:.0}\ntimes lower than AdaGrad's `{:.1e}`",
                last(&adagrad).loss / last(&rmsprop).loss,
                last(&adagrad).loss
            ),
        ),
        ("Adam's step 1", format!("the CSV's step 1 is\n{}", at1(&adam))),
        (
            "Adam's loss",
            format!("its loss is\n`{:.1e}`, above RMSProp's `{:.1e}`", last(&adam).loss, last(&rmsprop).loss),
        ),
        (
            "Adam's overshoot",
            format!("`x = {:.3}`\n(step {})", furthest(&adam).params[0], furthest(&adam).step),
        ),
        ("noise: the ratio", format!("it is {:.0} times lower", sgd_late / adam_late)),
        (
            "noise: rms y",
            format!("is {:.3} for SGD and {:.3} for Adam", late_rms(&sgd_20, 1), late_rms(&adam_20, 1)),
        ),
        ("noise: rms x", format!("({:.3} and {:.3})", late_rms(&sgd_20, 0), late_rms(&adam_20, 0))),
        ("noise: SGD at lr 0.005", format!("`--lr 0.005` gets {sgd_slow:.3}")),
        ("noise: SGD at lr 0.002", format!("and {sgd_slower:.3} with `--lr 0.002`")),
        ("noise: Adam's", format!("Adam's {}.", three_digits(adam_late))),
        ("NumPy's end", format!("It prints `[{} {}]`", numpy(numpy_end[0]), numpy(numpy_end[1]))),
        ("the playground's end", format!("ends at `({}, {})`", end[0], end[1])),
    ];
    expected.extend(table.iter().map(|(w, q)| (w.as_str(), q.clone())));
    assert_quotes("06-momentum-to-adam.md", &expected);
}
