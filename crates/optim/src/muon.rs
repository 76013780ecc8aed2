//! Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"), as
//! `torch.optim.Muon`, and `muon` by name: Muon for the matrices with AdamW for the rest.

use adamant_autodiff::{Gradients, Param};
use adamant_tensor::kernels::matmul;

use crate::adafactor::sum_sq;
use crate::adam::{AdamW, AdamWConfig};
use crate::core::{Core, ParamState, Selector};
use crate::moments::lerp;
use crate::optimizer::{optimizer_common, Optimizer};
use crate::options::{FromOptions, OptionReader, OptionsError};
use crate::read_config;
use crate::split::Split;

/// How [`Muon`] scales its learning rate with the shape `[A, B]` of the matrix it updates
/// (torch's `adjust_lr_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdjustLr {
    /// `lr sqrt(max(1, A / B))`, Keller Jordan's original (torch's default).
    Original,
    /// `0.2 lr sqrt(max(A, B))`, Moonshot's ("Muon is Scalable for LLM Training"): the
    /// update's RMS matches AdamW's, so AdamW's learning rate and weight decay carry over.
    MatchRmsAdamW,
    /// `lr sqrt(A / B)`, Bernstein's spectral condition ("Deriving Muon"), without the clamp.
    SpectralUnclamped,
}

impl AdjustLr {
    /// The option's word for it (`--adjust-lr-fn original`), as torch spells it.
    pub fn name(self) -> &'static str {
        match self {
            AdjustLr::Original => "original",
            AdjustLr::MatchRmsAdamW => "match_rms_adamw",
            AdjustLr::SpectralUnclamped => "spectral_unclamped",
        }
    }

    /// The learning rate for a matrix of shape `[a, b]`, in f64 as torch computes it.
    pub fn apply(self, lr: f64, a: usize, b: usize) -> f64 {
        let (a, b) = (a as f64, b as f64);
        let ratio = match self {
            AdjustLr::Original => (a / b).max(1.0).sqrt(),
            AdjustLr::MatchRmsAdamW => 0.2 * a.max(b).sqrt(),
            AdjustLr::SpectralUnclamped => (a / b).sqrt(),
        };
        lr * ratio
    }
}

/// Options of [`Muon`]; `Default` gives `torch.optim.Muon`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MuonConfig {
    /// Learning rate gamma before [`AdjustLr`] (default `1e-3`).
    pub lr: f32,
    /// Decoupled weight decay lambda (default `0.1`).
    pub weight_decay: f32,
    /// Momentum mu (default `0.95`).
    pub momentum: f32,
    /// Nesterov momentum (default true).
    pub nesterov: bool,
    /// The floor of the Frobenius norm that the Newton-Schulz input is divided by (default
    /// `1e-7`).
    pub eps: f32,
    /// Newton-Schulz iterations (default 5; torch refuses 100 or more).
    pub ns_steps: u32,
    /// The quintic's coefficients (a, b, c) (default `(3.4445, -4.7750, 2.0315)`).
    pub ns_coefficients: (f32, f32, f32),
    /// The learning-rate scaling by shape (default [`AdjustLr::Original`]).
    pub adjust_lr_fn: AdjustLr,
}

impl Default for MuonConfig {
    fn default() -> Self {
        MuonConfig {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            eps: 1e-7,
            ns_steps: 5,
            ns_coefficients: (3.4445, -4.7750, 2.0315),
            adjust_lr_fn: AdjustLr::Original,
        }
    }
}

impl MuonConfig {
    /// The config with the options in `o` (the table's names; `--no-nesterov` turns Nesterov
    /// off, `--adjust-lr-fn` takes torch's words). torch's checks: lr, momentum, weight decay
    /// and eps `>= 0` (the table's ranges), fewer than 100 Newton-Schulz steps.
    pub fn from_options(o: &OptionReader<'_>) -> Result<MuonConfig, OptionsError> {
        let config = read_config!(o, MuonConfig { lr, weight_decay, momentum, eps, ns_steps });
        // Nesterov is on by default: `--nesterov` says so explicitly, `--no-nesterov` turns it
        // off, and both at once is a contradiction rather than a precedence rule to learn.
        let (asked, refused) = (o.switch("nesterov"), o.switch("no_nesterov"));
        if asked && refused {
            return Err(o.invalid("no_nesterov", "contradicts --nesterov"));
        }
        let nesterov = !refused;
        let adjust_lr_fn = match o.choice("adjust_lr_fn", AdjustLr::Original.name())? {
            "match_rms_adamw" => AdjustLr::MatchRmsAdamW,
            "spectral_unclamped" => AdjustLr::SpectralUnclamped,
            _ => AdjustLr::Original,
        };
        Ok(MuonConfig { nesterov, adjust_lr_fn, ..config })
    }
}

