//! The global allocator of the `mimalloc` feature: mimalloc, told to keep the memory it frees.
//!
//! A training step allocates every activation and gradient afresh and frees them all when
//! the tape drops; the next step asks for the same sizes again. By default mimalloc "purges"
//! freed memory after a delay (it tells the OS the pages may be dropped), so the next step
//! takes them back through page faults, each zeroing a page (2 MB ones with transparent huge
//! pages). In the CIFAR-10 CNN step that was about 8% of the profile (`clear_page_erms` under
//! the page-fault handler), and a 9-step run took 9,905 minor faults, against 399 with
//! purging off. Keeping freed memory is what PyTorch's caching allocators do too; the cost
//! is that the process's resident memory stays at its peak instead of shrinking after it.
//!
//! `MIMALLOC_PURGE_DELAY` in the environment still wins: the option is only set when that
//! variable is absent.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc.h's `mi_option_e` (the same index in mimalloc v2,
/// where it was called `reset_delay`, and v3); the Rust bindings do not name it. Its value is
/// milliseconds before freed memory is purged, -1 for never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Whether [`keep_freed_memory`] has run.
static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Turns mimalloc's purging off, once, before the first allocation it serves.
#[inline]
fn keep_freed_memory() {
    if !CONFIGURED.load(Ordering::Relaxed) {
        CONFIGURED.store(true, Ordering::Relaxed);
        // `var_os` allocates; CONFIGURED is already set, so that allocation goes straight
        // through. Two threads racing here would both set the same value, which is harmless.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: mi_option_set takes any option index and value; it only stores them.
            unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
        }
    }
}

/// [`MiMalloc`] with purging turned off (see the module docs).
pub(crate) struct KeepingMiMalloc;

// SAFETY: every method forwards to MiMalloc's, which upholds GlobalAlloc's contract.
unsafe impl GlobalAlloc for KeepingMiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        keep_freed_memory();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        keep_freed_memory();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purging_is_off_once_anything_was_allocated_unless_the_environment_says() {
        let v: Vec<u8> = std::hint::black_box((0..100).collect());
        assert_eq!(v.len(), 100);
        // SAFETY: reading an option has no preconditions.
        let purge_delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // With the variable set (`MIMALLOC_PURGE_DELAY=777 cargo test`), reading it back
        // checks that index 15 is the purge delay.
        let wanted = std::env::var("MIMALLOC_PURGE_DELAY").map_or(-1, |v| v.parse().unwrap());
        assert_eq!(purge_delay, wanted);
    }
}
