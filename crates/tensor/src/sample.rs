//! Drawing ids from categorical distributions: [`multinomial`] on rows of probabilities
//! (`torch.multinomial`) and [`categorical`] on rows of logits with a temperature and top-k
//! (how language models are sampled, as nanoGPT's `generate`), and [`generate`], the loop that
//! samples a text token by token from a model.
//!
//! Every draw comes from a caller's seeded generator ([`crate::rng`]), so a seed gives the
//! same samples on every platform. The arithmetic is in `f64`: a row's cumulative sum is
//! compared with one uniform `u * total`, so no probability is lost to rounding even for a
//! vocabulary of many thousands of ids. Rows need not be normalised.
//!
//! ```
//! use adamant_tensor::rng::seeded;
//! use adamant_tensor::sample::{categorical, multinomial};
//! use adamant_tensor::Tensor;
//!
//! let mut rng = seeded(0);
//! let probs = Tensor::from_vec(vec![0.0, 0.2, 0.8, 1.0, 0.0, 0.0], &[2, 3]);
//! let ids = multinomial(&probs, 4, true, &mut rng);
//! assert_eq!(ids.shape(), &[2, 4]);
//! assert!(ids.data()[4..].iter().all(|&i| i == 0)); // row 1 can only draw id 0
//!
//! let logits = Tensor::from_vec(vec![1.0, 3.0, 2.0], &[1, 3]);
//! assert_eq!(categorical(&logits, 0.0, None, &mut rng).data(), &[1]); // temperature 0: argmax
//! let id = categorical(&logits, 1.0, Some(2), &mut rng).data()[0];
//! assert!(id == 1 || id == 2); // top-2: never id 0
//! ```

use rand::Rng as _;

use crate::rng::Rng;
use crate::{Ids, Tensor};

/// The rows of a 1-d `[K]` or 2-d `[B, K]` tensor, as `(B, K)` (`B = 1` for 1-d).
fn rows(op: &str, t: &Tensor) -> (usize, usize) {
    match *t.shape() {
        [k] if k > 0 => (1, k),
        [b, k] if k > 0 => (b, k),
        _ => panic!("{op}: expected a non-empty 1-d [K] or 2-d [B, K] tensor, got shape {:?}", t.shape()),
    }
}

/// One index drawn with probability `weights[i] / sum(weights)`. `total` is that sum (> 0).
fn draw(weights: &[f64], total: f64, rng: &mut Rng) -> usize {
    let u = rng.random::<f64>() * total;
    let mut acc = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return i;
        }
    }
    // `u < total` always, but the running sum may round just below it: the last positive
    // weight is the one `u` fell into.
    weights.iter().rposition(|&w| w > 0.0).expect("a row with a positive total has a positive weight")
}

/// `num_samples` ids per row of `probs`, row `b` drawing id `i` with probability
/// `probs[b, i] / sum(probs[b])`: `torch.multinomial(probs, num_samples, replacement)`.
///
/// `probs` is `[K]` (the result is `[num_samples]`) or `[B, K]` (the result is
/// `[B, num_samples]`); its rows are non-negative weights, not necessarily normalised. Without
/// replacement an id is drawn at most once per row (each draw is from the weights not drawn
/// yet), so a row needs at least `num_samples` positive weights.
///
/// # Panics
/// If `probs` is not 1-d or 2-d, a weight is negative or not finite, a row sums to 0,
/// `num_samples` is 0, or (without replacement) a row has fewer than `num_samples` positive
/// weights; as PyTorch raises.
pub fn multinomial(probs: &Tensor, num_samples: usize, replacement: bool, rng: &mut Rng) -> Ids {
    let (b, k) = rows("multinomial", probs);
    assert!(num_samples > 0, "multinomial: num_samples must be positive");
    let mut out = Vec::with_capacity(b * num_samples);
    let mut weights = vec![0.0f64; k];
    for (row, p) in probs.data().chunks(k).enumerate() {
        for (w, &x) in weights.iter_mut().zip(p) {
            assert!(
                x.is_finite() && x >= 0.0,
                "multinomial: probabilities must be finite and >= 0, got {x} in row {row} of shape {:?}",
                probs.shape()
            );
            *w = x as f64;
        }
        let positive = weights.iter().filter(|&&w| w > 0.0).count();
        assert!(positive > 0, "multinomial: row {row} of shape {:?} sums to 0", probs.shape());
        assert!(
            replacement || num_samples <= positive,
            "multinomial: cannot draw {num_samples} samples without replacement from row {row} with {positive} positive probabilities (shape {:?})",
            probs.shape()
        );
        let mut total: f64 = weights.iter().sum();
        for _ in 0..num_samples {
            let id = draw(&weights, total, rng);
            out.push(id);
            if !replacement {
                weights[id] = 0.0;
                // Summed again rather than decremented, so rounding cannot accumulate.
                total = weights.iter().sum();
            }
        }
    }
    let shape: Vec<usize> = if probs.shape().len() == 1 { vec![num_samples] } else { vec![b, num_samples] };
    Ids::from_vec(out, &shape)
}

