//! The embedding table.

use adamant_autodiff::{Param, Tape, Var};
use adamant_tensor::rng::Rng;
use adamant_tensor::{Ids, Tensor};

use crate::Module;

/// A lookup table of `num_embeddings` vectors of `embedding_dim` entries, PyTorch's
/// `nn.Embedding(num_embeddings, embedding_dim)`: the parameter `weight`
/// `[num_embeddings, embedding_dim]`, initialised `N(0, 1)` as PyTorch does.
///
/// Its input is token ids, not a float [`Var`], so it implements [`Params`](crate::Params)
/// (saving, loading, optimizers) but not [`Module`]: call [`Embedding::forward`] with the
/// tape and the ids. The table's gradient is the scatter-add of the output's gradient rows
/// ([`Var::embedding`]), so repeated ids accumulate, as in PyTorch.
///
/// ```
/// use adamant_autodiff::{Mode, Tape};
/// use adamant_layers::{Embedding, Params};
/// use adamant_tensor::{rng::seeded, Ids};
///
/// let emb = Embedding::new(27, 10, &mut seeded(0));
/// assert_eq!(emb.named_params()[0].0, "weight");
/// let tape = Tape::new(Mode::Train, 0);
/// let x = emb.forward(&tape, &Ids::from_vec(vec![0, 0, 5, 1, 2, 3], &[2, 3]));
/// assert_eq!(x.shape(), [2, 3, 10]);
/// let grads = x.sum().backward();
/// // Row 0 was read twice: its gradient is 2 in every entry.
/// assert_eq!(&grads.get(&emb.weight).unwrap().data()[..10], &[2.0; 10]);
/// ```
#[derive(Module)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Param,
}

impl Embedding {
    /// A table with PyTorch's initialisation, every entry drawn from `N(0, 1)`.
    ///
    /// # Panics
    /// If either size is 0.
    pub fn new(num_embeddings: usize, embedding_dim: usize, rng: &mut Rng) -> Embedding {
        assert!(
            num_embeddings > 0 && embedding_dim > 0,
            "Embedding::new: sizes must be positive, got {num_embeddings} x {embedding_dim}"
        );
        Embedding::from_pretrained(Tensor::randn(&[num_embeddings, embedding_dim], 0.0, 1.0, rng))
    }

    /// A table holding `weight` `[num_embeddings, embedding_dim]` (PyTorch's
    /// `nn.Embedding.from_pretrained(weight, freeze=False)`; to freeze it, leave it out of the
    /// optimizer's parameters).
    ///
    /// # Panics
    /// If `weight` is not 2-d.
    pub fn from_pretrained(weight: Tensor) -> Embedding {
        assert_eq!(
            weight.ndim(),
            2,
            "Embedding::from_pretrained: weight must be 2-d [num_embeddings, embedding_dim], got shape {:?}",
            weight.shape()
        );
        Embedding { weight: Param::new("weight", weight) }
    }

    /// Number of rows (`num_embeddings`, the vocabulary size).
    pub fn num_embeddings(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Length of each row (`embedding_dim`).
    pub fn embedding_dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The rows of `ids`: shape `[...ids.shape, embedding_dim]` (PyTorch's `emb(ids)`).
    ///
    /// # Panics
    /// If an id is not below [`num_embeddings`](Embedding::num_embeddings); the message names
    /// the op, the id and the table's size.
    pub fn forward<'t>(&self, tape: &'t Tape, ids: &Ids) -> Var<'t> {
        tape.param(&self.weight).embedding(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Params;
    use adamant_autodiff::Mode;
    use adamant_tensor::rng::seeded;

    #[test]
    fn init_is_standard_normal() {
        let emb = Embedding::new(200, 50, &mut seeded(1));
        assert_eq!((emb.num_embeddings(), emb.embedding_dim()), (200, 50));
        let w = emb.weight.value().data().to_vec();
        let n = w.len() as f64;
        let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        // 10,000 draws: the standard error of the mean is 0.01, of the variance about 0.014.
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.07, "mean {mean}, variance {var}");
        // Different seeds give different tables.
        assert_ne!(
            Embedding::new(3, 2, &mut seeded(1)).weight.value(),
            Embedding::new(3, 2, &mut seeded(2)).weight.value()
        );
    }

    #[test]
    fn forward_picks_rows_and_gradient_scatters_back() {
        let table = Tensor::from_vec((0..8).map(|x| x as f32).collect(), &[4, 2]);
        let emb = Embedding::from_pretrained(table);
        assert_eq!(emb.named_params().len(), 1);
        let tape = Tape::new(Mode::Train, 0);
        let ids = Ids::from_vec(vec![3, 1, 3], &[3]);
        let x = emb.forward(&tape, &ids);
        assert_eq!(x.value().data(), &[6.0, 7.0, 2.0, 3.0, 6.0, 7.0]);
        let g = (x * x).sum().backward();
        // d/dw of sum(w[id]^2) over the reads: 2 w per read, row 3 read twice.
        assert_eq!(g.get(&emb.weight).unwrap().data(), &[0.0, 0.0, 4.0, 6.0, 0.0, 0.0, 24.0, 28.0]);
    }

    #[test]
    #[should_panic(expected = "embedding: id 4")]
    fn out_of_range_ids_panic_naming_the_op() {
        let emb = Embedding::new(4, 2, &mut seeded(0));
        emb.forward(&Tape::inference(), &Ids::from_slice(&[4]));
    }

    #[test]
    #[should_panic(expected = "Embedding::from_pretrained: weight must be 2-d")]
    fn pretrained_weight_must_be_2d() {
        Embedding::from_pretrained(Tensor::zeros(&[4]));
    }
}
