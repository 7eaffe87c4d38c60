# Parley: `make run` and `make test` work on a fresh machine; they install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.parley-installed
TORCH_VERSION := 2.13.0

.PHONY: install run test bench info clean

install: $(STAMP)

# torch is installed first, pinned to the local CPU build, so that resolving the project's range
# never downloads a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "torch==$(TORCH_VERSION)"
	$(PIP) install --quiet -e ".[data,eval,test]"
	@touch $(STAMP)

# The demo caller is synthesised once, at install time, with espeak-ng (data tooling, not serving).
DEMO_CALLER := out/caller.wav
DEMO_TEXT := Hi, I'm calling about my order. The number is A 4 8 2 1 3. Can you tell me where it is?

$(DEMO_CALLER): $(STAMP)
	@mkdir -p out
	$(PY) -m model.data.tts --voice en-us --rate 16000 --out $@ --text "$(DEMO_TEXT)"

# Starts model server + gateway, places one call to the `support` agent, prints its summary, stops.
run: install $(DEMO_CALLER)
	$(VENV)/bin/parley serve --demo-call $(DEMO_CALLER) --agent support --out out/demo/call.wav

test: install
	$(PY) -m pytest -q

bench: install
	$(VENV)/bin/parley bench step --preset small --slots 8 --ticks 100
	$(VENV)/bin/parley bench step --preset tiny --slots 64 --ticks 100

info: install
	@for p in tiny small large xl; do $(VENV)/bin/parley model info --preset $$p; done

clean:
	rm -rf $(VENV) out .pytest_cache
