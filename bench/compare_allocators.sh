#!/usr/bin/env bash
# The training step with the system allocator against mimalloc: examples/bench.rs built twice
# (without and with the root package's `mimalloc` feature, which only the examples use), the
# two binaries alternated net by net in one session.
#
#   bench/compare_allocators.sh [--rounds R] [--threads N] [--nets a,b,...] [--bin NAME=PATH ...]
#                               [--raw FILE]
#
# Each net runs in its own process; the binaries alternate per net and their order flips every
# round, so that the drift of a shared machine falls on all alike. The table gives, per net and
# binary, the median over rounds of each run's median step and every round's median, then the
# ratio of each binary to the last one. `--bin NAME=PATH` (repeatable) times prebuilt binaries
# instead of building (e.g. copies of older commits' bench); `--raw FILE` keeps every run's JSON.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=3
threads=2
nets="mlp,cnn,vae"
bins=()
raw=""

die() {
    echo "error: $*" >&2
    exit 2
}

while (($#)); do
    case "$1" in
        --rounds | --threads | --nets | --bin | --raw)
            (($# >= 2)) || die "$1: missing value"
            case "$1" in
                --rounds) [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "--rounds: expected a whole number >= 1"; rounds="$2" ;;
                --threads) [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "--threads: expected a whole number >= 1"; threads="$2" ;;
                --nets) nets="$2" ;;
                --bin) [[ "$2" == *=* ]] || die "--bin: expected NAME=PATH"; bins+=("$2") ;;
                --raw) raw="$2" ;;
            esac
            shift 2
            ;;
        -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1'" ;;
    esac
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ((${#bins[@]} == 0)); then
    target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    (cd "$root" && cargo build --quiet --release --example bench)
    cp "$target_dir/release/examples/bench" "$work/bench-system"
    (cd "$root" && cargo build --quiet --release --example bench --features mimalloc)
    cp "$target_dir/release/examples/bench" "$work/bench-mimalloc"
    bins=("system=$work/bench-system" "mimalloc=$work/bench-mimalloc")
fi

# mimalloc as the library used to configure it: freed memory is never purged (handed back to
# the OS), which took the CNN run's page faults from about 4,000 to 300. The system allocator
# ignores the variable.
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:--1}"

IFS=, read -r -a net_list <<<"$nets"
results="$work/results.jsonl"
for ((r = 1; r <= rounds; r++)); do
    order=("${bins[@]}")
    if ((r % 2 == 0)); then
        order=()
        for ((i = ${#bins[@]} - 1; i >= 0; i--)); do order+=("${bins[i]}"); done
    fi
    for net in "${net_list[@]}"; do
        for bin in "${order[@]}"; do
            name="${bin%%=*}"
            line="$("${bin#*=}" --nets "$net" --threads "$threads" --json)"
            echo "{\"bin\": \"$name\", \"round\": $r, \"run\": $line}" >>"$results"
            echo "round $r $net $name: $(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["step_ms"])') ms" >&2
        done
    done
done

[[ -z "$raw" ]] || cp "$results" "$raw"
names="$(printf '%s\n' "${bins[@]}" | sed 's/=.*//' | paste -sd, -)"
python3 - "$results" "$names" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = sys.argv[2].split(",")
nets = list(dict.fromkeys(r["run"]["net"] for r in rows))
base = names[-1]
print(f"| net | " + " | ".join(f"{n} ms/step (rounds)" for n in names) + " | "
      + " | ".join(f"{n} / {base}" for n in names[:-1]) + " |")
print("|---" * (2 * len(names)) + "|")
for net in nets:
    med, cells = {}, []
    for n in names:
        steps = [r["run"]["step_ms"] for r in rows if r["bin"] == n and r["run"]["net"] == net]
        med[n] = statistics.median(steps)
        cells.append(f"{med[n]:.3g} ({' '.join(f'{s:.3g}' for s in steps)})")
    ratios = [f"**{med[n] / med[base]:.2f}**" for n in names[:-1]]
    print(f"| {net} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
EOF
