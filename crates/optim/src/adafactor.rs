//! Adafactor (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
//! Cost"), as `torch.optim.Adafactor`.

use adamant_autodiff::{Gradients, Param};
use adamant_tensor::Tensor;

use adamant_tensor::kernels::parallel::should_parallelize;
use rayon::prelude::*;

use crate::core::{Core, ParamState};
use crate::moments::{lerp, UPDATE_CHUNK};
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;

/// Options of [`Adafactor`]; `Default` gives `torch.optim.Adafactor`'s defaults for float32
/// parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdafactorConfig {
    /// The cap of the relative step size, `rho_t = min(lr, 1 / sqrt(t))` (default `1e-2`).
    pub lr: f32,
    /// The exponent tau of the second moment's decay, `beta2_t = 1 - t^tau` (default `-0.8`;
    /// must be `<= 0`).
    pub beta2_decay: f32,
    /// epsilon1, the floor of the second-moment estimate (default `f32::EPSILON`). torch's
    /// default `None` means `torch.finfo(param.dtype).eps`, which for adamant's float32
    /// parameters is `f32::EPSILON`; a float64 run of torch needs it passed explicitly to
    /// compute the same update.
    pub eps1: f32,
    /// epsilon2, the floor of the parameter's RMS in the step size (default `1e-3`).
    pub eps2: f32,
    /// d, the threshold of the update clipping by its RMS (default 1; must be `>= 1`).
    pub d: f32,
    /// Decoupled weight decay lambda (default 0).
    pub weight_decay: f32,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        AdafactorConfig { lr: 1e-2, beta2_decay: -0.8, eps1: f32::EPSILON, eps2: 1e-3, d: 1.0, weight_decay: 0.0 }
    }
}

impl FromOptions for Adafactor {
    const NAME: &'static str = "adafactor";

    fn from_options(o: &OptionReader<'_>) -> Result<Adafactor, OptionsError> {
        // The table's ranges are torch's checks: beta2_decay <= 0, eps1, eps2, lr and
        // weight_decay >= 0, d >= 1.
        Ok(Adafactor::new(read_config!(o, AdafactorConfig { lr, beta2_decay, eps1, eps2, d, weight_decay })))
    }
}

/// Adafactor as `torch.optim.Adafactor` computes it (its single-tensor path). With gradient
/// `G_t` of parameter `theta` at step t:
///
/// ```text
/// 1 - beta2_t = t^tau                                       (tau = beta2_decay; 1 at t = 1)
/// rho_t       = min(lr, 1 / sqrt(t))                        (relative step size)
/// alpha_t     = max(eps2, RMS(theta_{t-1})) rho_t           (absolute step size)
/// theta       <- theta (1 - lr lambda)                      (if weight_decay != 0)
/// rank >= 2, for each matrix of the last two axes ([R, C]):
///   R_t <- beta2_t R_{t-1} + (1 - beta2_t) mean_over_columns(G_t^2)    (row_var, [.., R, 1])
///   C_t <- beta2_t C_{t-1} + (1 - beta2_t) mean_over_rows(G_t^2)       (col_var, [.., 1, C])
///   V_t  = R_t C_t / max(eps1, mean(R_t))                               (outer product)
/// rank <= 1:
///   V_t <- beta2_t V_{t-1} + (1 - beta2_t) G_t^2                       (variance)
/// U_t         = G_t / sqrt(max(V_t, eps1^2))
/// theta_t     <- theta - alpha_t / max(1, RMS(U_t) / d) U_t
/// ```
///
/// As the paper's Algorithm 4 with its relative step size, update clipping and
/// increasing-decay `beta2_t`, without first moment; torch moves eps1 from inside the
/// averages (the paper's `G^2 + eps1`) to the floors above. A tensor of rank 3 or more keeps
/// row and column statistics for each matrix of its last two axes, as torch does (a
/// convolution's `[out, in, kh, kw]` weight gets `[out, in, kh, 1]` and `[out, in, 1, kw]`).
/// The step needs three passes over the gradient (the statistics, the RMS of `U_t`, the
/// update), as torch's does. Large tensors are split over rayon in fixed pieces of rows (or
/// of 1024-element units of a vector); every reduction runs in f64 and adds its partial sums
/// in a fixed order, so the result is the same bits on any number of threads (tested).
#[derive(Clone, Debug)]
pub struct Adafactor {
    config: AdafactorConfig,
    core: Core,
    /// Scratch: the column sums of `G_t^2` of one matrix, and one block (row) of the
    /// unscaled update (kept to not allocate every step).
    col_sums: Vec<f64>,
    block: Vec<f32>,
}

