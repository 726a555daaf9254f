"""lmvae.precision: frozen weights held in bf16 and restored exactly; bf16 training on CPU."""

from __future__ import annotations

import pytest
import torch
from support import CORPUS

from lmvae.data import split_corpus
from lmvae.precision import cpu_bf16_decoder, frozen_weights_in
from lmvae.train_config import TrainConfig
from lmvae.training import train


def _tied_model():
    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {"embed": torch.nn.Embedding(5, 3), "head": torch.nn.Linear(3, 5, bias=False)}
    )
    model["head"].weight = model["embed"].weight  # tied, as in GPT-2
    model["trainable"] = torch.nn.Linear(3, 3)
    model["embed"].requires_grad_(False)
    return model


def test_frozen_weights_are_cast_inside_and_restored_exactly():
    model = _tied_model()
    frozen = model["embed"].weight
    original = frozen.data
    with frozen_weights_in(model, torch.bfloat16):
        assert frozen.dtype == torch.bfloat16
        assert model["head"].weight is frozen  # still tied: the same parameter
        assert model["trainable"].weight.dtype == torch.float32
    # The fp32 storage itself comes back, not a rounded copy.
    assert frozen.dtype == torch.float32 and frozen.data_ptr() == original.data_ptr()
    assert model["trainable"].weight.dtype == torch.float32


def test_frozen_weights_are_restored_after_an_error():
    model = _tied_model()
    original = model["embed"].weight.data
    with pytest.raises(RuntimeError), frozen_weights_in(model, torch.bfloat16):
        raise RuntimeError("boom")
    assert model["embed"].weight.data_ptr() == original.data_ptr()


def test_bf16_decoder_pass_keeps_fp32_losses_and_gradients(make_vae):
    vae = make_vae("bert", "gpt2").eval()
    batch = vae.decoder_inputs(CORPUS[:4])
    z = torch.randn(4, 8, requires_grad=True)
    attention = vae.decoder.lm.config._attn_implementation
    with cpu_bf16_decoder(vae.decoder.lm):
        assert vae.decoder.lm.get_input_embeddings().weight.dtype == torch.bfloat16
        assert vae.decoder.lm.config._attn_implementation == "eager"
        loss = vae.decoder.token_loss(z, **batch)
        loss.nll.sum().backward()
    assert loss.nll.dtype == torch.float32 and torch.isfinite(loss.nll).all()
    assert z.grad is not None and z.grad.dtype == torch.float32 and z.grad.abs().sum() > 0
    assert all(p.grad.dtype == torch.float32 for p in vae.decoder.injector.parameters())
    assert all(p.dtype == torch.float32 for p in vae.parameters())
    assert vae.decoder.lm.config._attn_implementation == attention
    # Close to the fp32 pass: bf16 keeps ~3 significant digits.
    with torch.no_grad():
        fp32 = vae.decoder.token_loss(z, **batch).nll
    torch.testing.assert_close(loss.nll.detach(), fp32, rtol=0.05, atol=0.5)


def test_bf16_training_on_cpu_is_deterministic_and_leaves_fp32_weights(make_vae):
    train_texts, eval_texts = split_corpus(CORPUS, 0.1, 1000, seed=0)
    config = TrainConfig(
        epochs=4,
        batch_size=8,
        lr=3e-3,
        eval_decode_sentences=4,
        progress=False,
        mixed_precision="bf16",
    )
    histories = []
    for _ in range(2):
        vae = make_vae("bert", "gpt2", decoder_max_length=12)
        result = train(vae, train_texts, eval_texts, config)
        histories.append(
            [
                {k: v for k, v in r.items() if "seconds" not in k and "per_s" not in k}
                for r in result.history
            ]
        )
        assert all(p.dtype == torch.float32 for p in vae.parameters())
    assert histories[0] == histories[1]
    final = histories[0][-1]
    assert all(torch.isfinite(torch.tensor(final[k])) for k in ("train_loss", "eval_loss"))
    # Reconstruction, not the loss: the loss also carries beta, which rises between epochs.
    assert final["train_recon"] < histories[0][0]["train_recon"]


def test_default_mixed_precision(monkeypatch):
    import lmvae.precision as precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert precision.default_mixed_precision(torch.device("cpu")) == "bf16"
    assert precision.default_mixed_precision(torch.device("cuda")) == "bf16"
    assert precision.default_mixed_precision(torch.device("mps")) == "no"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert precision.default_mixed_precision(torch.device("cpu")) == "no"


def test_autocast_for_a_training_decoder_reads_each_steps_weights(make_vae):
    """A decoder with LoRA trains under CPU autocast for a whole epoch: each forward must see
    the weights the last optimizer step wrote, not bf16 copies cached at the first step."""
    from lmvae.training.setup import Precision

    vae = make_vae("bert", "gpt2", decoder_lora_rank=2)
    texts = CORPUS[:4]
    enc = vae.encoder_inputs(texts)
    batch = {
        **vae.decoder_inputs(texts),
        "encoder_input_ids": enc["input_ids"],
        "encoder_attention_mask": enc["attention_mask"],
        "sample": False,
    }
    precision = Precision("bf16", cpu_bf16=False, cpu_autocast=True)
    with precision.context(vae):
        before = vae(**batch).tokens.nll.detach()
        with torch.no_grad():
            vae.decoder.injector.kv.weight.mul_(4.0)
        after = vae(**batch).tokens.nll.detach()
    assert not torch.allclose(before, after)


@pytest.mark.parametrize(
    "opts, held",
    [({}, True), ({"decoder_lora_rank": 2}, True), ({"decoder_unfreeze_top": 1}, False)],
)
def test_cpu_bf16_holds_frozen_and_lora_decoders_and_autocasts_unfrozen_layers(
    make_vae, opts, held
):
    from lmvae.training.setup import choose_precision

    vae = make_vae("bert", "gpt2", **opts)
    precision, _ = choose_precision(vae, TrainConfig(mixed_precision="bf16"))
    assert (precision.cpu_bf16, precision.cpu_autocast) == (held, not held)
