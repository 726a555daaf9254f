"""Loading the frozen backbones: the only module that calls ``from_pretrained`` on them.

A backbone is named by a hub id or a local folder.  Saved VAEs may refer to a folder by a path
relative to the VAE's own folder, so that a moved directory tree still loads.  Weights load from
safetensors or GGUF only: a pickled checkpoint (``pytorch_model.bin``) can run code when it is
read, so it is refused unless the caller passes ``allow_pickle=True``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForTextEncoding,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers import activations as hf_activations
from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES
from transformers.utils import logging as hf_logging

from lmvae.config import QUANTIZED_WEIGHTS, BackboneRef
from lmvae.errors import ConfigError, LoadError
from lmvae.precision import cpu_has_fast_bf16


def resolve(ref: BackboneRef, base_dir: str | Path | None = None) -> str:
    """Turn a reference into something ``from_pretrained`` accepts (see :func:`source_kwargs`
    for a GGUF file).

    Relative folders (or ``.gguf`` files) are tried against ``base_dir`` (the saved VAE's
    folder) first, then against the working directory; anything else is taken as a hub id.
    """
    name = os.path.expanduser(ref.name_or_path)
    if not name:
        raise LoadError("no backbone given: pass a hub id or a local folder")
    candidates = []
    if base_dir is not None and not os.path.isabs(name):
        candidates.append(os.path.join(base_dir, name))
    candidates.append(name)
    for cand in candidates:
        if os.path.isdir(cand) or (is_gguf(cand) and os.path.isfile(cand)):
            return os.path.abspath(cand)
    if is_gguf(name):
        raise LoadError(f"GGUF file {ref.name_or_path!r} does not exist")
    if os.path.isabs(name) or name.startswith(".") or os.path.exists(name):
        raise LoadError(f"backbone folder {ref.name_or_path!r} does not exist")
    return name


def is_gguf(name: str | Path) -> bool:
    """Whether a backbone name points at a GGUF file (llama.cpp's single-file format)."""
    return str(name).lower().endswith(".gguf")


def source_kwargs(source: str) -> tuple[str, dict]:
    """``from_pretrained``'s first argument and extra keywords for a resolved source: a GGUF
    file loads from its folder with ``gguf_file=`` (transformers dequantises it)."""
    if not is_gguf(source):
        return source, {}
    if importlib.util.find_spec("gguf") is None:
        raise LoadError(
            f"loading the GGUF file {source!r} needs the gguf package: pip install gguf"
        )
    return os.path.dirname(source), {"gguf_file": os.path.basename(source)}


#: Files whose bytes are a backbone's weights.
_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".msgpack", ".h5")
_SAMPLES, _SAMPLE_BYTES = 16, 1 << 16


def fingerprint(source: str | Path) -> str | None:
    """A short fingerprint of a local backbone's weights (a folder or a GGUF file); None for a
    hub id.  SHA-256 over each weight file's name, size and 16 spread 64 KiB samples: cheap on a
    7B model, and any retraining or swap of the weights changes it."""
    path = Path(source)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    else:
        return None
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with open(file, "rb") as f:
            for i in range(_SAMPLES):
                f.seek(max(0, size - _SAMPLE_BYTES) * i // max(1, _SAMPLES - 1))
                digest.update(f.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:16]


#: Weight files that torch.load unpickles.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def weights_kwargs(source: str, ref: BackboneRef, role: str, allow_pickle: bool) -> dict:
    """``from_pretrained`` keywords that keep pickles out: a local folder holding only pickled
    weights is refused by name, and transformers is told to read safetensors only."""
    if allow_pickle or is_gguf(source):
        return {}
    folder = Path(source)
    if folder.is_dir():
        files = [p.name for p in folder.iterdir() if p.is_file()]
        pickles = [f for f in files if f.endswith(_PICKLE_SUFFIXES)]
        if pickles and not any(f.endswith(".safetensors") for f in files):
            raise LoadError(
                f"the {role} {ref.name_or_path!r} holds pickled weights only ({pickles[0]}), "
                "which can run code when loaded: convert them to safetensors, or allow pickles "
                "(allow_pickle=True; --allow-pickle) if you trust their source"
            )
    return {"use_safetensors": True}


def _load_config(source: str, ref: BackboneRef, role: str):
    source, extra = source_kwargs(source)
    try:
        return AutoConfig.from_pretrained(
            source, revision=ref.revision, trust_remote_code=ref.trust_remote_code, **extra
        )
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoadError(f"cannot load {role} {ref.name_or_path!r}: {first}") from None


def _load_tokenizer(source: str, ref: BackboneRef, role: str) -> PreTrainedTokenizerBase:
    source, extra = source_kwargs(source)
    try:
        tok = AutoTokenizer.from_pretrained(
            source, revision=ref.revision, trust_remote_code=ref.trust_remote_code, **extra
        )
    except (OSError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoadError(
            f"cannot load the {role} tokenizer of {ref.name_or_path!r}: {first}"
        ) from None
    return tok


@contextmanager
def _quiet_loading():
    """Hide transformers' per-load progress bars and load reports (e.g. an unused BERT pooler
    being "newly initialized"); real errors still raise."""
    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def freeze(model: nn.Module) -> nn.Module:
    """Stop gradients into a backbone and put it in inference mode (no dropout)."""
    model.requires_grad_(False)
    model.eval()
    return model


#: Activations that transformers composes from half a dozen element-wise ops, each the tanh
#: approximation of GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written out.
_COMPOSED_TANH_GELUS = tuple(
    cls
    for cls in (
        getattr(hf_activations, "NewGELUActivation", None),  # "gelu_new": GPT-2, GPT-J, ...
        getattr(hf_activations, "FastGELUActivation", None),  # "gelu_fast"
    )
    if cls is not None
)


def fuse_activations(model: nn.Module) -> nn.Module:
    """Swap composed tanh-GELU modules for torch's fused kernel of the same function.

    The outputs agree to float rounding (a few 1e-7 in fp32); forward and backward run as one
    kernel each instead of six ops that each save a tensor for backward, which measured 1.3x
    on a training step of a 4-layer GPT-2 on CPU and smaller activation memory.
    """
    swaps = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, _COMPOSED_TANH_GELUS)
    ]
    for parent, name in swaps:
        setattr(parent, name, nn.GELU(approximate="tanh"))
    return model


