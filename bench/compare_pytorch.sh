#!/usr/bin/env bash
# Side-by-side training-step timings: adamant (examples/bench.rs) against PyTorch
# (shared/bench/torch_paper_nets.py), same nets, batch, thread count and step counts; the net
# char_gpt against its own reference, shared/bench/torch_char_gpt.py --time-steps N.
#
#   bench/compare_pytorch.sh [--rounds R] [--threads N] [--nets a,b,...] [--steps N] [--warmup W] [--precision f32|bf16|both]
#
# --precision bf16 times our `bench --precision bf16` against torch_paper_nets.py --autocast bf16
# (mixed precision on both sides); both runs f32 and bf16 on each side, four processes per net and
# round, and adds each side's bf16 speed-up over its own f32. char_gpt has no bf16 reference.
#
# Environment: PYTHON (default /tmp/torchbench/bin/python if it exists, else python3),
# TORCH_PAPER_NETS (default ../shared/bench/torch_paper_nets.py beside the repository),
# TORCH_CHAR_GPT (default ../shared/bench/torch_char_gpt.py). torch_char_gpt.py always takes
# 10 untimed steps first, so char_gpt runs with --warmup 10 on both sides (not --warmup W),
# and 30 timed steps unless --steps says otherwise.
#
# Each net runs in its own process on both sides, so peak RSS is that net's own; the two sides
# alternate per net, and the order flips every round, so that the drift of a shared machine
# falls on both alike. The table gives the median over rounds of each run's median step.
# PyTorch is optional: CI never runs this script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=2
threads=2
nets="logreg,mlp,mlp_nodrop,cnn,vae,char_gpt"
steps=""
warmup=3
precision=f32

usage() { sed -n '6p' "${BASH_SOURCE[0]}" | sed 's/^# *//'; }
die() {
    echo "error: $*" >&2
    exit 2
}
positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1: expected a whole number >= 1, got '$2'"; }

while (($#)); do
    case "$1" in
        --rounds | --threads | --nets | --steps | --warmup | --precision)
            (($# >= 2)) || die "$1: missing value"
            case "$1" in
                --rounds) positive "$1" "$2" && rounds="$2" ;;
                --threads) positive "$1" "$2" && threads="$2" ;;
                --steps) positive "$1" "$2" && steps="$2" ;;
                --warmup) [[ "$2" =~ ^[0-9]+$ ]] || die "--warmup: expected a whole number >= 0, got '$2'"; warmup="$2" ;;
                --nets) nets="$2" ;;
                --precision)
                    [[ "$2" =~ ^(f32|bf16|both)$ ]] || die "--precision: expected f32, bf16 or both, got '$2'"
                    precision="$2"
                    ;;
            esac
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1'" ;;
    esac
done

torch_script="${TORCH_PAPER_NETS:-$root/../shared/bench/torch_paper_nets.py}"
char_gpt_script="${TORCH_CHAR_GPT:-$root/../shared/bench/torch_char_gpt.py}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /tmp/torchbench/bin/python ]]; then PYTHON=/tmp/torchbench/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "error: PyTorch not found for $PYTHON: install with" >&2
    echo "  python3 -m venv /tmp/torchbench && /tmp/torchbench/bin/pip install -q torch numpy" >&2
    echo "(or point PYTHON at a python that has torch; see shared/bench/README.md)" >&2
    exit 1
fi

IFS=, read -r -a net_list <<<"$nets"
# Unknown names fail before anything is timed (the torch script would die with a KeyError).
for net in "${net_list[@]}"; do
    [[ ",logreg,mlp,mlp_nodrop,cnn,vae,char_gpt," == *",$net,"* ]] ||
        die "--nets: unknown net '$net' (expected one of: logreg, mlp, mlp_nodrop, cnn, vae, char_gpt)"
    if [[ "$net" == char_gpt ]]; then
        [[ -f "$char_gpt_script" ]] || die "PyTorch reference script not found: $char_gpt_script (set TORCH_CHAR_GPT)"
    else
        [[ -f "$torch_script" ]] || die "PyTorch reference script not found: $torch_script (set TORCH_PAPER_NETS)"
    fi
done
(("${#net_list[@]}")) || die "--nets: empty list"
case "$precision" in
    f32) precisions=(f32) ;;
    bf16) precisions=(bf16) ;;
    both) precisions=(f32 bf16) ;;
esac
if [[ "$precision" != f32 && ",$nets," == *",char_gpt,"* ]]; then
    die "--precision $precision: char_gpt has no bf16 reference (torch_char_gpt.py has no autocast); drop it from --nets"
fi

