"""Reads an adamant run's TensorBoard event file with TensorBoard's own EventAccumulator and
checks it against the run's CSV logs and final checkpoint (tests/tensorboard_reader.rs runs it
after a short training run; .ci/run installs the `tensorboard` package into a venv for it).

Usage: check_events.py RUN_DIR OUT_DIR NAME EVERY OPTIMIZER_STATE(0|1)

Checks, failing with one line per problem:
- the logged steps of train/loss and train/lr are 1 and every EVERY-th step, exactly, and their
  values are the CSV's `<NAME>_iterations.csv` rows (as float32);
- test/loss, test/accuracy, train/epoch_loss, train/epoch_accuracy are `<NAME>_epochs.csv`'s
  at each epoch's last step;
- the last step's weights/<param> histogram is the checkpoint's tensor: count, min, max, sum,
  sum of squares, and the buckets numpy.histogram gives with TensorFlow's bucket edges,
  trimmed as torch.utils.tensorboard trims them; grads/<param> has one count per value;
- with the optimizer state: optim/bias_correction1/2 are 1 - beta^t at every logged step, and
  at the last step each parameter's effective_lr_median and traced coordinates are those of
  the checkpoint's Adam moments.
"""
import csv
import json
import math
import struct
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run_dir, out_dir, name, every, optimizer_state = sys.argv[1:6]
every, optimizer_state = int(every), optimizer_state == "1"
problems = []


def check(ok, message):
    if not ok:
        problems.append(message)


def f32(x):
    return float(np.float32(x))


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


