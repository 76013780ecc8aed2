//! Histograms as `torch.utils.tensorboard` makes them (`add_histogram(..., bins="tensorflow")`):
//! TensorFlow's fixed buckets, edges at `±1e-12 * 1.1^k` up to 1e20 and one at 0, counted as
//! `numpy.histogram` counts (each bucket `[left, right)`, the last closed, values outside the
//! edges not counted), then trimmed to the buckets between the first and last non-empty ones
//! with one empty bucket before them, since TensorBoard keeps right edges only.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::proto::HistogramProto;

/// The positive bucket edges `1e-12 * 1.1^k` below 1e20, computed as torch computes them (a
/// running product in f64), so that the edges are the same numbers to the bit.
fn positive_edges() -> &'static [f64] {
    static EDGES: OnceLock<Vec<f64>> = OnceLock::new();
    EDGES.get_or_init(|| {
        let mut edges = Vec::new();
        let mut v = 1e-12f64;
        while v < 1e20 {
            edges.push(v);
            v *= 1.1;
        }
        edges
    })
}

/// All the edges in order: the negative ones, 0, the positive ones (`2K + 1` for `K`
/// positive edges, so `2K` buckets).
pub fn bucket_edges() -> Vec<f64> {
    let positive = positive_edges();
    let mut edges: Vec<f64> = positive.iter().rev().map(|e| -e).collect();
    edges.push(0.0);
    edges.extend_from_slice(positive);
    edges
}

/// For each of the 32,768 cells of non-negative f32 values that share their top 16 bits (the
/// exponent and 7 mantissa bits), how many positive edges lie below the cell's smallest value.
/// A cell spans a ratio of at most 1 + 2^-7 < 1.1, so at most one edge falls inside it and one
/// comparison finishes the search.
fn cell_table() -> &'static [u16] {
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let edges = positive_edges();
        (0u32..1 << 15)
            .map(|cell| {
                let low = f32::from_bits(cell << 16) as f64;
                edges.partition_point(|&e| e < low) as u16
            })
            .collect()
    })
}

/// How many positive edges are below `y` (`strict`) or at most `y` (not `strict`), for a
/// finite `y >= 0`.
#[inline]
fn edges_below(y: f32, strict: bool) -> usize {
    edges_below_in(positive_edges(), cell_table(), y, strict)
}

/// [`edges_below`] with the edges and the cell table at hand (a loop fetches them once).
#[inline]
fn edges_below_in(edges: &[f64], table: &[u16], y: f32, strict: bool) -> usize {
    let below = table[(y.to_bits() >> 16) as usize] as usize;
    let y = y as f64;
    match edges.get(below) {
        Some(&e) if e < y || (!strict && e == y) => below + 1,
        _ => below,
    }
}

/// The bucket of `x` among the `2K` buckets of [`bucket_edges`], or `None` if numpy would not
/// count it (outside the edges, or NaN).
#[inline]
fn bucket_of(x: f32) -> Option<usize> {
    let k = positive_edges().len();
    if x.is_nan() {
        return None;
    }
    if x >= 0.0 {
        if x.is_infinite() {
            return None;
        }
        // Edges at most x: the K negative ones, 0, and the positive ones up to x.
        let j = edges_below(x.abs(), false); // abs: -0.0 counts as 0
        match j {
            _ if j < k => Some(k + j),
            // x is the last edge itself: the last bucket is closed.
            _ if x as f64 == positive_edges()[k - 1] => Some(2 * k - 1),
            _ => None,
        }
    } else {
        let y = -x;
        if y.is_infinite() {
            return None;
        }
        // Edges at most x: the negative edges -e with e >= y.
        let at_most = k - edges_below(y, true);
        at_most.checked_sub(1)
    }
}

/// Counts and moments of one piece of the values.
#[derive(Clone)]
struct Partial {
    counts: Vec<u64>,
    min: f64,
    max: f64,
    sum: f64,
    sum_squares: f64,
}