/// Muon as `torch.optim.Muon` computes it: momentum, then the update orthogonalised by a
/// quintic Newton-Schulz iteration. With gradient `G_t` of a matrix `theta` of shape `[A, B]`:
///
/// ```text
/// B_t   <- mu B_{t-1} + (1 - mu) G_t                    (torch: buf.lerp_(grad, 1 - mu))
/// M_t    = (1 - mu) G_t + mu B_t  (Nesterov)  or  B_t   (torch: grad.lerp(buf, mu))
/// X_0    = M_t / max(||M_t||_F, eps)                    (transposed first if A > B)
/// X_k+1  = a X_k + (b S_k + c S_k^2) X_k,  S_k = X_k X_k^T      (k < ns_steps;
///                                                       (a, b, c) = (3.4445, -4.7750, 2.0315))
/// O_t    = X_ns_steps                                   (transposed back)
/// theta  <- theta (1 - lr lambda)                       (decoupled weight decay)
/// theta  <- theta - adjust_lr(lr, A, B) O_t
/// ```
///
/// torch's documentation writes the momentum as `B_t = mu B_{t-1} + G_t`; its code (and
/// adamant) averages instead, which only rescales `M_t`, and the normalisation by
/// `||M_t||_F` removes the scale up to `eps`. The iteration drives the singular values of
/// `X` towards 1 (into roughly [0.5, 1.5]: the coefficients trade exactness for speed), so
/// `O_t ~ U V^T` for `M_t = U S V^T`.
///
/// One deliberate difference from torch: torch runs the iteration in bfloat16 (it casts
/// `M_t` first); adamant runs it in f32, on its GEMM (transposes are free there), and is
/// pinned to torch's algorithm with that cast removed. The norm is reduced in f64.
///
/// Muon updates matrices only: as torch refuses other parameters, [`Optimizer::step`]
/// panics, naming the parameter, on one that does not have two axes; check parameters that
/// come from outside input with [`Optimizer::check_params`] first. Biases, norm scales,
/// embeddings and convolution kernels go to another optimizer: [`MuonWithAdamW`] (`muon` by
/// name) gives them to AdamW, as Muon's users do.
#[derive(Clone, Debug)]
pub struct Muon {
    config: MuonConfig,
    core: Core,
    /// Buffers of the Newton-Schulz iteration, reused from step to step.
    scratch: Scratch,
}

/// The buffers of one Newton-Schulz iteration: `X`, the next `X`, `S = X X^T` and `S^2`.
#[derive(Clone, Debug, Default)]
struct Scratch {
    x: Vec<f32>,
    next: Vec<f32>,
    gram: Vec<f32>,
    gram_sq: Vec<f32>,
}

impl Muon {
    /// A Muon optimizer.
    pub fn new(config: MuonConfig) -> Muon {
        let core = Core::new("muon", &["momentum_buffer"], &[], config.lr, config.weight_decay);
        Muon { config, core, scratch: Scratch::default() }
    }

    /// The options this optimizer was made with (the learning rate may have moved since).
    pub fn config(&self) -> MuonConfig {
        self.config
    }
}

/// The one-line refusal of a parameter Muon cannot update, if `p` is one.
fn refusal(p: &Param) -> Option<String> {
    (p.shape().len() != 2).then(|| {
        format!(
            "muon updates matrices only, and parameter '{}' has shape {:?} (give it to another optimizer, \
             as MuonWithAdamW does)",
            p.name(),
            p.shape()
        )
    })
}

