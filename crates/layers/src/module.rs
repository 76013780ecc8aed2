//! The [`Module`] trait and [`Sequential`].
//!
//! Parameter names follow PyTorch's `state_dict` convention so that files and optimizer
//! state line up with PyTorch models of the same architecture: a layer calls its own
//! parameters `weight` and `bias`; `Sequential` prefixes its children with their position
//! (`"0.weight"`, `"3.bias"`); a struct with named submodules prefixes them with the field
//! name (`"conv1.weight"`) via [`Module::prefix_names`].

use adamant_autodiff::{gradcheck_with, GradcheckOptions, GradcheckReport, Param, ParamSet, Tape, Var};

/// A building block of a network: a forward function and the parameters it reads.
///
/// `forward` reads parameters into the input's tape (`x.tape().param(&self.weight)`), and
/// the tape says whether this is training or evaluation (dropout) and holds the step seed.
pub trait Module {
    /// Applies the module to `x`.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t>;

    /// The parameters, in a stable order (the order of [`Module::named_params`]).
    fn params(&self) -> Vec<&Param>;

    /// The parameters, mutably, in the same order.
    fn params_mut(&mut self) -> Vec<&mut Param>;

    /// `(name, parameter)` pairs with hierarchical names (`"0.weight"`, `"conv1.bias"`).
    fn named_params(&self) -> Vec<(String, &Param)> {
        self.params().into_iter().map(|p| (p.name().to_string(), p)).collect()
    }

    /// Prepends `prefix` to every parameter name: how a container names its children.
    fn prefix_names(&mut self, prefix: &str) {
        for p in self.params_mut() {
            let name = format!("{prefix}{}", p.name());
            p.set_name(name);
        }
    }

    /// Total number of scalars in the parameters.
    fn num_params(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }
}

/// Modules applied one after the other (PyTorch's `nn.Sequential`), exactly in the order
/// listed.
///
/// Child `i`'s parameters are named `"{i}.{name}"`, as in PyTorch, so a `Sequential` of the
/// same layers in the same order has the same `state_dict` keys.
pub struct Sequential {
    layers: Vec<Box<dyn Module + Send + Sync>>,
}

impl Sequential {
    /// A sequence of modules; renames their parameters `"{index}.{name}"`.
    pub fn new(layers: Vec<Box<dyn Module + Send + Sync>>) -> Sequential {
        let mut layers = layers;
        for (i, layer) in layers.iter_mut().enumerate() {
            layer.prefix_names(&format!("{i}."));
        }
        Sequential { layers }
    }

    /// Number of child modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no child modules.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

/// Builds a [`Sequential`] from a list of modules: `sequential![Dense::new(..), ReLU, ..]`.
#[macro_export]
macro_rules! sequential {
    ($($layer:expr),* $(,)?) => {
        $crate::Sequential::new(vec![$(Box::new($layer)),*])
    };
}

impl Module for Sequential {
    /// Applies the layers in order.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.layers.iter().fold(x, |h, layer| layer.forward(h))
    }

    fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers.iter_mut().flat_map(|l| l.params_mut()).collect()
    }
}

/// A model seen as a [`ParamSet`], so that [`gradcheck_module`] can perturb its parameters.
struct ModuleParams<'a, M: Module + ?Sized>(&'a mut M);

impl<M: Module + ?Sized> ParamSet for ModuleParams<'_, M> {
    fn count(&self) -> usize {
        self.0.params().len()
    }
    fn get(&self, i: usize) -> &Param {
        self.0.params()[i]
    }
    fn get_mut(&mut self, i: usize) -> &mut Param {
        self.0.params_mut().swap_remove(i)
    }
}

/// Checks the gradients of `loss(tape, model)` with respect to every parameter of `model`
/// against central finite differences (see [`adamant_autodiff::gradcheck`]).
///
/// ```
/// use adamant_autodiff::GradcheckOptions;
/// use adamant_layers::{gradcheck_module, Dense, Module};
/// use adamant_tensor::{rng::seeded, Tensor};
///
/// let mut layer = Dense::new(3, 2, &mut seeded(0));
/// let x = Tensor::randn(&[4, 3], 0.0, 1.0, &mut seeded(1));
/// let report = gradcheck_module(&mut layer, |tape, m| {
///     m.forward(tape.constant(x.clone())).tanh().sum()
/// }, GradcheckOptions::default());
/// assert!(report.passed, "{report}");
/// ```
pub fn gradcheck_module<M, F>(model: &mut M, loss: F, opts: GradcheckOptions) -> GradcheckReport
where
    M: Module + ?Sized,
    F: for<'t> Fn(&'t Tape, &M) -> Var<'t>,
{
    let mut set = ModuleParams(model);
    gradcheck_with(&mut set, |tape, s: &ModuleParams<'_, M>| loss(tape, &*s.0), opts)
}

/// A boxed module is a module, so models chosen at run time (`Box<dyn Module>`) train and
/// save like any other.
impl<M: Module + ?Sized> Module for Box<M> {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        (**self).forward(x)
    }
    fn params(&self) -> Vec<&Param> {
        (**self).params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        (**self).params_mut()
    }
    fn named_params(&self) -> Vec<(String, &Param)> {
        (**self).named_params()
    }
    fn prefix_names(&mut self, prefix: &str) {
        (**self).prefix_names(prefix)
    }
}
