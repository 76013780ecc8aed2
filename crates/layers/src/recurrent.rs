//! Recurrent layers with PyTorch's parameters, gate order, names and shapes: [`RNN`],
//! [`GRU`], [`LSTM`].
//!
//! Each layer `l` has `weight_ih_l{l}` `[G H, in]`, `weight_hh_l{l}` `[G H, H]`,
//! `bias_ih_l{l}` and `bias_hh_l{l}` `[G H]`, with `G` gates stacked by rows in PyTorch's order
//! (RNN 1; GRU 3: reset, update, new; LSTM 4: input, forget, cell, output), all initialised
//! `U(-1/sqrt(H), 1/sqrt(H))`. The input projection of every time step is one product before
//! the loop (`[B, T, in] -> [B, T, G H]`); the loop does the hidden projection and the gates,
//! composing ops of the tape, so gradients reach the input, the initial state and every
//! weight with no hand-written backward.

use adamant_autodiff::{Param, Var};
use adamant_tensor::{rng::Rng, Tensor};

use crate::{init, Buffer, Module, Params};

/// The weights of one stacked layer.
struct Weights {
    ih: Param,
    hh: Param,
    bias_ih: Option<Param>,
    bias_hh: Option<Param>,
}

/// The shared part of the three layers: shapes, options and the per-layer weights.
struct Stack {
    hidden_size: usize,
    layers: Vec<Weights>,
    batch_first: bool,
    dropout: f32,
}

/// The options of PyTorch's recurrent constructors (`num_layers=1, bias=True,
/// batch_first=False, dropout=0.0`); `bidirectional` is not supported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentOptions {
    /// Stacked layers; layer `l > 0` reads layer `l - 1`'s outputs.
    pub num_layers: usize,
    /// Whether the layers have `bias_ih_l*` and `bias_hh_l*`.
    pub bias: bool,
    /// Input and output `[B, T, C]` when true, `[T, B, C]` (PyTorch's default) when false.
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last (training only).
    pub dropout: f32,
}

impl Default for RecurrentOptions {
    fn default() -> RecurrentOptions {
        RecurrentOptions { num_layers: 1, bias: true, batch_first: false, dropout: 0.0 }
    }
}

