"""Saving and loading: safetensors of the trainable weights + a JSON config naming the backbones.

No pickle anywhere.  Files are written to a temporary name and renamed into place, so an
interrupted save never leaves a half-written model behind.  Whether a backbone's own code may
run is the loading caller's choice alone (``trust_remote_code``), never a saved file's: a saved
config records False, and whatever a config.json says is overridden on load.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lmvae.backbones import fingerprint, resolve
from lmvae.config import BackboneRef, VAEConfig
from lmvae.errors import ConfigError, LoadError
from lmvae.textfiles import atomic_write

if TYPE_CHECKING:
    from lmvae.model import LanguageVAE

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
OPTIMIZER_NAME = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
BUNDLED = {"encoder": "encoder", "decoder": "decoder"}


def _portable_ref(ref: BackboneRef, model_base: str | None, target: Path) -> BackboneRef:
    """A reference that still resolves once the config sits in ``target``: local folders and
    GGUF files become paths relative to it, with their weights' fingerprint; hub ids stay."""
    source = resolve(ref, model_base)
    if not os.path.exists(source):
        return ref
    relative = os.path.relpath(os.path.realpath(source), os.path.realpath(target))
    return BackboneRef(relative, ref.revision, False, fingerprint(source))


def save_pretrained(
    model: LanguageVAE,
    directory: str | Path,
    bundle_backbones: bool = False,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a model card ``README.md`` (with
    ``metrics``, if given) into directory (created if needed)."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.config)
    sides = (
        ("encoder", config.encoder, model.encoder.backbone, model.encoder_tokenizer),
        ("decoder", config.decoder, model.decoder.lm, model.decoder_tokenizer),
    )
    for side, section, backbone, tokenizer in sides:
        if bundle_backbones:
            folder = target / BUNDLED[side]
            backbone.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            section.backbone = BackboneRef(BUNDLED[side], None, False, fingerprint(folder))
        else:
            section.backbone = _portable_ref(section.backbone, model.base_dir, target)
        section.backbone.trust_remote_code = False  # trust is given at load time, never saved
    weights = {k: v.detach().contiguous().cpu() for k, v in model.trainable_state_dict().items()}
    atomic_write(target / WEIGHTS_NAME, lambda p: save_file(weights, p, metadata={"format": "pt"}))
    atomic_write(target / CONFIG_NAME, config.to_json)
    atomic_write(target / CARD_NAME, lambda p: Path(p).write_text(model_card(config, metrics)))
    return target


def model_card(config: VAEConfig, metrics: dict[str, Any] | None = None) -> str:
    """A README.md for the folder (the Hub shows it): what the model is, how to load it, and
    the held-out figures of the checkpoint when a trainer saved it."""
    enc, dec = config.encoder, config.decoder
    lines = [
        "---",
        "library_name: lmvae",
        "tags: [lmvae, vae, text-generation]",
        "---",
        "",
        "# lmvae language-model VAE",
        "",
        f"A variational autoencoder with a {config.latent_size}-dimensional latent: the frozen "
        f"encoder `{enc.backbone.name_or_path}` (layer {enc.layer}, {enc.pooling} pooling) gives "
        f"a Gaussian posterior, and z steers the frozen causal LM `{dec.backbone.name_or_path}` "
        f"through {dec.num_slots} injected key/value slots per layer ({dec.injection}).",
        "",
        "```python",
        "from lmvae import LanguageVAE",
        "",
        'vae = LanguageVAE.from_pretrained("THIS_FOLDER_OR_REPO")',
        'vae.reconstruct(["a plant needs water to grow"])',
        "```",
    ]
    if metrics:
        lines += [
            "",
            "## Held-out figures of this checkpoint",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        for key, value in metrics.items():
            if isinstance(value, int | float):
                lines.append(f"| {key} | {value:.4g} |")
    lines += ["", f"Config format {config.format_version}; see config.json for every setting.", ""]
    return "\n".join(lines)


def _local_folder(name_or_path: str | Path, revision: str | None) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if _swap_name(path).is_dir():
        raise LoadError(
            f"{path} is missing: a save was interrupted while it swapped checkpoints, and the "
            f"complete previous one is in {_swap_name(path)} (lmvae train --resume puts it "
            "back, or rename it)"
        )
    text = str(name_or_path)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise LoadError(f"{name_or_path} is not an lmvae model folder (no such directory)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(text, revision=revision))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as e:
        raise LoadError(
            f"cannot download {text!r} from the hub: {str(e).splitlines()[0]}"
        ) from None


def load_config(name_or_path: str | Path, revision: str | None = None) -> tuple[VAEConfig, Path]:
    """The config of a saved model and the folder it lives in."""
    folder = _local_folder(name_or_path, revision)
    config_file = folder / CONFIG_NAME
    if not config_file.is_file():
        raise LoadError(f"{folder} is not an lmvae model folder: {CONFIG_NAME} is missing")
    try:
        return VAEConfig.from_json(config_file), folder
    except ConfigError as e:
        raise LoadError(f"{config_file}: {e}") from None
    except (TypeError, ValueError, AttributeError) as e:  # a setting of the wrong type
        raise LoadError(f"{config_file}: a setting has the wrong type ({e})") from None


def load_pretrained(
    cls: type[LanguageVAE],
    name_or_path: str | Path,
    encoder: str | None = None,
    decoder: str | None = None,
    revision: str | None = None,
    device: Any = None,
    check_backbones: bool = True,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    device_map: Any = None,
) -> LanguageVAE:
    """Rebuild a saved model.  ``encoder`` / ``decoder`` override where its backbones are
    found (for a folder whose backbones moved); their architecture must match the saved
    weights.  ``device_map`` spreads the decoder (see :meth:`LanguageVAE.from_backbones`).
    A local backbone whose weights changed since saving is refused unless
    ``check_backbones=False``.  Backbone code runs only with ``trust_remote_code=True``,
    whatever the saved config.json says, and pickled backbone weights load only with
    ``allow_pickle=True``."""
    if not isinstance(trust_remote_code, bool):
        raise ConfigError(f"trust_remote_code must be True or False, got {trust_remote_code!r}")
    config, folder = load_config(name_or_path, revision)
    config.encoder.backbone.trust_remote_code = trust_remote_code
    config.decoder.backbone.trust_remote_code = trust_remote_code
    if encoder is not None:
        config.encoder.backbone.name_or_path = encoder
    if decoder is not None:
        config.decoder.backbone.name_or_path = decoder
    for side in ("encoder", "decoder"):
        ref = getattr(config, side).backbone
        if check_backbones and ref.fingerprint is not None:
            now = fingerprint(resolve(ref, folder))
            if now is not None and now != ref.fingerprint:
                raise LoadError(
                    f"the {side} backbone {ref.name_or_path!r} changed since this VAE was saved "
                    f"(weights fingerprint {now}, saved {ref.fingerprint}): its trained "
                    "projections may not fit; pass check_backbones=False to load anyway"
                )
    model = cls.from_config(
        config, base_dir=folder, allow_pickle=allow_pickle, device_map=device_map
    )
    load_trainable_weights(model, folder)
    if device is not None:
        model.place(device)
    return model


def load_trainable_weights(model: LanguageVAE, folder: str | Path) -> None:
    """Load a folder's model.safetensors into an already built model, checking every shape."""
    weights_file = Path(folder) / WEIGHTS_NAME
    if not weights_file.is_file():
        raise LoadError(f"{folder} has no {WEIGHTS_NAME}")
    try:
        weights = load_file(weights_file)
    except (SafetensorError, OSError) as e:
        raise LoadError(f"{weights_file} is not a readable safetensors file: {e}") from None
    _check_weights(model, weights)
    model.load_state_dict(weights, strict=False)
    model.decoder.injector.calibrated = True  # trained projections are never recalibrated


def save_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Optimizer state without pickle: tensors in safetensors, the rest in JSON."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, slots in state["state"].items():
        for name, value in slots.items():
            key = f"{pid}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().contiguous().cpu()
            else:
                scalars[key] = value
    meta = {"param_groups": state["param_groups"], "scalars": scalars}
    atomic_write(folder / OPTIMIZER_NAME, lambda p: save_file(tensors, p))
    atomic_write(folder / OPTIMIZER_META, lambda p: Path(p).write_text(json.dumps(meta)))


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Inverse of :func:`save_optimizer`; raises LoadError when the parameters do not match."""
    try:
        tensors = load_file(folder / OPTIMIZER_NAME)
        meta = json.loads((folder / OPTIMIZER_META).read_text())
    except (OSError, SafetensorError, json.JSONDecodeError) as e:
        raise LoadError(f"cannot read the optimizer state in {folder}: {e}") from None
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as e:
        raise LoadError(f"optimizer state in {folder} does not fit this model: {e}") from None


def _check_weights(model: LanguageVAE, weights: dict) -> None:
    expected = model.trainable_state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise LoadError(
            "saved weights do not fit the config"
            + (f"; missing: {', '.join(missing[:3])}" if missing else "")
            + (f"; unexpected: {', '.join(unexpected[:3])}" if unexpected else "")
        )
    head = "encoder.head.weight"
    saved_latent = weights[head].shape[0] // 2
    if saved_latent != model.latent_size:
        raise LoadError(
            f"latent size mismatch: config.json says {model.latent_size} but the weights were "
            f"trained with {saved_latent}"
        )
    for key, tensor in expected.items():
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise LoadError(
                f"{key}: saved shape {tuple(weights[key].shape)} but the config and backbones "
                f"build {tuple(tensor.shape)}; were the backbones swapped for different ones?"
            )


def push_to_hub(
    model: LanguageVAE,
    repo_id: str,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload lmvae model",
    bundle_backbones: bool | None = None,
) -> str:
    """Save into a temporary folder and upload it.  Local backbones cannot be reached by others,
    so they are bundled unless ``bundle_backbones=False`` is given explicitly."""
    from huggingface_hub import HfApi

    if bundle_backbones is None:
        refs = (model.config.encoder.backbone, model.config.decoder.backbone)
        bundle_backbones = any(os.path.isdir(resolve(r, model.base_dir)) for r in refs)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, bundle_backbones=bundle_backbones)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


def replace_directory(source: Path, target: Path) -> None:
    """Move a finished folder into place; an existing target is swapped out, then removed.

    The swap is two renames (target -> ``.<name>.old``, source -> target).  A process killed
    between them leaves no target and a complete ``.old``: the next swap (or
    :func:`recover_swap`) puts that back first instead of deleting it.
    """
    recover_swap(target)
    old = _swap_name(target)
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    if old.exists():
        shutil.rmtree(old)


def _swap_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def recover_swap(target: Path) -> bool:
    """Finish what an interrupted :func:`replace_directory` left: with no ``target`` the
    swapped-out ``.<name>.old`` is the complete previous folder and is renamed back (True);
    next to a target it is only left over from the final removal and is deleted."""
    old = _swap_name(target)
    if not old.exists():
        return False
    if target.exists():
        shutil.rmtree(old)
        return False
    os.replace(old, target)
    return True
