"""Test support: the tiny corpus and builders of tiny random-weight backbones (no network)."""

from __future__ import annotations

from pathlib import Path

import torch

#: A tiny lowercase corpus: every word of it is one token of both tokenizers.
CORPUS: list[str] = [
    "the cat sat on the mat",
    "a dog runs in the park",
    "the bird sings at dawn",
    "my sister reads a long book",
    "the sun rises over the hills",
    "a child plays with a red ball",
    "the river flows to the sea",
    "we eat bread and cheese",
    "the old man walks his dog",
    "rain falls on the quiet town",
    "the teacher writes on the board",
    "a fox jumps over the fence",
    "the baker makes fresh bread",
    "snow covers the high mountains",
    "the ship sails across the ocean",
    "my brother fixes the old car",
    "the moon shines at night",
    "a girl draws a small house",
    "the farmer grows green corn",
    "the wind blows through the trees",
    "the students listen to the teacher",
    "a cat sleeps near the fire",
    "the train leaves at noon",
    "we walk to the market",
    "the doctor helps the sick child",
    "fish swim in the cold river",
    "the band plays a loud song",
    "a man sells fruit in the market",
    "the library opens at nine",
    "the kids build a sand castle",
    "my mother bakes a sweet cake",
    "the horse runs across the field",
    "a plane flies above the clouds",
    "the painter paints a blue sky",
    "the gardener waters the flowers",
    "birds fly south in winter",
    "the clock strikes twelve",
    "a boy kicks the ball",
    "the chef cooks a hot soup",
    "the lamp lights the small room",
]

HIDDEN = 64
LAYERS = 2
HEADS = 4
INTERMEDIATE = 128
MAX_POSITIONS = 128

#: Decoder architectures: id -> (model_type, extra config).  The ids name the quirk each covers.
DECODER_SPECS: dict[str, tuple[str, dict]] = {
    "gpt2": ("gpt2", {}),
    "llama-gqa": ("llama", {"num_key_value_heads": 2}),
    "llama-headdim": ("llama", {"num_key_value_heads": 2, "head_dim": 32}),
    "qwen2": ("qwen2", {"num_key_value_heads": 2}),
    "mistral": ("mistral", {"num_key_value_heads": 2, "sliding_window": 8}),
    "gemma": ("gemma", {"num_key_value_heads": 2, "head_dim": 32}),
    "phi": ("phi", {}),
}
DECODER_IDS = list(DECODER_SPECS)

#: Further architectures, for the tests of one quirk each (logit scaling, family quirks).
EXTRA_DECODER_SPECS: dict[str, tuple[str, dict]] = {
    "gemma2": (
        "gemma2",
        {
            "num_key_value_heads": 2,
            "head_dim": 32,
            "query_pre_attn_scalar": 24,
            "attn_logit_softcapping": 4.0,
            "final_logit_softcapping": 8.0,
        },
    ),
    "phi3-partial": (
        "phi3",
        {
            "num_key_value_heads": 2,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "partial_rotary_factor": 0.5,
            },
        },
    ),
    "qwen3": ("qwen3", {"num_key_value_heads": 2, "head_dim": 32}),
    "gemma3": (
        "gemma3_text",
        {
            "num_key_value_heads": 2,
            "head_dim": 32,
            "query_pre_attn_scalar": 24,
            "sliding_window": MAX_POSITIONS,  # slots + max length, per-position injection too
            "layer_types": ["sliding_attention", "full_attention"],
        },
    ),
    "cohere": ("cohere", {"num_key_value_heads": 2, "logit_scale": 0.25}),
    "granite": ("granite", {"num_key_value_heads": 2, "logits_scaling": 4.0}),
    "falcon-mqa": ("falcon", {"multi_query": True, "new_decoder_architecture": False}),
}

