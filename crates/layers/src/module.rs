//! The [`Params`] and [`Module`] traits, and [`Sequential`].
//!
//! Parameter names follow PyTorch's `state_dict` convention so that files and optimizer
//! state line up with PyTorch models of the same architecture: a layer calls its own
//! parameters `weight` and `bias`; `Sequential` prefixes its children with their position
//! (`"0.weight"`, `"3.bias"`); a struct of modules (`#[derive(Module)]`) prefixes them with
//! the field name (`"conv1.weight"`, `"blocks.0.ln_1.bias"`).

use std::marker::PhantomData;

use crate::buffer::Buffer;
use adamant_autodiff::{gradcheck_with, GradcheckOptions, GradcheckReport, Param, ParamSet, Tape, Var};

/// The trainable parameters of a model, each with its name: the half of [`Module`] that
/// `#[derive(Module)]` writes.
///
/// Everything is built on one walk, [`visit_params`](Params::visit_params) (and its `_mut`
/// twin), which calls `f(path, param)` for every parameter in a fixed order. The path is the
/// parameter's name: `prefix` followed by what the parameter is called inside `self`, dotted
/// like PyTorch's `state_dict` keys (`fc1.weight`, `blocks.0.ln_1.bias`). `prefix` is empty
/// at the root and otherwise ends with a dot; a container visits a child with its own prefix
/// plus the child's name and a dot (`"{prefix}fc1."`, `"{prefix}{i}."`).
///
/// # The path and [`Param::name`]
///
/// The path is the truth: [`named_params`](Params::named_params), saving, loading and
/// checkpoints use it. A `Param` also stores a name, a copy of its path for code that sees
/// the `Param` alone: optimizers key their state and select parameter groups by
/// [`Param::name`]. [`params_mut`](Params::params_mut) keeps that copy right: it renames
/// each parameter whose stored name differs from its path, so everything an optimizer
/// receives is named by its path; once the names match it renames (and allocates) nothing.
/// [`params`](Params::params) borrows immutably and returns the parameters with their names
/// as last set: [`Sequential::new`] sets them when it is built, while a freshly built
/// `#[derive(Module)]` struct still shows each leaf's own name (`weight`) until its first
/// `params_mut` (the first optimizer step, or [`load`](crate::load)). Ask `named_params`, not
/// `params`, for names.
///
/// # Deriving
///
/// `#[derive(Module)]` on a struct with named fields implements `Params` by visiting each
/// field under `"{prefix}{field}."`, in declaration order; what a field contributes is up to
/// its type's own `Params`:
///
/// | field type | parameters |
/// |---|---|
/// | a module (`Dense`, `Sequential`, a derived struct, `Box<dyn Module>`) | its own, below `field.` |
/// | [`Param`] | itself, named `field` |
/// | `Vec<M>`, `[M; N]` | element `i`'s below `field.i.` (PyTorch's `ModuleList`) |
/// | `Option<M>` | `M`'s when `Some`, none when `None` |
/// | plain data: `bool`, integers, floats, `char`, `String`, `()`, `PhantomData` | none |
///
/// Any other field type (a `Tensor` of constants, a configuration struct) is a compile error
/// until the field is marked `#[module(skip)]`, so that a layer type missing its `Params`
/// never silently drops out of training. `forward` cannot be derived: implement [`Module`]
/// yourself. A model whose input is not one float `Var` (token ids, a recurrent state)
/// implements only `Params` and gives itself a `forward` with the right arguments.
///
/// ```
/// use adamant_autodiff::{Param, Tape, Var};
/// use adamant_layers::{Dense, Module, Params};
/// use adamant_tensor::{rng::seeded, Tensor};
///
/// /// A layer of one's own: a learned gain, then a dense layer.
/// #[derive(Module)]
/// struct Scaled {
///     gain: Param,
///     proj: Dense,
/// }
///
/// #[derive(Module)]
/// struct Net {
///     input: Dense,
///     blocks: Vec<Scaled>,
///     head: Option<Dense>,
///     depth: usize, // plain data: nothing to visit, no attribute needed
///     #[module(skip)]
///     offset: Tensor, // not a parameter: skipped
/// }
///
/// impl Module for Scaled {
///     fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
///         self.proj.forward(x * x.tape().param(&self.gain))
///     }
/// }
///
/// impl Module for Net {
///     fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
///         let mut h = self.input.forward(x).relu() + x.tape().constant(self.offset.clone());
///         for block in &self.blocks {
///             h = block.forward(h).relu();
///         }
///         match &self.head {
///             Some(head) => head.forward(h),
///             None => h,
///         }
///     }
/// }
///
/// let rng = &mut seeded(0);
/// let mut net = Net {
///     input: Dense::new(4, 8, rng),
///     blocks: (0..2)
///         .map(|_| Scaled { gain: Param::new("gain", Tensor::ones(&[8])), proj: Dense::new(8, 8, rng) })
///         .collect(),
///     head: Some(Dense::without_bias(8, 3, rng)),
///     depth: 2,
///     offset: Tensor::zeros(&[8]),
/// };
/// let names: Vec<String> = net.named_params().into_iter().map(|(name, _)| name).collect();
/// assert_eq!(
///     names,
///     [
///         "input.weight", "input.bias",
///         "blocks.0.gain", "blocks.0.proj.weight", "blocks.0.proj.bias",
///         "blocks.1.gain", "blocks.1.proj.weight", "blocks.1.proj.bias",
///         "head.weight",
///     ]
/// );
/// // What an optimizer receives is named by the same paths.
/// assert_eq!(net.params_mut()[2].name(), "blocks.0.gain");
///
/// let tape = Tape::inference();
/// assert_eq!(net.forward(tape.constant(Tensor::ones(&[5, 4]))).shape(), [5, 3]);
/// ```
///
/// # Implementing by hand
///
/// A leaf calls `f` once per parameter; a container visits each child with a longer prefix.
/// The order of the calls is the order of [`params`](Params::params).
///
/// ```
/// use adamant_autodiff::Param;
/// use adamant_layers::{Dense, Params};
///
/// struct Pair {
///     left: Dense,
///     right: Dense,
///     scale: Param,
/// }
///
/// impl Params for Pair {
///     fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
///         self.left.visit_params(&format!("{prefix}left."), f);
///         self.right.visit_params(&format!("{prefix}right."), f);
///         f(&format!("{prefix}scale"), &self.scale);
///     }
///     fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
///         self.left.visit_params_mut(&format!("{prefix}left."), f);
///         self.right.visit_params_mut(&format!("{prefix}right."), f);
///         f(&format!("{prefix}scale"), &mut self.scale);
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `Params`: it is not a module, a `Param` or plain data",
    label = "not a module",
    note = "mark a field that holds no parameters `#[module(skip)]`"
)]
pub trait Params {
    /// Calls `f(path, param)` for every parameter, in a fixed order; `path` is `prefix`
    /// followed by the parameter's dotted name inside `self`.
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param));

    /// [`visit_params`](Params::visit_params) with mutable access, in the same order.
    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param));

    /// `(path, parameter)` pairs: the names under which the model saves, as PyTorch's
    /// `state_dict` keys (`"0.weight"`, `"conv1.bias"`).
    fn named_params(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        self.visit_params("", &mut |path, p| out.push((path.to_string(), p)));
        out
    }

    /// The parameters, in the order of [`named_params`](Params::named_params). Their stored
    /// names are as [`params_mut`](Params::params_mut) last set them (see the trait docs).
    fn params(&self) -> Vec<&Param> {
        let mut out = Vec::new();
        self.visit_params("", &mut |_, p| out.push(p));
        out
    }

    /// The parameters, mutably, in the same order, each renamed to its path where its stored
    /// name differs: this is what an optimizer's `step` receives every step, and optimizers
    /// key their state by [`Param::name`]. Only the returned `Vec` is allocated once the
    /// names match.
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut count = 0;
        self.visit_params("", &mut |_, _| count += 1);
        let mut out = Vec::with_capacity(count);
        self.visit_params_mut("", &mut |path, p| {
            if p.name() != path {
                p.set_name(path);
            }
            out.push(p);
        });
        out
    }

    /// Calls `f(path, buffer)` for every [`Buffer`] (non-trainable state, such as batch norm's
    /// running statistics), in a fixed order, with paths formed as for parameters. Optimizers
    /// never see buffers; saving, loading and checkpoints do. The default visits none: a layer
    /// with buffers implements it, and `#[derive(Module)]` forwards it to every field.
    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        let _ = (prefix, f);
    }

    /// `(path, buffer)` pairs: the names under which the model saves its buffers, as PyTorch's
    /// `state_dict` keys (`"bn1.running_mean"`, `"bn1.num_batches_tracked"`).
    fn named_buffers(&self) -> Vec<(String, &Buffer)> {
        let mut out = Vec::new();
        self.visit_buffers("", &mut |path, b| out.push((path.to_string(), b)));
        out
    }

    /// Total number of scalars in the parameters.
    fn num_params(&self) -> usize {
        let mut total = 0;
        self.visit_params("", &mut |_, p| total += p.numel());
        total
    }
}

