//! [`DataParallel`]: what a training loop does differently when a [`Communicator`] splits
//! each batch across processes (data parallelism): each process takes a contiguous share of
//! every batch, the gradients and the step's metrics are summed across the processes in rank
//! order, the evaluation is split by batches and gathered, and every process checks now and
//! then that its weights are still everyone's. Without a communicator every method is the
//! single-process path. [`fit`](crate::train::fit) uses it; so can a custom training loop.

use adamant_autodiff::{Gradients, Param};
use adamant_data::batch::Batch;
use adamant_layers::Params;
use adamant_tensor::Tensor;

use super::Communicator;
use crate::train::TrainError;

/// The processes of a data-parallel run as a training loop sees them: one (no communicator,
/// or a communicator of one process) or several.
///
/// A step of a loop over `N` processes: every process draws the whole batch (the same
/// stream), takes its rows ([`DataParallel::rows`] or [`DataParallel::shard`]), keys its
/// per-example randomness by their place in the batch (`Tape::set_example_offset` of the
/// first row), weights its share's mean loss by `rows / batch`, and applies the gradients
/// [`DataParallel::sum_gradients`] returns, so that every process takes the step one process
/// would take on the whole batch (up to the order of the gradient sum) and the weights stay
/// identical without a broadcast. Every method that communicates is collective: every
/// process calls it, in the same order.
#[derive(Clone, Copy, Debug)]
pub struct DataParallel<'c> {
    comm: Option<&'c dyn Communicator>,
}

