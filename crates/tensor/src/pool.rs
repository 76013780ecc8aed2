//! A bounded pool of freed `f32` buffers, so that a training step reuses the previous step's
//! memory whatever allocator the program uses.
//!
//! A step allocates every activation and gradient afresh and frees them all when its tape
//! drops; the next step asks for exactly the same sizes again. glibc's malloc hands blocks
//! of that size back to the OS and takes them again through page faults, every step (about
//! half of the MLP step; BENCHMARKS.md, "System allocator vs mimalloc"). So buffers of at
//! least [`MIN_POOLED_LEN`] elements go back to this pool instead: a tensor's storage when
//! its last user drops ([`Tensor`](crate::Tensor) does this itself), a gradient buffer when
//! backward has passed it on, a kernel's scratch buffer when the kernel is done. The next
//! request of the same length takes the most recently returned one (warm in cache).
//!
//! * **Zeroing.** [`take_zeroed`] zero-fills a reused buffer (a fresh one comes zeroed from
//!   the allocator); [`take_for_overwrite`] does not, for callers that write every element
//!   before reading any (e.g. a kernel documented as overwriting its output). In debug
//!   builds the latter is filled with NaN, so that a caller breaking that promise shows up in
//!   the tests instead of silently reading an earlier step's values.
//! * **Bound.** Of each length, the pool keeps at most as many buffers as were ever in use
//!   at once; it frees the rest, and buffers of a length nobody asked for. So it holds at
//!   most the memory that the busiest moment of each size needed (for a training loop: one
//!   step, plus an evaluation pass or a short last batch if their sizes differ), and memory
//!   stays flat however many steps run. [`release`] frees everything it holds.
//! * **Threads.** One mutex around a map from length to buffers. It is held only to push or
//!   pop a buffer (never while zeroing, copying or freeing), a few hundred times per step,
//!   so contention stays negligible ([`Stats::contended`] counts it).
//! * **Determinism.** Values never depend on the pool: a caller gets zeros, or overwrites
//!   everything it reads.
//!
//! Buffers shorter than [`MIN_POOLED_LEN`] are left to the allocator, which serves small
//! blocks from its own caches without going to the OS.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, TryLockError};

/// Shortest buffer (in elements, 16 KiB of `f32`) that is pooled. Smaller ones cost the
/// allocator little and would only crowd the pool.
pub const MIN_POOLED_LEN: usize = 4096;

/// What the pool holds and has done, from [`stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of the buffers the pool holds for reuse.
    pub held_bytes: usize,
    /// Bytes handed out and not yet returned (an estimate: a returned buffer that the pool
    /// never handed out counts down too, never below zero).
    pub in_use_bytes: usize,
    /// The bound on `held_bytes`: over every length, the most buffers of that length that
    /// were in use at once, times the length, in bytes.
    pub limit_bytes: usize,
    /// Requests served with a pooled buffer.
    pub hits: u64,
    /// Requests of a poolable length that found none and allocated.
    pub misses: u64,
    /// Returned buffers freed because the pool already held enough of their length.
    pub dropped: u64,
    /// Times a thread found the pool's lock taken and had to wait.
    pub contended: u64,
}

/// A pool of `f32` buffers keyed by length; see the module docs. The library uses one
/// process-wide pool through the free functions of this module; a separate instance is for
/// tests and for programs that want their own.
pub struct BufferPool {
    inner: Mutex<Inner>,
}

/// The buffers of one length.
#[derive(Default)]
struct Class {
    /// Pooled buffers; the last one was returned last (warmest in cache).
    free: Vec<Vec<f32>>,
    /// Buffers of this length handed out and not yet returned (saturating at zero).
    out: usize,
    /// The most buffers of this length ever out at once: how many the pool keeps.
    peak_out: usize,
}

struct Inner {
    /// Classes by length (`len == capacity` for every buffer), made by the first request.
    classes: BTreeMap<usize, Class>,
    /// Sum of `len * free.len()` over classes, in elements.
    held: usize,
    /// Sum of `len * out` over classes, in elements.
    in_use: usize,
    /// Sum of `len * peak_out` over classes, in elements: the bound on `held`.
    limit: usize,
    hits: u64,
    misses: u64,
    dropped: u64,
    contended: u64,
}

const F32_BYTES: usize = std::mem::size_of::<f32>();

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool::new()
    }
}

