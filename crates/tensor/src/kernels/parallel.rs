//! When and how kernels use rayon.
//!
//! A kernel asks [`should_parallelize`] with the amount of work it is about to do. Work is
//! always cut into the same fixed chunks ([`CHUNK`] elements for elementwise kernels; rows,
//! images or channels for structured ones), and partial results are combined in chunk order,
//! so the answer is the same bit for bit whether the chunks run on one thread or many.
//!
//! Tests use [`with_mode`] to force either path on small inputs and compare them.

use std::cell::Cell;

/// Elements per chunk for elementwise kernels and for the partial sums of full reductions.
pub const CHUNK: usize = 1 << 14;

/// Below this many elements (or multiply-adds) of work, a kernel stays on the calling thread.
pub const THRESHOLD: usize = 1 << 15;

/// How kernels called from the current thread choose between the serial and parallel path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Parallel above [`THRESHOLD`], serial below (the default).
    Auto,
    /// Always serial.
    Serial,
    /// Always parallel, even for tiny inputs (for tests of the parallel path).
    Parallel,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Auto) };
}

/// Runs `f` with kernels called from this thread forced into `mode`, then restores the
/// previous mode (also if `f` panics).
pub fn with_mode<R>(mode: Mode, f: impl FnOnce() -> R) -> R {
    struct Restore(Mode);
    impl Drop for Restore {
        fn drop(&mut self) {
            MODE.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MODE.with(|m| m.replace(mode)));
    f()
}

/// Whether a kernel doing `work` units of work should use rayon.
pub fn should_parallelize(work: usize) -> bool {
    match MODE.with(|m| m.get()) {
        Mode::Auto => work >= THRESHOLD && rayon::current_num_threads() > 1,
        Mode::Serial => false,
        Mode::Parallel => true,
    }
}

/// Runs `f` on one of rayon's worker threads (the current one if it is a worker) and
/// returns its result: wrap a whole training step (or loop) in it.
///
/// A kernel called from outside rayon's pool hands its jobs to the pool and sleeps until
/// they are done: two thread wake-ups per parallel kernel, hundreds per step of a small
/// model (the character-level GPT's step makes about 300 such calls, most of them well under
/// a millisecond). Called from a worker, the kernel keeps working on its own share and the
/// other workers steal the rest. Results are the same either way: the kernels split their
/// work into fixed pieces whatever runs them.
pub fn run_in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Applies `f(chunk_index, out_chunk)` to each [`CHUNK`]-sized piece of `out`, in parallel
/// when the slice is large. Chunk boundaries never depend on the thread count.
pub fn for_each_chunk_mut(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if should_parallelize(out.len()) {
        use rayon::prelude::*;
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Applies `f(index, item)` to every `rows`-item block of `out`, where each block is `width`
/// elements long; parallel across blocks when `work` is large.
pub fn for_each_block_mut(
    out: &mut [f32],
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    if width == 0 {
        return;
    }
    if should_parallelize(work) {
        use rayon::prelude::*;
        out.par_chunks_mut(width).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(width).enumerate().for_each(|(i, c)| f(i, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_mode_restores_previous_mode() {
        with_mode(Mode::Serial, || {
            assert!(!should_parallelize(usize::MAX));
            with_mode(Mode::Parallel, || assert!(should_parallelize(1)));
            assert!(!should_parallelize(usize::MAX));
        });
        assert!(!should_parallelize(1));
    }
}
