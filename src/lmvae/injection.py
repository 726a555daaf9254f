"""z -> per-layer key/value slots (and optionally an input-embedding offset).

Pure torch: nothing here knows about transformers.  The decoder attends to the slots as a prefix,
so a sentence's latent reaches every layer without touching the frozen weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class KVShape:
    """The key/value geometry of a decoder: what one injected slot must look like per layer."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int

    @property
    def slot_numel(self) -> int:
        """Numbers in one slot across all layers, keys and values."""
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim


class LatentInjector(nn.Module):
    """Trainable projections from z to K/V entries in every decoder layer.

    Three modes (``DecoderConfig.injection``):

    * ``"prefix"``: ``num_slots`` independent K/V slots that every position attends to;
    * ``"per_position"``: the same projection with one slot per decoder position
      (``num_slots`` = the decoder's max length); :attr:`causal_slots` tells the decoder that
      position t may attend to slots 0..t only;
    * ``"memory"`` (Optimus, Li et al., 2020): one vector per layer used as both key and value,
      and z also added to every input embedding;
    * ``"prompt"``: ``num_slots`` input embeddings (B, slots, hidden) that the decoder runs
      through the frozen LM before the sentence (a z-dependent soft prompt), so the keys and
      values in every layer are the LM's own computation on them.

    With ``rank > 0`` the K/V projection is factorised as latent -> rank -> slots, so its size
    stops being dominated by ``num_layers * 2 * kv_heads * head_dim * num_slots``; with
    ``hidden > 0`` it is an MLP, latent -> hidden -> GELU -> slots (a linear map can only blend
    what the encoder pooled, not pick parts of it out).
    """

    def __init__(
        self,
        latent_size: int,
        shape: KVShape,
        num_slots: int,
        rank: int = 0,
        embed_injection: bool = False,
        mode: str = "prefix",
        hidden: int = 0,
    ):
        super().__init__()
        self.shape = shape
        self.mode = mode
        self.num_slots = 1 if mode == "memory" else num_slots
        self.causal_slots = mode == "per_position"
        if mode == "memory":
            # One vector per layer, in the K/V geometry, reused as key and value.
            out = shape.num_layers * shape.num_kv_heads * shape.head_dim
            embed_injection = True
        elif mode == "prompt":
            out = shape.hidden_size * self.num_slots
        else:
            out = shape.slot_numel * self.num_slots
        self.latent_size = latent_size
        if hidden > 0:
            self.kv = nn.Sequential(
                nn.Linear(latent_size, hidden), nn.GELU(), nn.Linear(hidden, out)
            )
        elif rank > 0:
            self.kv = nn.Sequential(nn.Linear(latent_size, rank, bias=False), nn.Linear(rank, out))
        else:
            self.kv = nn.Linear(latent_size, out)
        self.embed = nn.Linear(latent_size, shape.hidden_size) if embed_injection else None
        #: Whether :meth:`calibrate` ran or trained weights were loaded (a trainer calibrates
        #: fresh projections only).
        self.calibrated = False
        if self.embed is not None:
            # Zero-initialised: the offset starts with no effect on the frozen decoder.
            nn.init.zeros_(self.embed.weight)
            nn.init.zeros_(self.embed.bias)

    @torch.no_grad()
    def calibrate_prompt(self, embeddings: Tensor) -> None:
        """Start a soft prompt among the LM's own input embeddings (V, H): for z ~ N(0, I) each
        prompt vector gets their mean and per-number spread, so the frozen LM reads it as it
        reads tokens from the first step."""
        if self.mode != "prompt":
            raise ValueError("calibrate_prompt is for prompt injection")
        mean = embeddings.float().mean(0).repeat(self.num_slots)
        std = embeddings.float().std(0).repeat(self.num_slots)
        self._match(mean, std)

    @torch.no_grad()
    def calibrate(self, mean: Tensor, std: Tensor) -> None:
        """Start the slots in the decoder's own K/V distribution: for z ~ N(0, I), each slot
        number gets the mean and standard deviation that the decoder's keys and values of real
        tokens have.  mean and std are (layers, 2, kv_heads, head_dim).

        A frozen decoder's queries are tuned to its own keys, which share a large common
        component (a norm of 10-16 in SmolLM2, per-number spread ~1); zero-mean random slots
        sit far from it, so attention to them starts out arbitrary.
        """
        if self.mode in ("memory", "prompt"):
            raise ValueError(f"{self.mode} injection has no per-slot keys and values to calibrate")
        s = self.shape
        shape = (s.num_layers, 2, s.num_kv_heads, 1, s.head_dim)
        target_mean = mean.reshape(shape).expand(-1, -1, -1, self.num_slots, -1).reshape(-1)
        target_std = std.reshape(shape).expand(-1, -1, -1, self.num_slots, -1).reshape(-1)
        self._match(target_mean, target_std)

    def _match(self, target_mean: Tensor, target_std: Tensor) -> None:
        """Rescale the last layer's rows and set its bias so that, for z ~ N(0, I), every output
        number has ``target_mean`` and ``target_std`` (flat, as the projection writes them)."""
        last = self.kv[-1] if isinstance(self.kv, nn.Sequential) else self.kv
        weight = last.weight
        if isinstance(self.kv, nn.Linear):
            rows, offset = weight.norm(dim=1), torch.zeros_like(last.bias)
        elif not any(isinstance(m, nn.GELU) for m in self.kv):
            rows = (weight @ self.kv[0].weight).norm(dim=1)  # the composite map's row norms
            offset = torch.zeros_like(last.bias)
        else:  # through a nonlinearity: measured on 4,096 seeded samples of z, 128 at a time
            generator = torch.Generator(device=weight.device).manual_seed(0)
            total = torch.zeros_like(last.bias, dtype=torch.float64)
            squares = torch.zeros_like(total)
            for _ in range(32):
                z = torch.randn(128, self.latent_size, generator=generator, device=weight.device)
                out = (self.kv[:-1](z.to(weight.dtype)) @ weight.T).double()  # no bias
                total += out.sum(0)
                squares += out.square().sum(0)
            offset = (total / 4096).to(weight.dtype)
            rows = (squares / 4096 - (total / 4096).square()).clamp_min(0).sqrt().to(weight.dtype)
        scale = target_std.to(weight) / rows.clamp_min(1e-12)
        weight.mul_(scale[:, None])
        last.bias.copy_(target_mean.to(last.bias) - offset * scale)
        self.calibrated = True

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """z (B, D) -> kv (B, layers, 2, kv_heads, slots, head_dim), embedding offset (B, H);
        for ``"prompt"`` the soft prompt's input embeddings (B, slots, hidden) and None.

        Batch first, as the projection writes it: the decoder casts and splits it per layer in
        this layout, so no permuted copy is made either way."""
        s = self.shape
        batch = z.shape[0]
        if self.mode == "prompt":  # (B, slots, hidden): input embeddings, not K/V
            return self.kv(z).view(batch, self.num_slots, s.hidden_size), None
        if self.mode == "memory":
            memory = self.kv(z).view(batch, s.num_layers, 1, s.num_kv_heads, 1, s.head_dim)
            kv = memory.expand(-1, -1, 2, -1, -1, -1)
        else:
            kv = self.kv(z).view(batch, s.num_layers, 2, s.num_kv_heads, self.num_slots, s.head_dim)
        offset = self.embed(z) if self.embed is not None else None
        return kv, offset