impl BufferPool {
    /// An empty pool.
    pub const fn new() -> BufferPool {
        BufferPool {
            inner: Mutex::new(Inner {
                classes: BTreeMap::new(),
                held: 0,
                in_use: 0,
                limit: 0,
                hits: 0,
                misses: 0,
                dropped: 0,
                contended: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held except allocation failure, which aborts; a
        // poisoned lock still guards consistent counters, so it is used as it is.
        match self.inner.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                guard.contended += 1;
                guard
            }
        }
    }

    /// A pooled buffer of exactly `len` elements, if one is held; counts it as in use.
    fn reuse(&self, len: usize) -> Option<Vec<f32>> {
        if len < MIN_POOLED_LEN {
            return None;
        }
        let mut guard = self.lock();
        let p = &mut *guard;
        let class = p.classes.entry(len).or_default();
        class.out += 1;
        if class.out > class.peak_out {
            class.peak_out = class.out;
            p.limit += len;
        }
        let found = class.free.pop();
        p.in_use += len;
        if found.is_some() {
            p.held -= len;
            p.hits += 1;
        } else {
            p.misses += 1;
        }
        found
    }

    /// A buffer of `len` zeros: a pooled one zero-filled, or a fresh zeroed allocation.
    pub fn take_zeroed(&self, len: usize) -> Vec<f32> {
        match self.reuse(len) {
            Some(mut buf) => {
                buf.fill(0.0);
                buf
            }
            None => vec![0.0; len],
        }
    }

    /// A buffer of `len` elements whose values are unspecified (left over from an earlier
    /// use; NaN in debug builds). The caller must write every element before reading it.
    pub fn take_for_overwrite(&self, len: usize) -> Vec<f32> {
        #[allow(unused_mut)]
        let mut buf = self.reuse(len).unwrap_or_else(|| vec![0.0; len]);
        #[cfg(debug_assertions)]
        buf.fill(f32::NAN);
        buf
    }

    /// Gives a buffer back for reuse (any buffer, not only one from this pool). It is kept
    /// if the pool holds fewer buffers of its length than were ever in use at once, and
    /// freed otherwise; so are short ones, ones of a length never requested, and ones whose
    /// capacity exceeds their length.
    pub fn recycle(&self, buf: Vec<f32>) {
        let len = buf.len();
        if len < MIN_POOLED_LEN || buf.capacity() != len {
            return;
        }
        let refused = {
            let mut guard = self.lock();
            let p = &mut *guard;
            match p.classes.get_mut(&len) {
                Some(class) => {
                    if class.out > 0 {
                        class.out -= 1;
                        p.in_use -= len;
                    }
                    if class.free.len() < class.peak_out {
                        class.free.push(buf);
                        p.held += len;
                        None
                    } else {
                        p.dropped += 1;
                        Some(buf)
                    }
                }
                None => {
                    p.dropped += 1;
                    Some(buf)
                }
            }
        };
        // Freed after the lock is released: giving big blocks back to the OS takes a while.
        drop(refused);
    }

    /// Frees every buffer the pool holds (e.g. after an evaluation pass with unusual
    /// shapes); the per-length bounds are kept.
    pub fn release(&self) {
        let freed: Vec<Vec<Vec<f32>>> = {
            let mut p = self.lock();
            p.held = 0;
            p.classes.values_mut().map(|c| std::mem::take(&mut c.free)).collect()
        };
        drop(freed);
    }

    /// What the pool holds and has done so far.
    pub fn stats(&self) -> Stats {
        let p = self.lock();
        Stats {
            held_bytes: p.held * F32_BYTES,
            in_use_bytes: p.in_use * F32_BYTES,
            limit_bytes: p.limit * F32_BYTES,
            hits: p.hits,
            misses: p.misses,
            dropped: p.dropped,
            contended: p.contended,
        }
    }
}

/// The process-wide pool behind the free functions.
static POOL: BufferPool = BufferPool::new();

/// `len` zeros, reusing a pooled buffer when one of that length is held.
pub fn take_zeroed(len: usize) -> Vec<f32> {
    POOL.take_zeroed(len)
}

/// `len` elements of unspecified value, reusing a pooled buffer when one is held: for
/// callers that write every element before reading any (see
/// [`BufferPool::take_for_overwrite`]).
pub fn take_for_overwrite(len: usize) -> Vec<f32> {
    POOL.take_for_overwrite(len)
}

/// Gives a buffer back to the process-wide pool (see [`BufferPool::recycle`]).
pub fn recycle(buf: Vec<f32>) {
    POOL.recycle(buf)
}

/// Frees every buffer the process-wide pool holds.
pub fn release() {
    POOL.release()
}

/// Statistics of the process-wide pool.
pub fn stats() -> Stats {
    POOL.stats()
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = MIN_POOLED_LEN * 2;

    #[test]
    fn a_returned_buffer_is_reused_for_the_same_length_only() {
        let pool = BufferPool::new();
        let a = pool.take_zeroed(N);
        let ptr = a.as_ptr();
        pool.recycle(a);
        assert_eq!(pool.stats().held_bytes, N * 4);
        // Another length does not get it.
        let other = pool.take_zeroed(N + 1);
        assert_ne!(other.as_ptr(), ptr);
        let b = pool.take_for_overwrite(N);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b.len(), N);
        let s = pool.stats();
        assert_eq!((s.hits, s.misses, s.held_bytes), (1, 2, 0));
    }

