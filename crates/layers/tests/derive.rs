//! `#[derive(Module)]`: parameters named by field path exactly as PyTorch's `state_dict`
//! names them, and stored names kept equal to paths for the optimizers.

use adamant_autodiff::{Mode, Param, Tape, Var};
use adamant_layers::{load, save, sequential, Dense, Module, Params, ReLU, Sequential};
use adamant_tensor::{rng::seeded, rng::Rng, Tensor};

/// A layer of one's own with two named parameters (a stand-in for `nn.LayerNorm`).
#[derive(Module)]
struct Norm {
    weight: Param,
    bias: Param,
}

impl Norm {
    fn new(n: usize) -> Norm {
        Norm {
            weight: Param::new("weight", Tensor::ones(&[n])),
            bias: Param::new("bias", Tensor::zeros(&[n])),
        }
    }
}

#[derive(Module)]
struct Mlp {
    c_fc: Dense,
    c_proj: Dense,
}

#[derive(Module)]
struct Block {
    ln_1: Norm,
    attn: Dense,
    ln_2: Norm,
    mlp: Mlp,
    /// Plain data: no attribute needed.
    heads: usize,
}

#[derive(Module)]
struct Gpt {
    wte: Dense,
    blocks: Vec<Block>,
    ln_f: Norm,
    /// `None`: contributes nothing, as a PyTorch submodule set to `None`.
    adapter: Option<Dense>,
    lm_head: Option<Dense>,
    /// Not a module: must be skipped by attribute.
    #[module(skip)]
    mask: Tensor,
    scale: f32,
    /// A raw identifier is named without its `r#`.
    r#type: Sequential,
}

fn gpt(rng: &mut Rng) -> Gpt {
    let block = |rng: &mut Rng| Block {
        ln_1: Norm::new(4),
        attn: Dense::new(4, 4, rng),
        ln_2: Norm::new(4),
        mlp: Mlp { c_fc: Dense::new(4, 8, rng), c_proj: Dense::new(8, 4, rng) },
        heads: 2,
    };
    Gpt {
        wte: Dense::without_bias(5, 4, rng),
        blocks: vec![block(rng), block(rng)],
        ln_f: Norm::new(4),
        adapter: None,
        lm_head: Some(Dense::without_bias(4, 5, rng)),
        mask: Tensor::ones(&[4]),
        scale: 0.5,
        r#type: sequential![ReLU, Dense::new(5, 2, rng)],
    }
}

impl Module for Gpt {
    fn forward<'t>(&self, x: Var<'t>) -> Var<'t> {
        let tape = x.tape();
        let norm = |n: &Norm, h: Var<'t>| h * tape.param(&n.weight) + tape.param(&n.bias);
        let mut h = self.wte.forward(x) * tape.constant(self.mask.clone());
        for b in &self.blocks {
            h = h + b.attn.forward(norm(&b.ln_1, h));
            h = h + b.mlp.c_proj.forward(b.mlp.c_fc.forward(norm(&b.ln_2, h)).relu());
        }
        let logits = self.lm_head.as_ref().expect("built with a head").forward(norm(&self.ln_f, h));
        self.r#type.forward(logits * self.scale)
    }
}

fn names(m: &dyn Params) -> Vec<String> {
    m.named_params().into_iter().map(|(n, _)| n).collect()
}

/// The keys of `state_dict()` of the equivalent PyTorch model, in its order:
///
/// ```python
/// class Norm(nn.Module):        # weight, bias as nn.Parameter
/// class Mlp(nn.Module):         # c_fc = nn.Linear(4, 8); c_proj = nn.Linear(8, 4)
/// class Block(nn.Module):       # ln_1 = Norm(4); attn = nn.Linear(4, 4); ln_2 = Norm(4); mlp = Mlp()
/// class Gpt(nn.Module):
///     def __init__(self):
///         super().__init__()
///         self.wte = nn.Linear(5, 4, bias=False)
///         self.blocks = nn.ModuleList([Block(), Block()])
///         self.ln_f = Norm(4)
///         self.adapter = None
///         self.lm_head = nn.Linear(4, 5, bias=False)
///         self.register_buffer("mask", torch.ones(4), persistent=False)
///         setattr(self, "type", nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
/// list(Gpt().state_dict())
/// ```
const TORCH_KEYS: [&str; 26] = [
    "wte.weight",
    "blocks.0.ln_1.weight",
    "blocks.0.ln_1.bias",
    "blocks.0.attn.weight",
    "blocks.0.attn.bias",
    "blocks.0.ln_2.weight",
    "blocks.0.ln_2.bias",
    "blocks.0.mlp.c_fc.weight",
    "blocks.0.mlp.c_fc.bias",
    "blocks.0.mlp.c_proj.weight",
    "blocks.0.mlp.c_proj.bias",
    "blocks.1.ln_1.weight",
    "blocks.1.ln_1.bias",
    "blocks.1.attn.weight",
    "blocks.1.attn.bias",
    "blocks.1.ln_2.weight",
    "blocks.1.ln_2.bias",
    "blocks.1.mlp.c_fc.weight",
    "blocks.1.mlp.c_fc.bias",
    "blocks.1.mlp.c_proj.weight",
    "blocks.1.mlp.c_proj.bias",
    "ln_f.weight",
    "ln_f.bias",
    "lm_head.weight",
    "type.1.weight",
    "type.1.bias",
];

