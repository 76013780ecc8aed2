//! Optimizers on small test problems: the engine of `examples/optimize.rs`.
//!
//! A [`Problem`] is a loss of one parameter, of shape `[2]` for the 2-d test functions and
//! `[4, 3]` for the matrix problem, written with autodiff [`Var`] ops so its gradient comes
//! from the same backward passes that train networks. [`run`] takes `steps` optimizer updates
//! from a start point and records every iterate ([`run_noisy`] adds seeded Gaussian noise to
//! each gradient first); [`write_csv`] prints them and [`plot_svg`] draws a 2-d path over the
//! loss's contours (the matrix problem's loss per step). [`parse_args`] and
//! [`execute`] are the example's whole command line, here so that tests can call them.
//!
//! ```
//! use adamant_lab::playground::{run, Problem};
//! use adamant::optim::{build, OptimizerOptions};
//!
//! let mut adam = build("adam", &OptimizerOptions { lr: Some(0.1), ..Default::default() }).unwrap();
//! let rows = run(Problem::Quadratic, Problem::Quadratic.default_start(), 300, adam.as_mut());
//! assert_eq!(rows[0].params, [-2.0, 1.0]);
//! assert_eq!(rows.len(), 301);
//! assert!(rows[300].loss < 1e-3 * rows[0].loss);
//! ```

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use adamant::autodiff::{Mode, Param, Tape, Var};
use adamant::optim::Optimizer;
use adamant::tensor::io::write_atomic;
use adamant::tensor::rng::{stream, Purpose};
use adamant::tensor::Tensor;

use crate::cli::{self, CliError, OptimizerArgs};

mod plot;
pub use plot::plot_svg;

/// A loss to minimise over one parameter tensor: `(x, y)` of shape `[2]` for the 2-d test
/// functions, `W` of shape `[4, 3]` for [`Problem::Matrix`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Rosenbrock's banana, `(1 - x)^2 + 100 (y - x^2)^2`: a curved, narrow valley with its
    /// minimum 0 at `(1, 1)`. Default start `(-1.5, 2)`.
    Rosenbrock,
    /// An ill-conditioned bowl, `0.5 (x^2 + 100 y^2)`: Hessian `diag(1, 100)`, so condition
    /// number 100; minimum 0 at `(0, 0)`. Plain gradient descent is stable only for
    /// `lr < 2/100` and then crawls along `x`. Default start `(-2, 1)`.
    Quadratic,
    /// A least-squares problem over a matrix, `0.5 sum((A W - B)^2)` for `W` of shape
    /// `[4, 3]`, with `A[r][c] = sin(4 r + c + 1)` (`[5, 4]`) and `B[r][c] = cos(3 r + c + 1)`
    /// (`[5, 3]`); start `W[i][j] = 0.1 (3 i + j) - 0.5`. It is the problem for optimizers that
    /// treat matrices as matrices (Adafactor's factored moments, Muon's orthogonalised step)
    /// and the one every optimizer can run. Its minimum is the least-squares solution, with a
    /// loss above 0 (five equations per column, four unknowns).
    Matrix,
}

/// A `[rows, cols]` matrix with entries `f(row, col)`, computed in `f64` and rounded once.
fn matrix(rows: usize, cols: usize, f: impl Fn(f64, f64) -> f64) -> Tensor {
    let data = (0..rows * cols).map(|k| f((k / cols) as f64, (k % cols) as f64) as f32).collect();
    Tensor::from_vec(data, &[rows, cols])
}