impl Partial {
    fn of(values: &[f32], buckets: usize) -> Partial {
        // Four counters per bucket, one per lane of consecutive values: a run of values in one
        // bucket (the usual case) then increments four addresses in turn instead of waiting
        // on one.
        let mut lanes = vec![[0u32; 4]; buckets];
        let (edges, table) = (positive_edges(), cell_table());
        let k = edges.len();
        for (i, &x) in values.iter().enumerate() {
            let y = x.abs();
            // Finite and below the last edge: the common case, one table lookup and no branch
            // on the sign (random signs would mispredict half the time). NaN, the infinities
            // and values at or beyond the last edge take the general path.
            let bucket = if y < 1e19 {
                // `y < 1e19` puts the cell below the last edge: `edges[below]` exists.
                let below = table[(y.to_bits() >> 16) as usize] as usize;
                let edge = edges[below];
                let (at_most, under) =
                    (below + (edge <= y as f64) as usize, below + (edge < y as f64) as usize);
                // x >= 0 (and -0.0): edges at most x are the negative ones, 0 and `at_most`;
                // x < 0: the negative edges -e with e >= |x|, K - `under` of them.
                let negative = 0usize.wrapping_sub((x < 0.0) as usize);
                let (up, down) = (k + at_most, k - 1 - under);
                Some(up ^ ((up ^ down) & negative))
            } else {
                bucket_of(x)
            };
            if let Some(b) = bucket {
                lanes[b][i & 3] += 1;
            }
        }
        // The moments, in eight lanes the compiler keeps in vector registers.
        let (mut sum, mut squares) = ([0f64; 8], [0f64; 8]);
        let (mut min, mut max) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
        let mut pieces = values.chunks_exact(8);
        for piece in &mut pieces {
            for j in 0..8 {
                let v = piece[j] as f64;
                sum[j] += v;
                squares[j] += v * v;
                min[j] = min[j].min(piece[j]);
                max[j] = max[j].max(piece[j]);
            }
        }
        for (j, &x) in pieces.remainder().iter().enumerate() {
            sum[j] += x as f64;
            squares[j] += x as f64 * x as f64;
            min[j] = min[j].min(x);
            max[j] = max[j].max(x);
        }
        Partial {
            counts: lanes.iter().map(|l| l.iter().map(|&c| c as u64).sum()).collect(),
            min: min.iter().fold(f64::INFINITY, |a, &b| a.min(b as f64)),
            max: max.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64)),
            sum: sum.iter().sum(),
            sum_squares: squares.iter().sum(),
        }
    }

    fn merge(mut self, other: &Partial) -> Partial {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
        self
    }
}

/// Values per piece counted by one task; the pieces are summed in order, so the result does
/// not depend on the number of threads.
const PIECE: usize = 1 << 16;

