//! Helpers for tests: seeded random inputs, tolerance and bit-exact comparisons, and the
//! serial-versus-parallel check every kernel's tests run.
//!
//! One copy for the whole workspace. It is a public (hidden) module rather than a
//! `#[cfg(test)]` one so that the same functions serve this crate's unit tests
//! (`crate::testing`), its integration tests and the tests of other crates
//! (`adamant_tensor::testing`) without a cargo feature: a feature enabled only by
//! dev-dependencies would build this crate, and everything above it, twice (once with it for
//! `cargo test`, once without for `cargo build`). A separate test-support crate would not do
//! either: this crate's own unit tests would then link a second copy of `adamant-tensor`,
//! whose thread-local parallel mode the kernels under test never read.
//! These functions panic on failure, like `assert!`; they are not part of the library's API.

use std::fmt::Debug;

use crate::kernels::parallel::{with_mode, Mode};
use crate::rng::seeded;
use crate::Tensor;

/// `n` draws from N(`mean`, `std`^2), seeded: [`Tensor::randn`] flattened.
pub fn normal(n: usize, mean: f32, std: f32, seed: u64) -> Vec<f32> {
    Tensor::randn(&[n], mean, std, &mut seeded(seed)).into_vec()
}

/// `n` standard normal draws, seeded: `normal(n, 0.0, 1.0, seed)`.
pub fn randn(n: usize, seed: u64) -> Vec<f32> {
    normal(n, 0.0, 1.0, seed)
}

/// The bit patterns of `v`: compares exactly, NaNs and signed zeros included.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts that `a` and `b` are the same bits, naming `what` and the first differing element.
pub fn assert_bits_eq(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i}: {x} vs {y}");
    }
}

/// Whether `a` is within `tol` of `b`, relative to `1 + |b|` (absolute near zero).
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

/// Asserts [`close`] for every element of `got` against the reference `want`.
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(close(g as f64, w, tol), "{what}: element {i}: got {g}, want {w}");
    }
}

/// Runs `f` forced serial and forced parallel, asserts equal results and returns them.
///
/// For `f32` results return their [`bits`] (or use [`assert_par_eq_serial_bits`]): `==` on
/// floats lets `-0.0` pass for `0.0` and fails on NaN.
pub fn assert_par_eq_serial<T: PartialEq + Debug>(f: impl Fn() -> T) -> T {
    let s = with_mode(Mode::Serial, &f);
    let p = with_mode(Mode::Parallel, &f);
    assert_eq!(s, p, "parallel result differs from serial");
    s
}

/// Runs `f` forced serial and forced parallel, asserts identical bits (naming `what`) and
/// returns the result.
pub fn assert_par_eq_serial_bits(what: &str, f: impl Fn() -> Vec<f32>) -> Vec<f32> {
    let s = with_mode(Mode::Serial, &f);
    let p = with_mode(Mode::Parallel, &f);
    assert_bits_eq(&s, &p, what);
    s
}
