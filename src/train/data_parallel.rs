//! What [`fit`](super::fit) does differently when a [`Communicator`] splits each batch across
//! processes (data parallelism): each process takes a contiguous share of every batch, the
//! gradients and the step's metrics are summed across the processes in rank order, the
//! evaluation is split by batches and gathered, and every process checks once per epoch that
//! its weights are still everyone's. Without a communicator every method is the
//! single-process path.

use adamant_autodiff::{Gradients, Param};
use adamant_data::batch::Batch;
use adamant_layers::Module;
use adamant_tensor::Tensor;

use super::TrainError;
use crate::distributed::Communicator;

/// The processes of a run: one (no communicator) or several.
#[derive(Clone, Copy)]
pub(super) struct Ranks<'c> {
    comm: Option<&'c dyn Communicator>,
}

impl<'c> Ranks<'c> {
    pub(super) fn new(comm: Option<&'c dyn Communicator>) -> Ranks<'c> {
        Ranks { comm: comm.filter(|c| c.size() > 1) }
    }

    /// How many processes share each batch.
    pub(super) fn size(&self) -> usize {
        self.comm.map_or(1, |c| c.size())
    }

    /// Whether this process writes the run's files (logs, checkpoints, TensorBoard, the
    /// progress bar): rank 0 alone.
    pub(super) fn writes(&self) -> bool {
        self.comm.is_none_or(|c| c.rank() == 0)
    }

    /// Whether any process says `flag` (a Ctrl-C reaches the processes at different moments;
    /// they must stop at the same step).
    pub(super) fn any(&self, flag: bool) -> bool {
        let Some(comm) = self.comm else { return flag };
        let mut count = [f64::from(u8::from(flag))];
        comm.sum_f64(&mut count);
        count[0] > 0.0
    }

    /// This process's share of `batch`: rows `b * rank / size .. b * (rank + 1) / size`, and
    /// the index of its first row in the batch (where its per-example randomness starts).
    pub(super) fn shard(&self, batch: Batch) -> (Batch, usize) {
        let Some(comm) = self.comm else { return (batch, 0) };
        let b = batch.labels.len();
        let (lo, hi) = (b * comm.rank() / comm.size(), b * (comm.rank() + 1) / comm.size());
        let shard = Batch {
            images: batch.images.slice_rows(lo, hi),
            labels: batch.labels[lo..hi].to_vec(),
            indices: batch.indices[lo..hi].to_vec(),
        };
        (shard, lo)
    }

    /// Sums `values` (the step's loss sum, correct count, ...) across the processes.
    pub(super) fn sum(&self, values: &mut [f64]) {
        if let Some(comm) = self.comm {
            comm.sum_f64(values);
        }
    }

    /// The gradients of the whole batch from each process's gradients of its share: summed
    /// across the processes in rank order (each share's loss already weighted by its part of
    /// the batch). A parameter has a gradient if any process's share gave it one.
    pub(super) fn sum_gradients(&self, params: &[&Param], local: Option<Gradients>) -> Option<Gradients> {
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

    /// Which evaluation batches (`index % size == rank`) this process evaluates.
    pub(super) fn evaluates(&self, batch_index: usize) -> bool {
        self.comm.is_none_or(|c| batch_index % c.size() == c.rank())
    }

    /// Checks that every process holds the same weights, bit for bit (they must: each applies
    /// the same step to the same values); an error naming the first parameter that differs.
    pub(super) fn check_same_weights<M: Module + ?Sized>(
        &self,
        model: &M,
        epoch: usize,
    ) -> Result<(), TrainError> {
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
