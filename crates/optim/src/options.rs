//! Building an optimizer by name: one table of every hyperparameter, one line of registration
//! per optimizer.
//!
//! [`options_table!`](crate::options) below is the only place a hyperparameter is declared:
//! its name (`weight_decay`, spelled `--weight-decay` on a command line), its kind (a number,
//! a pair, a switch, a count or a choice of words), its valid range and its help text. The struct [`OptimizerOptions`]
//! (one optional field per hyperparameter), the range checks, the command-line parsing of
//! `adamant-lab` and its usage text are all generated from that table.
//!
//! Each optimizer's own file implements [`FromOptions`]: its name, and how it reads the
//! options it has into its config; the defaults are the config's `Default`, i.e.
//! `torch.optim`'s. [`REGISTRY`] lists the optimizers, one line each in `lib.rs`'s
//! `optimizers!`, which also declares the optimizer's module. An option that an
//! optimizer does not read is "not an option of" it: nothing else records which optimizer
//! has which option, so that list cannot drift from the code.
//!
//! ```
//! use adamant_optim::options::{build, OptimizerOptions};
//!
//! let sgd = build("sgd", &OptimizerOptions { lr: Some(0.1), momentum: Some(0.9), ..Default::default() });
//! assert_eq!(sgd.unwrap().lr(), 0.1);
//! let e = build("adam", &OptimizerOptions { momentum: Some(0.9), ..Default::default() }).err().unwrap();
//! assert_eq!(e.to_string(), "momentum is not an option of adam");
//! let e = build("adam", &OptimizerOptions { lr: Some(-1.0), ..Default::default() }).err().unwrap();
//! assert_eq!(e.to_string(), "lr must be >= 0, got -1");
//! ```

use std::cell::RefCell;
use std::fmt;

use crate::Optimizer;

/// Every optimizer [`build`] knows, in the order of the usage text: the `optimizers!` list
/// in `lib.rs`, where each optimizer is one line.
pub const REGISTRY: &[Registration] = crate::REGISTERED;

/// How an option is written and stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// One number (`--lr 0.001`), stored as `Option<f32>`.
    Number,
    /// Two numbers (`--betas 0.9,0.999`), stored as `Option<(f32, f32)>`.
    Pair,
    /// A switch without a value (`--amsgrad`), stored as `bool` (`false`: not given).
    Switch,
    /// A whole number (`--ns-steps 5`), stored as `Option<u32>`; its range bounds it too.
    Count,
    /// One word of a fixed list (`--adjust-lr-fn original`), stored as
    /// `Option<&'static str>` pointing into [`OptionSpec::choices`].
    Choice,
}

/// The valid values of a number (each number of a pair): `low <= x` (or `low < x`) and
/// `x < high` (or `x <= high`). NaN is never valid, nor an infinity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// The lower bound.
    pub low: f32,
    /// Whether `low` itself is excluded.
    pub low_open: bool,
    /// The upper bound (`f32::INFINITY`: none).
    pub high: f32,
    /// Whether `high` itself is included.
    pub high_closed: bool,
}

impl Range {
    /// `[0, inf)`: rates, decays, terms that must not be negative.
    pub const NON_NEGATIVE: Range =
        Range { low: 0.0, low_open: false, high: f32::INFINITY, high_closed: false };
    /// `[0, 1)`: moment decay rates, which must forget.
    pub const UNIT_OPEN: Range = Range { low: 0.0, low_open: false, high: 1.0, high_closed: false };
    /// `[0, 1]`.
    pub const UNIT: Range = Range { low: 0.0, low_open: false, high: 1.0, high_closed: true };
    /// `(-inf, 0]`: exponents of decay schedules, such as Adafactor's `beta2_decay`.
    pub const NON_POSITIVE: Range =
        Range { low: f32::NEG_INFINITY, low_open: true, high: 0.0, high_closed: true };
    /// `[1, inf)`: thresholds and factors that must not shrink below one.
    pub const AT_LEAST_ONE: Range =
        Range { low: 1.0, low_open: false, high: f32::INFINITY, high_closed: false };
    /// `[1, 100)`: iteration counts, as `torch.optim.Muon` bounds its Newton-Schulz steps (a
    /// hundred or more is a mistake, not a choice).
    pub const ITERATIONS: Range = Range { low: 1.0, low_open: false, high: 100.0, high_closed: false };