impl Optimizer for Muon {
    /// # Panics
    /// On a parameter with a gradient that is not a matrix (see [`Optimizer::check_params`]).
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        if let Some(message) = params.iter().filter(|p| grads.get(p).is_some()).find_map(|p| refusal(p)) {
            panic!("{message}");
        }
        let c = self.config;
        let scratch = &mut self.scratch;
        self.core.for_each_shaped(
            params,
            grads,
            |p| ParamState::zeros(p.shape(), 1),
            |theta, grad, shape, state, h| {
                let &[rows, cols] = shape else { unreachable!("checked above") };
                // torch computes 1 - mu in Python floats and casts the weight once.
                let (to_grad, mu) = ((1.0 - c.momentum as f64) as f32, c.momentum);
                let buf = state.buffers[0].data_mut();
                scratch.x.resize(theta.len(), 0.0);
                for ((b, &g), x) in buf.iter_mut().zip(grad).zip(scratch.x.iter_mut()) {
                    *b = lerp(*b, g, to_grad);
                    *x = if c.nesterov { lerp(g, *b, mu) } else { *b };
                }
                newton_schulz(scratch, rows, cols, &c);
                let lr = h.lr as f64;
                let factor = (1.0 - lr * h.weight_decay as f64) as f32;
                let step = -c.adjust_lr_fn.apply(lr, rows, cols) as f32;
                for (t, &o) in theta.iter_mut().zip(&scratch.x) {
                    *t = *t * factor + step * o;
                }
            },
        );
    }

    fn check_params(&self, params: &[&Param]) -> Result<(), String> {
        params.iter().find_map(|p| refusal(p)).map_or(Ok(()), Err)
    }

    optimizer_common!();
}

/// Orthogonalises the `[rows, cols]` matrix in `s.x` in place: `ns_steps` iterations of
/// `X <- a X + (b S + c S^2) X` with `S = X X^T`, after dividing `X` by its Frobenius norm.
/// As torch, a tall matrix is transposed so that `S` is the smaller Gram matrix; here the
/// transposes are the GEMM's flags, not copies.
fn newton_schulz(s: &mut Scratch, rows: usize, cols: usize, c: &MuonConfig) {
    let norm = sum_sq(&s.x).sqrt() as f32;
    let norm = norm.max(c.eps);
    s.x.iter_mut().for_each(|v| *v /= norm);
    let (a, b, c2) = c.ns_coefficients;
    let tall = rows > cols;
    // The side of the Gram matrix S: torch's X is [small, large].
    let small = rows.min(cols);
    s.next.resize(s.x.len(), 0.0);
    s.gram.resize(small * small, 0.0);
    s.gram_sq.resize(small * small, 0.0);
    for _ in 0..c.ns_steps {
        // S = X X^T of torch's X; stored [rows, cols] that is Y^T Y when tall (X = Y^T).
        if tall {
            matmul(&s.x, &s.x, &mut s.gram, cols, rows, cols, true, false, false);
        } else {
            matmul(&s.x, &s.x, &mut s.gram, rows, cols, rows, false, true, false);
        }
        matmul(&s.gram, &s.gram, &mut s.gram_sq, small, small, small, false, false, false);
        // torch.addmm(S, S, S, beta=b, alpha=c): b S + c S^2, kept in gram_sq.
        for (q, &g) in s.gram_sq.iter_mut().zip(&s.gram) {
            *q = b * g + c2 * *q;
        }
        // (b S + c S^2) X, or for the stored Y = X^T, Y (b S + c S^2)^T.
        if tall {
            matmul(&s.x, &s.gram_sq, &mut s.next, rows, cols, cols, false, true, false);
        } else {
            matmul(&s.gram_sq, &s.x, &mut s.next, rows, rows, cols, false, false, false);
        }
        // torch.addmm(X, P, X, beta=a): a X + P X.
        for (x, &n) in s.x.iter_mut().zip(&s.next) {
            *x = a * *x + n;
        }
    }
}