/// A building block of a network: a forward function over its [`Params`].
///
/// `forward` reads parameters into the input's tape (`x.tape().param(&self.weight)`), and
/// the tape says whether this is training or evaluation (dropout) and holds the step seed.
/// The parameters, their names and what optimizers receive come from the supertrait
/// [`Params`], which `#[derive(Module)]` implements for a struct of modules.
pub trait Module: Params {
    /// Applies the module to `x`.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t>;
}

/// The derive's path builder, and what its expansion names (not a public API).
#[doc(hidden)]
pub mod __private {
    pub use crate::buffer::Buffer;
    pub use adamant_autodiff::Param;

    use std::fmt::{self, Write};

    /// A path short enough for a buffer on the stack (every real one is).
    struct StackPath {
        buf: [u8; 256],
        len: usize,
    }

    impl Write for StackPath {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
            dst.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    /// Calls `f` with `path` formatted, on the stack unless it is longer than 256 bytes, so
    /// that the walk behind every step's `params_mut` allocates nothing.
    pub fn with_path<R>(path: fmt::Arguments<'_>, f: impl FnOnce(&str) -> R) -> R {
        let mut stack = StackPath { buf: [0; 256], len: 0 };
        if stack.write_fmt(path).is_ok() {
            // Whole `str`s were copied in, so the bytes are UTF-8.
            f(std::str::from_utf8(&stack.buf[..stack.len]).expect("concatenated str pieces"))
        } else {
            f(&path.to_string())
        }
    }
}

use __private::with_path;

/// A parameter is named by its position: the prefix without its final dot (`"fc1.weight."`
/// is `fc1.weight`). With an empty prefix, as when a lone `Param` is asked for its
/// parameters, the path is its stored name.
impl Params for Param {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        match prefix.strip_suffix('.').unwrap_or(prefix) {
            "" => f(self.name(), self),
            path => f(path, self),
        }
    }

    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        match prefix.strip_suffix('.').unwrap_or(prefix) {
            "" => {
                let name = self.name().to_string();
                f(&name, self)
            }
            path => f(path, self),
        }
    }
}

