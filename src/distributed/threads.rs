//! [`ThreadGroup`]: N "processes" as N threads of one process, with the collectives of
//! [`Communicator`] done through shared memory: the data path of data-parallel training,
//! testable without MPI.

use std::fmt;
use std::sync::{Arc, Barrier, Mutex};

use super::{sum_in_rank_order, Communicator};

/// What the ranks of one group share: a slot per rank for the values being combined, and a
/// barrier that separates depositing them from reading them.
struct Shared {
    size: usize,
    barrier: Barrier,
    f32_slots: Mutex<Vec<Vec<f32>>>,
    f64_slots: Mutex<Vec<Vec<f64>>>,
    u64_slots: Mutex<Vec<u64>>,
}

/// A group of ranks that live in one process, one thread each.
pub struct ThreadGroup;

impl ThreadGroup {
    /// `size` ranks (at least 1), to be moved each to its own thread.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn ranks(size: usize) -> Vec<ThreadRank> {
        assert!(size >= 1, "ThreadGroup: at least one rank");
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            f32_slots: Mutex::new(vec![Vec::new(); size]),
            f64_slots: Mutex::new(vec![Vec::new(); size]),
            u64_slots: Mutex::new(vec![0; size]),
        });
        (0..size).map(|rank| ThreadRank { rank, shared: Arc::clone(&shared) }).collect()
    }
}

/// One rank of a [`ThreadGroup`].
pub struct ThreadRank {
    rank: usize,
    shared: Arc<Shared>,
}

impl fmt::Debug for ThreadRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThreadRank {{ rank: {}, size: {} }}", self.rank, self.shared.size)
    }
}

impl ThreadRank {
    /// Deposits `data` in this rank's slot, waits for every rank's, sums them in rank order
    /// into `data`, and waits again before the slots can be reused.
    fn sum<T: Copy + Default + std::ops::Add<Output = T>>(&self, slots: &Mutex<Vec<Vec<T>>>, data: &mut [T]) {
        {
            let mut slots = slots.lock().expect("a rank panicked");
            slots[self.rank].clear();
            slots[self.rank].extend_from_slice(data);
        }
        self.shared.barrier.wait();
        {
            let slots = slots.lock().expect("a rank panicked");
            let parts: Vec<&[T]> = slots.iter().map(Vec::as_slice).collect();
            assert!(
                parts.iter().all(|p| p.len() == data.len()),
                "ThreadGroup: ranks summed buffers of different lengths"
            );
            sum_in_rank_order(&parts, data);
        }
        self.shared.barrier.wait();
    }
}

impl Communicator for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn sum_f32(&self, data: &mut [f32]) {
        self.sum(&self.shared.f32_slots, data);
    }

    fn sum_f64(&self, data: &mut [f64]) {
        self.sum(&self.shared.f64_slots, data);
    }

    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        self.shared.u64_slots.lock().expect("a rank panicked")[self.rank] = value;
        self.shared.barrier.wait();
        let all = self.shared.u64_slots.lock().expect("a rank panicked").clone();
        self.shared.barrier.wait();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_in_rank_order_and_the_same_on_every_rank() {
        // 1e8 + 1 - 1e8 in f32 depends on the order: rank order gives ((1e8 + 1) - 1e8) = 0.
        let values = [1e8f32, 1.0, -1e8];
        let results: Vec<(Vec<f32>, Vec<f64>, Vec<u64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = ThreadGroup::ranks(3)
                .into_iter()
                .map(|rank| {
                    s.spawn(move || {
                        let mut a = vec![values[rank.rank()], rank.rank() as f32];
                        rank.sum_f32(&mut a);
                        let mut b = vec![rank.rank() as f64 + 0.5];
                        rank.sum_f64(&mut b);
                        let gathered = rank.all_gather_u64(10 + rank.rank() as u64);
                        (a, b, gathered)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (a, b, gathered) in &results {
            assert_eq!(a, &vec![(1e8f32 + 1.0) - 1e8, 3.0]);
            assert_eq!(b, &vec![4.5]);
            assert_eq!(gathered, &vec![10, 11, 12]);
        }
    }
}
