//! After `backward()` and dropping the tape, nothing a training step allocated stays alive.
//!
//! This file is its own test binary with a single test, so that no other test allocates
//! beside it while it counts. A counting global allocator tracks the bytes allocated minus
//! the bytes freed by the test's own thread (the test harness's main thread allocates and
//! frees at its own pace, which would make a process-wide count drift by a few bytes); 2,000
//! steps of a small MLP with an in-place SGD update must each end at exactly the level seen
//! after the warm-up step.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

use adamant_autodiff::{Mode, Param, Tape};
use adamant_tensor::{kernels as k, rng, rng::seeded, Tensor};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set on the test's thread only. `const` so that reading it never allocates.
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

fn count(delta: isize) {
    if TRACKED.with(|t| t.get()) {
        LIVE.fetch_add(delta, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn live_bytes_return_to_the_same_level_after_every_step() {
    TRACKED.with(|t| t.set(true));
    let mut rng = seeded(0);
    let mut params = vec![
        Param::new("0.weight", Tensor::randn(&[32, 20], 0.0, 0.2, &mut rng)),
        Param::new("0.bias", Tensor::zeros(&[32])),
        Param::new("2.weight", Tensor::randn(&[10, 32], 0.0, 0.2, &mut rng)),
        Param::new("2.bias", Tensor::zeros(&[10])),
    ];
    let x = Tensor::randn(&[16, 20], 0.0, 1.0, &mut rng);
    let labels: Vec<usize> = (0..16).map(|i| i % 10).collect();

    let step = |params: &mut Vec<Param>, step: u64| -> f32 {
        let tape = Tape::new(Mode::Train, rng::mix(1, step));
        let h = tape.constant(x.clone()).matmul_nt(tape.param(&params[0])) + tape.param(&params[1]);
        let h = h.relu().dropout(0.5);
        let logits = h.matmul_nt(tape.param(&params[2])) + tape.param(&params[3]);
        let loss = logits.cross_entropy(&labels);
        let value = loss.item();
        let grads = loss.backward();
        drop(tape);
        for p in params.iter_mut() {
            let g = grads.get(p).expect("every parameter has a gradient").clone();
            k::axpy(-0.05, g.data(), p.value_mut().data_mut());
        }
        value
    };

    let first_loss = step(&mut params, 0);
    let baseline = LIVE.load(Ordering::SeqCst);
    let mut last_loss = first_loss;
    for s in 1..2000 {
        last_loss = step(&mut params, s);
        let live = LIVE.load(Ordering::SeqCst);
        assert_eq!(live, baseline, "step {s}: {live} live bytes, {baseline} after the warm-up step");
    }
    // The steps really trained (and so really allocated and freed their buffers).
    assert!(last_loss < first_loss * 0.5, "loss went from {first_loss} to {last_loss}");
}