/// Element `i` is visited under `"{prefix}{i}."`, as PyTorch's `nn.ModuleList` names it.
/// A buffer on its own is visited like a `Param`: under its path, or its field name in a
/// derived struct. It has no parameters.
impl Params for Buffer {
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
    fn visit_params_mut<'a>(&'a mut self, _: &str, _: &mut dyn FnMut(&str, &'a mut Param)) {}
    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        f(prefix.strip_suffix('.').unwrap_or(prefix), self)
    }
}

impl<M: Params> Params for [M] {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        for (i, m) in self.iter().enumerate() {
            with_path(format_args!("{prefix}{i}."), |prefix| m.visit_params(prefix, f));
        }
    }

    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        for (i, m) in self.iter_mut().enumerate() {
            with_path(format_args!("{prefix}{i}."), |prefix| m.visit_params_mut(prefix, f));
        }
    }

    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        for (i, m) in self.iter().enumerate() {
            with_path(format_args!("{prefix}{i}."), |prefix| m.visit_buffers(prefix, f));
        }
    }
}

/// Numbered like a slice: `"{prefix}{i}."`.
impl<M: Params> Params for Vec<M> {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        self.as_slice().visit_params(prefix, f)
    }

    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        self.as_mut_slice().visit_params_mut(prefix, f)
    }

    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        self.as_slice().visit_buffers(prefix, f)
    }
}