/// One id drawn from `softmax(logits / temperature)` restricted to the `top_k` largest logits:
/// the sampling step of a language model, for one row of logits.
///
/// * `temperature` scales the logits: 1 samples the model's distribution, below 1 sharpens
///   it, and 0 is its limit, the argmax (the first maximum, as `torch.argmax`).
/// * `top_k = Some(k)` keeps the logits at least as large as the `k`-th largest and sets the
///   others to `-inf`, as nanoGPT's `generate` does (`logits[logits < v[:, [-1]]] = -inf`);
///   ties with the `k`-th largest are kept.
///
/// # Panics
/// If `logits` is empty, holds a NaN or only `-inf`, `temperature` is negative or not finite, or `top_k`
/// is `Some(0)` or more than `logits.len()` (as `torch.topk`).
pub fn categorical_row(logits: &[f32], temperature: f32, top_k: Option<usize>, rng: &mut Rng) -> usize {
    let k = logits.len();
    assert!(k > 0, "categorical: empty row of logits");
    assert!(
        temperature.is_finite() && temperature >= 0.0,
        "categorical: temperature must be finite and >= 0, got {temperature}"
    );
    assert!(logits.iter().all(|x| !x.is_nan()), "categorical: NaN in logits of length {k}");
    let threshold = match top_k {
        None => f32::NEG_INFINITY,
        Some(top) => {
            assert!(
                (1..=k).contains(&top),
                "categorical: top_k must be in 1..={k} for {k} logits, got {top}"
            );
            let mut sorted = logits.to_vec();
            sorted.sort_unstable_by(|a, b| b.total_cmp(a));
            sorted[top - 1]
        }
    };
    let mut max = f32::NEG_INFINITY;
    let mut argmax = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > max {
            (max, argmax) = (x, i);
        }
    }
    assert!(max > f32::NEG_INFINITY, "categorical: every logit is -inf (length {k})");
    if temperature == 0.0 || max == f32::INFINITY {
        // The limit of temperature -> 0; and a +inf logit takes all the mass, as in softmax.
        return argmax;
    }
    let t = temperature as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&x| if x >= threshold { ((x as f64 - max as f64) / t).exp() } else { 0.0 })
        .collect();
    // The maximum is kept by top-k and has weight exp(0) = 1, so the total is at least 1.
    let total = weights.iter().sum();
    draw(&weights, total, rng)
}

/// One id per row of `logits` (`[K]` or `[B, K]`), each drawn by [`categorical_row`] with
/// `temperature` and `top_k`: `torch.multinomial(softmax(logits / temperature), 1)` after
/// nanoGPT's top-k filter. The result is `[1]` for 1-d logits and `[B]` for 2-d.
///
/// # Panics
/// As [`categorical_row`], and if `logits` is not 1-d or 2-d.
pub fn categorical(logits: &Tensor, temperature: f32, top_k: Option<usize>, rng: &mut Rng) -> Ids {
    let (b, k) = rows("categorical", logits);
    let ids = logits.data().chunks(k).map(|row| categorical_row(row, temperature, top_k, rng)).collect();
    Ids::from_vec(ids, &[b])
}

