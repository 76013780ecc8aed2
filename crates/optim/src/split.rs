//! Two optimizers as one: one for the parameters a [`Selector`] picks, another for the rest,
//! saved and restored together.

use std::collections::BTreeMap;

use adamant_autodiff::{Gradients, Param};

use crate::core::{ParamGroup, Selector};
use crate::inspect::ParamMoments;
use crate::optimizer::Optimizer;
use crate::state::{OptimizerState, StateError};

/// The per-parameter scalar of a [`Split`]'s saved state that says which part owns the
/// parameter: 0 the selected part, 1 the rest.
const PART: &str = "split_part";

/// The prefix of the rest's optimizer-level scalars in a [`Split`]'s saved state.
const REST: &str = "rest.";

/// One optimizer for the parameters `selector` picks and another for the rest, stepping,
/// saving and restoring as one optimizer: how Muon, which updates matrices only, is paired
/// with AdamW for biases and norms ([`MuonWithAdamW`](crate::MuonWithAdamW), `muon` by name).
///
/// The learning rate is the selected part's; [`Optimizer::set_lr`] moves the rest's in
/// proportion (`rest_lr = lr * r`, with `r` the ratio of the rest's rate to the selected
/// part's when the split is made, or 1 if that rate is 0), so one schedule drives both.
/// Parameter groups apply to both parts.
///
/// The saved state is the two parts' states in one: every parameter's state under its own
/// name, with the scalar `split_part` (0 selected, 1 rest) saying which part it belongs to,
/// and the rest's optimizer-level scalars prefixed `rest.` (`rest.lr`).
#[derive(Clone, Debug)]
pub struct Split<A, B> {
    name: &'static str,
    selector: Selector,
    selected: A,
    rest: B,
    /// The rest's learning rate over the selected part's.
    rest_lr_ratio: f64,
}

impl<A: Optimizer + Clone, B: Optimizer + Clone> Split<A, B> {
    /// `selected` for the parameters `selector` matches, `rest` for the others, under the
    /// name `name` (the name of its saved state).
    pub fn new(name: &'static str, selector: Selector, selected: A, rest: B) -> Split<A, B> {
        let rest_lr_ratio = if selected.lr() == 0.0 { 1.0 } else { rest.lr() as f64 / selected.lr() as f64 };
        Split { name, selector, selected, rest, rest_lr_ratio }
    }

    /// The optimizer of the selected parameters.
    pub fn selected(&self) -> &A {
        &self.selected
    }

    /// The optimizer of the other parameters.
    pub fn rest(&self) -> &B {
        &self.rest
    }
}

impl<A: Optimizer + Clone, B: Optimizer + Clone> Optimizer for Split<A, B> {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        let (mut selected, mut rest): (Vec<&mut Param>, Vec<&mut Param>) =
            params.iter_mut().map(|p| &mut **p).partition(|p| self.selector.matches(p));
        self.selected.step(&mut selected, grads);
        self.rest.step(&mut rest, grads);
    }

    fn lr(&self) -> f32 {
        self.selected.lr()
    }

    fn set_lr(&mut self, lr: f32) {
        self.selected.set_lr(lr);
        self.rest.set_lr((lr as f64 * self.rest_lr_ratio) as f32);
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn add_param_group(&mut self, group: ParamGroup) {
        self.selected.add_param_group(group.clone());
        self.rest.add_param_group(group);
    }

    fn moments(&self, params: &[&Param]) -> Vec<ParamMoments<'_>> {
        // Each part holds state only for its own parameters; the order is `params`'.
        let (selected, rest) = (self.selected.moments(params), self.rest.moments(params));
        params.iter().filter_map(|p| selected.iter().chain(&rest).find(|m| m.id == p.id()).copied()).collect()
    }

    fn state_dict(&self) -> OptimizerState {
        let (selected, rest) = (self.selected.state_dict(), self.rest.state_dict());
        let mut scalars = selected.scalars;
        scalars.extend(rest.scalars.into_iter().map(|(k, v)| (format!("{REST}{k}"), v)));
        let mut params = BTreeMap::new();
        for (part, state) in [(0.0, selected.params), (1.0, rest.params)] {
            for (name, mut saved) in state {
                saved.scalars.insert(PART.to_string(), part);
                params.insert(name, saved);
            }
        }
        OptimizerState { kind: self.name.to_string(), scalars, params }
    }

    fn load_state_dict(&mut self, state: OptimizerState) -> Result<(), StateError> {
        if state.kind != self.name {
            return Err(StateError::Kind { expected: self.name.to_string(), found: state.kind });
        }
        let part_state = |kind: &str| OptimizerState {
            kind: kind.to_string(),
            scalars: BTreeMap::new(),
            params: BTreeMap::new(),
        };
        let (mut selected, mut rest) = (part_state(self.selected.name()), part_state(self.rest.name()));
        for (k, v) in state.scalars {
            match k.strip_prefix(REST) {
                Some(k) => rest.scalars.insert(k.to_string(), v),
                None => selected.scalars.insert(k, v),
            };
        }
        for (name, mut saved) in state.params {
            let part = match saved.scalars.remove(PART) {
                Some(0.0) => &mut selected,
                Some(1.0) => &mut rest,
                _ => {
                    return Err(StateError::Missing {
                        what: format!("scalar '{PART}' (0 or 1) of parameter '{name}'"),
                    })
                }
            };
            part.params.insert(name, saved);
        }
        // Load into copies, so that an error in the second part leaves both unchanged.
        let (mut new_selected, mut new_rest) = (self.selected.clone(), self.rest.clone());
        new_selected.load_state_dict(selected)?;
        new_rest.load_state_dict(rest)?;
        (self.selected, self.rest) = (new_selected, new_rest);
        Ok(())
    }

    /// Each part checks its own parameters; and a split whose selected part would get no
    /// parameter at all is refused, since then it is just the rest's optimizer under
    /// another name (`muon` on a vector would be AdamW).
    fn check_params(&self, params: &[&Param]) -> Result<(), String> {
        let (selected, rest): (Vec<&Param>, Vec<&Param>) =
            params.iter().copied().partition(|p| self.selector.matches(p));
        if selected.is_empty() && !rest.is_empty() {
            let shown: Vec<String> =
                rest.iter().take(3).map(|p| format!("'{}' {:?}", p.name(), p.shape())).collect();
            // `muon: muon updates ...` would say the name twice.
            let who =
                if self.name == self.selected.name() { String::new() } else { format!("{}: ", self.name) };
            return Err(format!(
                "{who}{} updates {}, and none of the parameters is one ({}{}); {} would update them all",
                self.selected.name(),
                self.selector,
                shown.join(", "),
                if rest.len() > 3 { ", ..." } else { "" },
                self.rest.name()
            ));
        }
        self.selected.check_params(&selected)?;
        self.rest.check_params(&rest)
    }
}