def read_checkpoint(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for key, info in header.items():
        assert info["dtype"] == "F32", (key, info["dtype"])
        begin, end = info["data_offsets"]
        tensors[key] = np.frombuffer(blob[8 + n + begin : 8 + n + end], dtype="<f4").reshape(info["shape"])
    return tensors, metadata


def tf_edges():
    v, positive = 1e-12, []
    while v < 1e20:
        positive.append(v)
        v *= 1.1
    return [-x for x in reversed(positive)] + [0.0] + positive


def torch_histogram(values):
    """torch.utils.tensorboard.summary.make_histogram with bins="tensorflow"."""
    values = values.astype(float).reshape(-1)
    counts, limits = np.histogram(values, bins=tf_edges())
    cum = np.cumsum(np.greater(counts, 0))
    start, end = np.searchsorted(cum, [0, cum[-1] - 1], side="right")
    start, end = int(start), int(end) + 1
    counts = counts[start - 1 : end] if start > 0 else np.concatenate([[0], counts[:end]])
    limits = limits[start : end + 1]
    return values, counts, limits


ea = EventAccumulator(run_dir, size_guidance={"scalars": 0, "histograms": 0})
ea.Reload()
tags = ea.Tags()
scalars = {tag: {e.step: e.value for e in ea.Scalars(tag)} for tag in tags["scalars"]}
for tag in ["train/loss", "train/lr", "train/step_ms", "train/examples_per_second", "test/loss"]:
    check(tag in scalars, f"tag {tag} missing; scalar tags: {sorted(scalars)[:20]}")
for tag in tags["scalars"]:
    check(len(ea.Scalars(tag)) == len(scalars[tag]), f"{tag}: a step appears twice")

iterations = list(csv.DictReader(open(f"{out_dir}/{name}_iterations.csv")))
last_step = int(iterations[-1]["step"])
logged = [s for s in range(1, last_step + 1) if s == 1 or s % every == 0]
for tag, column in [("train/loss", "loss"), ("train/lr", "lr")]:
    got = scalars.get(tag, {})
    check(sorted(got) == logged, f"{tag}: steps {sorted(got)[:8]}... expected {logged[:8]}...")
    for row in iterations:
        step = int(row["step"])
        if step in got:
            check(got[step] == f32(row[column]), f"{tag} at step {step}: {got[step]} vs CSV {row[column]}")

epochs = list(csv.DictReader(open(f"{out_dir}/{name}_epochs.csv")))
for row in epochs:
    step = int(row["step"])
    for tag, column in [
        ("test/loss", "test_loss"),
        ("test/accuracy", "test_accuracy"),
        ("train/epoch_loss", "train_loss"),
        ("train/epoch_accuracy", "train_accuracy"),
    ]:
        got = scalars.get(tag, {}).get(step)
        check(got == f32(row[column]), f"{tag} at step {step}: {got} vs CSV {row[column]}")

tensors, metadata = read_checkpoint(f"{out_dir}/{name}.ckpt")
check(logged[-1] == last_step, f"the last step {last_step} is not a logged one (every {every})")
params = sorted(k[len("model/") :] for k in tensors if k.startswith("model/"))
histogram_steps = {}
for param in params:
    weights = tensors[f"model/{param}"]
    events = ea.Histograms(f"weights/{param}")
    histogram_steps[param] = [e.step for e in events]
    h = events[-1].histogram_value
    values, counts, limits = torch_histogram(weights)
    check(events[-1].step == last_step, f"weights/{param}: last step {events[-1].step}, expected {last_step}")
    check(h.num == values.size, f"weights/{param}: num {h.num} vs {values.size}")
    check(h.min == values.min() and h.max == values.max(), f"weights/{param}: min/max {h.min}/{h.max}")
    check(close(h.sum, values.sum(), 1e-9) or abs(h.sum - values.sum()) < 1e-9, f"weights/{param}: sum {h.sum} vs {values.sum()}")
    check(close(h.sum_squares, values.dot(values), 1e-9), f"weights/{param}: sum_squares")
    check(list(h.bucket_limit) == list(limits), f"weights/{param}: bucket limits differ from numpy's")
    check(list(h.bucket) == [float(c) for c in counts], f"weights/{param}: bucket counts differ from numpy's")
    grads = ea.Histograms(f"grads/{param}")
    check([e.step for e in grads] == logged, f"grads/{param}: steps {[e.step for e in grads][:8]}")
    check(grads[-1].histogram_value.num == values.size, f"grads/{param}: num")
    check(sum(grads[-1].histogram_value.bucket) <= values.size, f"grads/{param}: bucket total")
check(all(s == logged for s in histogram_steps.values()), "weights histograms are not at every logged step")

if optimizer_state:
    # adamant keeps the betas in f32: 1 - beta^t of the f32 numbers, as its Adam computes it.
    betas = (f32(0.9), f32(0.999))
    for step in logged:
        for tag, beta in [("optim/bias_correction1", betas[0]), ("optim/bias_correction2", betas[1])]:
            got = scalars.get(tag, {}).get(step)
            check(got is not None and close(got, 1 - beta**step, 1e-5), f"{tag} at step {step}: {got}")
    lr = f32(iterations[-1]["lr"])
    t = last_step
    bc1, bc2 = 1 - betas[0] ** t, 1 - betas[1] ** t
    for param in params:
        m = tensors[f"optimizer/{param}/exp_avg"].reshape(-1).astype(float)
        v = tensors[f"optimizer/{param}/exp_avg_sq"].reshape(-1).astype(float)
        effective = (lr / (np.sqrt(v / bc2) + 1e-8)).astype(np.float32)
        got = scalars.get(f"optim/{param}/effective_lr_median", {}).get(t)
        check(got is not None and close(got, float(np.median(effective)), 1e-5), f"optim/{param}/effective_lr_median: {got} vs {np.median(effective)}")
        n = m.size
        for i in sorted({k * (n - 1) // 2 for k in range(3)}):
            for what, expected in [("m", m[i]), ("v", v[i]), ("m_hat", m[i] / bc1), ("v_hat", v[i] / bc2)]:
                got = scalars.get(f"optim/{param}/coord_{i}/{what}", {}).get(t)
                check(got is not None and close(got, expected, 1e-5), f"optim/{param}/coord_{i}/{what}: {got} vs {expected}")
        for what in ["grad_norm", "m_norm", "update_norm", "update_to_weight", "sqrt_v_hat_mean", "sqrt_v_hat_std"]:
            got = scalars.get(f"optim/{param}/{what}", {})
            check(sorted(got) == logged and all(math.isfinite(x) and x >= 0 for x in got.values()), f"optim/{param}/{what}: steps or values")
        check(close(scalars[f"optim/{param}/m_norm"][t], float(np.sqrt(m.dot(m))), 1e-5), f"optim/{param}/m_norm")

if problems:
    print(f"{len(problems)} problem(s) in {run_dir}:")
    for p in problems[:40]:
        print("  " + p)
    sys.exit(1)
print(f"ok: {len(scalars)} scalar tags, {len(tags['histograms'])} histogram tags, steps {logged[0]}..{logged[-1]}")
