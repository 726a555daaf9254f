"""Issue-13 levers measured as patches of lmvae and not built (docs/benchmarks.md, sessions 14
and 15).

    .venv/bin/python benchmarks/lever_patches.py word_dropout=0.25 -- --train 3000 --heldout 300 \
        --epochs 1 --set eval_decode_sentences=100 --tag s14_word_dropout
    .venv/bin/python benchmarks/lever_patches.py prompt_layer=20 -- --train 3000 --heldout 300 \
        --epochs 1 --set eval_decode_sentences=0 --set pack=false --tag s14_prompt_layer20

    .venv/bin/python benchmarks/lever_patches.py standardize=1 -- --train 3000 --heldout 300 \
        --epochs 1 --set eval_decode_sentences=100 --tag s15_standardize
    .venv/bin/python benchmarks/lever_patches.py deep_head=1024 -- --train 3000 --heldout 300 \
        --epochs 1 --set eval_decode_sentences=100 --tag s16_deep_head

The arguments after ``--`` go to benchmarks/real_quality.py.

* ``word_dropout=P`` (Bowman et al., 2016): in training, a fraction P of the sentence's decoder
  input tokens (never the first) becomes the real token whose embedding is nearest the mean
  embedding, so the decoder must take those words from z.  The labels stay.
* ``prompt_layer=L``: the soft prompt enters the decoder's residual stream at block L instead of
  at its input.  The sentence's states below L then do not depend on z, so they run without
  gradient (they could be cached across epochs) and only blocks L.. run forward and backward.
  The prompt is made in unit scale and mapped to the mean and spread of real tokens' states at
  block L (the first token, the attention sink with its outsized activations, left out).
  Decoding still takes the input path, so only teacher-forced figures count: run it with
  ``eval_decode_sentences=0`` and read the recon NLL, KL and token accuracy (the decoded
  figures of the final evaluation are not meaningful).  Llama-style decoders
  (``model.layers``) only.
* ``standardize=1``: each pooled encoder layer is standardised number by number with the mean
  and spread of the first 512 training sentences' features (spreads floored at 1 % of the
  layer's mean spread) before the layer mix and the LayerNorm.  The statistics live beside the
  model in this process, so read the per-epoch evaluations, not a reloaded checkpoint's.
* ``deep_head=H``: beside the linear head on the layer mix, a GELU MLP (hidden width H) reads
  every pooled layer concatenated (each LayerNorm-ed) and adds to mu and log-variance; its last
  layer starts at zero, so the run starts as the defaults.  The posterior is otherwise a
  linear map of one 384-number mix; this asks whether a nonlinear code of all the layers
  carries more words in the same 128 numbers.  In-process only, like ``standardize``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import real_quality  # noqa: E402

import lmvae.training.setup as run_setup  # noqa: E402
from lmvae import LanguageVAE  # noqa: E402
from lmvae.cache import position_ids, prefix_attention_mask  # noqa: E402
from lmvae.decoder import LatentDecoder  # noqa: E402
from lmvae.encoder import SentenceEncoder  # noqa: E402
from lmvae.wordnet import build_corpus  # noqa: E402


def word_dropout(rate: float) -> None:
    generator = torch.Generator().manual_seed(0)
    prompt_pass = LatentDecoder._prompt_pass
    neutral: dict[LatentDecoder, int] = {}  # the frozen embeddings' nearest-to-mean token

    def patched(self, z, input_ids, attention_mask, label_ids, attentions, pack=None):
        # Not in the no-grad passes (the packing check runs the same batch twice).
        if self.training and torch.is_grad_enabled():
            if self not in neutral:
                weight = self.lm.get_input_embeddings().weight
                neutral[self] = int(((weight - weight.mean(0)) ** 2).sum(1).argmin())
            drop = torch.rand(input_ids.shape, generator=generator) < rate
            drop[:, 0] = False
            input_ids = input_ids.masked_fill(drop.to(input_ids.device), neutral[self])
        return prompt_pass(self, z, input_ids, attention_mask, label_ids, attentions, pack)

    LatentDecoder._prompt_pass = patched


def prompt_layer(layer: int) -> None:
    sample: dict[str, torch.Tensor] = {}

    def lower_states(self, input_ids, attention_mask):
        """The sentence's residual states entering block ``layer`` (no gradient)."""
        base, blocks, captured = self.base, self.base.layers, {}
        hook = blocks[layer - 1].register_forward_hook(
            lambda m, i, o: captured.setdefault("states", o[0] if isinstance(o, tuple) else o)
        )
        try:
            base.layers = blocks[:layer]
            with torch.no_grad():
                base(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids(attention_mask),
                    use_cache=False,
                )
        finally:
            base.layers = blocks
            hook.remove()
        return captured["states"]

    def patched(self, z, input_ids, attention_mask, label_ids, attentions, pack=None):
        prompt = self.soft_prompt(z) * self.state_std + self.state_mean
        states = lower_states(self, input_ids, attention_mask)
        batch, slots = prompt.shape[:2]
        first = torch.arange(slots, device=z.device).expand(batch, -1)
        base, blocks = self.base, self.base.layers
        try:
            base.layers = blocks[layer:]
            out = base(
                inputs_embeds=torch.cat([prompt.to(states.dtype), states], 1),
                attention_mask=prefix_attention_mask(attention_mask, slots),
                position_ids=torch.cat([first, position_ids(attention_mask) + slots], 1),
                use_cache=False,
            )
        finally:
            base.layers = blocks
        return out.last_hidden_state[:, slots:]

    @torch.no_grad()
    def calibrate(self):
        ids, mask = sample["ids"], sample["mask"]
        keep = mask.bool().clone()
        keep[:, 0] = False
        states = lower_states(self, ids, mask)[keep].float()
        self.state_mean, self.state_std = states.mean(0), states.std(0)
        n = self.injector.num_slots * states.shape[1]
        self.injector._match(torch.zeros(n), torch.ones(n))

    from_backbones = LanguageVAE.from_backbones.__func__

    def keep_sample(cls, *args, **kwargs):
        vae = from_backbones(cls, *args, **kwargs)
        texts = build_corpus(seed=0).train[-64:]  # never in a benchmark's first N
        enc = vae.decoder_tokenizer(texts, return_tensors="pt", padding=True)
        sample["ids"], sample["mask"] = enc["input_ids"], enc["attention_mask"]
        return vae

    LanguageVAE.from_backbones = classmethod(keep_sample)
    real_quality.slot_attention_mass = lambda *args: None  # its eager pass takes the input path
    LatentDecoder._prompt_pass = patched
    LatentDecoder.calibrate_prompt = calibrate