impl Stack {
    fn new(
        gates: usize,
        input_size: usize,
        hidden_size: usize,
        options: RecurrentOptions,
        rng: &mut Rng,
    ) -> Stack {
        assert!(options.num_layers > 0, "recurrent layer: num_layers must be at least 1");
        let bound = 1.0 / (hidden_size as f32).sqrt();
        let g = gates * hidden_size;
        let layers = (0..options.num_layers)
            .map(|l| {
                let input = if l == 0 { input_size } else { hidden_size };
                Weights {
                    ih: Param::new(format!("weight_ih_l{l}"), init::uniform(&[g, input], bound, rng)),
                    hh: Param::new(format!("weight_hh_l{l}"), init::uniform(&[g, hidden_size], bound, rng)),
                    bias_ih: options
                        .bias
                        .then(|| Param::new(format!("bias_ih_l{l}"), init::uniform(&[g], bound, rng))),
                    bias_hh: options
                        .bias
                        .then(|| Param::new(format!("bias_hh_l{l}"), init::uniform(&[g], bound, rng))),
                }
            })
            .collect();
        Stack { hidden_size, layers, batch_first: options.batch_first, dropout: options.dropout }
    }

    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        for (l, w) in self.layers.iter().enumerate() {
            f(&format!("{prefix}weight_ih_l{l}"), &w.ih);
            f(&format!("{prefix}weight_hh_l{l}"), &w.hh);
            if let (Some(bi), Some(bh)) = (&w.bias_ih, &w.bias_hh) {
                f(&format!("{prefix}bias_ih_l{l}"), bi);
                f(&format!("{prefix}bias_hh_l{l}"), bh);
            }
        }
    }

    fn visit_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
        for (l, w) in self.layers.iter_mut().enumerate() {
            f(&format!("{prefix}weight_ih_l{l}"), &mut w.ih);
            f(&format!("{prefix}weight_hh_l{l}"), &mut w.hh);
            if let (Some(bi), Some(bh)) = (&mut w.bias_ih, &mut w.bias_hh) {
                f(&format!("{prefix}bias_ih_l{l}"), bi);
                f(&format!("{prefix}bias_hh_l{l}"), bh);
            }
        }
    }

    /// `x` as `[B, T, C]`, checking its width.
    fn batch_major<'t>(&self, op: &str, x: Var<'t>) -> Var<'t> {
        self.batch_size(op, &x.shape());
        if self.batch_first {
            x
        } else {
            x.transpose(0, 1)
        }
    }

    /// The batch size of input of `shape`, checking its rank and width.
    fn batch_size(&self, op: &str, shape: &[usize]) -> usize {
        let input = self.layers[0].ih.shape()[1];
        let layout = if self.batch_first { "[batch, time, input]" } else { "[time, batch, input]" };
        assert!(
            shape.len() == 3 && shape[2] == input,
            "{op}: expected {layout} input with input size {input}, got shape {shape:?}"
        );
        if self.batch_first {
            shape[0]
        } else {
            shape[1]
        }
    }

    /// The initial state of every layer: `state` `[num_layers, B, H]` split by layer, or zeros.
    fn initial<'t>(&self, op: &str, x: Var<'t>, state: Option<Var<'t>>, batch: usize) -> Vec<Var<'t>> {
        let (layers, h) = (self.layers.len(), self.hidden_size);
        match state {
            Some(s) => {
                assert_eq!(
                    s.shape(),
                    [layers, batch, h],
                    "{op}: initial state must be [num_layers, batch, hidden] = {:?}",
                    [layers, batch, h]
                );
                (0..layers).map(|l| s.select(0, l)).collect()
            }
            None => (0..layers).map(|_| x.tape().constant(Tensor::zeros(&[batch, h]))).collect(),
        }
    }

    /// Runs every layer over time. `cell(gates_x, gates_h, states) -> states` advances one
    /// step (`states[0]` is the output `h`); returns the outputs in the caller's layout and
    /// the final states of every layer, stacked `[num_layers, B, H]`.
    fn run<'t>(
        &self,
        op: &str,
        x: Var<'t>,
        initial: Vec<Vec<Var<'t>>>,
        cell: impl Fn(Var<'t>, Var<'t>, &[Var<'t>]) -> Vec<Var<'t>>,
    ) -> (Var<'t>, Vec<Var<'t>>) {
        let tape = x.tape();
        let mut input = self.batch_major(op, x);
        let steps = input.shape()[1];
        assert!(steps > 0, "{op}: the input has no time steps");
        let mut finals: Vec<Vec<Var<'t>>> = Vec::new();
        for (l, (w, mut states)) in self.layers.iter().zip(initial).enumerate() {
            // Every step's input projection at once: [B, T, in] -> [B, T, G H].
            let mut xw = input.matmul_nt(tape.param(&w.ih));
            if let Some(b) = &w.bias_ih {
                xw = xw + tape.param(b);
            }
            let (hh, bias_hh) = (tape.param(&w.hh), w.bias_hh.as_ref().map(|b| tape.param(b)));
            let mut outputs = Vec::with_capacity(steps);
            for t in 0..steps {
                let mut gates_h = states[0].matmul_nt(hh);
                if let Some(b) = bias_hh {
                    gates_h = gates_h + b;
                }
                states = cell(xw.select(1, t), gates_h, &states);
                outputs.push(states[0]);
            }
            input = Var::stack(&outputs, 1);
            if l + 1 < self.layers.len() {
                input = input.dropout(self.dropout);
            }
            finals.push(states);
        }
        let output = if self.batch_first { input } else { input.transpose(0, 1) };
        let per_state = finals[0].len();
        let stacked =
            (0..per_state).map(|s| Var::stack(&finals.iter().map(|f| f[s]).collect::<Vec<_>>(), 0)).collect();
        (output, stacked)
    }
}

macro_rules! recurrent_params {
    ($name:ident) => {
        impl Params for $name {
            fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
                self.stack.visit(prefix, f)
            }
            fn visit_params_mut<'a>(&'a mut self, prefix: &str, f: &mut dyn FnMut(&str, &'a mut Param)) {
                self.stack.visit_mut(prefix, f)
            }
            fn visit_buffers<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Buffer)) {}
        }
    };
}

/// The nonlinearity of an [`RNN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RnnNonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// Elman RNN (PyTorch's `nn.RNN(input_size, hidden_size, num_layers, nonlinearity, bias,
/// batch_first, dropout)`): `h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`.
#[allow(clippy::upper_case_acronyms)]
pub struct RNN {
    stack: Stack,
    nonlinearity: RnnNonlinearity,
}

recurrent_params!(RNN);

impl RNN {
    /// One layer, tanh, biases, `[T, B, C]` layout: PyTorch's defaults.
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut Rng) -> RNN {
        RNN::with_options(input_size, hidden_size, RnnNonlinearity::Tanh, RecurrentOptions::default(), rng)
    }

    /// Every option.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: RnnNonlinearity,
        options: RecurrentOptions,
        rng: &mut Rng,
    ) -> RNN {
        RNN { stack: Stack::new(1, input_size, hidden_size, options, rng), nonlinearity }
    }

    /// Runs over the sequence `x` from the initial state `h0` (`[num_layers, B, H]`, zeros
    /// when `None`); returns the last layer's output at every step (`[B, T, H]` or
    /// `[T, B, H]`, as the input) and the final state `[num_layers, B, H]`.
    pub fn forward_with_state<'t>(&self, x: Var<'t>, h0: Option<Var<'t>>) -> (Var<'t>, Var<'t>) {
        let batch = self.stack.batch_size("RNN", &x.shape());
        let initial = self.stack.initial("RNN", x, h0, batch).into_iter().map(|h| vec![h]).collect();
        let (output, states) = self.stack.run("RNN", x, initial, |gx, gh, _| {
            let pre = gx + gh;
            vec![match self.nonlinearity {
                RnnNonlinearity::Tanh => pre.tanh(),
                RnnNonlinearity::Relu => pre.relu(),
            }]
        });
        (output, states[0])
    }
}