impl Problem {
    /// The names `--problem` accepts.
    pub const NAMES: [&'static str; 3] = ["rosenbrock", "quadratic", "matrix"];

    /// The problem called `name`, or an error naming `--problem`.
    pub fn from_name(name: &str) -> Result<Problem, CliError> {
        match name {
            "rosenbrock" => Ok(Problem::Rosenbrock),
            "quadratic" => Ok(Problem::Quadratic),
            "matrix" => Ok(Problem::Matrix),
            _ => Err(CliError::invalid(
                "--problem",
                format!(
                    "unknown problem '{}' (expected one of: {})",
                    name.escape_debug(),
                    Problem::NAMES.join(", ")
                ),
            )),
        }
    }

    /// The name, as `--problem` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Problem::Rosenbrock => "rosenbrock",
            Problem::Quadratic => "quadratic",
            Problem::Matrix => "matrix",
        }
    }

    /// The formula, for plot titles.
    pub fn formula(self) -> &'static str {
        match self {
            Problem::Rosenbrock => "(1-x)\u{b2} + 100(y-x\u{b2})\u{b2}",
            Problem::Quadratic => "0.5(x\u{b2} + 100y\u{b2})",
            Problem::Matrix => "0.5 \u{3a3}(AW - B)\u{b2}",
        }
    }

    /// The shape of the parameter: `[2]`, or `[4, 3]` for the matrix problem.
    pub fn shape(self) -> &'static [usize] {
        match self {
            Problem::Rosenbrock | Problem::Quadratic => &[2],
            Problem::Matrix => &[4, 3],
        }
    }

    /// Whether the parameter is a point `(x, y)` that a contour plot can show and `--start`
    /// can set.
    pub fn is_2d(self) -> bool {
        self.shape() == [2]
    }

    /// Where a run starts when `--start` is not given (row-major for the matrix).
    pub fn default_start(self) -> Vec<f32> {
        match self {
            Problem::Rosenbrock => vec![-1.5, 2.0],
            Problem::Quadratic => vec![-2.0, 1.0],
            Problem::Matrix => matrix(4, 3, |i, j| 0.1 * (3.0 * i + j) - 0.5).into_vec(),
        }
    }

    /// The global minimiser of a 2-d problem (the loss is 0 there); `None` for the matrix.
    pub fn minimum(self) -> Option<[f32; 2]> {
        match self {
            Problem::Rosenbrock => Some([1.0, 1.0]),
            Problem::Quadratic => Some([0.0, 0.0]),
            Problem::Matrix => None,
        }
    }

    /// The parameter at `start`: `xy` of shape `[2]`, or `w` of shape `[4, 3]`.
    ///
    /// # Panics
    /// If `start` has the wrong length.
    pub fn param(self, start: &[f32]) -> Param {
        let name = if self.is_2d() { "xy" } else { "w" };
        Param::new(name, Tensor::from_slice(start, self.shape()))
    }

    /// The matrix problem's `A` and `B`.
    fn matrix_data() -> (Tensor, Tensor) {
        let a = matrix(5, 4, |r, c| (4.0 * r + c + 1.0).sin());
        let b = matrix(5, 3, |r, c| (3.0 * r + c + 1.0).cos());
        (a, b)
    }

    /// The loss of `p` (of shape [`Problem::shape`]) as a scalar on `p`'s tape, built from
    /// autodiff ops so that `backward` gives its gradient.
    pub fn loss<'t>(self, p: Var<'t>) -> Var<'t> {
        let tape = p.tape();
        match self {
            Problem::Rosenbrock => {
                // The two coordinates as scalars: a product with a constant one-hot vector, summed.
                let x = (p * tape.constant(Tensor::from_vec(vec![1.0, 0.0], &[2]))).sum();
                let y = (p * tape.constant(Tensor::from_vec(vec![0.0, 1.0], &[2]))).sum();
                (1.0 - x).square() + 100.0 * (y - x.square()).square()
            }
            Problem::Quadratic => (p.square() * tape.constant(Tensor::from_vec(vec![0.5, 50.0], &[2]))).sum(),
            Problem::Matrix => {
                let (a, b) = Problem::matrix_data();
                0.5 * (tape.constant(a).matmul(p) - tape.constant(b)).square().sum()
            }
        }
    }

    /// A 2-d problem's loss in plain `f64` arithmetic, for drawing contours (no gradient
    /// needed).
    ///
    /// # Panics
    /// For the matrix problem, which has no `(x, y)`.
    pub fn value(self, x: f64, y: f64) -> f64 {
        match self {
            Problem::Rosenbrock => (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2),
            Problem::Quadratic => 0.5 * (x * x + 100.0 * y * y),
            Problem::Matrix => panic!("Problem::value: the matrix problem has no 2-d contour"),
        }
    }

    /// The window plotted when the path stays inside it: `([x_min, x_max], [y_min, y_max])`.
    fn window(self) -> ([f64; 2], [f64; 2]) {
        match self {
            Problem::Rosenbrock => ([-2.0, 2.0], [-1.0, 3.0]),
            Problem::Quadratic => ([-2.5, 2.5], [-1.5, 1.5]),
            Problem::Matrix => unreachable!("only 2-d problems have a contour window"),
        }
    }

    /// The lowest contour level drawn: lower level sets are narrower than a few grid cells
    /// of the default window (Rosenbrock's valley `|y - x^2| < sqrt(f)/10`, the bowl's
    /// `|y| < sqrt(f/50)`) and would come out jagged.
    fn lowest_contour(self) -> f64 {
        match self {
            Problem::Rosenbrock => 0.2,
            Problem::Quadratic => 0.05,
            Problem::Matrix => unreachable!("only 2-d problems have contours"),
        }
    }
}

