//! Weight averaging for modules: [`update`] folds a model's parameters and buffers into a
//! [`WeightAverage`] (`adamant-optim` sees tensors, never modules), and [`with_averaged`]
//! evaluates the model with the averaged weights swapped in, then swaps its own back exactly.
//!
//! ```
//! use adamant::average::{update, with_averaged};
//! use adamant::layers::{Dense, Params};
//! use adamant::optim::{Averaging, WeightAverage};
//! use adamant::tensor::rng::seeded;
//!
//! let mut model = Dense::new(2, 1, &mut seeded(0));
//! let mut ema = WeightAverage::new(Averaging::Ema { decay: 0.9 });
//! update(&mut ema, &model); // after each optimizer step
//! let raw = model.params()[0].value().clone();
//! let seen = with_averaged(&mut model, &ema, |m| m.params()[0].value().clone());
//! assert_eq!(seen, raw); // one update: the average is a copy of the model
//! assert_eq!(model.params()[0].value(), &raw);
//! ```

pub use adamant_optim::average::{AverageState, Averaging, ValueKind, WeightAverage};

use adamant_layers::{BufferKind, Params};
use adamant_tensor::Tensor;

/// The kind of average a buffer gets: counters as torch averages its `int64` buffers.
fn kind_of(kind: BufferKind) -> ValueKind {
    match kind {
        BufferKind::Float => ValueKind::Float,
        BufferKind::Count => ValueKind::Count,
    }
}

/// `(name, shape, kind)` of everything an average of `model` holds: the parameters, then the
/// buffers, by path (what [`AverageState::validate`] checks a saved average against).
pub fn layout<M: Params + ?Sized>(model: &M) -> Vec<(String, Vec<usize>, ValueKind)> {
    let mut out: Vec<_> =
        model.named_params().into_iter().map(|(n, p)| (n, p.shape().to_vec(), ValueKind::Float)).collect();
    out.extend(model.named_buffers().into_iter().map(|(n, b)| (n, b.shape(), kind_of(b.kind()))));
    out
}

/// Folds `model`'s current parameters and buffers into `average` (torch's
/// `AveragedModel.update_parameters` with `use_buffers=True`). Call it after every optimizer
/// step.
pub fn update<M: Params + ?Sized>(average: &mut WeightAverage, model: &M) {
    let params = model.named_params();
    let buffers: Vec<(String, Tensor, ValueKind)> =
        model.named_buffers().into_iter().map(|(n, b)| (n, b.value(), kind_of(b.kind()))).collect();
    let current = params
        .iter()
        .map(|(n, p)| (n.as_str(), p.value(), ValueKind::Float))
        .chain(buffers.iter().map(|(n, t, k)| (n.as_str(), t, *k)));
    average.update(current);
}

/// Runs `f` on `model` holding the averaged weights and buffers, then puts the model's own
/// back (the same tensors, so bit for bit). Before the first update there is no average and
/// `f` sees the model as it is. If `f` panics, the model keeps the averaged values.
///
/// # Panics
/// If the average was kept for another model (names or shapes differ).
pub fn with_averaged<M: Params + ?Sized, R>(
    model: &mut M,
    average: &WeightAverage,
    f: impl FnOnce(&M) -> R,
) -> R {
    let averaged = average.averaged();
    if averaged.is_empty() {
        return f(model);
    }
    let mut values = averaged.into_iter();
    let mut own_params = Vec::new();
    model.visit_params_mut("", &mut |path, p| {
        let (name, value) = values.next().expect("with_averaged: the average lacks parameters");
        assert_eq!(name, path, "with_averaged: the average was kept for another model");
        own_params.push(std::mem::replace(p.value_mut(), value));
    });
    let mut own_buffers = Vec::new();
    model.visit_buffers("", &mut |path, b| {
        let (name, value) = values.next().expect("with_averaged: the average lacks buffers");
        assert_eq!(name, path, "with_averaged: the average was kept for another model");
        own_buffers.push(b.value());
        b.set(value);
    });
    assert!(values.next().is_none(), "with_averaged: the average holds more tensors than the model");
    let out = f(model);
    let mut own_params = own_params.into_iter();
    model.visit_params_mut("", &mut |_, p| *p.value_mut() = own_params.next().expect("as many as taken"));
    let mut own_buffers = own_buffers.into_iter();
    model.visit_buffers("", &mut |_, b| b.set(own_buffers.next().expect("as many as taken")));
    out
}
