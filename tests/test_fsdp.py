"""lmvae.fsdp: the decoder's frozen blocks sharded over two CPU processes (FSDP2 on gloo) train
the weights one process trains with the same global batch, and the run's checkpoints load in
one process."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from support import assert_same_runs
from torch import nn

from lmvae import LanguageVAE, distributed
from lmvae.cli import main
from lmvae.distributed import Processes
from lmvae.errors import ConfigError
from lmvae.evaluation import _batches
from lmvae.fsdp import check_engine, decoder_blocks
from lmvae.generation import GenerationConfig, generate_batches
from lmvae.train_config import TrainConfig

HELPER = Path(__file__).parent / "distributed_helper.py"


def _fsdp_on_cpu() -> str | None:
    """Why FSDP2 cannot run on this machine's CPU, or None."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        return "torch was built without gloo, the CPU process group FSDP2 runs over"
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no FSDP2 (torch.distributed.fsdp.fully_shard)"
    return None


@pytest.mark.skipif(_fsdp_on_cpu() is not None, reason=str(_fsdp_on_cpu()))
def test_two_sharded_processes_train_the_weights_of_one_and_save_what_one_loads(
    backbones, tmp_path
):
    enc, dec = str(backbones.encoder("bert")), str(backbones.decoder("gpt2"))
    one, two = tmp_path / "one", tmp_path / "two"
    # LoRA adapters inside the sharded blocks, the soft prompt run through them, and 3
    # held-out sentences decoded by 2 processes (one decodes a stand-in row to keep step).
    options = "lora,prompt,odd"
    command = [sys.executable, str(HELPER), enc, dec, str(two), "4", "2", f"fsdp,{options}"]
    assert distributed.launch(command, 2) == 0
    sys.path.insert(0, str(HELPER.parent))
    from distributed_helper import run

    run(enc, dec, one, 8, 2, frozenset(options.split(",")))
    seen = [json.loads((two / f"seen-{r}.json").read_text()) for r in range(2)]
    for s in seen:
        # Each process kept half of the frozen block weights; nothing that trains is sharded,
        # and DDP synchronised what trains alone.
        assert s["kept_elements"] == s["block_elements"] // 2 > 0
        assert s["sharded_trainable"] == 0
        assert s["synced_bytes"] == s["trainable_bytes"] > 0
    # Same weights after 8 steps, up to float rounding of sums taken in another order: the
    # gathered blocks are the very weights one process holds.
    weights = assert_same_runs(one, two)
    assert any(".lora_" in k for k in weights)
    # The sharded run's checkpoint loads in this one process and gives the single run's model.
    texts = ["the cat sat on the mat", "a fox jumps over the fence"]
    alone, sharded = (LanguageVAE.from_pretrained(d / "best") for d in (one, two))
    za, zb = alone.encode(texts), sharded.encode(texts)
    torch.testing.assert_close(zb, za, rtol=1e-4, atol=1e-5)
    assert sharded.reconstruct(texts) == alone.reconstruct(texts)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "phi"])
def test_the_blocks_are_found_from_the_models_own_class_names(backbones, name):
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(backbones.decoder(name))
    blocks = decoder_blocks(lm)
    assert len(blocks) == lm.config.num_hidden_layers
    assert all(type(b).__name__ in lm._no_split_modules for b in blocks)


def test_a_decoder_that_names_no_block_is_refused():
    lm = nn.Module()
    lm.base_model = nn.Sequential(nn.Linear(2, 2))
    lm._no_split_modules = None
    with pytest.raises(ConfigError, match="--fsdp cannot find the transformer blocks"):
        decoder_blocks(lm)


def test_lockstep_evaluation_runs_as_many_batches_on_every_process():
    # 5 texts over 2 processes in batches of 2: rank 0 holds 0, 2, 4 (2 batches), rank 1
    # holds 1, 3 (1 batch) and runs a stand-in batch of sentence 0 that is not counted.
    shares = [list(range(r, 5, 2)) for r in range(2)]
    first, second = (_batches(m, 5, 2, Processes(r, 2), True) for r, m in enumerate(shares))
    assert first == [([0, 2], True), ([4], True)]
    assert second == [([1, 3], True), ([0], False)]
    assert _batches(shares[1], 5, 2, Processes(1, 2), False) == [([1, 3], True)]
    # A process with no text at all still runs one.
    assert _batches([], 1, 64, Processes(1, 2), True) == [([0], False)]


def test_decoding_stops_when_all_done_says_so(make_vae):
    vae = make_vae()
    z = torch.randn(3, vae.latent_size, generator=torch.Generator().manual_seed(0))
    config = GenerationConfig(max_new_tokens=6)
    args = (vae.decoder, z, vae.codec.start_id, vae.eos_id, config)
    alone = generate_batches(*args)
    asked: list[bool] = []
    # Another process is never done: this one decodes every step, with the same output.
    kept_going = generate_batches(*args, all_done=lambda done: asked.append(done) or False)
    assert kept_going == alone and len(asked) == 6


def test_fsdp_with_compile_or_an_accelerate_engine_is_refused(capsys, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="fsdp and compile"):
        TrainConfig(fsdp=True, compile=True).validate()
    argv = ["train", "--encoder", "e", "--decoder", "d", "--data", "x.txt", "--out"]
    code = main([*argv, str(tmp_path / "run"), "--fsdp", "--compile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "fsdp and compile" in err[0]
    from accelerate.utils import DistributedType

    for engine in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        with pytest.raises(ConfigError, match="lmvae shards the decoder itself"):
            check_engine(SimpleNamespace(distributed_type=engine))
    ddp = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU)
    check_engine(ddp)
    # On a CPU Accelerate runs an FSDP config as DDP: its launcher's environment says FSDP.
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="asks for its FSDP engine"):
        check_engine(ddp)
