//! `params_mut` runs every training step: once the stored names equal the paths, it must
//! allocate nothing but the `Vec` it returns (no name strings, no path strings). Counted by a
//! global allocator that tallies this thread's allocations only, so other tests' threads do
//! not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use adamant_layers::{nets, sequential, Dense, Module, Params, ReLU};
use adamant_tensor::rng::seeded;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of<R>(f: impl FnOnce() -> R) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    let after = ALLOCATIONS.with(Cell::get);
    drop(result);
    after - before
}

#[derive(Module)]
struct Nested {
    stem: Dense,
    blocks: Vec<Dense>,
    head: Option<Dense>,
}

#[test]
fn params_mut_allocates_only_its_vec_once_names_match() {
    let mut rng = seeded(0);
    let mut cnn = nets::cnn(&mut rng);
    let mut vae = nets::Vae::new(&mut rng);
    let mut nested = Nested {
        stem: Dense::new(2, 2, &mut rng),
        blocks: vec![Dense::new(2, 2, &mut rng), Dense::new(2, 2, &mut rng)],
        head: Some(Dense::new(2, 1, &mut rng)),
    };
    let mut outer = sequential![ReLU, sequential![Dense::new(2, 2, &mut rng)]];

    // The first call renames the nested struct's Params (built with leaf names): it allocates.
    assert!(allocations_of(|| nested.params_mut().len()) > 1);
    for (name, allocations) in [
        ("cnn", allocations_of(|| cnn.params_mut())),
        ("vae", allocations_of(|| vae.params_mut())),
        ("nested", allocations_of(|| nested.params_mut())),
        ("outer", allocations_of(|| outer.params_mut())),
    ] {
        assert_eq!(allocations, 1, "{name}: params_mut allocated {allocations} times");
    }
    assert_eq!(nested.params()[4].name(), "blocks.1.weight");
}
