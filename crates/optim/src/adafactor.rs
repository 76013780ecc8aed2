//! Adafactor (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
//! Cost"), as `torch.optim.Adafactor`.

use adamant_autodiff::{Gradients, Param};
use adamant_tensor::Tensor;

use crate::core::{Core, ParamState};
use crate::moments::lerp;
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
/// update), as torch's does; the RMS reductions run in f64, serially, so results do not
/// depend on threads.
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

/// Elements per block of the unscaled update of a vector (a matrix's blocks are its rows).
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
                if h.weight_decay != 0.0 {
                    let factor = (1.0 - lr * h.weight_decay as f64) as f32;
                    theta.iter_mut().for_each(|x| *x *= factor);
                }
                let eps1_sq = (c.eps1 as f64 * c.eps1 as f64) as f32;
                let estimate = if shape.len() >= 2 {
                    let [row_var, col_var] = &mut state.buffers[..] else {
                        panic!("adafactor: the state of a {shape:?} parameter lacks row_var and col_var")
                    };
                    let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
                    update_factors(grad, row_var.data_mut(), col_var.data_mut(), rows, cols, w, col_sums);
                    Estimate::Factored { rows, cols, row_var: row_var.data(), col_var: col_var.data(), eps1: c.eps1 }
                } else {
                    let [variance] = &mut state.buffers[..] else {
                        panic!("adafactor: the state of a {shape:?} parameter lacks variance")
                    };
                    let v = variance.data_mut();
                    assert_eq!(v.len(), grad.len(), "adafactor: variance of a {shape:?} parameter");
                    for (v, &g) in v.iter_mut().zip(grad) {
                        *v = lerp(*v, g * g, w);
                    }
                    Estimate::Full { variance: variance.data() }
                };
                let mut update_sq = 0.0f64;
                estimate.for_each_block(grad, eps1_sq, block, |_, u| update_sq += sum_sq(u));
                let update_rms = (update_sq / grad.len() as f64).sqrt();
                let denom = (update_rms / c.d as f64).max(1.0);
                let coef = (-alpha / denom) as f32;
                estimate.for_each_block(grad, eps1_sq, block, |start, u| {
                    for (t, &u) in theta[start..start + u.len()].iter_mut().zip(u) {
                        *t += coef * u;
                    }
                });
            },
        );
    }

    optimizer_common!();
}

/// Updates the row and column statistics of every `[rows, cols]` matrix of `grad` (its last
/// two axes) with the means of `G^2` along each row and each column, in one pass over the
/// gradient: `R <- lerp(R, mean_over_columns(G^2), w)`, `C <- lerp(C, mean_over_rows(G^2), w)`.
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
    for ((g, row_var), col_var) in
        grad.chunks_exact(rows * cols).zip(row_var.chunks_exact_mut(rows)).zip(col_var.chunks_exact_mut(cols))
    {
        col_sums.clear();
        col_sums.resize(cols, 0.0);
        for (row, r) in g.chunks_exact(cols).zip(row_var.iter_mut()) {
            for (&x, s) in row.iter().zip(col_sums.iter_mut()) {
                *s += (x as f64) * (x as f64);
            }
            *r = lerp(*r, (sum_sq(row) / cols as f64) as f32, w);
        }
        for (c, &s) in col_var.iter_mut().zip(col_sums.iter()) {
            *c = lerp(*c, (s / rows as f64) as f32, w);
        }
    }
}

/// The second-moment estimate `V_t` of one parameter, factored or full.
enum Estimate<'a> {
    /// `V = R C / max(eps1, mean(R))` for each `[rows, cols]` matrix.
    Factored { rows: usize, cols: usize, row_var: &'a [f32], col_var: &'a [f32], eps1: f32 },
    /// `V` itself.
    Full { variance: &'a [f32] },
}

impl Estimate<'_> {
    /// Calls `f(start, U)` for consecutive blocks of the unscaled update
    /// `U = G / sqrt(max(V, eps1^2))` (a matrix's rows, or [`BLOCK`] elements of a vector),
    /// each computed into `block`, `start` its offset in the parameter. The step runs it twice
    /// (for the RMS of `U`, then to apply it) rather than storing `U`: the same arithmetic
    /// gives the same bits, and a block stays in the cache.
    fn for_each_block(&self, grad: &[f32], eps1_sq: f32, block: &mut Vec<f32>, mut f: impl FnMut(usize, &[f32])) {
        let unscaled = |g: f32, v: f32| g * (1.0 / v.max(eps1_sq).sqrt());
        match *self {
            Estimate::Full { variance } => {
                for (k, (g, v)) in grad.chunks(BLOCK).zip(variance.chunks(BLOCK)).enumerate() {
                    block.resize(g.len(), 0.0);
                    for ((u, &g), &v) in block.iter_mut().zip(g).zip(v) {
                        *u = unscaled(g, v);
                    }
                    f(k * BLOCK, block);
                }
            }
            Estimate::Factored { rows, cols, row_var, col_var, eps1 } => {
                let mut start = 0;
                block.resize(cols, 0.0);
                for (g, (row_var, col_var)) in
                    grad.chunks_exact(rows * cols).zip(row_var.chunks_exact(rows).zip(col_var.chunks_exact(cols)))
                {
                    let mean = (row_var.iter().map(|&r| r as f64).sum::<f64>() / rows as f64) as f32;
                    let mean = mean.max(eps1);
                    for (row, &r) in g.chunks_exact(cols).zip(row_var) {
                        // torch: (row_var @ col_var) / mean, an outer product then a division.
                        for ((u, &g), &c) in block.iter_mut().zip(row).zip(col_var) {
                            *u = unscaled(g, r * c / mean);
                        }
                        f(start, block);
                        start += cols;
                    }
                }
            }
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
        let estimate = Estimate::Factored { rows: 3, cols: 2, row_var: &row_var, col_var: &col_var, eps1: 1e-30 };
        let mut seen = 0;
        estimate.for_each_block(&grad, 0.0, &mut Vec::new(), |start, u| {
            for (i, &u) in (start..).zip(u) {
                let v = a[i / 2] * b[i % 2];
                assert!((u - grad[i] / v.sqrt()).abs() < 1e-6, "element {i}: {u}");
                seen += 1;
            }
        });
        assert_eq!(seen, 6);
    }
}