impl<'c> DataParallel<'c> {
    /// The processes of `comm` (`None`: this process alone). A communicator of one process
    /// is the single-process path too, with the same bits.
    pub fn new(comm: Option<&'c dyn Communicator>) -> DataParallel<'c> {
        DataParallel { comm: comm.filter(|c| c.size() > 1) }
    }

    /// This process's index, `0..size()` (0 alone).
    pub fn rank(&self) -> usize {
        self.comm.map_or(0, |c| c.rank())
    }

    /// How many processes share each batch (what a batch size must divide by for equal
    /// shares).
    pub fn size(&self) -> usize {
        self.comm.map_or(1, |c| c.size())
    }

    /// Whether this process writes the run's files and prints (logs, checkpoints,
    /// TensorBoard, the progress bar): rank 0 alone, so that N processes write one run.
    pub fn writes(&self) -> bool {
        self.comm.is_none_or(|c| c.rank() == 0)
    }

    /// Whether any process says `flag` (a Ctrl-C reaches the processes at different moments;
    /// they must stop at the same step).
    pub fn any(&self, flag: bool) -> bool {
        let Some(comm) = self.comm else { return flag };
        let mut count = [f64::from(u8::from(flag))];
        comm.sum_f64(&mut count);
        count[0] > 0.0
    }

    /// This process's rows of a batch of `b`: `b * rank / size .. b * (rank + 1) / size`,
    /// contiguous, so that the shares in rank order are the batch (and its first row is where
    /// its per-example randomness starts, `Tape::set_example_offset`).
    pub fn rows(&self, b: usize) -> std::ops::Range<usize> {
        let (rank, size) = (self.rank(), self.size());
        b * rank / size..b * (rank + 1) / size
    }

    /// This process's share of `batch` ([`DataParallel::rows`]), and the index of its first
    /// row in the batch.
    pub fn shard(&self, batch: Batch) -> (Batch, usize) {
        if self.comm.is_none() {
            return (batch, 0);
        }
        let std::ops::Range { start: lo, end: hi } = self.rows(batch.labels.len());
        let shard = Batch {
            images: batch.images.slice_rows(lo, hi),
            labels: batch.labels[lo..hi].to_vec(),
            indices: batch.indices[lo..hi].to_vec(),
        };
        (shard, lo)
    }

    /// Sums `values` (the step's loss sum, correct count, ...) across the processes, in rank
    /// order: every process gets the whole batch's metrics (and the same ones).
    pub fn sum(&self, values: &mut [f64]) {
        if let Some(comm) = self.comm {
            comm.sum_f64(values);
        }
    }

    /// The gradients of the whole batch from each process's gradients of its share: summed
    /// across the processes in rank order (each share's loss already weighted by its part of
    /// the batch). A parameter has a gradient if any process's share gave it one.
    pub fn sum_gradients(&self, params: &[&Param], local: Option<Gradients>) -> Option<Gradients> {
        let Some(comm) = self.comm else { return local };
        let mut present: Vec<f64> = params
            .iter()
            .map(|p| f64::from(u8::from(local.as_ref().is_some_and(|g| g.get(p).is_some()))))
            .collect();
        comm.sum_f64(&mut present);
        let with_grad: Vec<&Param> =
            params.iter().zip(&present).filter(|(_, &n)| n > 0.0).map(|(p, _)| *p).collect();
        let mut flat = Vec::with_capacity(with_grad.iter().map(|p| p.value().numel()).sum());
        for p in &with_grad {
            match local.as_ref().and_then(|g| g.get(p)) {
                Some(g) => flat.extend_from_slice(g.data()),
                None => flat.resize(flat.len() + p.value().numel(), 0.0),
            }
        }
        comm.sum_f32(&mut flat);
        let mut summed = Gradients::new();
        let mut rest = &flat[..];
        for p in with_grad {
            let (mine, tail) = rest.split_at(p.value().numel());
            summed.accumulate(p.id(), Tensor::from_slice(mine, p.shape()));
            rest = tail;
        }
        (!summed.is_empty()).then_some(summed)
    }

    /// Whether this process evaluates evaluation batch `batch_index` (`index % size == rank`):
    /// the evaluation is split across the processes, its sums then added with
    /// [`DataParallel::sum`].
    pub fn evaluates(&self, batch_index: usize) -> bool {
        self.comm.is_none_or(|c| batch_index % c.size() == c.rank())
    }

    /// Checks that every process holds the same weights, bit for bit (they must: each applies
    /// the same step to the same values; a difference means a process drew other data or
    /// skipped a step); an error naming the first parameter that differs. `epoch` names the
    /// moment in the error (a loop counting steps passes its evaluation's index).
    ///
    /// # Errors
    /// [`TrainError::Distributed`] on every process when any two processes' weights differ.
    pub fn check_same_weights<M: Params + ?Sized>(&self, model: &M, epoch: usize) -> Result<(), TrainError> {
        let Some(comm) = self.comm else { return Ok(()) };
        let params = model.params();
        let hashes: Vec<u64> = params.iter().map(|p| hash_bits(p.value().data())).collect();
        let all = comm.all_gather_u64(hash_bits_u64(&hashes));
        if all.iter().all(|&h| h == all[0]) {
            return Ok(());
        }
        // Every process sees the same mismatch and looks for the parameter together.
        for (p, &h) in params.iter().zip(&hashes) {
            let per_rank = comm.all_gather_u64(h);
            if let Some(rank) = per_rank.iter().position(|&x| x != per_rank[0]) {
                return Err(TrainError::Distributed(format!(
                    "after epoch {epoch} the weights of process {rank} differ from process 0's, first at parameter '{}'",
                    p.name()
                )));
            }
        }
        Err(TrainError::Distributed(format!("after epoch {epoch} the processes' weights differ")))
    }
}

/// A 64-bit hash of the bits of `values` (FNV-1a over the words, then mixed): equal weights
/// hash equal; a difference anywhere changes the hash but for a 2^-64 chance.
fn hash_bits(values: &[f32]) -> u64 {
    hash_bits_u64(&values.iter().map(|v| u64::from(v.to_bits())).collect::<Vec<u64>>())
}

fn hash_bits_u64(words: &[u64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &w in words {
        h = (h ^ w).wrapping_mul(0x0100_0000_01b3);
    }
    adamant_tensor::rng::splitmix64(h)
}