/// The most updates a run takes (`--steps`). Every iterate is kept for the plot and printed as
/// a CSV line: a million 2-d iterates are some 40 MB of CSV (the matrix problem's 12
/// coordinates some 150 MB), more than a path needs; the bound also keeps `steps + 1` from
/// overflowing.
pub const MAX_STEPS: usize = 1_000_000;

/// One iterate of a run: the parameters after `step` updates and the loss there.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Number of updates taken (0 = the start).
    pub step: usize,
    /// The loss at `params`.
    pub loss: f32,
    /// The parameter: `(x, y)`, or the matrix row-major.
    pub params: Vec<f32>,
}

/// The largest `--noise`: 1000, six times the largest gradient coordinate at either problem's
/// default start (155, Rosenbrock's). Noise that large already buries the gradient; a bound
/// keeps a typo such as `--noise 1e30` from overflowing the optimizers' squared moments.
pub const MAX_NOISE: f32 = 1000.0;

/// Gaussian noise added to every gradient coordinate, to mimic a minibatch gradient: an
/// unbiased but noisy estimate of the true one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Noise {
    /// Standard deviation `sigma` of the noise, from 0 (no noise: the exact gradient) to
    /// [`MAX_NOISE`].
    pub sigma: f32,
    /// Seed of the noise: the draws of step `t` come from `stream(seed, Purpose::Step, t)`,
    /// so a run is a pure function of its arguments.
    pub seed: u64,
}

/// Takes `steps` updates of `optimizer` on `problem` from `start` (as many numbers as the
/// problem's parameter has); returns `steps + 1` rows, row `t` holding the parameters after
/// `t` updates and the loss there.
///
/// # Panics
/// If `start` has the wrong length.
pub fn run(
    problem: Problem,
    start: impl AsRef<[f32]>,
    steps: usize,
    optimizer: &mut dyn Optimizer,
) -> Vec<Row> {
    run_noisy(problem, start, steps, optimizer, Noise::default())
}

/// [`run`], with `noise` added to each gradient before the optimizer sees it. The loss in the
/// rows is the true loss, without noise. With `noise.sigma == 0` nothing is drawn and the run
/// is exactly [`run`]'s.
pub fn run_noisy(
    problem: Problem,
    start: impl AsRef<[f32]>,
    steps: usize,
    optimizer: &mut dyn Optimizer,
    noise: Noise,
) -> Vec<Row> {
    let mut p = problem.param(start.as_ref());
    let mut rows = Vec::with_capacity(steps + 1);
    for step in 0..=steps {
        let tape = Tape::new(Mode::Train, 0);
        let loss = problem.loss(tape.param(&p));
        let value = loss.item();
        // The last row only needs the loss: no backward, no update.
        let grads = (step < steps).then(|| loss.backward());
        drop(tape);
        rows.push(Row { step, loss: value, params: p.value().data().to_vec() });
        if let Some(mut grads) = grads {
            if noise.sigma > 0.0 {
                // One stream per step: step t's noise does not depend on how many draws
                // earlier steps made.
                let mut rng = stream(noise.seed, Purpose::Step, step as u64);
                let draw = Tensor::randn(problem.shape(), 0.0, noise.sigma, &mut rng);
                for (_, g) in grads.iter_mut() {
                    g.data_mut().iter_mut().zip(draw.data()).for_each(|(g, n)| *g += n);
                }
            }
            optimizer.step(&mut [&mut p], &grads);
        }
    }
    rows
}