#: Families proven through the one decoder path (tests/test_families.py): each trains, saves,
#: reloads and decodes like the families above, with no line of src/ naming it.
FAMILY_DECODER_SPECS: dict[str, tuple[str, dict]] = {
    "olmo2": ("olmo2", {"num_key_value_heads": 2}),  # q/k norms over all heads at once
    "stablelm": ("stablelm", {"num_key_value_heads": 2}),  # rotary on a quarter of each head
    "gpt-neox": ("gpt_neox", {}),  # fused QKV, parallel residual, partial rotary
    "qwen2-moe": (
        "qwen2_moe",
        {
            "num_key_value_heads": 2,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 64,
        },
    ),
    "mixtral": (  # routed experts only
        "mixtral",
        {"num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2},
    ),
    "gpt-bigcode-mqa": ("gpt_bigcode", {"multi_query": True}),  # one K/V head for all queries
}
FAMILY_IDS = list(FAMILY_DECODER_SPECS)

#: Attention whose cache is not one key and one value per head: refused at load.
UNSUPPORTED_DECODER_SPECS: dict[str, tuple[str, dict]] = {
    # Multi-head latent attention: caches a compressed latent and a shared rotary key, and its
    # key heads (16 + 8) are wider than its value heads (16).
    "deepseek-v3-mla": (
        "deepseek_v3",
        {
            "num_key_value_heads": HEADS,
            "q_lora_rank": None,
            "kv_lora_rank": 16,
            "qk_nope_head_dim": 16,
            "qk_rope_head_dim": 8,
            "v_head_dim": 16,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "first_k_dense_replace": 1,
            "n_group": 1,
            "topk_group": 1,
        },
    ),
    # A state-space layer (no keys and values in its cache) before an attention layer.
    "jamba-hybrid": (
        "jamba",
        {
            "num_key_value_heads": 2,
            "attn_layer_period": 2,
            "attn_layer_offset": 1,
            "expert_layer_period": 2,
            "num_experts": 2,
        },
    ),
}

#: Encoder architectures; "gpt2-enc" and "llama-enc" reuse decoder-only LMs as encoders.
ENCODER_IDS = ["bert", "t5", "mpnet", "bart", "gpt2-enc", "llama-enc"]


# --------------------------------------------------------------------------------------------
# Tokenizers


def make_decoder_tokenizer(texts=CORPUS):
    """Word-level decoder tokenizer (<|endoftext|> = bos = eos = pad), as the demo builds it."""
    from lmvae.demo.backbones import build_decoder_tokenizer

    return build_decoder_tokenizer(texts)


def qwen2_tokenizer(texts=CORPUS):
    """A byte-level BPE tokenizer in Qwen2's own format.

    transformers 5 ignores the generic tokenizer class saved in a qwen2 folder and rebuilds a
    ``Qwen2Tokenizer`` from the vocabulary, which mangles a word-level vocabulary; so the qwen2
    backbone gets a BPE trained on the corpus (EOS, no BOS: lmvae then uses EOS as BOS).
    """
    import json

    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in model["merges"]]
    return Qwen2Tokenizer(vocab=model["vocab"], merges=merges, model_max_length=MAX_POSITIONS)


def make_encoder_tokenizer(texts=CORPUS):
    """BERT-style WordPiece tokenizer with [CLS] ... [SEP] and [PAD] = 0, as the demo builds it."""
    from lmvae.demo.backbones import build_encoder_tokenizer

    return build_encoder_tokenizer(texts)


# --------------------------------------------------------------------------------------------
# Backbones


def _decoder_model(name: str, vocab: int, eos: int):
    import transformers

    model_type, extra = {
        **DECODER_SPECS,
        **EXTRA_DECODER_SPECS,
        **FAMILY_DECODER_SPECS,
        **UNSUPPORTED_DECODER_SPECS,
    }[name]
    ids = {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos, "vocab_size": vocab}
    # A wider init than the default 0.02 makes the random LMs' distributions peaked, so decoding
    # strategies and z actually change what comes out.
    common = {"initializer_range": 0.2, **ids}
    if model_type == "gpt2":
        config = transformers.GPT2Config(
            n_embd=HIDDEN,
            n_layer=LAYERS,
            n_head=HEADS,
            n_inner=INTERMEDIATE,
            n_positions=MAX_POSITIONS,
            **common,
        )
        return transformers.GPT2LMHeadModel(config)
    sizes = {
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POSITIONS,
    }
    config = transformers.AutoConfig.for_model(model_type, **sizes, **common, **extra)
    model = transformers.AutoModelForCausalLM.from_config(config)
    # Query / key head norms start at ones; unequal weights show which one is used where.
    for name, module in model.named_modules():
        if name.endswith(("q_norm", "k_norm")):
            torch.nn.init.normal_(module.weight, mean=1.0, std=0.3)
    return model


def _encoder_model(name: str, vocab: int, pad: int):
    import transformers

    if name == "bert":
        config = transformers.BertConfig(
            vocab_size=vocab,
            hidden_size=HIDDEN,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            intermediate_size=INTERMEDIATE,
            max_position_embeddings=MAX_POSITIONS,
            pad_token_id=pad,
        )
        return transformers.BertModel(config)
    if name == "t5":
        # A full encoder-decoder T5 is saved: the loader must keep only its encoder stack.
        config = transformers.T5Config(
            vocab_size=vocab,
            d_model=HIDDEN,
            d_kv=HIDDEN // HEADS,
            d_ff=INTERMEDIATE,
            num_layers=LAYERS,
            num_decoder_layers=LAYERS,
            num_heads=HEADS,
            pad_token_id=pad,
            eos_token_id=1,
            decoder_start_token_id=pad,
        )
        return transformers.T5ForConditionalGeneration(config)
    if name == "mpnet":
        config = transformers.MPNetConfig(
            vocab_size=vocab,
            hidden_size=HIDDEN,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            intermediate_size=INTERMEDIATE,
            max_position_embeddings=MAX_POSITIONS + 2,
            pad_token_id=pad,
        )
        return transformers.MPNetModel(config)
    if name == "bart":
        # An encoder-decoder outside AutoModelForTextEncoding: loaded with AutoModel, then only
        # its encoder stack is kept (get_encoder()).
        config = transformers.BartConfig(
            vocab_size=vocab,
            d_model=HIDDEN,
            encoder_layers=LAYERS,
            decoder_layers=LAYERS,
            encoder_attention_heads=HEADS,
            decoder_attention_heads=HEADS,
            encoder_ffn_dim=INTERMEDIATE,
            decoder_ffn_dim=INTERMEDIATE,
            max_position_embeddings=MAX_POSITIONS,
            pad_token_id=pad,
        )
        return transformers.BartModel(config)
    raise KeyError(name)