/// Buffers of a factored (rank >= 2) parameter, then of a vector, in state order: torch's
/// names, with torch's shapes (the statistics keep their reduced axes as size 1).
const BUFFER_SETS: &[&[&str]] = &[&["row_var", "col_var"], &["variance"]];

/// The shape Adafactor's saved buffer `buffer` has for a parameter of shape `param`, or
/// `None` if a parameter of that rank has no such buffer: `row_var` and `col_var` (the last,
/// resp. second-to-last, axis reduced to 1) for rank >= 2, `variance` (the parameter's shape)
/// below. [`crate::OptimizerState::validate`] checks saved state against it, so a file whose
/// buffers would not fit is refused instead of making a later step panic.
pub(crate) fn saved_buffer_shape(buffer: &str, param: &[usize]) -> Option<Vec<usize>> {
    let rank = param.len();
    let reduced = |axis: usize| {
        let mut shape = param.to_vec();
        shape[axis] = 1;
        shape
    };
    match buffer {
        "row_var" if rank >= 2 => Some(reduced(rank - 1)),
        "col_var" if rank >= 2 => Some(reduced(rank - 2)),
        "variance" if rank < 2 => Some(param.to_vec()),
        _ => None,
    }
}

impl Adafactor {
    /// An Adafactor optimizer.
    pub fn new(config: AdafactorConfig) -> Adafactor {
        let core = Core::with_buffer_sets("adafactor", BUFFER_SETS, &[], config.lr, config.weight_decay);
        Adafactor { config, core, col_sums: Vec::new(), block: Vec::new() }
    }

    /// The options this optimizer was made with (the learning rate may have moved since).
    pub fn config(&self) -> AdafactorConfig {
        self.config
    }
}

/// The zero state of a parameter of shape `shape`: row and column statistics for rank >= 2
/// (the last axis, then the one before it, reduced to 1), else a full second moment.
fn init_state(shape: &[usize]) -> ParamState {
    let buffers = match shape.len() {
        0 | 1 => vec![Tensor::zeros(shape)],
        n => {
            let (mut rows, mut cols) = (shape.to_vec(), shape.to_vec());
            rows[n - 1] = 1;
            cols[n - 2] = 1;
            vec![Tensor::zeros(&rows), Tensor::zeros(&cols)]
        }
    };
    ParamState { step: 0, buffers, scalars: vec![] }
}

/// `sqrt(mean(x^2))`, summed in f64.
fn rms(x: &[f32]) -> f64 {
    (sum_sq(x) / x.len() as f64).sqrt()
}

/// `sum(x^2)` in f64, over eight running sums added up in a fixed order: the same bits for
/// the same input, and a loop that vectorises, where one running f64 sum is a chain of
/// dependent additions (it made Adafactor's step several times slower).
pub(crate) fn sum_sq(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (lane, &v) in lanes.iter_mut().zip(c) {
            *lane += (v as f64) * (v as f64);
        }
    }
    let mut sum = lanes.iter().sum::<f64>();
    for &v in tail {
        sum += (v as f64) * (v as f64);
    }
    sum
}

/// Elements per unit of the unscaled update of a vector (a matrix's units are its rows).
const BLOCK: usize = 1024;