    /// Whether `x` is in the range (and finite).
    pub fn contains(&self, x: f32) -> bool {
        let low_ok = if self.low_open { x > self.low } else { x >= self.low };
        let high_ok = if self.high_closed { x <= self.high } else { x < self.high };
        x.is_finite() && low_ok && high_ok
    }
}

impl fmt::Display for Range {
    /// `>= 0`, `> 0`, `<= 0`, or `in [0, 1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let low = if self.low_open { ">" } else { ">=" };
        if self.low == f32::NEG_INFINITY {
            write!(f, "{} {}", if self.high_closed { "<=" } else { "<" }, self.high)
        } else if self.high == f32::INFINITY {
            write!(f, "{low} {}", self.low)
        } else {
            let (l, h) = (if self.low_open { "(" } else { "[" }, if self.high_closed { "]" } else { ")" });
            write!(f, "in {l}{}, {}{h}", self.low, self.high)
        }
    }
}

/// One hyperparameter, as declared in the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptionSpec {
    /// The name: a field of [`OptimizerOptions`], and `--name` with `-` for `_` on a command
    /// line.
    pub name: &'static str,
    /// How it is written.
    pub kind: OptionKind,
    /// Its valid values (numbers, pairs and counts).
    pub range: Range,
    /// The words a [`OptionKind::Choice`] accepts (empty for other kinds).
    pub choices: &'static [&'static str],
    /// One line of help: the table entry's doc comment (with the leading space rustdoc keeps;
    /// [`OptionSpec::help`] trims it).
    pub help_doc: &'static str,
}

impl OptionSpec {
    /// The one line of help.
    pub fn help(&self) -> &'static str {
        self.help_doc.trim()
    }

    /// The command-line spelling: `--weight-decay`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

/// A value of an option, whatever its kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptionValue {
    /// A number.
    Number(f32),
    /// Two numbers.
    Pair(f32, f32),
    /// A switch that is on.
    Switch,
    /// A whole number.
    Count(u32),
    /// One of the option's [`OptionSpec::choices`].
    Choice(&'static str),
}

impl fmt::Display for OptionValue {
    /// As it is written on a command line after the flag: `0.001`, `0.9,0.999`, `1e-8`, or
    /// nothing for a switch.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Small numbers in exponent form: 1e-8, not 0.00000001.
        let number = |x: f32| if x != 0.0 && x.abs() < 1e-3 { format!("{x:e}") } else { format!("{x}") };
        match *self {
            OptionValue::Number(x) => f.write_str(&number(x)),
            OptionValue::Pair(a, b) => write!(f, "{},{}", number(a), number(b)),
            OptionValue::Switch => Ok(()),
            OptionValue::Count(n) => write!(f, "{n}"),
            OptionValue::Choice(word) => f.write_str(word),
        }
    }
}

