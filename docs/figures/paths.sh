#!/usr/bin/env bash
# Regenerates docs/figures/paths/*.svg, the optimizer paths shown in docs/tour/09-the-family.md
# (and the matrix problem's loss curves),
# with examples/optimize.rs. Each optimizer gets a learning rate at which its path is worth
# looking at (not a tuned optimum); the tour says why each one looks the way it does.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --example optimize
bin=target/release/examples/optimize
out=docs/figures/paths
mkdir -p "$out"

# name | optimizer flags. Rosenbrock from (-1.5, 2), 500 steps.
rosenbrock=(
  "sgd|--optimizer sgd --lr 0.001 --momentum 0.9"
  "adam|--optimizer adam --lr 0.1"
  "amsgrad|--optimizer adam --lr 0.1 --amsgrad"
  "adamw|--optimizer adamw --lr 0.1"
  "adamax|--optimizer adamax --lr 1"
  "nadam|--optimizer nadam --lr 0.1"
  "radam|--optimizer radam --lr 0.01"
  "adagrad|--optimizer adagrad --lr 1"
  "rmsprop|--optimizer rmsprop --lr 0.01"
  "adadelta|--optimizer adadelta --lr 1"
  "lion|--optimizer lion --lr 0.01"
  "lamb|--optimizer lamb --lr 0.03"
  "adabelief|--optimizer adabelief --lr 0.1"
  "adafactor|--optimizer adafactor --lr 0.1"
)
# The ill-conditioned bowl 0.5 (x^2 + 100 y^2) from (-2, 1), 200 steps.
quadratic=(
  "sgd-plain|--optimizer sgd --lr 0.019"
  "sgd|--optimizer sgd --lr 0.01 --momentum 0.9"
  "adam|--optimizer adam --lr 0.1"
  "amsgrad|--optimizer adam --lr 0.1 --amsgrad"
  "adamw|--optimizer adamw --lr 0.1"
  "adamax|--optimizer adamax --lr 0.1"
  "nadam|--optimizer nadam --lr 0.1"
  "radam|--optimizer radam --lr 0.03"
  "adagrad|--optimizer adagrad --lr 0.3"
  "rmsprop|--optimizer rmsprop --lr 0.01"
  "adadelta|--optimizer adadelta --lr 1"
  "lion|--optimizer lion --lr 0.01"
  "lamb|--optimizer lamb --lr 0.1"
  "adabelief|--optimizer adabelief --lr 0.1"
  "adafactor|--optimizer adafactor --lr 0.1"
)
# The least-squares matrix problem 0.5 sum((A W - B)^2), W [4, 3], 100 steps: its loss per step.
matrix=(
  "adam|--optimizer adam --lr 0.05"
  "muon|--optimizer muon --lr 0.1"
)
for entry in "${rosenbrock[@]}"; do
  # shellcheck disable=SC2086 # the flags are meant to split into words
  "$bin" --problem rosenbrock --steps 500 ${entry#*|} --svg "$out/rosenbrock-${entry%%|*}.svg" >/dev/null
done
for entry in "${quadratic[@]}"; do
  # shellcheck disable=SC2086
  "$bin" --problem quadratic --steps 200 ${entry#*|} --svg "$out/quadratic-${entry%%|*}.svg" >/dev/null
done
for entry in "${matrix[@]}"; do
  # shellcheck disable=SC2086
  "$bin" --problem matrix --steps 100 ${entry#*|} --svg "$out/matrix-${entry%%|*}.svg" >/dev/null
done
ls -l "$out"