#[test]
fn derived_names_are_torchs_state_dict_keys() {
    let model = gpt(&mut seeded(0));
    assert_eq!(names(&model), TORCH_KEYS);
    let scalars =
        5 * 4 + 2 * (4 + 4 + (4 * 4 + 4) + 4 + 4 + (4 * 8 + 8) + (8 * 4 + 4)) + 4 + 4 + 4 * 5 + (5 * 2 + 2);
    assert_eq!(model.num_params(), scalars);
    // The forward pass reads every parameter: a gradient for each name.
    let tape = Tape::new(Mode::Train, 0);
    let grads = model.forward(tape.constant(Tensor::ones(&[3, 5]))).cross_entropy(&[0, 1, 1]).backward();
    assert_eq!(grads.len(), TORCH_KEYS.len());
}

#[test]
fn a_struct_nested_in_a_sequential_and_boxed_is_named_below_its_index() {
    let mut rng = seeded(1);
    let outer = sequential![Dense::new(5, 5, &mut rng), gpt(&mut rng)];
    let want: Vec<String> = std::iter::once("0.weight".to_string())
        .chain(std::iter::once("0.bias".to_string()))
        .chain(TORCH_KEYS.iter().map(|k| format!("1.{k}")))
        .collect();
    assert_eq!(names(&outer), want);
    let boxed: Box<dyn Module> = Box::new(outer);
    assert_eq!(names(&boxed), want);
}

#[test]
fn params_mut_names_each_param_by_its_path_once() {
    let mut model = gpt(&mut seeded(2));
    // Built from parts, a derived struct's Params still carry their leaf names ...
    assert_eq!(model.params()[0].name(), "weight");
    // ... until params_mut, which hands the optimizer Params named by their paths.
    let stored: Vec<String> = model.params_mut().iter().map(|p| p.name().to_string()).collect();
    assert_eq!(stored, TORCH_KEYS);
    let stored: Vec<&str> = model.params().iter().map(|p| p.name()).collect();
    assert_eq!(stored, TORCH_KEYS);
    // Same Params, same order, same ids for all three views.
    let ids = |v: Vec<&Param>| v.iter().map(|p| p.id()).collect::<Vec<_>>();
    let by_name: Vec<&Param> = model.named_params().into_iter().map(|(_, p)| p).collect();
    assert_eq!(ids(by_name), ids(model.params()));
    // A module moved into another container is renamed on the next params_mut.
    let mut outer = sequential![ReLU, model];
    assert_eq!(outer.params()[0].name(), "1.wte.weight", "Sequential::new names at construction");
    assert!(outer.params_mut().iter().zip(TORCH_KEYS).all(|(p, k)| p.name() == format!("1.{k}")));
}

/// A generic container: the derive bounds the fields that use the type parameter.
#[derive(Module)]
struct Stack<M> {
    layers: Vec<M>,
    last: Option<Box<M>>,
    gains: [Param; 2],
}

#[test]
fn generic_structs_arrays_and_boxes() {
    let mut rng = seeded(3);
    let stack = Stack {
        layers: vec![Dense::without_bias(2, 2, &mut rng), Dense::without_bias(2, 2, &mut rng)],
        last: Some(Box::new(Dense::new(2, 1, &mut rng))),
        gains: [Param::new("g", Tensor::ones(&[1])), Param::new("g", Tensor::ones(&[1]))],
    };
    assert_eq!(
        names(&stack),
        ["layers.0.weight", "layers.1.weight", "last.weight", "last.bias", "gains.0", "gains.1"]
    );
}

/// Unit structs and structs of plain data have no parameters.
#[derive(Module)]
struct Nothing;

#[derive(Module)]
struct Config {
    width: usize,
    rate: f64,
    name: String,
    enabled: bool,
}

#[test]
fn parameterless_structs_have_no_names() {
    assert!(names(&Nothing).is_empty());
    let config = Config { width: 3, rate: 0.5, name: "x".into(), enabled: true };
    assert!(names(&config).is_empty());
    assert_eq!(config.num_params(), 0);
    assert_eq!((config.width, config.rate, config.name.as_str(), config.enabled), (3, 0.5, "x", true));
}

#[test]
fn a_derived_model_saves_and_loads_under_its_paths() {
    let dir = std::env::temp_dir().join(format!("adamant-derive-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gpt.safetensors");
    let saved = gpt(&mut seeded(5));
    save(&saved, &path).unwrap();
    let mut loaded = gpt(&mut seeded(6));
    load(&mut loaded, &path).unwrap();
    for ((n1, a), (n2, b)) in saved.named_params().into_iter().zip(loaded.named_params()) {
        assert_eq!(n1, n2);
        assert_eq!(a.value(), b.value(), "{n1}");
    }
    let file: Vec<String> =
        adamant_layers::serialize::load_tensors(&path).unwrap().into_iter().map(|(n, _)| n).collect();
    let mut keys: Vec<String> = TORCH_KEYS.iter().map(|k| k.to_string()).collect();
    keys.sort();
    assert_eq!(file, keys);
    let _ = std::fs::remove_dir_all(&dir);
}
