//! Row lookup (an embedding) and its adjoint, the scatter-add of rows.
//!
//! `table` is `[V, D]` stored row-major (`D` the length of one row, whatever the table's
//! rank), `ids` index its rows. The ids must already be checked against `V` by the caller
//! (the autodiff op panics with the op's name); here an out-of-range id hits a slice bound
//! check.

/// `out[k, :] = table[ids[k], :]` for every k; `out` is `[ids.len(), d]`.
pub fn embedding_forward(table: &[f32], d: usize, ids: &[usize], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        ids.len() * d,
        "embedding_forward: out has {} values, want {}",
        out.len(),
        ids.len() * d
    );
    for (k, &i) in ids.iter().enumerate() {
        out[k * d..(k + 1) * d].copy_from_slice(&table[i * d..(i + 1) * d]);
    }
}

/// `dtable[ids[k], :] += dy[k, :]` for every k, in order: a row that appears several times
/// gets the sum of its gradients (the adjoint of the lookup). Serial, so that repeated ids
/// always add in the same order and the result is bit-reproducible.
pub fn embedding_backward(dy: &[f32], d: usize, ids: &[usize], dtable: &mut [f32]) {
    assert_eq!(
        dy.len(),
        ids.len() * d,
        "embedding_backward: dy has {} values, want {}",
        dy.len(),
        ids.len() * d
    );
    for (k, &i) in ids.iter().enumerate() {
        for (t, &g) in dtable[i * d..(i + 1) * d].iter_mut().zip(&dy[k * d..(k + 1) * d]) {
            *t += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_gathers_rows_and_backward_sums_repeats() {
        let table = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]; // [3, 2]
        let ids = [2, 0, 2];
        let mut out = [0.0; 6];
        embedding_forward(&table, 2, &ids, &mut out);
        assert_eq!(out, [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
        let dy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut dt = [0.5; 6];
        embedding_backward(&dy, 2, &ids, &mut dt);
        // Row 2 gets dy rows 0 and 2; row 1 nothing; accumulation keeps the 0.5.
        assert_eq!(dt, [3.5, 4.5, 0.5, 0.5, 6.5, 8.5]);
    }
}