/// The Rust type that stores an option of each kind.
macro_rules! option_type {
    (Number) => { Option<f32> };
    (Pair) => { Option<(f32, f32)> };
    (Switch) => { bool };
    (Count) => { Option<u32> };
    (Choice) => { Option<&'static str> };
}

/// The value stored for an option of each kind, if it was given.
macro_rules! option_value {
    (Number, $x:expr) => {
        $x.map(OptionValue::Number)
    };
    (Pair, $x:expr) => {
        $x.map(|(a, b)| OptionValue::Pair(a, b))
    };
    (Switch, $x:expr) => {
        $x.then_some(OptionValue::Switch)
    };
    (Count, $x:expr) => {
        $x.map(OptionValue::Count)
    };
    (Choice, $x:expr) => {
        $x.map(OptionValue::Choice)
    };
}

/// Stores `$v` into the field of an option of each kind; `None` if the kinds differ.
macro_rules! option_store {
    (Number, $field:expr, $v:expr) => {
        if let OptionValue::Number(x) = $v {
            $field = Some(x);
            Some(())
        } else {
            None
        }
    };
    (Pair, $field:expr, $v:expr) => {
        if let OptionValue::Pair(a, b) = $v {
            $field = Some((a, b));
            Some(())
        } else {
            None
        }
    };
    (Switch, $field:expr, $v:expr) => {
        if let OptionValue::Switch = $v {
            $field = true;
            Some(())
        } else {
            None
        }
    };
    (Count, $field:expr, $v:expr) => {
        if let OptionValue::Count(n) = $v {
            $field = Some(n);
            Some(())
        } else {
            None
        }
    };
    (Choice, $field:expr, $v:expr) => {
        if let OptionValue::Choice(word) = $v {
            $field = Some(word);
            Some(())
        } else {
            None
        }
    };
}

/// Generates [`OptimizerOptions`], [`OPTIONS`] and the generic accessors from one table.
macro_rules! options_table {
    ($( $(#[doc = $doc:literal])+ $field:ident: $kind:ident $([$($choice:literal),+])? $(in $range:expr)?; )*) => {
        /// Hyperparameters as given by a user or a command line; `None` (or `false` for a
        /// switch) means the optimizer's default. One field per entry of [`OPTIONS`].
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct OptimizerOptions {
            $( $(#[doc = $doc])+ pub $field: option_type!($kind), )*
        }

        /// Every hyperparameter of every optimizer: the one table.
        pub const OPTIONS: &[OptionSpec] = &[
            $( OptionSpec {
                name: stringify!($field),
                kind: OptionKind::$kind,
                range: options_table!(@range $($range)?),
                choices: options_table!(@choices $([$($choice),+])?),
                help_doc: concat!($($doc),+),
            }, )*
        ];

        impl OptimizerOptions {
            /// The value of option `name` if it was given.
            pub fn get(&self, name: &str) -> Option<OptionValue> {
                match name {
                    $( stringify!($field) => option_value!($kind, self.$field), )*
                    _ => None,
                }
            }

            /// Sets option `name`; an error if there is no such option or `value` is of
            /// another kind. The range is checked when an optimizer is built.
            pub fn set(&mut self, name: &str, value: OptionValue) -> Result<(), OptionsError> {
                let stored = match name {
                    $( stringify!($field) => option_store!($kind, self.$field, value), )*
                    _ => return Err(OptionsError::UnknownOption(name.to_string())),
                };
                stored.ok_or_else(|| OptionsError::Invalid {
                    option: spec(name).name,
                    reason: format!("takes {:?}, got {value:?}", spec(name).kind),
                })
            }

            /// The options given here, with `defaults` for the rest (an experiment's own
            /// defaults under a user's choices).
            pub fn or(&self, defaults: &OptimizerOptions) -> OptimizerOptions {
                OptimizerOptions {
                    $( $field: options_table!(@or $kind, self.$field, defaults.$field), )*
                }
            }
        }
    };
    (@range) => { Range::NON_NEGATIVE };
    (@range $range:expr) => { $range };
    (@choices) => { &[] };
    (@choices [$($choice:literal),+]) => { &[$($choice),+] };
    (@or Switch, $a:expr, $b:expr) => { $a || $b };
    (@or $kind:ident, $a:expr, $b:expr) => { $a.or($b) };
}

options_table! {
    /// learning rate
    lr: Number;
    /// moment decay rates beta1,beta2
    betas: Pair in Range::UNIT_OPEN;
    /// term added to the denominator
    eps: Number;
    /// L2 penalty (decoupled in adamw, lion, adabelief, adafactor, muon)
    weight_decay: Number;
    /// keep the maximum of the second moment (AMSGrad)
    amsgrad: Switch;
    /// momentum factor
    momentum: Number;
    /// dampening of the momentum
    dampening: Number in Range::UNIT;
    /// Nesterov momentum
    nesterov: Switch;
    /// smoothing constant of the squared-gradient average
    alpha: Number in Range::UNIT;
    /// divide by the centred (variance) estimate
    centered: Switch;
    /// decay rate of the running averages
    rho: Number in Range::UNIT;
    /// learning-rate decay
    lr_decay: Number;
    /// starting value of the sum of squares
    initial_accumulator_value: Number;
    /// momentum decay psi
    momentum_decay: Number;
    /// no bias correction of the moments (Adam without Algorithm 1's; LAMB as torch-optimizer)
    no_bias_correction: Switch;
    /// weight decay as an L2 term in the gradient instead of decoupled (AdamW-style)
    no_decoupled_weight_decay: Switch;
    /// decay exponent tau of Adafactor's second moment, beta2_t = 1 - t^tau
    beta2_decay: Number in Range::NON_POSITIVE;
    /// floor of Adafactor's second-moment estimate (f32 epsilon by default)
    eps1: Number;
    /// floor of the parameter scale in Adafactor's step size
    eps2: Number;
    /// threshold of Adafactor's update clipping by its RMS
    d: Number in Range::AT_LEAST_ONE;
    /// Newton-Schulz iterations of Muon's orthogonalisation
    ns_steps: Count in Range::ITERATIONS;
    /// how Muon scales the learning rate with the matrix shape
    adjust_lr_fn: Choice["original", "match_rms_adamw", "spectral_unclamped"];
    /// plain momentum instead of Nesterov's (Muon)
    no_nesterov: Switch;
}

/// The table entry of option `name`. Panics if there is none: optimizers read options by
/// their table names, so a misspelt name is a bug in the optimizer.
fn spec(name: &str) -> &'static OptionSpec {
    OPTIONS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("option '{name}' is not in the options table (options.rs)"))
}

/// Why an optimizer could not be built from options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionsError {
    /// The optimizer name is not in [`REGISTRY`].
    UnknownOptimizer(String),
    /// No option has this name.
    UnknownOption(String),
    /// An option was given to an optimizer that does not have it.
    NotApplicable {
        /// The option's table name (`momentum`).
        option: &'static str,
        /// The optimizer.
        optimizer: String,
    },
    /// An option's value is invalid.
    Invalid {
        /// The option's table name (`weight_decay`).
        option: &'static str,
        /// What is wrong, as the rest of a sentence starting with the option's name
        /// (`must be >= 0, got -1`).
        reason: String,
    },
}

impl OptionsError {
    /// The message with the option spelled as a command-line flag (`--weight-decay must be
    /// >= 0, got -1`), as a command line reports it.
    pub fn as_flags(&self) -> String {
        let flag = |option: &str| format!("--{}", option.replace('_', "-"));
        match self {
            OptionsError::UnknownOptimizer(_) => format!("--optimizer: {self}"),
            OptionsError::UnknownOption(name) => format!("unknown option {}", flag(name)),
            OptionsError::NotApplicable { option, optimizer } => {
                format!("{} is not an option of {optimizer}", flag(option))
            }
            OptionsError::Invalid { option, reason } => format!("{} {reason}", flag(option)),
        }
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::UnknownOptimizer(name) => {
                write!(f, "unknown optimizer '{name}' (expected one of: {})", OPTIMIZER_NAMES.join(", "))
            }
            OptionsError::UnknownOption(name) => write!(f, "unknown option '{name}'"),
            OptionsError::NotApplicable { option, optimizer } => {
                write!(f, "{option} is not an option of {optimizer}")
            }
            OptionsError::Invalid { option, reason } => write!(f, "{option} {reason}"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// What an optimizer reads its options through: each value is the one given or the
/// optimizer's default, checked against the table's range. It also records which options
/// the optimizer read, which is how [`build`] knows the options an optimizer has.
pub struct OptionReader<'a> {
    given: &'a OptimizerOptions,
    optimizer: &'static str,
    read: RefCell<Vec<(&'static str, OptionValue)>>,
    /// Each option read with the value in effect (given or default), as text.
    effective: RefCell<Vec<(&'static str, String)>>,
}

impl<'a> OptionReader<'a> {
    fn new(given: &'a OptimizerOptions, optimizer: &'static str) -> OptionReader<'a> {
        OptionReader { given, optimizer, read: RefCell::new(Vec::new()), effective: RefCell::new(Vec::new()) }
    }

    fn record(&self, name: &'static str, default: OptionValue) {
        self.read.borrow_mut().push((name, default));
    }

    fn record_effective(&self, name: &'static str, value: String) {
        self.effective.borrow_mut().push((name, value));
    }

    fn check(&self, spec: &'static OptionSpec, x: f32) -> Result<f32, OptionsError> {
        if spec.range.contains(x) {
            Ok(x)
        } else {
            Err(OptionsError::Invalid {
                option: spec.name,
                reason: format!("must be {}, got {x}", spec.range),
            })
        }
    }

    /// The number option `name`, or `default`.
    pub fn number(&self, name: &'static str, default: f32) -> Result<f32, OptionsError> {
        let spec = spec(name);
        debug_assert_eq!(spec.kind, OptionKind::Number, "option '{name}'");
        self.record(spec.name, OptionValue::Number(default));
        let x = match self.given.get(name) {
            Some(OptionValue::Number(x)) => x,
            _ => default,
        };
        self.record_effective(spec.name, x.to_string());
        self.check(spec, x)
    }

    /// The pair option `name`, or `default`.
    pub fn pair(&self, name: &'static str, default: (f32, f32)) -> Result<(f32, f32), OptionsError> {
        let spec = spec(name);
        debug_assert_eq!(spec.kind, OptionKind::Pair, "option '{name}'");
        self.record(spec.name, OptionValue::Pair(default.0, default.1));
        let (a, b) = match self.given.get(name) {
            Some(OptionValue::Pair(a, b)) => (a, b),
            _ => default,
        };
        self.record_effective(spec.name, format!("{a},{b}"));
        Ok((self.check(spec, a)?, self.check(spec, b)?))
    }

    /// Whether the switch `name` was given (switches are off by default).
    pub fn switch(&self, name: &'static str) -> bool {
        let spec = spec(name);
        debug_assert_eq!(spec.kind, OptionKind::Switch, "option '{name}'");
        self.record(spec.name, OptionValue::Switch);
        let on = self.given.get(name).is_some();
        self.record_effective(spec.name, if on { "on" } else { "off" }.to_string());
        on
    }

    /// The count option `name`, or `default`.
    pub fn count(&self, name: &'static str, default: u32) -> Result<u32, OptionsError> {
        let spec = spec(name);
        debug_assert_eq!(spec.kind, OptionKind::Count, "option '{name}'");
        self.record(spec.name, OptionValue::Count(default));
        let n = match self.given.get(name) {
            Some(OptionValue::Count(n)) => n,
            _ => default,
        };
        self.record_effective(spec.name, n.to_string());
        // Counts are small (the range says how small): as f32 they are exact.
        self.check(spec, n as f32).map(|_| n)
    }

    /// The choice option `name`, or `default` (one of the table's choices for it).
    pub fn choice(&self, name: &'static str, default: &'static str) -> Result<&'static str, OptionsError> {
        let spec = spec(name);
        debug_assert_eq!(spec.kind, OptionKind::Choice, "option '{name}'");
        debug_assert!(spec.choices.contains(&default), "default '{default}' of option '{name}'");
        self.record(spec.name, OptionValue::Choice(default));
        let word = match self.given.get(name) {
            Some(OptionValue::Choice(word)) => word,
            _ => default,
        };
        self.record_effective(spec.name, word.to_string());
        if spec.choices.contains(&word) {
            Ok(word)
        } else {
            Err(OptionsError::Invalid {
                option: spec.name,
                reason: format!("must be one of {}, got '{word}'", spec.choices.join(", ")),
            })
        }
    }

    /// An error about option `name` for a check across options (`needs momentum > 0`).
    pub fn invalid(&self, name: &'static str, reason: impl Into<String>) -> OptionsError {
        OptionsError::Invalid { option: spec(name).name, reason: reason.into() }
    }

    /// The optimizer being built.
    pub fn optimizer(&self) -> &'static str {
        self.optimizer
    }
}

/// How a config field of each type is read: a number, a pair, or a switch (on if given, else
/// the config's default).
pub trait ReadOption: Sized {
    /// Reads option `name` with `default` (the config's, i.e. `torch.optim`'s).
    fn read(o: &OptionReader<'_>, name: &'static str, default: Self) -> Result<Self, OptionsError>;
}

impl ReadOption for f32 {
    fn read(o: &OptionReader<'_>, name: &'static str, default: f32) -> Result<f32, OptionsError> {
        o.number(name, default)
    }
}

impl ReadOption for (f32, f32) {
    fn read(
        o: &OptionReader<'_>,
        name: &'static str,
        default: (f32, f32),
    ) -> Result<(f32, f32), OptionsError> {
        o.pair(name, default)
    }
}

impl ReadOption for u32 {
    fn read(o: &OptionReader<'_>, name: &'static str, default: u32) -> Result<u32, OptionsError> {
        o.count(name, default)
    }
}

impl ReadOption for bool {
    fn read(o: &OptionReader<'_>, name: &'static str, default: bool) -> Result<bool, OptionsError> {
        Ok(o.switch(name) || default)
    }
}

/// `read_config!(o, Config { lr, betas, .. })`: the optimizer's `Config` with each listed
/// field read as the option of the same name (its default the config's `Default`), and the
/// fields not listed left at their defaults. Every optimizer's `FromOptions` is this one line
/// plus whatever checks across options it needs.
#[macro_export]
macro_rules! read_config {
    ($o:expr, $config:ident { $($field:ident),* $(,)? }) => {{
        let defaults = $config::default();
        #[allow(clippy::needless_update)]
        let config = $config {
            $($field: $crate::options::ReadOption::read($o, stringify!($field), defaults.$field)?,)*
            ..defaults
        };
        config
    }};
}

/// An optimizer that [`build`] can make by name: implemented in the optimizer's own file,
/// listed in [`REGISTRY`].
pub trait FromOptions: Optimizer + Send + Sized + 'static {
    /// The name on command lines (`"adam"`).
    const NAME: &'static str;

    /// The optimizer with the options in `o`: read every option the optimizer has, each
    /// with its default (`torch.optim`'s), before any check across options.
    fn from_options(o: &OptionReader<'_>) -> Result<Self, OptionsError>;
}

/// One line of [`REGISTRY`]: an optimizer's name and how to build it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The name [`build`] takes.
    pub name: &'static str,
    build: fn(&OptionReader<'_>) -> Result<Box<dyn Optimizer + Send>, OptionsError>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The registration of optimizer `T`.
pub const fn register<T: FromOptions>() -> Registration {
    Registration { name: T::NAME, build: build_boxed::<T> }
}

fn build_boxed<T: FromOptions>(o: &OptionReader<'_>) -> Result<Box<dyn Optimizer + Send>, OptionsError> {
    Ok(Box::new(T::from_options(o)?))
}

/// The names [`build`] accepts, in [`REGISTRY`]'s order.
pub const OPTIMIZER_NAMES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        names[i] = REGISTRY[i].name;
        i += 1;
    }
    names
};

impl Registration {
    /// The options this optimizer has, with its defaults, in the order it reads them.
    pub fn options(&self) -> Vec<(&'static str, OptionValue)> {
        let none = OptimizerOptions::default();
        let reader = OptionReader::new(&none, self.name);
        // With no option given every value is a default, which is valid: building cannot fail.
        (self.build)(&reader).unwrap_or_else(|e| panic!("{} with its defaults: {e}", self.name));
        reader.read.into_inner()
    }
}

/// The registration of optimizer `name`.
pub fn registration(name: &str) -> Result<&'static Registration, OptionsError> {
    REGISTRY.iter().find(|r| r.name == name).ok_or_else(|| OptionsError::UnknownOptimizer(name.to_string()))
}

/// Makes the optimizer `name` with `options` over its defaults (`torch.optim`'s). An option
/// it does not have, or a value out of range, is an error naming the option.
pub fn build(name: &str, options: &OptimizerOptions) -> Result<Box<dyn Optimizer + Send>, OptionsError> {
    build_with_settings(name, options).map(|(optimizer, _)| optimizer)
}

/// Every hyperparameter in effect in an optimizer [`build`] makes, given or default, as
/// `(option, value)` text in the order the optimizer reads them (`("betas", "0.9,0.999")`,
/// `("amsgrad", "off")`): what defines the optimizer of a run, for its checkpoints.
pub type Settings = Vec<(&'static str, String)>;

/// [`build`], with the [`Settings`] of the optimizer it made.
///
/// ```
/// use adamant_optim::options::{build_with_settings, OptimizerOptions};
///
/// let (_, settings) = build_with_settings("sgd", &OptimizerOptions { lr: Some(0.1), ..Default::default() }).unwrap();
/// assert_eq!(settings[0], ("lr", "0.1".to_string()));
/// assert!(settings.contains(&("nesterov", "off".to_string())));
/// ```
pub fn build_with_settings(
    name: &str,
    options: &OptimizerOptions,
) -> Result<(Box<dyn Optimizer + Send>, Settings), OptionsError> {
    let registration = registration(name)?;
    let has = registration.options();
    if let Some(spec) =
        OPTIONS.iter().find(|s| options.get(s.name).is_some() && !has.iter().any(|(n, _)| *n == s.name))
    {
        return Err(OptionsError::NotApplicable { option: spec.name, optimizer: name.to_string() });
    }
    let reader = OptionReader::new(options, registration.name);
    let optimizer = (registration.build)(&reader)?;
    Ok((optimizer, reader.effective.into_inner()))
}

/// The usage text of the optimizer options, generated from [`OPTIONS`] and [`REGISTRY`]:
/// for each option its flag, its help, and which optimizers have it with which default.
pub fn usage() -> String {
    let per_optimizer: Vec<(&str, Vec<(&str, OptionValue)>)> =
        REGISTRY.iter().map(|r| (r.name, r.options())).collect();
    let mut out = format!("  {:<32}{}\n", "--optimizer NAME", OPTIMIZER_NAMES.join(", "));
    for spec in OPTIONS {
        let argument = match spec.kind {
            OptionKind::Number => " F",
            OptionKind::Pair => " F,F",
            OptionKind::Switch => "",
            OptionKind::Count => " N",
            OptionKind::Choice => " WORD",
        };
        // Optimizers with the same default together: "0.001 (sgd, adam), 0.01 (adagrad)".
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for (optimizer, options) in &per_optimizer {
            if let Some((_, default)) = options.iter().find(|(n, _)| *n == spec.name) {
                let default = default.to_string();
                match groups.iter_mut().find(|(d, _)| *d == default) {
                    Some((_, names)) => names.push(optimizer),
                    None => groups.push((default, vec![optimizer])),
                }
            }
        }
        let defaults: Vec<String> = groups
            .iter()
            .map(
                |(d, names)| {
                    if d.is_empty() {
                        names.join(", ")
                    } else {
                        format!("{d} ({})", names.join(", "))
                    }
                },
            )
            .collect();
        let flag = format!("{}{argument}", spec.flag());
        let help = match spec.kind {
            OptionKind::Choice => format!("{} ({})", spec.help(), spec.choices.join(" | ")),
            _ => spec.help().to_string(),
        };
        out.push_str(&format!("  {flag:<32}{help}: {}\n", defaults.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_optimizer_builds_with_its_defaults_and_reads_only_table_options() {
        for r in REGISTRY {
            let built = build(r.name, &OptimizerOptions::default()).unwrap();
            assert_eq!(built.name(), r.name, "the registered name is the optimizer's own");
            assert!(!r.options().is_empty());
        }
        assert_eq!(OPTIMIZER_NAMES.len(), REGISTRY.len());
    }

    #[test]
    fn every_option_belongs_to_some_optimizer() {
        for spec in OPTIONS {
            assert!(
                REGISTRY.iter().any(|r| r.options().iter().any(|(n, _)| *n == spec.name)),
                "option '{}' is read by no optimizer",
                spec.name
            );
        }
    }

    #[test]
    fn errors_name_the_option_and_the_command_line_adds_the_dashes() {
        let o = OptimizerOptions { weight_decay: Some(-1.0), ..Default::default() };
        let e = build("adamw", &o).err().unwrap();
        assert_eq!(e.to_string(), "weight_decay must be >= 0, got -1");
        assert_eq!(e.as_flags(), "--weight-decay must be >= 0, got -1");
        let o = OptimizerOptions { betas: Some((0.9, 1.0)), ..Default::default() };
        assert_eq!(build("adam", &o).err().unwrap().to_string(), "betas must be in [0, 1), got 1");
        let o = OptimizerOptions { nesterov: true, ..Default::default() };
        assert_eq!(build("adam", &o).err().unwrap().as_flags(), "--nesterov is not an option of adam");
        assert!(matches!(build("adamz", &o), Err(OptionsError::UnknownOptimizer(_))));
    }

    #[test]
    fn set_get_and_or() {
        let mut o = OptimizerOptions::default();
        o.set("lr", OptionValue::Number(0.5)).unwrap();
        o.set("amsgrad", OptionValue::Switch).unwrap();
        assert_eq!(o.get("lr"), Some(OptionValue::Number(0.5)));
        assert!(o.set("lr", OptionValue::Pair(1.0, 2.0)).is_err());
        assert!(matches!(o.set("lrr", OptionValue::Number(1.0)), Err(OptionsError::UnknownOption(_))));
        let defaults = OptimizerOptions { lr: Some(0.1), eps: Some(1e-3), ..Default::default() };
        let merged = o.or(&defaults);
        assert_eq!((merged.lr, merged.eps, merged.amsgrad), (Some(0.5), Some(1e-3), true));
    }

    #[test]
    fn usage_lists_each_option_with_its_optimizers_and_defaults() {
        let text = usage();
        assert_eq!(text.lines().count(), OPTIONS.len() + 1);
        let line = |flag: &str| text.lines().find(|l| l.trim_start().starts_with(flag)).unwrap().to_string();
        assert!(line("--momentum F").ends_with("momentum factor: 0 (sgd, rmsprop), 0.95 (muon)"), "{text}");
        assert!(line("--amsgrad").ends_with("(AMSGrad): adam, adamw"), "{text}");
        assert!(line("--betas F,F").contains("0.9,0.999 (adam, adamw, adamax, nadam, radam, "), "{text}");
        assert!(line("--betas F,F").contains("0.9,0.99 (lion)"), "{text}");
    }
}
