"""lmvae.sources: backbone entries that name models inside wheels resolve to real paths,
and every mistake is one clear error."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from lmvae.errors import ConfigError
from lmvae.sources import resolve_backbone, split_zip_parts, unpack_split_zip


def test_package_backbones_are_found_inside_installed_packages(tmp_path):
    found = resolve_backbone("package:lmvae/grid/*.py", tmp_path)
    assert found.endswith(".py") and "grid" in found
    with pytest.raises(ConfigError, match="no installed package"):
        resolve_backbone("package:no_such_package_here/x", tmp_path)


def test_package_functions_make_backbones(tmp_path, monkeypatch):
    model = tmp_path / "made.gguf"
    model.write_bytes(b"GGUF")
    (tmp_path / "maker_pkg").mkdir()
    (tmp_path / "maker_pkg" / "__init__.py").write_text(
        f"CALLS = []\ndef assemble():\n    CALLS.append(1)\n    return {str(model)!r}\n"
        "def nowhere():\n    return '/no/such/file.gguf'\nNOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_backbone("package:maker_pkg:assemble", tmp_path) == str(model)
    import maker_pkg

    assert maker_pkg.CALLS == [1]
    for value, fragment in [
        ("package:maker_pkg:nowhere", "returned /no/such/file.gguf, which does not exist"),
        ("package:maker_pkg:NOT_CALLABLE", "has no function 'NOT_CALLABLE'"),
        ("package:maker_pkg:missing", "has no function 'missing'"),
        ("package:no_such_package_here:assemble", "no installed package"),
        ("package:maker_pkg:as-semble", "use package:NAME:FUNCTION"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            resolve_backbone(value, tmp_path)


def _split_wheels(site: Path, files: dict[str, bytes], parts: int = 3) -> bytes:
    """A zip of ``files`` under one top folder, split over ``parts`` 'wheel' folders in site."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"model/{name}", data)
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    for i in range(parts):
        folder = site / f"model-part_{i + 1:03d}" / "input"
        folder.mkdir(parents=True)
        (folder / f"model.zip.{i + 1:03d}").write_bytes(data[i * size : (i + 1) * size])
    return data


def test_split_zips_are_joined_and_unpacked_once(tmp_path, monkeypatch):
    site = tmp_path / "site"
    files = {"config.json": b'{"model_type": "bert"}', "weights.bin": bytes(range(256)) * 400}
    _split_wheels(site, files)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "cache"))
    parts = split_zip_parts("model-part_*/input/model.zip.*")
    assert [p.name for p in parts] == ["model.zip.001", "model.zip.002", "model.zip.003"]
    folder = Path(resolve_backbone("split-zip:model-part_*/input/model.zip.*", tmp_path))
    assert folder.name == "model" and (folder / "weights.bin").read_bytes() == files["weights.bin"]
    (folder / "config.json").write_text("kept")  # a second call reuses the unpacked folder
    assert unpack_split_zip(parts) == folder and (folder / "config.json").read_text() == "kept"
    assert not [p for p in folder.parents[1].rglob("*.tmp-*")]  # no temporary left behind


def test_split_zip_mistakes_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="no installed file matches"):
        split_zip_parts("nothing-here_*/x.zip.*", search=[str(tmp_path)])
    site = tmp_path / "site"
    _split_wheels(site, {"a": b"x" * 1000})
    (site / "model-part_002" / "input" / "model.zip.002").unlink()  # one wheel not installed
    parts = split_zip_parts("model-part_*/input/model.zip.*", search=[str(site)])
    with pytest.raises(ConfigError, match="do not join into a zip archive"):
        unpack_split_zip(parts)
    assert not list((tmp_path / "cache" / "split-zip").iterdir())  # nothing half-made is kept