def standardize() -> None:
    stats: dict[SentenceEncoder, tuple[torch.Tensor, torch.Tensor]] = {}
    calibrate, posterior = run_setup.calibrate_slots, SentenceEncoder.posterior

    def measure(model, sentences):  # called once, before the first step of a fresh run
        calibrate(model, sentences)
        texts = sentences.text_batch(range(min(512, len(sentences))))
        with torch.no_grad():
            feats = [
                model.features(**model.encoder_inputs(texts[i : i + 32]))
                for i in range(0, len(texts), 32)
            ]
        feats = torch.cat(feats).float()
        spread = feats.std(0)
        stats[model.encoder] = feats.mean(0), spread.clamp_min(spread.mean(-1, keepdim=True) * 1e-2)

    def patched(self, features):
        if self in stats:
            mean, scale = stats[self]
            features = (features.float() - mean) / scale
        return posterior(self, features)

    run_setup.calibrate_slots = measure
    SentenceEncoder.posterior = patched


def deep_head(hidden: int) -> None:
    calibrate, posterior = run_setup.calibrate_slots, SentenceEncoder.posterior

    def add(model, sentences):  # before the optimizer is built, so the new weights train
        calibrate(model, sentences)
        encoder = model.encoder
        layers, width = encoder.feature_shape[:2]
        encoder.deep_head = torch.nn.Sequential(
            torch.nn.LayerNorm(width, elementwise_affine=False),
            torch.nn.Flatten(1),
            torch.nn.Linear(layers * width, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, 2 * encoder.latent_size),
        ).to(encoder.head.weight.device)
        torch.nn.init.zeros_(encoder.deep_head[-1].weight)  # starts as the default head
        torch.nn.init.zeros_(encoder.deep_head[-1].bias)

    def patched(self, features):
        mu, logvar = posterior(self, features)
        if hasattr(self, "deep_head"):
            extra_mu, extra_logvar = self.deep_head(features.float()).chunk(2, dim=-1)
            mu, logvar = mu + extra_mu, logvar + extra_logvar
        return mu, logvar

    run_setup.calibrate_slots = add
    SentenceEncoder.posterior = patched


PATCHES = {
    "deep_head": lambda v: deep_head(int(v)),
    "standardize": lambda v: standardize(),
    "word_dropout": lambda v: word_dropout(float(v)),
    "prompt_layer": lambda v: prompt_layer(int(v)),
}

if __name__ == "__main__":
    if "--" not in sys.argv or "=" not in sys.argv[1]:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(PATCHES)}}}=VALUE -- REAL_QUALITY_ARGS")
    name, value = sys.argv[1].split("=", 1)
    if name not in PATCHES:
        sys.exit(f"unknown patch {name!r}; one of {', '.join(PATCHES)}")
    PATCHES[name](value)
    real_quality.main(sys.argv[sys.argv.index("--") + 1 :])