/// How [`generate`] draws each token: a temperature and an optional top-k filter, as
/// [`categorical_row`] takes them, and where it stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Generation {
    /// At most this many new tokens.
    pub max_new: usize,
    /// The model sees at most the last `window` tokens of the text so far (its context
    /// length): a fixed-context model (makemore's MLP) takes exactly its context, a
    /// Transformer its `block` size, cropped as nanoGPT's `generate` does.
    pub window: usize,
    /// Generation stops when this token is drawn (makemore's `'.'`); it is not returned.
    pub stop: Option<usize>,
    /// Softmax temperature of each draw (1 samples the model; 0 takes the argmax).
    pub temperature: f32,
    /// Keep only the `k` largest logits of each draw.
    pub top_k: Option<usize>,
}

/// Autoregressive sampling, the loop of nanoGPT's and makemore's `generate`: starting from
/// `prompt`, repeatedly asks `next_logits` for the logits of the next token given the last
/// `window` tokens, draws one id with [`categorical_row`] and appends it, until
/// `generation.max_new` ids are drawn or `generation.stop` is. Returns the new ids only.
///
/// A `top_k` larger than the vocabulary is taken as the whole vocabulary (as nanoGPT's
/// `min(top_k, logits.size(-1))`).
///
/// ```
/// use adamant_tensor::rng::seeded;
/// use adamant_tensor::sample::{generate, Generation};
///
/// // A "model" that always puts its mass on (last id + 1) mod 4, and stops at 0.
/// let next = |context: &[usize]| {
///     let mut logits = vec![-30.0f32; 4];
///     logits[(context[context.len() - 1] + 1) % 4] = 30.0;
///     logits
/// };
/// let how = Generation { max_new: 10, window: 2, stop: Some(0), temperature: 1.0, top_k: None };
/// assert_eq!(generate(&[1], how, next, &mut seeded(0)), vec![2, 3]);
/// ```
///
/// # Panics
/// If `prompt` is empty or `window` is 0 (there would be no context to condition on), and as
/// [`categorical_row`] for bad logits or settings.
pub fn generate(
    prompt: &[usize],
    generation: Generation,
    mut next_logits: impl FnMut(&[usize]) -> Vec<f32>,
    rng: &mut Rng,
) -> Vec<usize> {
    assert!(!prompt.is_empty(), "generate: the prompt must hold at least one token");
    assert!(generation.window > 0, "generate: the window must be at least one token");
    let mut text = prompt.to_vec();
    let mut out = Vec::new();
    while out.len() < generation.max_new {
        let context = &text[text.len().saturating_sub(generation.window)..];
        let logits = next_logits(context);
        let top_k = generation.top_k.map(|k| k.min(logits.len()));
        let id = categorical_row(&logits, generation.temperature, top_k, rng);
        if generation.stop == Some(id) {
            break;
        }
        text.push(id);
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    /// Checks that the frequencies of `draws` ids match `p` within 5 standard errors
    /// (`sqrt(p (1 - p) / n)`, plus a tiny floor for p = 0, which must never be drawn).
    fn assert_frequencies(counts: &[usize], p: &[f64]) {
        let n: usize = counts.iter().sum();
        for (i, (&c, &pi)) in counts.iter().zip(p).enumerate() {
            let freq = c as f64 / n as f64;
            if pi == 0.0 {
                assert_eq!(c, 0, "id {i} has probability 0 but was drawn {c} times");
                continue;
            }
            let se = (pi * (1.0 - pi) / n as f64).sqrt();
            assert!((freq - pi).abs() <= 5.0 * se, "id {i}: frequency {freq} vs probability {pi} (se {se})");
        }
    }

    fn softmax(logits: &[f32], temperature: f64) -> Vec<f64> {
        let m = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let e: Vec<f64> = logits.iter().map(|&x| ((x as f64 - m) / temperature).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }

    const N: usize = 100_000;

    #[test]
    fn multinomial_frequencies_match_the_probabilities() {
        let w = [0.1f32, 0.0, 0.3, 0.05, 0.55];
        let probs = Tensor::from_vec(w.to_vec(), &[5]);
        let ids = multinomial(&probs, N, true, &mut seeded(1));
        assert_eq!(ids.shape(), &[N]);
        let mut counts = [0usize; 5];
        ids.data().iter().for_each(|&i| counts[i] += 1);
        assert_frequencies(&counts, &w.map(|x| x as f64));
    }

    #[test]
    fn multinomial_takes_unnormalised_rows() {
        // Row 1 is row 0 times 7: the same distribution.
        let probs = Tensor::from_vec(vec![1.0, 2.0, 1.0, 7.0, 14.0, 7.0], &[2, 3]);
        let ids = multinomial(&probs, N / 2, true, &mut seeded(2));
        assert_eq!(ids.shape(), &[2, N / 2]);
        for row in ids.data().chunks(N / 2) {
            let mut counts = [0usize; 3];
            row.iter().for_each(|&i| counts[i] += 1);
            assert_frequencies(&counts, &[0.25, 0.5, 0.25]);
        }
    }

    #[test]
    fn multinomial_without_replacement_draws_distinct_ids_in_weighted_order() {
        let probs = Tensor::from_vec(vec![0.5, 0.3, 0.0, 0.2], &[4]);
        let mut first = [0usize; 4];
        let mut rng = seeded(3);
        for _ in 0..N / 10 {
            let ids = multinomial(&probs, 3, false, &mut rng);
            let mut seen = ids.data().to_vec();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 3], "the three positive ids, each once");
            first[ids.data()[0]] += 1;
        }
        // The first draw is from the full distribution.
        assert_frequencies(&first, &[0.5, 0.3, 0.0, 0.2]);
    }

    #[test]
    #[should_panic(
        expected = "multinomial: cannot draw 3 samples without replacement from row 0 with 2 positive probabilities"
    )]
    fn multinomial_without_replacement_needs_enough_positive_weights() {
        multinomial(&Tensor::from_vec(vec![0.5, 0.0, 0.5], &[3]), 3, false, &mut seeded(0));
    }

    #[test]
    #[should_panic(
        expected = "multinomial: probabilities must be finite and >= 0, got -0.1 in row 1 of shape [2, 2]"
    )]
    fn multinomial_rejects_negative_weights() {
        multinomial(&Tensor::from_vec(vec![0.5, 0.5, -0.1, 1.0], &[2, 2]), 1, true, &mut seeded(0));
    }

    #[test]
    #[should_panic(expected = "multinomial: row 0 of shape [2] sums to 0")]
    fn multinomial_rejects_zero_rows() {
        multinomial(&Tensor::from_vec(vec![0.0, 0.0], &[2]), 1, true, &mut seeded(0));
    }

    #[test]
    fn categorical_frequencies_match_softmax_at_each_temperature() {
        let logits = [0.5f32, -1.0, 2.0, 0.0, 1.2];
        for temperature in [1.0f32, 0.5, 2.0] {
            let mut rng = seeded(4);
            let mut counts = [0usize; 5];
            for _ in 0..N {
                counts[categorical_row(&logits, temperature, None, &mut rng)] += 1;
            }
            assert_frequencies(&counts, &softmax(&logits, temperature as f64));
        }
    }

    #[test]
    fn top_k_never_draws_outside_the_top_k_and_renormalises_within() {
        let logits = [0.5f32, -1.0, 2.0, 0.0, 1.2, 1.1];
        let mut rng = seeded(5);
        let mut counts = [0usize; 6];
        for _ in 0..N {
            counts[categorical_row(&logits, 1.0, Some(3), &mut rng)] += 1;
        }
        // The top 3 are ids 2, 4, 5: the others never, and those in softmax proportions.
        let top = softmax(&[2.0, 1.2, 1.1], 1.0);
        assert_frequencies(&counts, &[0.0, 0.0, top[0], 0.0, top[1], top[2]]);
        // top_k = 1 is the argmax whatever the temperature.
        assert!((0..1000).all(|_| categorical_row(&logits, 5.0, Some(1), &mut rng) == 2));
        // Ties with the k-th largest are kept, as nanoGPT's filter does.
        let tied = [1.0f32, 3.0, 1.0, 0.0];
        let mut seen = [false; 4];
        (0..1000).for_each(|_| seen[categorical_row(&tied, 1.0, Some(2), &mut rng)] = true);
        assert_eq!(seen, [true, true, true, false]);
    }

    #[test]
    fn temperature_to_zero_is_argmax() {
        let logits = [0.5f32, 2.0, -1.0, 2.0, 1.9];
        let mut rng = seeded(6);
        // Exactly 0: the first maximum, as torch.argmax.
        assert!((0..100).all(|_| categorical_row(&logits, 0.0, None, &mut rng) == 1));
        // Nearly 0: only the maxima (ids 1 and 3) remain, 1.9 is exp(-100) times less likely.
        let mut counts = [0usize; 5];
        for _ in 0..N {
            counts[categorical_row(&logits, 1e-3, None, &mut rng)] += 1;
        }
        assert_frequencies(&counts, &[0.0, 0.5, 0.0, 0.5, 0.0]);
    }

    #[test]
    fn categorical_draws_one_id_per_row_and_is_seeded() {
        let logits = Tensor::from_vec(vec![0.0, 100.0, 0.0, 100.0, 0.0, 0.0], &[2, 3]);
        assert_eq!(categorical(&logits, 1.0, None, &mut seeded(0)).data(), &[1, 0]);
        let wide = Tensor::from_vec((0..64).map(|i| (i % 7) as f32 * 0.1).collect(), &[4, 16]);
        let a = categorical(&wide, 1.0, Some(5), &mut seeded(9));
        assert_eq!(a.shape(), &[4]);
        assert_eq!(a, categorical(&wide, 1.0, Some(5), &mut seeded(9)));
        // A -inf logit is never drawn; a +inf one always is.
        let inf = [f32::NEG_INFINITY, 0.0, 0.0];
        let mut rng = seeded(1);
        assert!((0..1000).all(|_| categorical_row(&inf, 1.0, None, &mut rng) != 0));
        assert_eq!(categorical_row(&[0.0, f32::INFINITY, 1.0], 1.0, None, &mut rng), 1);
    }

    #[test]
    #[should_panic(expected = "categorical: top_k must be in 1..=3 for 3 logits, got 4")]
    fn top_k_beyond_the_row_panics() {
        categorical_row(&[0.0, 1.0, 2.0], 1.0, Some(4), &mut seeded(0));
    }

    #[test]
    #[should_panic(expected = "categorical: temperature must be finite and >= 0, got -1")]
    fn negative_temperature_panics() {
        categorical_row(&[0.0, 1.0], -1.0, None, &mut seeded(0));
    }

    #[test]
    #[should_panic(
        expected = "categorical: expected a non-empty 1-d [K] or 2-d [B, K] tensor, got shape [1, 2, 3]"
    )]
    fn categorical_rejects_3d_logits() {
        categorical(&Tensor::zeros(&[1, 2, 3]), 1.0, None, &mut seeded(0));
    }

    #[test]
    fn generate_crops_the_context_to_the_window_and_stops_at_max_new() {
        let mut contexts: Vec<Vec<usize>> = Vec::new();
        let how = Generation { max_new: 4, window: 3, stop: None, temperature: 0.0, top_k: None };
        // Argmax of logits that favour (sum of the context) mod 5.
        let out = generate(
            &[1, 2],
            how,
            |c| {
                contexts.push(c.to_vec());
                let mut logits = vec![0.0f32; 5];
                logits[c.iter().sum::<usize>() % 5] = 1.0;
                logits
            },
            &mut seeded(0),
        );
        // 1+2=3 -> 3; 1+2+3=6 -> 1; 2+3+1=6 -> 1; 3+1+1=5 -> 0.
        assert_eq!(out, vec![3, 1, 1, 0]);
        assert_eq!(contexts, vec![vec![1, 2], vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 1]]);
    }

    #[test]
    fn generate_is_a_function_of_the_generator_and_clamps_top_k() {
        let uniform = |_: &[usize]| vec![0.0f32; 6];
        let how = Generation { max_new: 50, window: 8, stop: Some(5), temperature: 1.0, top_k: Some(100) };
        let a = generate(&[0], how, uniform, &mut seeded(3));
        let b = generate(&[0], how, uniform, &mut seeded(3));
        assert_eq!(a, b);
        assert!(a.len() < 50 && a.iter().all(|&i| i < 5), "{a:?}: stops at the first 5, never returns it");
    }

    #[test]
    #[should_panic(expected = "generate: the prompt must hold at least one token")]
    fn generate_needs_a_prompt() {
        generate(
            &[],
            Generation { max_new: 1, window: 1, stop: None, temperature: 1.0, top_k: None },
            |_| vec![0.0],
            &mut seeded(0),
        );
    }
}
