"""lmvae.checkpoint: what is written, how backbones are found again, and load-time checks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import lmvae.checkpoint as checkpoint
from lmvae import LanguageVAE
from lmvae.checkpoint import load_config, replace_directory
from lmvae.config import FORMAT_VERSION
from lmvae.errors import ConfigError, LoadError

TEXTS = ["the cat sat on the mat", "a dog runs in the park"]


@pytest.fixture(scope="module")
def saved(make_vae, tmp_path_factory):
    """A saved bert + gpt2 model (read-only for the tests: copy before editing)."""
    folder = tmp_path_factory.mktemp("saved") / "m"
    vae = make_vae("bert", "gpt2").eval()
    vae.save_pretrained(folder)
    return folder, vae.encode(TEXTS)


def _copy(saved, tmp_path):
    return shutil.copytree(saved[0], tmp_path / "m")


def test_relative_backbone_names_resolve_from_the_working_dir_then_the_folder(
    backbones, tmp_path, monkeypatch
):
    shutil.copytree(backbones.encoder("bert"), tmp_path / "work" / "bb" / "enc")
    shutil.copytree(backbones.decoder("gpt2"), tmp_path / "work" / "bb" / "dec")
    monkeypatch.chdir(tmp_path / "work")
    vae = LanguageVAE.from_backbones("bb/enc", "bb/dec", 8)
    z = vae.encode(TEXTS)
    vae.save_pretrained("runs/best")
    config = json.loads((tmp_path / "work" / "runs" / "best" / "config.json").read_text())
    assert config["encoder"]["backbone"]["name_or_path"] == os.path.join("..", "..", "bb", "enc")
    monkeypatch.chdir(tmp_path)  # elsewhere: the paths are relative to the model folder
    loaded = LanguageVAE.from_pretrained(tmp_path / "work" / "runs" / "best")
    torch.testing.assert_close(loaded.encode(TEXTS), z, atol=0, rtol=0)


def test_override_backbones_when_they_moved(saved, backbones, tmp_path):
    folder = _copy(saved, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["decoder"]["backbone"]["name_or_path"] = "gone/elsewhere/dec"
    config["encoder"]["backbone"]["name_or_path"] = "./gone/enc"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="gone"):
        LanguageVAE.from_pretrained(folder)
    loaded = LanguageVAE.from_pretrained(
        folder, encoder=str(backbones.encoder("bert")), decoder=str(backbones.decoder("gpt2"))
    )
    torch.testing.assert_close(loaded.encode(TEXTS), saved[1], atol=0, rtol=0)


def test_swapped_decoder_of_another_geometry_is_named(saved, backbones):
    other = str(backbones.decoder("qwen2"))
    with pytest.raises(LoadError, match="decoder backbone .* changed since this VAE was saved"):
        LanguageVAE.from_pretrained(saved[0], decoder=other)
    with pytest.raises(LoadError, match=r"decoder\.injector\.kv\.weight: saved shape"):
        LanguageVAE.from_pretrained(saved[0], decoder=other, check_backbones=False)


def test_changed_backbone_weights_are_named_at_load(make_vae, tmp_path):
    from safetensors.torch import load_file, save_file

    vae = make_vae("bert", "gpt2")
    enc_src = Path(vae.config.encoder.backbone.name_or_path)
    dec_src = Path(vae.config.decoder.backbone.name_or_path)
    shutil.copytree(enc_src, tmp_path / "enc")
    shutil.copytree(dec_src, tmp_path / "dec")
    vae = LanguageVAE.from_backbones(str(tmp_path / "enc"), str(tmp_path / "dec"), 8)
    vae.save_pretrained(tmp_path / "vae")
    config = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert len(config["decoder"]["backbone"]["fingerprint"]) == 16
    LanguageVAE.from_pretrained(tmp_path / "vae")  # unchanged: loads
    weights_file = next((tmp_path / "dec").glob("*.safetensors"))
    weights = load_file(weights_file)
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0  # the decoder was retrained in place
    save_file(weights, weights_file)
    with pytest.raises(LoadError, match="decoder backbone .* changed"):
        LanguageVAE.from_pretrained(tmp_path / "vae")
    LanguageVAE.from_pretrained(tmp_path / "vae", check_backbones=False)


def test_model_card_is_written(saved):
    card = (Path(saved[0]) / "README.md").read_text()
    assert "library_name: lmvae" in card and "from_pretrained" in card


def test_format_1_configs_migrate_and_newer_formats_are_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 1
    del config["decoder"]["slot_init"]
    for side in ("encoder", "decoder"):
        del config[side]["backbone"]["fingerprint"]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = LanguageVAE.from_pretrained(folder)
    assert loaded.config.decoder.slot_init == "random"  # what format-1 models trained with
    torch.testing.assert_close(loaded.encode(TEXTS), saved[1], atol=0, rtol=0)
    config["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="newer lmvae .* upgrade"):
        LanguageVAE.from_pretrained(folder)


def test_config_that_no_longer_fits_the_weights(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["encoder"]["layer"] = "mix"  # adds a trainable tensor the weights lack
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="missing: encoder.layer_logits"):
        LanguageVAE.from_pretrained(folder)


def test_broken_files_are_load_errors(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    (folder / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(LoadError, match="not a readable safetensors file"):
        LanguageVAE.from_pretrained(folder)
    os.remove(folder / "model.safetensors")
    with pytest.raises(LoadError, match="has no model.safetensors"):
        LanguageVAE.from_pretrained(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(LoadError, match="config.json"):
        load_config(folder)
    (folder / "config.json").write_text(json.dumps({"latent_size": 4}))
    with pytest.raises(LoadError, match="not an lmvae config"):
        load_config(folder)


def test_hub_style_name_fails_offline_with_a_load_error():
    with pytest.raises(LoadError, match="cannot download 'no-such-org/no-such-model'"):
        LanguageVAE.from_pretrained("no-such-org/no-such-model")


def _shift_trainable(vae):
    with torch.no_grad():
        for p in vae.parameters():
            if p.requires_grad:
                p.add_(1.0)


def test_save_overwrites_in_place_and_leaves_no_temporary_files(make_vae, tmp_path):
    vae = make_vae("bert", "gpt2")
    vae.save_pretrained(tmp_path / "m")
    _shift_trainable(vae)
    vae.save_pretrained(tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["README.md", "config.json", "model.safetensors"]
    loaded = LanguageVAE.from_pretrained(tmp_path / "m")
    for k, v in vae.trainable_state_dict().items():
        assert torch.equal(loaded.trainable_state_dict()[k], v), k


def test_failed_save_keeps_the_previous_weights(make_vae, tmp_path, monkeypatch):
    vae = make_vae("bert", "gpt2")
    vae.save_pretrained(tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()

    def broken_save(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken_save)
    _shift_trainable(vae)
    with pytest.raises(OSError, match="disk full"):
        vae.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert sorted(os.listdir(tmp_path / "m")) == ["README.md", "config.json", "model.safetensors"]


def test_replace_directory(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_text("new")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "f").write_text("old")
    replace_directory(tmp_path / "new", tmp_path / "target")
    assert (tmp_path / "target" / "f").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["target"]
    (tmp_path / "again").mkdir()
    replace_directory(tmp_path / "again", tmp_path / "fresh")  # no previous target
    assert sorted(os.listdir(tmp_path)) == ["fresh", "target"]


class _FakeHub:
    """Stands in for the Hub: keeps what is uploaded, serves it back as a snapshot."""

    def __init__(self, root):
        self.root = root
        self.created = []

    def api(self, token=None):
        hub = self

        class Api:
            def create_repo(self, repo_id, private=None, exist_ok=False):
                hub.created.append((repo_id, private, exist_ok))

            def upload_folder(self, repo_id, folder_path, commit_message):
                shutil.copytree(folder_path, hub.root / repo_id, dirs_exist_ok=True)
                return f"https://hub.example/{repo_id}/commit/1"

        return Api()

    def snapshot_download(self, repo_id, revision=None):
        path = self.root / repo_id
        if not path.is_dir():
            raise OSError(f"{repo_id} not found")
        return str(path)


def test_push_to_hub_bundles_local_backbones_and_loads_back(make_vae, tmp_path, monkeypatch):
    import huggingface_hub

    hub = _FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    vae = make_vae("bert", "gpt2").eval()
    url = vae.push_to_hub("someone/tiny-vae", private=True)
    assert url.endswith("/commit/1")
    assert hub.created == [("someone/tiny-vae", True, True)]
    uploaded = tmp_path / "hub" / "someone" / "tiny-vae"
    # The backbones are local folders nobody else can reach, so they travel with the model.
    assert {"config.json", "model.safetensors", "encoder", "decoder"} <= set(os.listdir(uploaded))
    config = json.loads((uploaded / "config.json").read_text())
    assert config["encoder"]["backbone"]["name_or_path"] == "encoder"
    loaded = LanguageVAE.from_pretrained("someone/tiny-vae")
    torch.testing.assert_close(loaded.encode(TEXTS), vae.encode(TEXTS))


# -- trust comes from the caller, never from a file -----------------------------------------------


def _remote_code_backbone(backbones, tmp_path):
    """A copy of the tiny GPT-2 whose config.json names custom code that leaves a marker file
    when it runs."""
    folder = shutil.copytree(backbones.decoder("gpt2"), tmp_path / "remote-code-gpt2")
    marker = tmp_path / "CODE_RAN"
    (folder / "marker_config.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import GPT2Config\n\n\n"
        "class MarkerConfig(GPT2Config):\n"
        "    pass\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "marker_config.MarkerConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


def test_trust_remote_code_in_a_saved_config_is_ignored(backbones, tmp_path):
    folder, marker = _remote_code_backbone(backbones, tmp_path)
    vae = LanguageVAE.from_backbones(str(backbones.encoder("bert")), str(folder), 8)
    saved = vae.save_pretrained(tmp_path / "vae")
    config = json.loads((saved / "config.json").read_text())
    assert config["decoder"]["backbone"]["trust_remote_code"] is False  # never saved as True
    for side in ("encoder", "decoder"):  # an attacker's edit
        config[side]["backbone"]["trust_remote_code"] = True
    (saved / "config.json").write_text(json.dumps(config))
    vae = LanguageVAE.from_pretrained(saved)
    assert not marker.exists()
    assert vae.config.decoder.backbone.trust_remote_code is False
    with pytest.raises(ConfigError, match="trust_remote_code"):
        LanguageVAE.from_pretrained(saved, trust_remote_code="yes")


def test_trust_remote_code_from_the_caller_runs_the_code(backbones, tmp_path):
    folder, marker = _remote_code_backbone(backbones, tmp_path)
    vae = LanguageVAE.from_backbones(str(backbones.encoder("bert")), str(folder), 8)
    saved = vae.save_pretrained(tmp_path / "vae")
    with contextlib.suppress(LoadError):  # the custom config class builds no causal LM
        LanguageVAE.from_pretrained(saved, trust_remote_code=True)
    assert marker.exists()  # the test above would see the code run if it had
