//! Data-parallel training across processes: the few collective operations
//! [`fit`](crate::train::fit) needs ([`Communicator`]), over MPI (cargo feature `mpi`:
//! `MpiWorld`) or over threads of one process ([`ThreadGroup`], for tests and for trying the
//! data path without MPI), and what a training loop does with them ([`DataParallel`]: each
//! process's share of a batch, the gradients and metrics summed, the weights checked equal),
//! for `fit` and for custom loops alike.
//!
//! Every collective combines the processes' values **in rank order** and leaves the same
//! result on every process: `((x_0 + x_1) + x_2) + ...`, never an order the library picks at
//! run time. So a run on N processes gives the same bits every time, and every process applies
//! the same optimizer step to the same weights, which stay identical without a broadcast.

mod data_parallel;
pub use data_parallel::DataParallel;

mod threads;
pub use threads::{ThreadGroup, ThreadRank};

#[cfg(feature = "mpi")]
mod mpi_world;
#[cfg(feature = "mpi")]
pub use mpi_world::MpiWorld;

/// The processes of a data-parallel run and its collective operations. Every process calls
/// each operation in the same order with buffers of the same length (a collective that one
/// process skips waits forever, as MPI's do).
pub trait Communicator: Send + Sync + std::fmt::Debug {
    /// This process's index, `0..size()`.
    fn rank(&self) -> usize;

    /// How many processes take part.
    fn size(&self) -> usize;

    /// Replaces `data` on every process by the elementwise sum over the processes, added in
    /// rank order.
    fn sum_f32(&self, data: &mut [f32]);

    /// [`Communicator::sum_f32`] for f64 (metrics: loss sums, counts).
    fn sum_f64(&self, data: &mut [f64]);

    /// Every process's `value`, in rank order, on every process.
    fn all_gather_u64(&self, value: u64) -> Vec<u64>;
}

/// The sum over the processes' slices, added in rank order into `out` (what each
/// implementation computes once it holds every process's values).
pub(crate) fn sum_in_rank_order<T: Copy + std::ops::Add<Output = T>>(parts: &[&[T]], out: &mut [T]) {
    let (first, rest) = parts.split_first().expect("at least one process");
    out.copy_from_slice(first);
    for part in rest {
        for (o, &x) in out.iter_mut().zip(part.iter()) {
            *o = *o + x;
        }
    }
}

/// The MPI world of this process, for a program that `mpirun` (or Slurm's `srun`) started
/// once per rank. Call it once: MPI is initialized here and finalized when the last clone of
/// the world is dropped (keep it until the program's end).
///
/// # Errors
/// Without the cargo feature `mpi`, says how to build with it; with it, when MPI was already
/// initialized or cannot give the threading level adamant needs.
pub fn mpi_world() -> Result<std::sync::Arc<dyn Communicator>, String> {
    #[cfg(feature = "mpi")]
    {
        match MpiWorld::initialize() {
            Some(world) => Ok(std::sync::Arc::new(world)),
            None => Err("MPI could not be initialized (already initialized, or without \
                         MPI_THREAD_SERIALIZED support)"
                .to_string()),
        }
    }
    #[cfg(not(feature = "mpi"))]
    {
        Err("this program was built without MPI; build it with `cargo build --release --features mpi --examples` \
             (Debian: apt-get install openmpi-bin libopenmpi-dev libclang-dev) and start it with mpirun"
            .to_string())
    }
}