/// Numbered like a slice: `"{prefix}{i}."`.
impl<M: Params, const N: usize> Params for [M; N] {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        self.as_slice().visit_params(prefix, f)
    }

    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        self.as_mut_slice().visit_params_mut(prefix, f)
    }

    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        self.as_slice().visit_buffers(prefix, f)
    }
}

/// The inner value's parameters when `Some`, under the same prefix; none when `None` (as
/// PyTorch skips a submodule set to `None`).
impl<M: Params> Params for Option<M> {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        if let Some(m) = self {
            m.visit_params(prefix, f)
        }
    }

    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        if let Some(m) = self {
            m.visit_params_mut(prefix, f)
        }
    }

    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        if let Some(m) = self {
            m.visit_buffers(prefix, f)
        }
    }
}

/// A boxed value's parameters, under the same prefix: models chosen at run time
/// (`Box<dyn Module>`) train and save like any other.
impl<M: Params + ?Sized> Params for Box<M> {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        (**self).visit_params(prefix, f)
    }

    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        (**self).visit_params_mut(prefix, f)
    }

    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        (**self).visit_buffers(prefix, f)
    }
}

/// Plain data holds no parameters, so a struct deriving `Module` may keep sizes, rates and
/// flags in fields without `#[module(skip)]`.
macro_rules! no_params {
    ($($ty:ty),* $(,)?) => {$(
        impl Params for $ty {
            fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
            fn visit_params_mut<'a>(&'a mut self, _: &str, _: &mut dyn FnMut(&str, &'a mut Param)) {}
        }
    )*};
}

no_params!(bool, char, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, String, ());

/// A type marker holds no parameters.
impl<T: ?Sized> Params for PhantomData<T> {
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
    fn visit_params_mut<'a>(&'a mut self, _: &str, _: &mut dyn FnMut(&str, &'a mut Param)) {}
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
    /// A sequence of modules; names their parameters `"{index}.{name}"` right away, so that
    /// [`Params::params`] shows the same names as [`Params::named_params`].
    pub fn new(layers: Vec<Box<dyn Module + Send + Sync>>) -> Sequential {
        let mut sequential = Sequential { layers };
        sequential.params_mut();
        sequential
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

/// Child `i` under `"{prefix}{i}."`.
impl Params for Sequential {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        self.layers.visit_params(prefix, f)
    }

    fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        self.layers.visit_params_mut(prefix, f)
    }

    fn visit_buffers<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Buffer)) {
        self.layers.visit_buffers(prefix, f)
    }
}

impl Module for Sequential {
    /// Applies the layers in order.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.layers.iter().fold(x, |h, layer| layer.forward(h))
    }
}

/// A model seen as a [`ParamSet`], so that [`gradcheck_module`] can perturb its parameters.
struct ModuleParams<'a, M: Params + ?Sized>(&'a mut M);

impl<M: Params + ?Sized> ParamSet for ModuleParams<'_, M> {
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
    M: Params + ?Sized,
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
}