# Ours, built once; cargo metadata knows the target directory wherever it was configured.
(cd "$root" && cargo build --quiet --release --example bench)
target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
ours="$target_dir/release/examples/bench"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The torch script reports no memory: this wrapper runs it and appends its process's peak RSS
# (getrusage's ru_maxrss, kB on Linux, the figure /usr/bin/time -v prints) to the JSON file.
torch_wrapper='
import json, resource, runpy, sys
script, out = sys.argv[1], sys.argv[-1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    if e.code not in (None, 0):
        raise
with open(out) as f:
    doc = json.load(f)
# torch_paper_nets.py writes {"meta": ..., "rows": [...]}, torch_char_gpt.py one row.
for row in doc.get("rows", [doc]):
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with open(out, "w") as f:
    json.dump(doc, f)
'

run_ours() { # net round precision
    local extra=()
    [[ -n "$steps" ]] && extra=(--steps "$steps")
    local w="$warmup"
    [[ "$1" == char_gpt ]] && w=10 && extra=(--steps "${steps:-30}")
    "$ours" --nets "$1" --threads "$threads" --warmup "$w" --precision "$3" --json "${extra[@]}" \
        >"$work/ours_$1_$2_$3.json" || die "adamant bench failed on $1 ($3)"
}
run_torch() { # net round precision
    local args
    if [[ "$1" == char_gpt ]]; then
        args=("$char_gpt_script" --threads "$threads" --time-steps "${steps:-30}")
    else
        args=("$torch_script" --threads "$threads" --nets "$1" --warmup "$warmup")
        [[ -n "$steps" ]] && args+=(--steps "$steps")
        [[ "$3" == bf16 ]] && args+=(--autocast bf16)
    fi
    local out="$work/torch_$1_$2_$3"
    "$PYTHON" -c "$torch_wrapper" "${args[@]}" --json "$out.json" >"$out.log" 2>&1 || {
        cat "$out.log" >&2
        die "$(basename "${args[0]}") failed on $1 ($3)"
    }
}

for ((r = 1; r <= rounds; r++)); do
    for net in "${net_list[@]}"; do
        for p in "${precisions[@]}"; do
            echo "round $r/$rounds: $net ($p)" >&2
            if ((r % 2)); then
                run_ours "$net" "$r" "$p"
                run_torch "$net" "$r" "$p"
            else
                run_torch "$net" "$r" "$p"
                run_ours "$net" "$r" "$p"
            fi
        done
    done
done

"$PYTHON" - "$work" "$threads" "$rounds" "$(IFS=,; echo "${precisions[*]}")" "${net_list[@]}" <<'EOF'
import json, statistics, sys

work, threads, rounds, precisions, nets = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","), sys.argv[5:]
def ours(net, r, p):
    with open(f"{work}/ours_{net}_{r}_{p}.json") as f:
        row = json.loads(f.readline())
    return row["step_ms"], row["peak_rss_mb"]
def ours_rtt(net, r, p):
    # The cores' round trip before/after our run (ns): which placement the round ran in.
    with open(f"{work}/ours_{net}_{r}_{p}.json") as f:
        rtt = json.loads(f.readline()).get("core_rtt_ns")
    return "-" if rtt is None else "/".join(f"{x:.0f}" for x in rtt)
def torch(net, r, p):
    with open(f"{work}/torch_{net}_{r}_{p}.json") as f:
        doc = json.load(f)
    row = doc.get("rows", [doc])[0]
    return row["step_ms_median"], row["peak_rss_mb"]

# torch_char_gpt.py writes no meta: the version then comes from the torch that ran it.
meta = next((m for m in (json.load(open(f"{work}/torch_{n}_1_{precisions[0]}.json")).get("meta") for n in nets) if m), None)
if meta is None:
    import subprocess
    probe = "import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())"
    version, capability = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                         text=True).stdout.split()
    meta = {"torch": version, "cpu_capability": capability}
print(f"training step, batch 128 (char_gpt: 12 x 64 tokens), {threads} threads, torch {meta['torch']} "
      f"(cpu: {meta['cpu_capability']}); median over {rounds} round(s) of each run's median")
print(f"{'net':<11} {'prec':<5} {'ours ms':>9} {'torch ms':>9} {'ours/torch':>10} {'RSS ours MB':>12} {'RSS torch MB':>13}   rounds ours | torch (ms)")
medians = {}
for net in nets:
    for p in precisions:
        o = [ours(net, r, p) for r in range(1, rounds + 1)]
        t = [torch(net, r, p) for r in range(1, rounds + 1)]
        om, tm = statistics.median(x for x, _ in o), statistics.median(x for x, _ in t)
        medians[net, p] = om, tm
        orss = max((m for _, m in o if m is not None), default=float("nan"))
        trss = max(m for _, m in t)
        per_round = " ".join(f"{x:.3g}" for x, _ in o) + " | " + " ".join(f"{x:.3g}" for x, _ in t)
        print(f"{net:<11} {p:<5} {om:>9.3f} {tm:>9.3f} {om / tm:>10.2f} {orss:>12.0f} {trss:>13.0f}   {per_round}")
print("cross-core round trip before/after each of our runs (ns; about 80 with the cores close, 350 apart):")
for net in nets:
    for p in precisions:
        print(f"{net:<11} {p:<5} " + " ".join(ours_rtt(net, r, p) for r in range(1, rounds + 1)))
if len(precisions) == 2:
    print("bf16 speed-up over the same side's f32 (f32 ms / bf16 ms): net, ours, torch")
    for net in nets:
        (of, tf), (ob, tb) = medians[net, "f32"], medians[net, "bf16"]
        print(f"{net:<11} {of / ob:>6.2f}x {tf / tb:>6.2f}x")
EOF