/// Writes `step,loss,x0,...,x{n-1}` and one line per row; floats use `f32`'s `Display`,
/// which prints the shortest text that reads back to the same `f32`.
pub fn write_csv(rows: &[Row], out: &mut dyn Write) -> io::Result<()> {
    let n = rows.first().map_or(0, |r| r.params.len());
    let columns: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
    writeln!(out, "step,loss,{}", columns.join(","))?;
    for r in rows {
        let values: Vec<String> = r.params.iter().map(f32::to_string).collect();
        writeln!(out, "{},{},{}", r.step, r.loss, values.join(","))?;
    }
    Ok(())
}

/// The usage text of `examples/optimize.rs`.
pub const USAGE: &str = "\
Runs an optimizer on a small test problem and prints its path as CSV (step,loss,x0,x1,...).

Usage: cargo run --release --example optimize -- --optimizer NAME [options]

Problem:
  --problem NAME     rosenbrock: (1-x)^2 + 100(y-x^2)^2, minimum (1,1), start -1.5,2.0 (default)
                     quadratic:  0.5(x^2 + 100y^2), condition number 100, minimum (0,0), start -2,1
                     matrix:     0.5 sum((A W - B)^2) over W [4, 3], A[r][c] = sin(4r + c + 1),
                                 B[r][c] = cos(3r + c + 1), start W[i][j] = 0.1(3i + j) - 0.5;
                                 prints x0..x11 (W row-major)
  --start X,Y        start point of a 2-d problem (default: the problem's)
  --steps N          number of updates, 1 to 1000000 (default 100); prints N+1 rows, row 0 the start
  --svg FILE         also draw the path over the loss's contours to FILE (the matrix problem: its
                     loss per step); its directory must exist
  --noise SIGMA      add Gaussian noise N(0, SIGMA^2) to each gradient coordinate, 0 to 1000
                     (default 0: the exact gradient); the printed loss is the true loss
  --seed S           seed of the noise, a whole number (default 0); same seed, same path
  -h, --help         this text
";

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `--help`: print [`USAGE`] and [`cli::optimizer_usage`].
    Help,
    /// Run an optimizer (boxed: the options table makes the arguments large, and `Help` is
    /// nothing).
    Run(Box<OptimizeArgs>),
}

/// The arguments of a run of `examples/optimize.rs`.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizeArgs {
    /// `--problem` (default rosenbrock).
    pub problem: Problem,
    /// `--start X,Y` (default: the problem's [`Problem::default_start`]; the matrix problem
    /// always starts from its own).
    pub start: Vec<f32>,
    /// `--steps` (default 100).
    pub steps: usize,
    /// `--optimizer` and its flags; checked with [`OptimizerArgs::build`] by [`parse_args`].
    pub optimizer: OptimizerArgs,
    /// `--svg FILE`.
    pub svg: Option<PathBuf>,
    /// `--noise SIGMA` and `--seed S` (default no noise, seed 0).
    pub noise: Noise,
}

/// Parses `--noise`: a finite number from 0 to [`MAX_NOISE`].
fn parse_noise(value: &str) -> Result<f32, CliError> {
    let sigma = cli::parse_f32(value, "--noise")?;
    if !(0.0..=MAX_NOISE).contains(&sigma) {
        return Err(CliError::invalid(
            "--noise",
            format!("expected a number from 0 to {MAX_NOISE}, got '{}'", value.escape_debug()),
        ));
    }
    Ok(sigma)
}