/// The histogram TensorBoard shows for `values`, as torch's `add_histogram` writes it; `None`
/// when no value can be counted (none given, or all NaN or infinite), where torch raises.
pub fn histogram(values: &[f32]) -> Option<HistogramProto> {
    let buckets = 2 * positive_edges().len();
    let partials: Vec<Partial> = values.par_chunks(PIECE).map(|piece| Partial::of(piece, buckets)).collect();
    let (first, rest) = partials.split_first()?;
    let all = rest.iter().fold(first.clone(), Partial::merge);
    let first_used = all.counts.iter().position(|&c| c > 0)?;
    let last_used = all.counts.iter().rposition(|&c| c > 0)?;
    let edges = bucket_edges();
    // Bucket b spans edges[b]..edges[b + 1]; TensorBoard keeps right edges, so the bucket
    // before the first used one (or a zero-count one at the start) carries the left edge.
    let (bucket_limit, bucket) = if first_used > 0 {
        (
            edges[first_used..=last_used + 1].to_vec(),
            all.counts[first_used - 1..=last_used].iter().map(|&c| c as f64).collect(),
        )
    } else {
        let mut counts = vec![0.0];
        counts.extend(all.counts[..=last_used].iter().map(|&c| c as f64));
        (edges[..=last_used + 1].to_vec(), counts)
    };
    Some(HistogramProto {
        min: all.min,
        max: all.max,
        num: values.len() as f64,
        sum: all.sum,
        sum_squares: all.sum_squares,
        bucket_limit,
        bucket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket by binary search over every edge, as `numpy.histogram` finds it.
    fn bucket_by_search(x: f32) -> Option<usize> {
        let edges = bucket_edges();
        let x = x as f64;
        if x.is_nan() || x < edges[0] || x > *edges.last().unwrap() {
            return None;
        }
        let at_most = edges.partition_point(|&e| e <= x);
        Some((at_most - 1).min(edges.len() - 2))
    }

    #[test]
    fn the_fast_bucket_is_numpys_for_edges_their_neighbours_and_random_values() {
        let mut probes = vec![0.0f32, -0.0, 1e-45, -1e-45, f32::MAX, f32::MIN, 1e20, -1e20, 3e20];
        for &e in &bucket_edges() {
            let f = e as f32;
            probes.extend([
                f,
                f32::from_bits(f.to_bits() + 1),
                f32::from_bits(f.to_bits().saturating_sub(1)),
            ]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            probes.push(f32::from_bits((state >> 32) as u32));
        }
        for &x in &probes {
            assert_eq!(bucket_of(x), bucket_by_search(x), "x = {x:e} ({:#x})", x.to_bits());
        }
        // The counting loop's own branch-free path gives the same counts.
        let buckets = 2 * positive_edges().len();
        let mut expected = vec![0u64; buckets];
        for &x in &probes {
            if let Some(b) = bucket_by_search(x) {
                expected[b] += 1;
            }
        }
        assert_eq!(Partial::of(&probes, buckets).counts, expected);
    }

    #[test]
    fn the_edges_are_torchs() {
        let edges = bucket_edges();
        // torch: 774 positive edges (1e-12 ... 9.9e19), mirrored, and 0.
        assert_eq!(edges.len(), 2 * 774 + 1);
        assert_eq!(edges[774], 0.0);
        assert_eq!(edges[775], 1e-12);
        assert_eq!(edges[776], 1e-12 * 1.1);
    }

    #[test]
    fn a_histogram_is_trimmed_as_torch_trims_it() {
        // 0.5 twice, 2.0 once: numpy puts 0.5 in [0.4947..., 0.5441...) and 2 in its bucket.
        let h = histogram(&[0.5, 2.0, 0.5]).unwrap();
        let edges = bucket_edges();
        let b05 = bucket_by_search(0.5).unwrap();
        let b2 = bucket_by_search(2.0).unwrap();
        assert_eq!(h.bucket_limit, edges[b05..=b2 + 1].to_vec());
        let mut counts = vec![0.0; b2 - b05 + 2];
        counts[1] = 2.0;
        *counts.last_mut().unwrap() = 1.0;
        assert_eq!(h.bucket, counts);
        assert_eq!((h.min, h.max, h.num, h.sum, h.sum_squares), (0.5, 2.0, 3.0, 3.0, 4.5));
        // A value in the first bucket gets a zero-count bucket before it.
        let h = histogram(&[-9.5e19]).unwrap();
        assert_eq!(h.bucket, vec![0.0, 1.0]);
        assert_eq!(h.bucket_limit, edges[..2].to_vec());
        assert!(histogram(&[]).is_none());
        assert!(histogram(&[f32::NAN, f32::INFINITY, f32::MIN]).is_none());
    }

    #[test]
    fn pieces_do_not_change_the_result() {
        let values: Vec<f32> = (0..3 * PIECE + 17).map(|i| ((i as f32) * 0.37).sin() * 1e-3).collect();
        let whole = Partial::of(&values, 2 * positive_edges().len());
        let h = histogram(&values).unwrap();
        assert_eq!(h.bucket.iter().sum::<f64>(), values.len() as f64);
        assert_eq!(h.min, whole.min);
        assert_eq!(h.max, whole.max);
        let rel = (h.sum - whole.sum).abs() / whole.sum.abs().max(1e-30);
        assert!(rel < 1e-9, "{} vs {}", h.sum, whole.sum);
    }
}