def load_encoder(
    ref: BackboneRef,
    base_dir: str | Path | None = None,
    dtype: torch.dtype | None = None,
    allow_pickle: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a frozen text encoder: an encoder-only LM, the encoder stack of an encoder-decoder
    model (T5), or a decoder-only LM whose hidden states are pooled."""
    source = resolve(ref, base_dir)
    safe = weights_kwargs(source, ref, "encoder", allow_pickle)
    config = _load_config(source, ref, "encoder")
    tok = _load_tokenizer(source, ref, "encoder")
    source, extra = source_kwargs(source)
    extra.update(safe)
    kwargs = {"revision": ref.revision, "trust_remote_code": ref.trust_remote_code, **extra}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        with _quiet_loading():
            if config.model_type in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES:
                model_cls = AutoModelForTextEncoding._model_mapping[type(config)]
                if "add_pooling_layer" in inspect.signature(model_cls.__init__).parameters:
                    kwargs["add_pooling_layer"] = False  # we pool ourselves; skip an unused layer
                model = model_cls.from_pretrained(source, **kwargs)
            else:
                model = AutoModel.from_pretrained(source, **kwargs)
                if getattr(model.config, "is_encoder_decoder", False) and hasattr(
                    model, "get_encoder"
                ):
                    model = model.get_encoder()
    except (OSError, ValueError) as e:
        raise LoadError(
            f"cannot load encoder {ref.name_or_path!r}: {str(e).splitlines()[0]}"
        ) from None
    fuse_activations(model)
    if tok.pad_token_id is None:
        # Decoder-only models used as encoders often lack a pad token; any id works because
        # padded positions are masked out of pooling and attention.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return freeze(model), tok


def held_weights_kwargs(weights: str, device_map: Any = None) -> dict[str, Any]:
    """``from_pretrained`` arguments that hold a frozen decoder's weights as
    ``DecoderConfig.weights`` says, placed by ``device_map`` (None: one device)."""
    placement = {} if device_map is None else {"device_map": device_map}
    if weights not in QUANTIZED_WEIGHTS:
        return {"dtype": getattr(torch, weights), **placement}
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"{weights} decoder weights need the bitsandbytes package: pip install bitsandbytes"
        )
    from transformers import BitsAndBytesConfig

    if device_map is None:  # bitsandbytes quantises as it places: on this process's device
        device_map = {"": _process_device()}
    # bf16 where it is fast (a GPU, a CPU with bf16 matmuls), else fp32: emulated bf16
    # matmuls on other CPUs run ~20x slower than fp32.
    fast = torch.cuda.is_available() or cpu_has_fast_bf16()
    compute = torch.bfloat16 if fast else torch.float32
    if weights == "8bit":
        quantization = BitsAndBytesConfig(load_in_8bit=True)
        # LLM.int8 quantises each input to fp16 and logs so at every matmul of other inputs.
        logging.getLogger("bitsandbytes.autograd._functions").addFilter(_quiet_int8_casts)
    else:  # NF4 with quantised quantisation constants (QLoRA's recipe)
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True,
        )
    return {"quantization_config": quantization, "dtype": compute, "device_map": device_map}


def _quiet_int8_casts(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("MatMul8bitLt: inputs will be cast")


def _process_device() -> str:
    """The device a run's process trains on: its GPU (LOCAL_RANK) if there is one, else CPU."""
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def load_decoder(
    ref: BackboneRef,
    base_dir: str | Path | None = None,
    weights: str = "float32",
    allow_pickle: bool = False,
    device_map: Any = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a frozen causal LM and its tokenizer, its weights held as ``weights`` says
    (``DecoderConfig.weights``) and spread over devices by ``device_map`` when given
    (transformers' own: ``"auto"`` fills the GPUs in order)."""
    source = resolve(ref, base_dir)
    if weights in QUANTIZED_WEIGHTS and is_gguf(source):
        raise ConfigError(
            f"{weights} decoder weights need a safetensors decoder, not a GGUF file (transformers "
            "dequantises GGUF files and cannot requantise or save them): use the model's "
            "safetensors release, or hold it in bfloat16"
        )
    safe = weights_kwargs(source, ref, "decoder", allow_pickle)
    _load_config(source, ref, "decoder")
    tok = _load_tokenizer(source, ref, "decoder")
    source, extra = source_kwargs(source)
    extra.update(safe)
    kwargs = {"revision": ref.revision, "trust_remote_code": ref.trust_remote_code, **extra}
    kwargs.update(held_weights_kwargs(weights, device_map))
    try:
        with _quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except ValueError as e:
        raise LoadError(
            f"decoder {ref.name_or_path!r} is not a causal LM: {str(e).splitlines()[0]}"
        ) from None
    except OSError as e:
        raise LoadError(
            f"cannot load decoder {ref.name_or_path!r}: {str(e).splitlines()[0]}"
        ) from None
    fuse_activations(model)
    if tok.eos_token_id is None:
        raise LoadError(
            f"decoder tokenizer of {ref.name_or_path!r} has no EOS token: the VAE needs one to "
            "learn where sentences end"
        )
    return freeze(model), tok