def _save(model, tok, folder: Path) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bars in the test output
    try:
        model.save_pretrained(folder)
    finally:
        hf_logging.enable_progress_bar()
    tok.save_pretrained(folder)


class BackboneFactory:
    """Builds each backbone folder once per session, on first use."""

    def __init__(self, root: Path):
        self.root = root
        self._dirs: dict[str, Path] = {}

    def decoder(self, name: str) -> Path:
        key = f"dec-{name}"
        if key not in self._dirs:
            folder = self.root / key
            tok = qwen2_tokenizer() if name == "qwen2" else make_decoder_tokenizer()
            torch.manual_seed(sum(map(ord, name)))
            model = _decoder_model(name, len(tok), tok.eos_token_id)
            model.eval()
            _save(model, tok, folder)
            self._dirs[key] = folder
        return self._dirs[key]

    def encoder(self, name: str) -> Path:
        if name == "gpt2-enc":
            return self.decoder("gpt2")
        if name == "llama-enc":
            return self.decoder("llama-gqa")
        key = f"enc-{name}"
        if key not in self._dirs:
            folder = self.root / key
            tok = make_encoder_tokenizer()
            torch.manual_seed(100 + ENCODER_IDS.index(name))
            model = _encoder_model(name, len(tok), tok.pad_token_id)
            model.eval()
            _save(model, tok, folder)
            self._dirs[key] = folder
        return self._dirs[key]


#: (encoder, decoder) pairs for whole-model tests: every decoder and every encoder at least once.
PAIRS = [
    ("bert", "gpt2"),
    ("t5", "llama-gqa"),
    ("mpnet", "llama-headdim"),
    ("gpt2-enc", "qwen2"),
    ("llama-enc", "mistral"),
    ("bert", "gemma"),
    ("bart", "phi"),
]
PAIR_IDS = [f"{e}+{d}" for e, d in PAIRS]


def expected_kv(name: str) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of a decoder, from the spec it was built with."""
    extra = DECODER_SPECS[name][1]
    return LAYERS, extra.get("num_key_value_heads", HEADS), extra.get("head_dim", HIDDEN // HEADS)


def reset_heads(vae) -> None:
    """Re-initialise a VAE's trainable heads from a fixed seed: the first load of a backbone in
    a process draws from the global RNG differently from later ones, so same arguments then
    give the same model."""
    torch.manual_seed(0)
    heads = [m for n, m in vae.encoder.named_children() if n != "backbone"]
    for module in [*heads, vae.decoder.injector]:
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    if vae.decoder.injector.embed is not None:
        torch.nn.init.zeros_(vae.decoder.injector.embed.weight)
        torch.nn.init.zeros_(vae.decoder.injector.embed.bias)


def randomize_trainable(vae, seed: int, std: float = 0.3) -> None:
    """Random values for every trainable weight (several heads start at zero), so a test sees
    their effect and a load that silently kept fresh weights is caught."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in vae.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def randomized_vae(make_vae, seed: int = 3):
    """A BERT -> Llama (GQA) test model in eval mode with random trainable weights
    (:func:`randomize_trainable`): what the model and inference tests share."""
    model = make_vae("bert", "llama-gqa").eval()
    randomize_trainable(model, seed=seed)
    return model


def latents(batch: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    """Seeded latents (batch, size) for the decoder tests."""
    return torch.randn(batch, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def teacher_forced_logits(dec, z, batch) -> torch.Tensor:
    """Logits (B, T, V) of one teacher-forced pass."""
    return dec.logits(dec.hidden_states(z, batch["input_ids"], batch["attention_mask"]))


@torch.no_grad()
def incremental_logits(dec, z, input_ids) -> torch.Tensor:
    """Logits (B, T, V) from start(z) + one cached step per gold token."""
    state = dec.start(z)
    return torch.stack(
        [dec.step(input_ids[:, t : t + 1], state) for t in range(input_ids.shape[1])], 1
    )


def assert_same_runs(
    one: Path,
    two: Path,
    keys: tuple[str, ...] = ("train_loss", "train_kl", "eval_recon_nll", "eval_kl", "eval_bleu"),
) -> dict:
    """Two run folders hold the same weights in last/ and best/ (up to float rounding of sums
    taken in another order, which Adam's division by small second moments magnifies: rtol
    1e-4, atol 1e-4, far below one step at the heads' rate) and the same history ``keys`` (1e-4
    relative); returns best/'s weights of the first run."""
    import json

    from safetensors.torch import load_file

    for name in ("last", "best"):
        a = load_file(one / name / "model.safetensors")
        b = load_file(two / name / "model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-4)
    history = [
        [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
        for d in (one, two)
    ]
    for ra, rb in zip(*history, strict=True):
        for key in keys:
            assert abs(ra[key] - rb[key]) <= 1e-4 * max(1.0, abs(ra[key])), key
    return a
