//! What every optimizer shares: the learning rate, parameter groups, and per-parameter state
//! keyed by id in memory and by name when saved.

use std::collections::{BTreeMap, HashMap};

use adamant_autodiff::{Gradients, Param, ParamId};
use adamant_tensor::kernels::parallel::should_parallelize;
use adamant_tensor::Tensor;
use rayon::prelude::*;

use crate::inspect::ParamMoments;
use crate::state::{OptimizerState, SavedParamState, StateError};

/// Which parameters a [`ParamGroup`] applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// Parameters whose name ends with this string (e.g. `"bias"`).
    NameSuffix(String),
    /// Parameters whose name starts with this string (e.g. `"conv1."`).
    NamePrefix(String),
    /// Parameters with exactly these names.
    Names(Vec<String>),
    /// Parameters with at most one axis: biases (and norm scales), the usual weight-decay
    /// exemption.
    OneDimensional,
    /// Parameters with exactly two axes: the weights of linear layers, which
    /// [`Muon`](crate::Muon) updates.
    Matrices,
    /// Parameters every one of these selectors picks.
    All(Vec<Selector>),
    /// Parameters this selector does not pick.
    Not(Box<Selector>),
}

impl std::fmt::Display for Selector {
    /// What the selector picks, as the rest of a sentence: `parameters named '*bias'`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::NameSuffix(s) => write!(f, "parameters named '*{s}'"),
            Selector::NamePrefix(s) => write!(f, "parameters named '{s}*'"),
            Selector::Names(names) => write!(f, "parameters named {}", names.join(", ")),
            Selector::OneDimensional => write!(f, "parameters with at most one axis"),
            Selector::Matrices => write!(f, "matrices (parameters with two axes)"),
            Selector::All(all) => {
                let parts: Vec<String> = all.iter().map(|s| s.to_string()).collect();
                write!(f, "{}", parts.join(" and "))
            }
            Selector::Not(s) => write!(f, "all but {s}"),
        }
    }
}

impl Selector {
    /// Whether `p` belongs to the group.
    pub fn matches(&self, p: &Param) -> bool {
        match self {
            Selector::NameSuffix(s) => p.name().ends_with(s.as_str()),
            Selector::NamePrefix(s) => p.name().starts_with(s.as_str()),
            Selector::Names(names) => names.iter().any(|n| n == p.name()),
            Selector::OneDimensional => p.shape().len() <= 1,
            Selector::Matrices => p.shape().len() == 2,
            Selector::All(all) => all.iter().all(|s| s.matches(p)),
            Selector::Not(s) => !s.matches(p),
        }
    }
}

/// Options for a subset of parameters, like one entry of PyTorch's `param_groups`.
///
/// The first group whose selector matches a parameter applies; parameters no group matches
/// use the optimizer's own options. A group's learning rate is `lr_scale` times the
/// optimizer's current learning rate, so schedules move every group together.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    /// Which parameters belong to this group.
    pub selector: Selector,
    /// Multiplier of the optimizer's learning rate for this group (default 1).
    pub lr_scale: f32,
    /// Weight decay for this group, replacing the optimizer's (e.g. `Some(0.0)` for biases).
    pub weight_decay: Option<f32>,
}

impl ParamGroup {
    /// A group with the optimizer's learning rate and weight decay.
    pub fn new(selector: Selector) -> ParamGroup {
        ParamGroup { selector, lr_scale: 1.0, weight_decay: None }
    }

    /// The usual exemption: one-dimensional parameters (biases) get no weight decay.
    pub fn no_decay_for_biases() -> ParamGroup {
        ParamGroup::new(Selector::OneDimensional).weight_decay(0.0)
    }

    /// Sets the learning-rate multiplier.
    pub fn lr_scale(mut self, scale: f32) -> ParamGroup {
        self.lr_scale = scale;
        self
    }

    /// Sets the group's weight decay.
    pub fn weight_decay(mut self, weight_decay: f32) -> ParamGroup {
        self.weight_decay = Some(weight_decay);
        self
    }
}

/// The hyperparameters that groups can change, resolved for one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Learning rate for this parameter at this step.
    pub lr: f32,
    /// Weight decay for this parameter.
    pub weight_decay: f32,
}

