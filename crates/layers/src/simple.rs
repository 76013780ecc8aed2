//! Layers without parameters: activations, dropout, flatten.

use adamant_autodiff::Var;

use crate::Module;

macro_rules! parameterless {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, Module)]
        pub struct $name;

        impl Module for $name {
            fn forward<'t>(&self, $x: Var<'t>) -> Var<'t> {
                $body
            }
        }
    };
}

parameterless!(
    /// `max(x, 0)` (PyTorch `nn.ReLU`).
    ReLU, |x| x.relu()
);
parameterless!(
    /// The logistic function (PyTorch `nn.Sigmoid`).
    Sigmoid, |x| x.sigmoid()
);
parameterless!(
    /// Hyperbolic tangent (PyTorch `nn.Tanh`).
    Tanh, |x| x.tanh()
);
parameterless!(
    /// `log(1 + exp(x))` (PyTorch `nn.Softplus` with beta 1).
    Softplus, |x| x.softplus()
);
parameterless!(
    /// Flattens every axis after the batch axis (PyTorch `nn.Flatten`).
    Flatten, |x| x.flatten()
);
parameterless!(
    /// Returns its input (PyTorch `nn.Identity`): holds a place in a [`Sequential`] so that
    /// the layers after it keep their index, and with it their parameter names.
    ///
    /// [`Sequential`]: crate::Sequential
    Identity, |x| x
);

/// Inverted dropout (PyTorch `nn.Dropout(p)`): in training, zeroes each element with
/// probability `p` and scales the rest by `1 / (1 - p)`; the identity in evaluation.
#[derive(Clone, Copy, Debug, Module)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub p: f32,
}

impl Dropout {
    /// Dropout with drop probability `p`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1)`.
    pub fn new(p: f32) -> Dropout {
        assert!((0.0..1.0).contains(&p), "Dropout: probability must be in [0, 1), got {p}");
        Dropout { p }
    }
}

impl Module for Dropout {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        x.dropout(self.p)
    }
}
