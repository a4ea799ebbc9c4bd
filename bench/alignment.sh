#!/usr/bin/env bash
# Reproduces the "GenRM agreement with human preferences" table of docs/results.md.
#
#   bench/alignment.sh OUTDIR
#
# Imports the StoryER test split, WQ style-mimic and LAMP-P into OUTDIR/pairs (never into the
# repository). For each mode and set, `quillrl judge --swap` judges every pair in both orders
# (resumable: rerun the script after an interruption and it carries on), then
# `quillrl eval alignment --judgments` scores it beside baseline:length and baseline:random on
# the same pairs. A swap run yields two GenRM rows: swap-debiased, and its AB order alone (the
# judge without swap). Each set leaves OUTDIR/<set>-<mode>/{alignment.md,reliability.png,
# summary.json}; StoryER and WQ also get a CI resampled by prompt in OUTDIR/<set>-<mode>-by-prompt.
#
# Settings (environment):
#   QUILLRL          command that runs quillrl            (default: .venv/bin/quillrl)
#   JUDGE            GenRM spec                            (default: genrm:local:smollm2-135m-instruct)
#   MODES            modes to run, in order                (default: "verdict reasoning")
#   SETS             pair sets                             (default: "storyer-test wq-style-mimic lamp-p")
#   RUN_ARGS         extra judge options, e.g. "--device cuda --batch-size 64" (default: none)
#   VERDICT_SAMPLE   --sample N for verdict mode: N pairs drawn with seed 0 (default: every pair)
#   REASONING_SAMPLE --sample N for reasoning mode (default 30: on a CPU a reasoning judgment
#                    costs about as much as three verdict-only ones; empty = every pair)
#   A set name may carry its own sample size as SET:N (e.g. "storyer-test:100"), which wins.
#   PAIRS_DIR        use pair files already imported here instead of importing
set -euo pipefail

out=${1:?usage: bench/alignment.sh OUTDIR}
quillrl=${QUILLRL:-.venv/bin/quillrl}
judge=${JUDGE:-genrm:local:smollm2-135m-instruct}
modes=${MODES:-verdict reasoning}
sets=${SETS:-storyer-test wq-style-mimic lamp-p}
verdict_sample=${VERDICT_SAMPLE-}
reasoning_sample=${REASONING_SAMPLE-30}
pairs=${PAIRS_DIR:-$out/pairs}
mkdir -p "$out" "$pairs"

if [ -z "${PAIRS_DIR:-}" ]; then
  $quillrl data import storyer --split test --seed 0 --out "$pairs/storyer-test.jsonl" | tail -n 1
  $quillrl data import wq-style-mimic --out "$pairs/wq-style-mimic.jsonl" | tail -n 1
  $quillrl data import lamp-p --out "$pairs/lamp-p.jsonl" | tail -n 1
fi

for mode in $modes; do
  for entry in $sets; do
    set=${entry%%:*}
    n=$([ "$mode" = reasoning ] && echo "$reasoning_sample" || echo "$verdict_sample")
    if [ "$entry" != "$set" ]; then n=${entry#*:}; fi
    subset=()
    if [ -n "$n" ]; then subset=(--sample "$n"); fi
    name="$set-$mode"
    echo "== $name ${subset[*]}" >&2
    # shellcheck disable=SC2086  # RUN_ARGS is a list of options
    $quillrl judge --pairs "$pairs/$set.jsonl" --judge "$judge" --mode "$mode" --swap \
      "${subset[@]}" --seed 0 --out "$out/$name-swap.jsonl" ${RUN_ARGS:-} | tail -n 1
    by=(pair)
    case "$set" in storyer-test|wq-style-mimic) by+=(prompt) ;; esac
    for unit in "${by[@]}"; do
      dir="$out/$name"
      if [ "$unit" = prompt ]; then dir="$dir-by-prompt"; fi
      mkdir -p "$dir"
      $quillrl eval alignment --pairs "$pairs/$set.jsonl" "${subset[@]}" \
        --judgments "$out/$name-swap.jsonl" --judge baseline:length --judge baseline:random \
        --seed 0 --bootstrap-by "$unit" --report-dir "$dir" | tail -n 1 > "$dir/summary.json"
      cat "$dir/alignment.md"
    done
  done
done