impl Hyper {
    /// How weight decay enters an update, as `(factor, l2)`: decoupled (AdamW-style) decay
    /// multiplies the parameter by `factor = 1 - lr lambda` first; coupled decay adds
    /// `l2 theta` (`l2 = lambda`) to the gradient. Without decay, `(1, 0)`.
    pub(crate) fn decay_terms(self, decoupled: bool) -> (f32, f32) {
        match (self.weight_decay != 0.0, decoupled) {
            (false, _) => (1.0, 0.0),
            (true, true) => (1.0 - self.lr * self.weight_decay, 0.0),
            (true, false) => (1.0, self.weight_decay),
        }
    }
}

/// One parameter's optimizer state: its step count and named buffers (moments).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamState {
    /// Number of updates this parameter has received (PyTorch's per-parameter `step`).
    pub step: u64,
    /// Buffers in the order of the optimizer's buffer names (e.g. `exp_avg`, `exp_avg_sq`).
    pub buffers: Vec<Tensor>,
    /// Scalars in the order of the optimizer's scalar names (e.g. NAdam's `mu_product`).
    pub scalars: Vec<f64>,
}

impl ParamState {
    /// A parameter's state before its first step: `buffers` zero tensors of `shape` (moments
    /// start at zero) and no scalars.
    pub fn zeros(shape: &[usize], buffers: usize) -> ParamState {
        ParamState { step: 0, buffers: vec![Tensor::zeros(shape); buffers], scalars: vec![] }
    }
}

/// The part of an optimizer that is the same for all of them.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    /// The optimizer's name in saved state (`"adam"`).
    pub kind: &'static str,
    /// Names of the per-parameter buffers, in [`ParamState::buffers`] order.
    pub buffer_names: &'static [&'static str],
    /// Other sets of buffer names a parameter's state may have instead of `buffer_names`,
    /// each of its own length, which is how a state's set is told (Adafactor keeps
    /// `row_var` and `col_var` for matrices, `variance` for vectors). Usually empty.
    pub other_buffer_names: &'static [&'static [&'static str]],
    /// Names of the per-parameter scalars, in [`ParamState::scalars`] order.
    pub scalar_names: &'static [&'static str],
    pub lr: f32,
    pub weight_decay: f32,
    pub groups: Vec<ParamGroup>,
    states: HashMap<ParamId, ParamState>,
    /// State loaded from a save, waiting for the parameter of that name to show up.
    pending: HashMap<String, ParamState>,
    /// The name of every parameter seen, for saving by name.
    names: HashMap<ParamId, String>,
}