/// `muon` by name: [`Muon`] for the matrices and [`AdamW`] for every other parameter (biases,
/// norm scales), the pairing torch's documentation prescribes and Muon's users run (Keller
/// Jordan's `MuonWithAuxAdam`, Moonshot's Moonlight). The AdamW part has
/// `torch.optim.AdamW`'s defaults and Muon's learning rate, and follows it through
/// [`Optimizer::set_lr`] (schedules): `--lr` sets both, every other option is Muon's. With
/// `--adjust-lr-fn match_rms_adamw` that is Moonshot's recipe, one learning rate for both.
///
/// Muon's users also give embeddings and the output layer (matrices, but not hidden ones)
/// to AdamW, and exempt biases and norms from weight decay. Both are a [`Selector`] and a
/// [`ParamGroup`](crate::ParamGroup) away, by hand:
///
/// ```
/// use adamant_optim::{AdamW, AdamWConfig, Muon, MuonConfig, MuonWithAdamW, Optimizer, ParamGroup, Selector, Split};
///
/// // Muon for the hidden matrices at lr 0.02; AdamW at lr 0.002 for the embedding "wte.",
/// // the head "lm_head." and every vector, without decay on the vectors.
/// let hidden = Selector::All(vec![
///     Selector::Matrices,
///     Selector::Not(Box::new(Selector::NamePrefix("wte.".into()))),
///     Selector::Not(Box::new(Selector::NamePrefix("lm_head.".into()))),
/// ]);
/// let muon = Muon::new(MuonConfig { lr: 0.02, ..Default::default() });
/// let adamw = AdamW::new(AdamWConfig { lr: 0.002, ..Default::default() });
/// let mut split: MuonWithAdamW = Split::new("muon", hidden, muon, adamw);
/// split.add_param_group(ParamGroup::no_decay_for_biases());
/// split.set_lr(0.01); // a schedule: AdamW follows at a tenth
/// assert_eq!((split.lr(), split.rest().lr()), (0.01, 0.001));
/// ```
pub type MuonWithAdamW = Split<Muon, AdamW>;

impl FromOptions for MuonWithAdamW {
    const NAME: &'static str = "muon";

    fn from_options(o: &OptionReader<'_>) -> Result<MuonWithAdamW, OptionsError> {
        let config = MuonConfig::from_options(o)?;
        let adamw = AdamW::new(AdamWConfig { lr: config.lr, ..Default::default() });
        Ok(Split::new("muon", Selector::Matrices, Muon::new(config), adamw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::testing::randn;

    /// The singular values after the iteration: the eigenvalues' square roots of `O^T O`,
    /// here through its trace and Frobenius norm for a 2-column matrix (both singular values
    /// in closed form).
    fn singular_values_2col(o: &[f32], rows: usize) -> (f64, f64) {
        let (mut p, mut q, mut r) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..rows {
            let (x, y) = (o[2 * i] as f64, o[2 * i + 1] as f64);
            p += x * x;
            q += x * y;
            r += y * y;
        }
        let (mean, diff) = ((p + r) / 2.0, (((p - r) / 2.0).powi(2) + q * q).sqrt());
        ((mean + diff).sqrt(), (mean - diff).max(0.0).sqrt())
    }

    /// Five steps bring every singular value into the quintic's band around 1, whatever the
    /// input's scale and orientation, and a wide matrix gives the transpose of its tall
    /// transpose's result (the GEMM's transpose flags follow torch's explicit transpose).
    #[test]
    fn newton_schulz_orthogonalises_and_respects_orientation() {
        let (rows, cols) = (7, 2);
        let g: Vec<f32> = randn(rows * cols, 3).iter().map(|x| 50.0 * x).collect();
        let mut tall = Scratch { x: g.clone(), ..Default::default() };
        newton_schulz(&mut tall, rows, cols, &MuonConfig::default());
        let (s1, s2) = singular_values_2col(&tall.x, rows);
        assert!((0.6..1.3).contains(&s1) && (0.6..1.3).contains(&s2), "singular values {s1} {s2}");

        let transposed: Vec<f32> = (0..cols * rows).map(|k| g[(k % rows) * cols + k / rows]).collect();
        let mut wide = Scratch { x: transposed, ..Default::default() };
        newton_schulz(&mut wide, cols, rows, &MuonConfig::default());
        for i in 0..rows {
            for j in 0..cols {
                let (t, w) = (tall.x[i * cols + j], wide.x[j * rows + i]);
                assert!((t - w).abs() < 1e-5, "[{i}, {j}]: {t} vs {w}");
            }
        }
    }

    #[test]
    fn adjust_lr_is_torchs() {
        assert_eq!(AdjustLr::Original.apply(0.1, 4, 1), 0.2);
        assert_eq!(AdjustLr::Original.apply(0.1, 1, 4), 0.1);
        assert!((AdjustLr::MatchRmsAdamW.apply(1.0, 16, 9) - 0.8).abs() < 1e-15);
        assert_eq!(AdjustLr::SpectralUnclamped.apply(1.0, 1, 4), 0.5);
    }
}