impl Optimizer for Adafactor {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let c = self.config;
        let (col_sums, block) = (&mut self.col_sums, &mut self.block);
        self.core.for_each_shaped(
            params,
            grads,
            |p| init_state(p.shape()),
            |theta, grad, shape, state, h| {
                if theta.is_empty() {
                    return;
                }
                // Scalars in f64, as torch computes them in Python floats.
                let t = state.step as f64;
                let w = t.powf(c.beta2_decay as f64) as f32;
                let lr = h.lr as f64;
                let rho = lr.min(1.0 / t.sqrt());
                let alpha = (c.eps2 as f64).max(rms(theta)) * rho;
                let parallel = should_parallelize(theta.len());
                if h.weight_decay != 0.0 {
                    let factor = (1.0 - lr * h.weight_decay as f64) as f32;
                    elementwise(theta, grad, parallel, |t, _| *t *= factor);
                }
                let kind = if shape.len() >= 2 {
                    let [row_var, col_var] = &mut state.buffers[..] else {
                        panic!("adafactor: the state of a {shape:?} parameter lacks row_var and col_var")
                    };
                    let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
                    update_factors(grad, row_var.data_mut(), col_var.data_mut(), rows, cols, w, col_sums);
                    let (row_var, col_var) = (row_var.data(), col_var.data());
                    // mean(R) of each matrix, floored by eps1: the denominator of V = R C / mean.
                    let means = row_var
                        .chunks_exact(rows)
                        .map(|r| ((r.iter().map(|&x| x as f64).sum::<f64>() / rows as f64) as f32).max(c.eps1))
                        .collect();
                    Kind::Factored { rows, cols, row_var, col_var, means }
                } else {
                    let [variance] = &mut state.buffers[..] else {
                        panic!("adafactor: the state of a {shape:?} parameter lacks variance")
                    };
                    let v = variance.data_mut();
                    assert_eq!(v.len(), grad.len(), "adafactor: variance of a {shape:?} parameter");
                    elementwise(v, grad, parallel, |v, g| *v = lerp(*v, g * g, w));
                    Kind::Full { variance: variance.data() }
                };
                let estimate = Estimate { kind, eps1_sq: (c.eps1 as f64 * c.eps1 as f64) as f32 };
                let update_rms = (estimate.update_sq(grad, block, parallel) / grad.len() as f64).sqrt();
                let denom = (update_rms / c.d as f64).max(1.0);
                estimate.apply(theta, grad, (-alpha / denom) as f32, block, parallel);
            },
        );
    }

    optimizer_common!();
}

/// `f(x, g)` for every element of `x` and of the gradient `g`, over rayon in fixed pieces if
/// `parallel` (each element on its own: the same bits either way).
fn elementwise(x: &mut [f32], g: &[f32], parallel: bool, f: impl Fn(&mut f32, f32) + Sync) {
    let piece = |x: &mut [f32], g: &[f32]| x.iter_mut().zip(g).for_each(|(x, &g)| f(x, g));
    if parallel {
        x.par_chunks_mut(UPDATE_CHUNK).zip(g.par_chunks(UPDATE_CHUNK)).for_each(|(x, g)| piece(x, g));
    } else {
        piece(x, g);
    }
}