impl Core {
    pub fn new(
        kind: &'static str,
        buffer_names: &'static [&'static str],
        scalar_names: &'static [&'static str],
        lr: f32,
        weight_decay: f32,
    ) -> Core {
        Core {
            kind,
            buffer_names,
            other_buffer_names: &[],
            scalar_names,
            lr,
            weight_decay,
            groups: Vec::new(),
            states: HashMap::new(),
            pending: HashMap::new(),
            names: HashMap::new(),
        }
    }

    /// A core whose parameters keep one of several sets of buffers, as
    /// [`Core::other_buffer_names`] describes.
    ///
    /// # Panics
    /// If two sets have the same length (a state's length must tell its set).
    pub fn with_buffer_sets(
        kind: &'static str,
        buffer_sets: &'static [&'static [&'static str]],
        scalar_names: &'static [&'static str],
        lr: f32,
        weight_decay: f32,
    ) -> Core {
        let [first, others @ ..] = buffer_sets else { panic!("{kind}: no buffer set") };
        for (i, a) in buffer_sets.iter().enumerate() {
            assert!(
                buffer_sets[i + 1..].iter().all(|b| b.len() != a.len()),
                "{kind}: buffer sets of equal length"
            );
        }
        Core { other_buffer_names: others, ..Core::new(kind, first, scalar_names, lr, weight_decay) }
    }

    /// The names of the buffers of a state with `n` buffers.
    fn names_of(&self, n: usize) -> &'static [&'static str] {
        std::iter::once(self.buffer_names)
            .chain(self.other_buffer_names.iter().copied())
            .find(|names| names.len() == n)
            .unwrap_or(self.buffer_names)
    }

    /// The set of buffer names that saved buffers `saved` are meant to have: the one holding
    /// the first saved name (or the main set), so that missing and unexpected buffers are
    /// reported against it.
    fn names_for(&self, saved: &BTreeMap<String, Tensor>) -> &'static [&'static str] {
        let first = saved.keys().next();
        std::iter::once(self.buffer_names)
            .chain(self.other_buffer_names.iter().copied())
            .find(|names| first.is_some_and(|f| names.contains(&f.as_str())))
            .unwrap_or(self.buffer_names)
    }

    /// The learning rate and weight decay that apply to `p`.
    pub fn hyper(&self, p: &Param) -> Hyper {
        match self.groups.iter().find(|g| g.selector.matches(p)) {
            Some(g) => {
                Hyper { lr: self.lr * g.lr_scale, weight_decay: g.weight_decay.unwrap_or(self.weight_decay) }
            }
            None => Hyper { lr: self.lr, weight_decay: self.weight_decay },
        }
    }

    /// Runs `update(param_values, grad, state, hyper)` for every parameter that has a
    /// gradient, after incrementing its step. New state is made by `init(param)`; state
    /// loaded by name is picked up the first time its parameter is seen.
    ///
    /// # Panics
    /// If a gradient's shape differs from its parameter's (a programmer error).
    pub fn for_each(
        &mut self,
        params: &mut [&mut Param],
        grads: &Gradients,
        init: impl Fn(&Param) -> ParamState,
        mut update: impl FnMut(&mut [f32], &[f32], &mut ParamState, Hyper),
    ) {
        self.visit(params, grads, init, |p, g, state, h| {
            update(p.value_mut().data_mut(), g.data(), state, h)
        });
    }

    /// [`Core::for_each`] with the parameters updated in parallel when there is enough work in
    /// all: each tensor by one task, whole, so the results are those of the serial loop bit
    /// for bit. For updates that touch nothing but their own tensor and state. A network of
    /// many small tensors (a Transformer's 50, most below the size at which a single update
    /// splits itself over threads) otherwise updates them one after another on one core.
    ///
    /// # Panics
    /// If a gradient's shape differs from its parameter's (a programmer error).
    pub fn for_each_parallel(
        &mut self,
        params: &mut [&mut Param],
        grads: &Gradients,
        init: impl Fn(&Param) -> ParamState,
        update: impl Fn(&mut [f32], &[f32], &mut ParamState, Hyper) + Sync,
    ) {
        let work: usize = params.iter().filter(|p| grads.get(p).is_some()).map(|p| p.value().numel()).sum();
        let ids: std::collections::HashSet<ParamId> = params.iter().map(|p| p.id()).collect();
        // A parameter listed twice is updated twice, in order: only the serial loop does that.
        if !should_parallelize(work) || ids.len() != params.len() {
            return self.for_each(params, grads, init, update);
        }
        // Count the steps and make the states first (serially: they live in one map)...
        let mut hypers = Vec::with_capacity(params.len());
        self.visit(params, grads, init, |p, _, _, h| hypers.push((p.id(), h)));
        // ...then update each parameter with its own state, in parallel.
        let mut states: HashMap<ParamId, &mut ParamState> =
            self.states.iter_mut().map(|(id, s)| (*id, s)).collect();
        let hypers: HashMap<ParamId, Hyper> = hypers.into_iter().collect();
        let jobs: Vec<(&mut Param, &Tensor, &mut ParamState, Hyper)> = params
            .iter_mut()
            .filter_map(|p| {
                let id = p.id();
                let hyper = *hypers.get(&id)?;
                let state = states.remove(&id).expect("visit made a state for every parameter it saw");
                let grad = grads.get(p).expect("visit saw a gradient");
                Some((&mut **p, grad, state, hyper))
            })
            .collect();
        jobs.into_par_iter()
            .for_each(|(p, g, state, h)| update(p.value_mut().data_mut(), g.data(), state, h));
    }

    /// [`Core::for_each`] for updates that need the parameter's shape (Adafactor's row and
    /// column statistics, Muon's matrix products): `update(values, grad, shape, state, hyper)`.
    ///
    /// # Panics
    /// If a gradient's shape differs from its parameter's (a programmer error).
    pub fn for_each_shaped(
        &mut self,
        params: &mut [&mut Param],
        grads: &Gradients,
        init: impl Fn(&Param) -> ParamState,
        mut update: impl FnMut(&mut [f32], &[f32], &[usize], &mut ParamState, Hyper),
    ) {
        self.visit(params, grads, init, |p, g, state, h| {
            // The values are borrowed mutably, so the shape is copied (a few words per tensor).
            let shape = p.shape().to_vec();
            update(p.value_mut().data_mut(), g.data(), &shape, state, h)
        });
    }

    /// What [`Core::for_each`] and [`Core::for_each_shaped`] share: finds (or makes) each
    /// parameter's state, counts the step, and calls `f(param, grad, state, hyper)`.
    fn visit(
        &mut self,
        params: &mut [&mut Param],
        grads: &Gradients,
        init: impl Fn(&Param) -> ParamState,
        mut f: impl FnMut(&mut Param, &Tensor, &mut ParamState, Hyper),
    ) {
        for p in params.iter_mut() {
            let Some(g) = grads.get(p) else { continue };
            assert_eq!(
                g.shape(),
                p.shape(),
                "{}: gradient of '{}' has shape {:?}, the parameter {:?}",
                self.kind,
                p.name(),
                g.shape(),
                p.shape()
            );
            let hyper = self.hyper(p);
            let id = p.id();
            if !self.states.contains_key(&id) {
                let state = self.pending.remove(p.name()).unwrap_or_else(|| init(p));
                self.states.insert(id, state);
                self.names.insert(id, p.name().to_string());
            }
            let state = self.states.get_mut(&id).expect("inserted above");
            state.step += 1;
            f(p, g, state, hyper);
        }
    }

    /// The moment estimates of each of `params` that has a state here: buffer `first` as
    /// `m` and buffer `second` as the second moment ([`ParamMoments`]), with the scalars the
    /// optimizer divides them by.
    pub fn moments<'a>(
        &'a self,
        params: &[&Param],
        (first, second): (usize, usize),
        betas: (f32, f32),
        eps: f32,
        bias_correction: bool,
    ) -> Vec<ParamMoments<'a>> {
        params
            .iter()
            .filter_map(|p| {
                let state = self.states.get(&p.id())?;
                Some(ParamMoments {
                    id: p.id(),
                    step: state.step,
                    lr: self.hyper(p).lr,
                    betas,
                    eps,
                    bias_correction,
                    first: state.buffers.get(first)?.data(),
                    second: state.buffers.get(second)?.data(),
                })
            })
            .collect()
    }

    /// The state of every parameter seen (and any loaded but not yet seen), by name.
    pub fn state_dict(&self, scalars: BTreeMap<String, f64>) -> OptimizerState {
        let mut params = BTreeMap::new();
        let mut save = |name: &str, s: &ParamState| {
            let saved = SavedParamState {
                step: s.step,
                buffers: self
                    .names_of(s.buffers.len())
                    .iter()
                    .map(|n| n.to_string())
                    .zip(s.buffers.iter().cloned())
                    .collect(),
                scalars: self
                    .scalar_names
                    .iter()
                    .map(|n| n.to_string())
                    .zip(s.scalars.iter().copied())
                    .collect(),
            };
            params.insert(name.to_string(), saved);
        };
        for (id, s) in &self.states {
            save(&self.names[id], s);
        }
        for (name, s) in &self.pending {
            save(name, s);
        }
        let mut all_scalars = scalars;
        all_scalars.insert("lr".to_string(), self.lr as f64);
        OptimizerState { kind: self.kind.to_string(), scalars: all_scalars, params }
    }

    /// Replaces the state with a saved one of the same kind; returns its optimizer-level
    /// scalars for the optimizer to read. On error nothing changes.
    pub fn load_state_dict(&mut self, state: OptimizerState) -> Result<BTreeMap<String, f64>, StateError> {
        if state.kind != self.kind {
            return Err(StateError::Kind { expected: self.kind.to_string(), found: state.kind });
        }
        let lr = *state
            .scalars
            .get("lr")
            .ok_or_else(|| StateError::Missing { what: "scalar 'lr'".to_string() })?;
        let mut pending = HashMap::new();
        for (name, saved) in state.params {
            let names = self.names_for(&saved.buffers);
            let mut buffers = Vec::with_capacity(names.len());
            let mut by_name = saved.buffers;
            for b in names {
                let t = by_name.remove(*b).ok_or_else(|| StateError::Missing {
                    what: format!("buffer '{b}' of parameter '{name}'"),
                })?;
                buffers.push(t);
            }
            if let Some(extra) = by_name.keys().next() {
                return Err(StateError::Unexpected {
                    what: format!("buffer '{extra}' of parameter '{name}'"),
                });
            }
            let mut scalars = Vec::with_capacity(self.scalar_names.len());
            for s in self.scalar_names {
                let v = saved.scalars.get(*s).ok_or_else(|| StateError::Missing {
                    what: format!("scalar '{s}' of parameter '{name}'"),
                })?;
                scalars.push(*v);
            }
            pending.insert(name, ParamState { step: saved.step, buffers, scalars });
        }
        self.lr = lr as f32;
        self.states.clear();
        self.names.clear();
        self.pending = pending;
        Ok(state.scalars)
    }
}