impl Module for RNN {
    /// The outputs of [`RNN::forward_with_state`] from a zero state.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.forward_with_state(x, None).0
    }
}

/// Gated recurrent unit (PyTorch's `nn.GRU`), gates in PyTorch's order (reset, update, new):
///
/// ```text
/// r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
/// z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
/// n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
/// h' = (1 - z) * n + z * h
/// ```
#[allow(clippy::upper_case_acronyms)]
pub struct GRU {
    stack: Stack,
}

recurrent_params!(GRU);

impl GRU {
    /// One layer, biases, `[T, B, C]` layout: PyTorch's defaults.
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut Rng) -> GRU {
        GRU::with_options(input_size, hidden_size, RecurrentOptions::default(), rng)
    }

    /// Every option.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        options: RecurrentOptions,
        rng: &mut Rng,
    ) -> GRU {
        GRU { stack: Stack::new(3, input_size, hidden_size, options, rng) }
    }

    /// As [`RNN::forward_with_state`]: outputs and the final state `[num_layers, B, H]`.
    pub fn forward_with_state<'t>(&self, x: Var<'t>, h0: Option<Var<'t>>) -> (Var<'t>, Var<'t>) {
        let batch = self.stack.batch_size("GRU", &x.shape());
        let initial = self.stack.initial("GRU", x, h0, batch).into_iter().map(|h| vec![h]).collect();
        let (output, states) = self.stack.run("GRU", x, initial, |gx, gh, states| {
            let (x3, h3) = (gx.chunk(3, -1), gh.chunk(3, -1));
            let r = (x3[0] + h3[0]).sigmoid();
            let z = (x3[1] + h3[1]).sigmoid();
            let n = (x3[2] + r * h3[2]).tanh();
            // (1 - z) n + z h, written as PyTorch's kernel computes it: n + z (h - n).
            vec![n + z * (states[0] - n)]
        });
        (output, states[0])
    }
}

impl Module for GRU {
    /// The outputs of [`GRU::forward_with_state`] from a zero state.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.forward_with_state(x, None).0
    }
}

/// Long short-term memory (PyTorch's `nn.LSTM`), gates in PyTorch's order (input, forget,
/// cell, output):
///
/// ```text
/// i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_i* x + b_i* + W_h* h + b_h*)
/// c' = f * c + i * g
/// h' = o * tanh(c')
/// ```
#[allow(clippy::upper_case_acronyms)]
pub struct LSTM {
    stack: Stack,
}

recurrent_params!(LSTM);

impl LSTM {
    /// One layer, biases, `[T, B, C]` layout: PyTorch's defaults.
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut Rng) -> LSTM {
        LSTM::with_options(input_size, hidden_size, RecurrentOptions::default(), rng)
    }

    /// Every option.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        options: RecurrentOptions,
        rng: &mut Rng,
    ) -> LSTM {
        LSTM { stack: Stack::new(4, input_size, hidden_size, options, rng) }
    }

    /// Runs over `x` from `(h0, c0)` (each `[num_layers, B, H]`, zeros when `None`); returns
    /// the outputs (`h` of the last layer at every step) and the final `(h_n, c_n)`.
    pub fn forward_with_state<'t>(
        &self,
        x: Var<'t>,
        state: Option<(Var<'t>, Var<'t>)>,
    ) -> (Var<'t>, (Var<'t>, Var<'t>)) {
        let batch = self.stack.batch_size("LSTM", &x.shape());
        let (h0, c0) = match state {
            Some((h, c)) => (Some(h), Some(c)),
            None => (None, None),
        };
        let hs = self.stack.initial("LSTM", x, h0, batch);
        let cs = self.stack.initial("LSTM", x, c0, batch);
        let initial = hs.into_iter().zip(cs).map(|(h, c)| vec![h, c]).collect();
        let (output, states) = self.stack.run("LSTM", x, initial, |gx, gh, states| {
            let g4 = (gx + gh).chunk(4, -1);
            let (i, f, g, o) = (g4[0].sigmoid(), g4[1].sigmoid(), g4[2].tanh(), g4[3].sigmoid());
            let c = f * states[1] + i * g;
            vec![o * c.tanh(), c]
        });
        (output, (states[0], states[1]))
    }
}

impl Module for LSTM {
    /// The outputs of [`LSTM::forward_with_state`] from a zero state.
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        self.forward_with_state(x, None).0
    }
}