/// Parses the example's arguments (without the program name). Every error, including an
/// option the chosen optimizer does not have, is reported here, before anything runs.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::Arg::{Long, Short};
    let mut parser = lexopt::Parser::from_args(args);
    let (mut problem, mut start, mut steps, mut svg) = (Problem::Rosenbrock, None, 100, None);
    let mut optimizer = OptimizerArgs::default();
    let mut noise = Noise::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("problem") => problem = Problem::from_name(&cli::value(&mut parser, "--problem")?)?,
            Long("start") => {
                let (x, y) = cli::parse_pair(&cli::value(&mut parser, "--start")?, "--start", "-1.5,2.0")?;
                start = Some([x, y]);
            }
            Long("steps") => {
                steps = cli::parse_count(&cli::value(&mut parser, "--steps")?, "--steps", MAX_STEPS)?
            }
            Long("svg") => svg = Some(cli::path_value(&mut parser, "--svg")?),
            Long("noise") => noise.sigma = parse_noise(&cli::value(&mut parser, "--noise")?)?,
            Long("seed") => noise.seed = cli::parse_seed(&cli::value(&mut parser, "--seed")?, "--seed")?,
            Long(name) => {
                // `name` borrows the parser, which the flag's value is read from next.
                let name = name.to_owned();
                if !optimizer.parse_flag(&name, &mut parser)? {
                    return Err(CliError::UnknownArgument(format!("--{name}")));
                }
            }
            other => return Err(cli::unexpected(other)),
        }
    }
    // Some optimizers take some parameters only (Muon: matrices): refuse before running.
    let built = optimizer.build()?;
    built.check_params(&[&problem.param(&problem.default_start())]).map_err(|reason| {
        CliError::invalid("--optimizer", format!("{reason} (--problem {})", problem.name()))
    })?;
    if start.is_some() && !problem.is_2d() {
        return Err(CliError::invalid(
            "--start",
            format!(
                "the {} problem starts from its fixed W; --start sets (x, y) of a 2-d problem",
                problem.name()
            ),
        ));
    }
    Ok(Command::Run(Box::new(OptimizeArgs {
        problem,
        start: start.map_or_else(|| problem.default_start(), |xy: [f32; 2]| xy.to_vec()),
        steps,
        optimizer,
        svg,
        noise,
    })))
}

/// Why [`execute`] failed.
#[derive(Debug)]
pub enum ExecuteError {
    /// The optimizer could not be built.
    Args(CliError),
    /// The SVG could not be drawn or written.
    Svg {
        /// The `--svg` file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Writing the CSV failed (e.g. a closed pipe).
    Output(io::Error),
}

impl fmt::Display for ExecuteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::Args(e) => write!(f, "{e}"),
            ExecuteError::Svg { path, reason } => {
                write!(f, "--svg: cannot write '{}': {reason}", path.display())
            }
            ExecuteError::Output(e) => write!(f, "writing the CSV: {e}"),
        }
    }
}

impl std::error::Error for ExecuteError {}