/// Updates the row and column statistics of every `[rows, cols]` matrix of `grad` (its last
/// two axes) with the means of `G^2` along each row and each column:
/// `R <- lerp(R, mean_over_columns(G^2), w)`, `C <- lerp(C, mean_over_rows(G^2), w)`.
///
/// A small matrix takes one pass over its gradient; a large one is split over rayon into
/// pieces of rows for `R` and blocks of columns for `C`. Each row and each column is summed
/// in the same order either way (rows by [`sum_sq`], columns from the first row down), so the
/// split changes no bit.
///
/// # Panics
/// If the statistics do not have one entry per row and per column of every matrix.
fn update_factors(
    grad: &[f32],
    row_var: &mut [f32],
    col_var: &mut [f32],
    rows: usize,
    cols: usize,
    w: f32,
    col_sums: &mut Vec<f64>,
) {
    let matrices = grad.len() / (rows * cols);
    assert!(
        row_var.len() == matrices * rows && col_var.len() == matrices * cols,
        "adafactor: statistics of {} and {} entries for {matrices} matrices [{rows}, {cols}]",
        row_var.len(),
        col_var.len()
    );
    let row_mean = |row: &[f32], r: &mut f32| *r = lerp(*r, (sum_sq(row) / cols as f64) as f32, w);
    for ((g, row_var), col_var) in
        grad.chunks_exact(rows * cols).zip(row_var.chunks_exact_mut(rows)).zip(col_var.chunks_exact_mut(cols))
    {
        if should_parallelize(g.len()) {
            let rows_per_piece = (UPDATE_CHUNK / cols).max(1);
            g.par_chunks(rows_per_piece * cols).zip(row_var.par_chunks_mut(rows_per_piece)).for_each(|(g, r)| {
                g.chunks_exact(cols).zip(r).for_each(|(row, r)| row_mean(row, r));
            });
            let cols_per_block = (UPDATE_CHUNK / rows).clamp(64, cols.max(64));
            col_var.par_chunks_mut(cols_per_block).enumerate().for_each(|(k, block)| {
                let first = k * cols_per_block;
                let mut sums = vec![0.0f64; block.len()];
                for row in g.chunks_exact(cols) {
                    for (s, &x) in sums.iter_mut().zip(&row[first..first + block.len()]) {
                        *s += (x as f64) * (x as f64);
                    }
                }
                for (c, &s) in block.iter_mut().zip(&sums) {
                    *c = lerp(*c, (s / rows as f64) as f32, w);
                }
            });
        } else {
            col_sums.clear();
            col_sums.resize(cols, 0.0);
            for (row, r) in g.chunks_exact(cols).zip(row_var.iter_mut()) {
                for (&x, s) in row.iter().zip(col_sums.iter_mut()) {
                    *s += (x as f64) * (x as f64);
                }
                row_mean(row, r);
            }
            for (c, &s) in col_var.iter_mut().zip(col_sums.iter()) {
                *c = lerp(*c, (s / rows as f64) as f32, w);
            }
        }
    }
}

/// The second-moment estimate `V_t` of one parameter, and the floor `eps1^2` of it.
struct Estimate<'a> {
    kind: Kind<'a>,
    eps1_sq: f32,
}

/// A factored or a full second moment.
enum Kind<'a> {
    /// `V = R C / mean` for each `[rows, cols]` matrix, `mean = max(eps1, mean(R))`.
    Factored { rows: usize, cols: usize, row_var: &'a [f32], col_var: &'a [f32], means: Vec<f32> },
    /// `V` itself.
    Full { variance: &'a [f32] },
}

