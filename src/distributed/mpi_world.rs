//! [`MpiWorld`]: the [`Communicator`] of processes launched by `mpirun` or `srun`, over the
//! system's MPI library (rsmpi).

use std::fmt;
use std::sync::Mutex;

use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _, Equivalence, Root as _};
use mpi::Threading;

use super::{sum_in_rank_order, Communicator};

/// MPI's world communicator. Sums are a gather to rank 0, which adds the processes' values in
/// rank order, and a broadcast of the result: not `MPI_Allreduce`, whose order of additions
/// the library chooses (and may change with the message size or the network).
pub struct MpiWorld {
    rank: usize,
    size: usize,
    inner: Mutex<Inner>,
}

/// The MPI state. The universe finalizes MPI when dropped, so it lives as long as the world.
struct Inner {
    world: SimpleCommunicator,
    _universe: Universe,
}

// SAFETY: MPI is initialized with `Threading::Serialized` (any thread may call MPI, one at a
// time), and every call goes through the `Mutex` around `Inner`, which serializes them.
unsafe impl Send for Inner {}

impl fmt::Debug for MpiWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MpiWorld {{ rank: {}, size: {} }}", self.rank, self.size)
    }
}

impl MpiWorld {
    /// Initializes MPI (once per process) and joins its world; `None` if MPI was already
    /// initialized, or could not give the threading level adamant needs (serialized calls
    /// from any thread).
    pub fn initialize() -> Option<MpiWorld> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)?;
        if threading < Threading::Serialized {
            return None;
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Some(MpiWorld { rank, size, inner: Mutex::new(Inner { world, _universe: universe }) })
    }

    /// The sum of `data` over the processes in rank order, on every process.
    fn sum<T>(&self, data: &mut [T])
    where
        T: Copy + Default + std::ops::Add<Output = T> + Equivalence,
    {
        let inner = self.inner.lock().expect("an MPI call panicked");
        let root = inner.world.process_at_rank(0);
        if self.rank == 0 {
            let mut all = vec![T::default(); data.len() * self.size];
            root.gather_into_root(&data[..], &mut all[..]);
            let parts: Vec<&[T]> = all.chunks(data.len().max(1)).collect();
            if !data.is_empty() {
                sum_in_rank_order(&parts, data);
            }
        } else {
            root.gather_into(&data[..]);
        }
        root.broadcast_into(&mut data[..]);
    }
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_f32(&self, data: &mut [f32]) {
        self.sum(data);
    }

    fn sum_f64(&self, data: &mut [f64]) {
        self.sum(data);
    }

    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        let inner = self.inner.lock().expect("an MPI call panicked");
        let mut all = vec![0u64; self.size];
        inner.world.all_gather_into(&value, &mut all[..]);
        all
    }
}