/// Runs `args`: writes the SVG if asked (atomically, so a failed run leaves no half file),
/// then the CSV to `out`. Returns the rows. An SVG file that cannot be written is refused
/// before the run, not after it.
pub fn execute(args: &OptimizeArgs, out: &mut dyn Write) -> Result<Vec<Row>, ExecuteError> {
    let mut optimizer = args.optimizer.build().map_err(ExecuteError::Args)?;
    if let Some(path) = &args.svg {
        cli::check_out_file("--svg", path).map_err(ExecuteError::Args)?;
    }
    let rows = run_noisy(args.problem, &args.start, args.steps, optimizer.as_mut(), args.noise);
    if let Some(path) = &args.svg {
        let svg_error = |reason: String| ExecuteError::Svg { path: path.clone(), reason };
        let mut title = args.optimizer.describe();
        if args.noise.sigma > 0.0 {
            title += &format!(", gradient noise sigma {} (seed {})", args.noise.sigma, args.noise.seed);
        }
        let svg = plot_svg(args.problem, &rows, &title).map_err(svg_error)?;
        write_atomic(path, svg.as_bytes()).map_err(|e| svg_error(e.to_string()))?;
    }
    write_csv(&rows, out).and_then(|()| out.flush()).map_err(ExecuteError::Output)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The autodiff loss and gradient at `(x, y)`.
    fn loss_and_grad(problem: Problem, x: f32, y: f32) -> (f32, [f32; 2]) {
        let p = Param::new("xy", Tensor::from_vec(vec![x, y], &[2]));
        let tape = Tape::new(Mode::Train, 0);
        let loss = problem.loss(tape.param(&p));
        let value = loss.item();
        let grads = loss.backward();
        let g = grads.get(&p).expect("p has a gradient").data().to_vec();
        (value, [g[0], g[1]])
    }

    #[test]
    fn autodiff_losses_match_the_formulas_and_their_derivatives() {
        for (x, y) in [(-1.5f32, 2.0f32), (0.3, -0.7), (1.0, 1.0)] {
            let (f, g) = loss_and_grad(Problem::Rosenbrock, x, y);
            let r = y - x * x;
            assert!((f - ((1.0 - x).powi(2) + 100.0 * r * r)).abs() <= 1e-5 * f.abs().max(1.0));
            let (gx, gy) = (-2.0 * (1.0 - x) - 400.0 * x * r, 200.0 * r);
            assert!((g[0] - gx).abs() <= 1e-4 * gx.abs().max(1.0), "{g:?} vs {gx}");
            assert!((g[1] - gy).abs() <= 1e-4 * gy.abs().max(1.0), "{g:?} vs {gy}");
            assert!(
                (f as f64 - Problem::Rosenbrock.value(x as f64, y as f64)).abs()
                    <= 1e-4 * (f as f64).max(1.0)
            );

            let (f, g) = loss_and_grad(Problem::Quadratic, x, y);
            assert!((f - 0.5 * (x * x + 100.0 * y * y)).abs() <= 1e-5 * f.max(1.0));
            assert_eq!(g, [x, 100.0 * y]);
        }
        for problem in [Problem::Rosenbrock, Problem::Quadratic] {
            let [x, y] = problem.minimum().unwrap();
            assert_eq!(loss_and_grad(problem, x, y), (0.0, [0.0, 0.0]));
        }
    }

    fn adam() -> Box<dyn Optimizer> {
        adamant::optim::build(
            "adam",
            &adamant::optim::OptimizerOptions { lr: Some(0.1), ..Default::default() },
        )
        .unwrap()
    }

    #[test]
    fn noise_is_seeded_and_zero_noise_is_the_exact_gradient() {
        let start = Problem::Quadratic.default_start();
        let exact = run(Problem::Quadratic, &start, 50, adam().as_mut());
        for seed in [0, 7] {
            let silent = Noise { sigma: 0.0, seed };
            assert_eq!(run_noisy(Problem::Quadratic, &start, 50, adam().as_mut(), silent), exact);
        }
        let noisy =
            |sigma, seed| run_noisy(Problem::Quadratic, &start, 50, adam().as_mut(), Noise { sigma, seed });
        assert_eq!(noisy(1.0, 3), noisy(1.0, 3), "same seed, same path");
        assert_ne!(noisy(1.0, 3), noisy(1.0, 4), "another seed, another path");
        assert_ne!(noisy(1.0, 3), exact);
        // The loss in the rows is the true loss at the noisy iterate, not a noisy one.
        for r in noisy(1.0, 3) {
            let (x, y) = (r.params[0] as f64, r.params[1] as f64);
            assert!(
                (r.loss as f64 - Problem::Quadratic.value(x, y)).abs() <= 1e-5 * (r.loss as f64).max(1.0)
            );
        }
    }

    #[test]
    fn noise_has_the_asked_standard_deviation() {
        // At the bowl's minimum the exact gradient is 0, so one step of plain SGD (default lr
        // 1e-3) from there moves by -lr * noise: each seed gives two draws.
        let mut steps = Vec::new();
        for seed in 0..2000 {
            let mut sgd = adamant::optim::build("sgd", &Default::default()).unwrap();
            let rows = run_noisy(Problem::Quadratic, [0.0, 0.0], 1, sgd.as_mut(), Noise { sigma: 2.0, seed });
            steps.extend(rows[1].params.iter().map(|&x| -x as f64 / 1e-3));
        }
        let n = steps.len() as f64;
        let mean = steps.iter().sum::<f64>() / n;
        let sd = (steps.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        // Standard errors with n = 4000: 0.03 for the mean, 0.02 for the standard deviation.
        assert!(mean.abs() < 0.15 && (sd - 2.0).abs() < 0.1, "mean {mean}, sd {sd}");
    }

    #[test]
    fn the_matrix_problem_is_the_issues_least_squares_with_its_gradient() {
        let w0 = Problem::Matrix.default_start();
        assert_eq!(w0.len(), 12);
        assert_eq!((w0[0], w0[5], w0[11]), (-0.5, 0.0, 0.6), "W[i][j] = 0.1 (3 i + j) - 0.5");
        let p = Param::new("w", Tensor::from_vec(w0.clone(), &[4, 3]));
        let tape = Tape::new(Mode::Train, 0);
        let loss = Problem::Matrix.loss(tape.param(&p));
        let value = loss.item() as f64;
        let grads = loss.backward();
        let g = grads.get(&p).unwrap().data().to_vec();
        // The same in f64 by hand: residual R = A W - B, loss 0.5 |R|^2, gradient A^T R.
        let a = |r: usize, c: usize| ((4 * r + c + 1) as f64).sin();
        let b = |r: usize, c: usize| ((3 * r + c + 1) as f64).cos();
        let w = |i: usize, j: usize| w0[3 * i + j] as f64;
        let residual = |r: usize, j: usize| (0..4).map(|k| a(r, k) * w(k, j)).sum::<f64>() - b(r, j);
        let expected: f64 =
            (0..5).flat_map(|r| (0..3).map(move |j| (r, j))).map(|(r, j)| residual(r, j).powi(2)).sum();
        assert!((value - 0.5 * expected).abs() < 1e-5 * value, "{value} vs {}", 0.5 * expected);
        for (k, &gk) in g.iter().enumerate() {
            let (i, j) = (k / 3, k % 3);
            let want: f64 = (0..5).map(|r| a(r, i) * residual(r, j)).sum();
            assert!((gk as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "dW[{i}][{j}] {gk} vs {want}");
        }
        // Adam makes progress, and the CSV has the twelve coordinates.
        let rows = run(Problem::Matrix, &w0, 200, adam().as_mut());
        assert!(rows[200].loss < 0.5 * rows[0].loss, "{} -> {}", rows[0].loss, rows[200].loss);
        let mut out = Vec::new();
        write_csv(&rows[..1], &mut out).unwrap();
        let header = String::from_utf8(out).unwrap().lines().next().unwrap().to_string();
        assert_eq!(header, "step,loss,x0,x1,x2,x3,x4,x5,x6,x7,x8,x9,x10,x11");
        assert!(plot_svg(Problem::Matrix, &rows, "adam").unwrap().starts_with("<svg"));
    }

    #[test]
    fn problems_by_name() {
        for name in Problem::NAMES {
            assert_eq!(Problem::from_name(name).unwrap().name(), name);
        }
        assert_eq!(
            Problem::from_name("banana").unwrap_err().to_string(),
            "--problem: unknown problem 'banana' (expected one of: rosenbrock, quadratic, matrix)"
        );
    }

    #[test]
    fn csv_has_a_header_and_round_tripping_floats() {
        let rows = [
            Row { step: 0, loss: 0.1, params: vec![-1.5, 2.0] },
            Row { step: 1, loss: 1.0 / 3.0, params: vec![1e-8, -7.25] },
        ];
        let mut out = Vec::new();
        write_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "step,loss,x0,x1\n0,0.1,-1.5,2\n1,0.33333334,0.00000001,-7.25\n");
        let third: f32 = text.lines().nth(2).unwrap().split(',').nth(1).unwrap().parse().unwrap();
        assert_eq!(third, 1.0 / 3.0);
    }
}