impl Estimate<'_> {
    /// Elements of a unit of the update: a matrix's row, or [`BLOCK`] elements of a vector
    /// (the last unit may be shorter).
    fn unit_len(&self) -> usize {
        match self.kind {
            Kind::Factored { cols, .. } => cols,
            Kind::Full { .. } => BLOCK,
        }
    }

    /// Units per piece when the update is split over rayon: about [`UPDATE_CHUNK`] elements.
    fn units_per_piece(&self) -> usize {
        (UPDATE_CHUNK / self.unit_len()).max(1)
    }

    /// Unit `k` of the unscaled update `U = G / sqrt(max(V, eps1^2))`, for its gradient `g`,
    /// into `out`.
    fn unit(&self, k: usize, g: &[f32], out: &mut [f32]) {
        let eps1_sq = self.eps1_sq;
        let unscaled = |g: f32, v: f32| g * (1.0 / v.max(eps1_sq).sqrt());
        match &self.kind {
            Kind::Factored { rows, cols, row_var, col_var, means } => {
                let (matrix, r) = (k / rows, row_var[k]);
                let (c, mean) = (&col_var[matrix * cols..(matrix + 1) * cols], means[matrix]);
                // torch: (row_var @ col_var) / mean, an outer product then a division.
                for ((u, &g), &c) in out.iter_mut().zip(g).zip(c) {
                    *u = unscaled(g, r * c / mean);
                }
            }
            Kind::Full { variance } => {
                let v = &variance[k * BLOCK..k * BLOCK + g.len()];
                for ((u, &g), &v) in out.iter_mut().zip(g).zip(v) {
                    *u = unscaled(g, v);
                }
            }
        }
    }

    /// `sum(U^2)`: each unit's [`sum_sq`], added up in unit order (over rayon, the units'
    /// sums are gathered first, then added in the same order).
    fn update_sq(&self, grad: &[f32], block: &mut Vec<f32>, parallel: bool) -> f64 {
        let len = self.unit_len();
        let unit_sq = |k: usize, g: &[f32], block: &mut Vec<f32>| {
            block.resize(g.len(), 0.0);
            self.unit(k, g, block);
            sum_sq(block)
        };
        if parallel {
            let per_piece = self.units_per_piece();
            let pieces: Vec<Vec<f64>> = grad
                .par_chunks(per_piece * len)
                .enumerate()
                .map(|(p, g)| {
                    let mut block = Vec::with_capacity(len);
                    g.chunks(len).enumerate().map(|(j, g)| unit_sq(p * per_piece + j, g, &mut block)).collect()
                })
                .collect();
            pieces.iter().flatten().fold(0.0, |sum, &s| sum + s)
        } else {
            grad.chunks(len).enumerate().fold(0.0, |sum, (k, g)| sum + unit_sq(k, g, block))
        }
    }

    /// `theta <- theta + coef U`, a unit at a time (over rayon in pieces of units).
    fn apply(&self, theta: &mut [f32], grad: &[f32], coef: f32, block: &mut Vec<f32>, parallel: bool) {
        let len = self.unit_len();
        let units = |first: usize, theta: &mut [f32], grad: &[f32], block: &mut Vec<f32>| {
            for (j, (t, g)) in theta.chunks_mut(len).zip(grad.chunks(len)).enumerate() {
                block.resize(g.len(), 0.0);
                self.unit(first + j, g, block);
                for (t, &u) in t.iter_mut().zip(block.iter()) {
                    *t += coef * u;
                }
            }
        };
        if parallel {
            let per_piece = self.units_per_piece();
            theta.par_chunks_mut(per_piece * len).zip(grad.par_chunks(per_piece * len)).enumerate().for_each(
                |(p, (theta, grad))| units(p * per_piece, theta, grad, &mut Vec::with_capacity(len)),
            );
        } else {
            units(0, theta, grad, block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_sq_is_the_sum_of_squares_for_every_tail_length() {
        for n in [0, 1, 7, 8, 9, 17, 1000] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let naive: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
            assert!((sum_sq(&x) - naive).abs() <= 1e-12 * naive.max(1.0), "n = {n}");
        }
    }

    #[test]
    fn state_has_torchs_buffers_and_shapes() {
        let matrix = init_state(&[4, 3]);
        assert_eq!(matrix.buffers.iter().map(|b| b.shape().to_vec()).collect::<Vec<_>>(), [vec![4, 1], vec![1, 3]]);
        let conv = init_state(&[8, 2, 3, 3]);
        assert_eq!(conv.buffers[0].shape(), &[8, 2, 3, 1]);
        assert_eq!(conv.buffers[1].shape(), &[8, 2, 1, 3]);
        assert_eq!(init_state(&[5]).buffers[0].shape(), &[5]);
    }

    /// The factored estimate of a gradient whose squares are an outer product `a b^T` is that
    /// product at the first step (where `1 - beta2_1 = 1`): the factorisation is exact for
    /// rank-one second moments.
    #[test]
    fn factored_estimate_is_exact_for_rank_one_squares() {
        let (a, b) = ([1.0f32, 4.0, 9.0], [0.25f32, 1.0]);
        let grad: Vec<f32> = a.iter().flat_map(|x| b.iter().map(move |y| (x * y).sqrt())).collect();
        let (mut row_var, mut col_var, mut sums) = (vec![0.0; 3], vec![0.0; 2], Vec::new());
        update_factors(&grad, &mut row_var, &mut col_var, 3, 2, 1.0, &mut sums);
        let mean = row_var.iter().sum::<f32>() / 3.0;
        let kind = Kind::Factored { rows: 3, cols: 2, row_var: &row_var, col_var: &col_var, means: vec![mean] };
        let estimate = Estimate { kind, eps1_sq: 0.0 };
        for (k, g) in grad.chunks(2).enumerate() {
            let mut u = [0.0; 2];
            estimate.unit(k, g, &mut u);
            for (j, &u) in u.iter().enumerate() {
                let v = a[k] * b[j];
                assert!((u - g[j] / v.sqrt()).abs() < 1e-6, "[{k}, {j}]: {u}");
            }
        }
    }

    /// The split over threads changes no bit of the parameter or the state, for a matrix
    /// (rows and column blocks split), a rank-3 tensor and a vector, with weight decay, the
    /// ragged last pieces included.
    #[test]
    fn parallel_step_equals_serial_bit_for_bit() {
        use adamant_autodiff::{Mode, Tape};
        use adamant_tensor::testing::{assert_par_eq_serial, bits, randn};
        let shapes: [&[usize]; 3] = [&[300, 201], &[2, 150, 131], &[3 * UPDATE_CHUNK + 123]];
        let out = assert_par_eq_serial(|| {
            let mut params: Vec<Param> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| Param::new(format!("p{i}"), Tensor::from_vec(randn(s.iter().product(), i as u64), s)))
                .collect();
            let mut adafactor = Adafactor::new(AdafactorConfig { weight_decay: 0.1, ..Default::default() });
            for step in 0..3 {
                let tape = Tape::new(Mode::Train, 0);
                let loss = params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let c = Tensor::from_vec(randn(p.numel(), 10 * step + i as u64), p.shape());
                        (tape.param(p) * tape.constant(c)).sum()
                    })
                    .reduce(|a, b| a + b)
                    .unwrap();
                let grads = loss.backward();
                drop(tape);
                let mut refs: Vec<&mut Param> = params.iter_mut().collect();
                adafactor.step(&mut refs, &grads);
            }
            let state = adafactor.state_dict();
            let mut out: Vec<Vec<u32>> = params.iter().map(|p| bits(p.value().data())).collect();
            out.extend(state.params.values().flat_map(|s| s.buffers.values().map(|b| bits(b.data()))));
            out
        });
        assert_eq!(out.len(), 3 + 2 + 2 + 1);

        // The RMS of U is summed to the same bits too (the step above may round a difference
        // in its last bits away).
        let (rows, cols) = (300, 201);
        let (g, r, c) = (randn(rows * cols, 1), randn(rows, 2), randn(cols, 3));
        let (r, c): (Vec<f32>, Vec<f32>) = (r.iter().map(|x| x * x).collect(), c.iter().map(|x| x * x).collect());
        let v: Vec<f32> = g.iter().map(|x| x * x + 0.5).collect();
        let kinds = [
            Kind::Factored { rows, cols, row_var: &r, col_var: &c, means: vec![0.7] },
            Kind::Full { variance: &v },
        ];
        for kind in kinds {
            let estimate = Estimate { kind, eps1_sq: 1e-6 };
            assert_par_eq_serial(|| {
                let parallel = should_parallelize(g.len());
                estimate.update_sq(&g, &mut Vec::new(), parallel).to_bits()
            });
        }
    }
}
