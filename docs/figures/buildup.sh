#!/usr/bin/env bash
# Regenerates docs/figures/buildup/*.svg, the build-up from SGD to Adam shown in
# docs/tour/06-momentum-to-adam.md, with examples/optimize.rs, and the bias-correction ratio
# of docs/tour/08-bias-correction.md with examples/trace_adam.rs. Every path is on the
# ill-conditioned bowl 0.5 (x^2 + 100 y^2) from (-2, 1); the chapter says why each one looks
# the way it does.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --example optimize --example trace_adam
bin=target/release/examples/optimize
out=docs/figures/buildup
mkdir -p "$out"

# name | steps | flags. One step of the story each.
runs=(
  "1-sgd|100|--optimizer sgd --lr 0.019"
  "2-momentum|100|--optimizer sgd --lr 0.019 --momentum 0.9"
  "3-adagrad|100|--optimizer adagrad --lr 0.3"
  "4-rmsprop|100|--optimizer rmsprop --lr 0.03"
  "5-adam|100|--optimizer adam --lr 0.1"
  # Signal against noise: the same gradient noise, sigma 20, for both.
  "6-noise-sgd|200|--optimizer sgd --lr 0.019 --noise 20 --seed 1"
  "7-noise-adam|200|--optimizer adam --lr 0.1 --noise 20 --seed 1"
)
for entry in "${runs[@]}"; do
  IFS='|' read -r name steps flags <<<"$entry"
  # shellcheck disable=SC2086 # the flags are meant to split into words
  "$bin" --problem quadratic --steps "$steps" $flags --svg "$out/$name.svg" >/dev/null
done
target/release/examples/trace_adam --ratio-svg docs/figures/bias_correction_ratio.svg
ls -l "$out" docs/figures/bias_correction_ratio.svg
