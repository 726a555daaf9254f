"""lmvae.adapters: gradient checkpointing of the decoder's frozen trunk (the LoRA and unfrozen
layer tests are in test_lora.py): the same gradients, blocks recomputed in backward, and only
while the heads train."""

from __future__ import annotations

import pytest
import torch
from support import CORPUS, DECODER_IDS

from lmvae import TrainConfig, train
from lmvae.adapters import transformer_layers
from lmvae.errors import ConfigError
from lmvae.objective import elbo_loss

TEXTS = CORPUS[:4]


def _grads_and_block_calls(vae) -> tuple[dict[str, torch.Tensor], int]:
    """One training step's head gradients, and how often the first decoder block ran."""
    calls = []
    # A child of the block: transformers checkpoints the block's forward, inside its hooks.
    first = next(iter(transformer_layers(vae.decoder.lm)[0].children()))
    handle = first.register_forward_hook(lambda *_: calls.append(1))
    vae.train()
    enc = vae.encoder_inputs(TEXTS)
    out = vae(
        **vae.decoder_inputs(TEXTS),
        encoder_input_ids=enc["input_ids"],
        encoder_attention_mask=enc["attention_mask"],
        generator=torch.Generator().manual_seed(0),
    )
    elbo_loss(out.tokens.nll, out.tokens.num_tokens, out.kl_per_dim, 1.0).loss.backward()
    handle.remove()
    grads = {n: p.grad.clone() for n, p in vae.named_parameters() if p.grad is not None}
    return grads, len(calls)


@pytest.mark.parametrize("dec", DECODER_IDS)
def test_checkpointed_blocks_give_the_same_gradients_recomputed_in_backward(make_vae, dec):
    plain_grads, plain_calls = _grads_and_block_calls(
        make_vae("bert", dec, decoder_injection="prompt")
    )
    vae = make_vae("bert", dec, decoder_injection="prompt")
    vae.decoder.checkpoint_training_pass()
    grads, calls = _grads_and_block_calls(vae)
    assert plain_calls == 1 and calls == 2  # the block ran again in backward
    assert grads.keys() == plain_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-5, atol=1e-6, msg=name)
    # Only the blocks follow the heads' mode (their dropout and attention stay in eval), and
    # evaluation puts them back: no recomputation where nothing goes backward.
    blocks = set(transformer_layers(vae.decoder.lm))
    assert {m for m in vae.decoder.lm.modules() if m.training} == blocks
    vae.eval()
    assert not any(m.training for m in vae.decoder.lm.modules())


def test_checkpointing_needs_the_cache_free_soft_prompt_pass(make_vae):
    vae = make_vae("bert", "gpt2", decoder_injection="prefix")
    with pytest.raises(ConfigError, match="gradient checkpointing applies to the soft prompt"):
        train(
            vae,
            TEXTS,
            TEXTS[:2],
            TrainConfig(epochs=1, gradient_checkpointing=True, progress=False),
        )


def test_a_checkpointed_run_trains_as_a_plain_one(make_vae):
    runs = []
    for checkpointing in (False, True):
        vae = make_vae("bert", "llama-gqa", decoder_injection="prompt")
        config = TrainConfig(
            epochs=2,
            batch_size=2,
            lr=1e-2,
            seed=0,
            progress=False,
            mixed_precision="no",
            eval_decode_sentences=0,
            gradient_checkpointing=checkpointing,
        )
        runs.append(train(vae, CORPUS[:8], CORPUS[8:10], config).history)
    for plain, checkpointed in zip(*runs, strict=True):
        assert checkpointed["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)