    #[test]
    fn take_zeroed_zeroes_a_reused_buffer() {
        let pool = BufferPool::new();
        let mut a = pool.take_zeroed(N);
        a.fill(7.5);
        let ptr = a.as_ptr();
        pool.recycle(a);
        let b = pool.take_zeroed(N);
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.iter().all(|&x| x.to_bits() == 0), "a reused buffer must come back as +0.0");
    }

    #[test]
    #[cfg(debug_assertions)]
    fn take_for_overwrite_poisons_in_debug_builds() {
        let pool = BufferPool::new();
        assert!(pool.take_for_overwrite(N).iter().all(|x| x.is_nan()));
        let mut b = pool.take_zeroed(N);
        b.fill(1.0);
        pool.recycle(b);
        assert!(pool.take_for_overwrite(N).iter().all(|x| x.is_nan()));
    }

    #[test]
    fn short_and_oversized_buffers_are_not_pooled() {
        let pool = BufferPool::new();
        let _big = pool.take_zeroed(N);
        pool.recycle(vec![1.0; MIN_POOLED_LEN - 1]);
        let mut roomy = Vec::with_capacity(N + 8);
        roomy.resize(N, 0.0);
        pool.recycle(roomy);
        assert_eq!(pool.stats().held_bytes, 0);
        assert_eq!(pool.take_zeroed(10), vec![0.0; 10]);
        assert_eq!(pool.stats().misses, 1, "short requests bypass the pool");
    }

    #[test]
    fn each_length_keeps_at_most_its_peak_concurrent_use() {
        let pool = BufferPool::new();
        // Two buffers of length N out at once, then one of 2N: the bound is 4N.
        let (a, b) = (pool.take_zeroed(N), pool.take_zeroed(N));
        pool.recycle(a);
        let c = pool.take_zeroed(2 * N);
        pool.recycle(b);
        pool.recycle(c);
        let s = pool.stats();
        assert_eq!((s.limit_bytes, s.held_bytes, s.in_use_bytes), (4 * N * 4, 4 * N * 4, 0));
        // A third buffer of length N (from elsewhere) is one more than was ever needed.
        pool.recycle(vec![3.0; N]);
        // So is any buffer of a length never requested.
        pool.recycle(vec![0.0; 3 * N]);
        let s = pool.stats();
        assert_eq!((s.held_bytes, s.dropped), (4 * N * 4, 2));
        // Using more at once raises the bound for that length only.
        let more: Vec<Vec<f32>> = (0..3).map(|_| pool.take_for_overwrite(N)).collect();
        more.into_iter().for_each(|b| pool.recycle(b));
        let s = pool.stats();
        assert_eq!((s.limit_bytes, s.held_bytes, s.misses), (5 * N * 4, 5 * N * 4, 4));
    }

    #[test]
    fn repeated_steps_hold_a_constant_amount_and_hit() {
        let pool = BufferPool::new();
        let sizes = [N, 2 * N, N, 3 * N];
        let mut held = Vec::new();
        for step in 0..50 {
            let bufs: Vec<Vec<f32>> = sizes.iter().map(|&n| pool.take_zeroed(n)).collect();
            bufs.into_iter().for_each(|b| pool.recycle(b));
            held.push(pool.stats().held_bytes);
            if step > 0 {
                assert_eq!(pool.stats().misses, sizes.len() as u64, "step {step} allocated");
            }
        }
        assert!(held.iter().all(|&h| h == 7 * N * 4), "{held:?}");
        pool.release();
        assert_eq!(pool.stats().held_bytes, 0);
    }

    #[test]
    fn threads_share_the_pool_without_losing_buffers() {
        let pool = BufferPool::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let pool = &pool;
                s.spawn(move || {
                    for i in 0..200 {
                        let n = N + (t + i) % 3;
                        let mut b = pool.take_zeroed(n);
                        assert!(b.iter().all(|&x| x == 0.0));
                        b.fill(t as f32 + 1.0);
                        pool.recycle(b);
                    }
                });
            }
        });
        let s = pool.stats();
        assert_eq!(s.hits + s.misses, 800);
        assert_eq!(s.in_use_bytes, 0);
        // Each thread has one buffer out at a time: at most four of a length are kept.
        assert!(s.held_bytes <= s.limit_bytes && s.limit_bytes <= 3 * 4 * (N + 2) * 4, "{s:?}");
    }
}
