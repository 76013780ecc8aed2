//! Weight initialisers with PyTorch's exact formulas (`torch.nn.init`), drawn from the
//! project's seeded generator.
//!
//! `fan_in` and `fan_out` follow PyTorch: for a weight of shape `[out, in, k...]`,
//! `fan_in = in * prod(k)` and `fan_out = out * prod(k)`.

use adamant_tensor::{rng::Rng, Tensor};

/// `(fan_in, fan_out)` of a weight shape `[out, in, kernel...]`, as `torch.nn.init` defines.
///
/// # Panics
/// For shapes of fewer than two axes (PyTorch refuses them too).
pub fn fans(shape: &[usize]) -> (usize, usize) {
    assert!(shape.len() >= 2, "init: fan in and fan out need at least 2 axes, got {shape:?}");
    let receptive: usize = shape[2..].iter().product();
    (shape[1] * receptive, shape[0] * receptive)
}

/// The recommended gain of a nonlinearity (`torch.nn.init.calculate_gain`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Gain 1 (also sigmoid and conv).
    Linear,
    /// Gain 5/3.
    Tanh,
    /// Gain sqrt(2).
    Relu,
    /// Gain sqrt(2 / (1 + a^2)) for negative slope `a`.
    LeakyRelu(f32),
}

impl Nonlinearity {
    /// The gain factor.
    pub fn gain(self) -> f32 {
        match self {
            Nonlinearity::Linear => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2f32.sqrt(),
            Nonlinearity::LeakyRelu(a) => (2.0 / (1.0 + a * a)).sqrt(),
        }
    }
}

/// Uniform on `[-bound, bound)`.
pub fn uniform(shape: &[usize], bound: f32, rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, -bound, bound, rng)
}

/// Glorot/Xavier uniform: `U(-b, b)`, `b = gain * sqrt(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(shape: &[usize], gain: f32, rng: &mut Rng) -> Tensor {
    let (fi, fo) = fans(shape);
    uniform(shape, gain * (6.0 / (fi + fo) as f32).sqrt(), rng)
}

/// Glorot/Xavier normal: `N(0, s^2)`, `s = gain * sqrt(2 / (fan_in + fan_out))`.
pub fn xavier_normal(shape: &[usize], gain: f32, rng: &mut Rng) -> Tensor {
    let (fi, fo) = fans(shape);
    Tensor::randn(shape, 0.0, gain * (2.0 / (fi + fo) as f32).sqrt(), rng)
}

/// He/Kaiming uniform (fan-in mode): `U(-b, b)`, `b = gain * sqrt(3 / fan_in)`.
pub fn kaiming_uniform(shape: &[usize], nonlinearity: Nonlinearity, rng: &mut Rng) -> Tensor {
    let (fi, _) = fans(shape);
    uniform(shape, nonlinearity.gain() * (3.0 / fi as f32).sqrt(), rng)
}

/// He/Kaiming normal (fan-in mode): `N(0, s^2)`, `s = gain / sqrt(fan_in)`.
pub fn kaiming_normal(shape: &[usize], nonlinearity: Nonlinearity, rng: &mut Rng) -> Tensor {
    let (fi, _) = fans(shape);
    Tensor::randn(shape, 0.0, nonlinearity.gain() / (fi as f32).sqrt(), rng)
}

/// PyTorch's default weight init of `Linear` and `Conv2d`: `kaiming_uniform` with
/// `a = sqrt(5)`, which works out to `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn torch_default_weight(shape: &[usize], rng: &mut Rng) -> Tensor {
    kaiming_uniform(shape, Nonlinearity::LeakyRelu(5f32.sqrt()), rng)
}

/// PyTorch's default bias init of `Linear` and `Conv2d`: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn torch_default_bias(len: usize, fan_in: usize, rng: &mut Rng) -> Tensor {
    let bound = if fan_in > 0 { 1.0 / (fan_in as f32).sqrt() } else { 0.0 };
    uniform(&[len], bound, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamant_tensor::rng::seeded;

    fn max_abs(t: &Tensor) -> f32 {
        t.data().iter().fold(0.0f32, |m, x| m.max(x.abs()))
    }

    fn std(t: &Tensor) -> f64 {
        let n = t.numel() as f64;
        let mean = t.data().iter().map(|&x| x as f64).sum::<f64>() / n;
        (t.data().iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    }

    #[test]
    fn fans_follow_torch() {
        assert_eq!(fans(&[1000, 784]), (784, 1000));
        assert_eq!(fans(&[64, 3, 5, 5]), (75, 1600));
    }

    #[test]
    fn torch_default_is_uniform_one_over_sqrt_fan_in() {
        let w = torch_default_weight(&[200, 400], &mut seeded(1));
        let bound = 1.0 / 20.0;
        assert!(max_abs(&w) <= bound);
        // U(-b, b) has std b / sqrt(3).
        assert!((std(&w) - bound as f64 / 3f64.sqrt()).abs() < 2e-4, "std {}", std(&w));
        assert!(max_abs(&w) > 0.99 * bound);
    }

    #[test]
    fn xavier_and_kaiming_have_their_formula_spreads() {
        let shape = [300, 200];
        let b = (6.0f64 / 500.0).sqrt();
        let xu = xavier_uniform(&shape, 1.0, &mut seeded(2));
        assert!((std(&xu) - b / 3f64.sqrt()).abs() < 0.01 * b);
        let xn = xavier_normal(&shape, 1.0, &mut seeded(3));
        assert!((std(&xn) - (2.0f64 / 500.0).sqrt()).abs() < 0.01 * (2.0f64 / 500.0).sqrt());
        let ku = kaiming_uniform(&shape, Nonlinearity::Relu, &mut seeded(4));
        let kb = 2f64.sqrt() * (3.0f64 / 200.0).sqrt();
        assert!(max_abs(&ku) as f64 <= kb + 1e-6);
        assert!((std(&ku) - kb / 3f64.sqrt()).abs() < 0.01 * kb);
        let kn = kaiming_normal(&shape, Nonlinearity::Relu, &mut seeded(5));
        assert!((std(&kn) - 0.1).abs() < 0.002, "kaiming normal std {}", std(&kn));
    }

    #[test]
    fn gains_match_torch() {
        assert_eq!(Nonlinearity::Linear.gain(), 1.0);
        assert!((Nonlinearity::Relu.gain() - std::f32::consts::SQRT_2).abs() < 1e-6);
        assert!((Nonlinearity::Tanh.gain() - 5.0 / 3.0).abs() < 1e-6);
        // a = sqrt(5): sqrt(2 / 6).
        assert!((Nonlinearity::LeakyRelu(5f32.sqrt()).gain() - (1.0f32 / 3.0).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn initialisers_are_seeded() {
        assert_eq!(
            torch_default_weight(&[3, 4], &mut seeded(9)),
            torch_default_weight(&[3, 4], &mut seeded(9))
        );
        assert_ne!(
            torch_default_weight(&[3, 4], &mut seeded(9)),
            torch_default_weight(&[3, 4], &mut seeded(10))
        );
    }
}
