"""The latent-space explorer: a local web page to encode, decode, interpolate, traverse, do
arithmetic on and map a trained model's latent space (``lmvae explore MODEL``).

:mod:`~lmvae.explorer.session` holds the model and corpus and calls the probes,
:mod:`~lmvae.explorer.requests` checks every request, :mod:`~lmvae.explorer.lanes` keeps a
dragged slider from queueing decodes, and :mod:`~lmvae.explorer.server` is the Starlette app
around them, with the page in ``static/`` (plain HTML, CSS and JavaScript; no build step).
"""

from __future__ import annotations

from .requests import Limits
from .server import allowed_hosts, create_app, is_loopback
from .session import Explorer, Sentence

__all__ = ["Explorer", "Limits", "Sentence", "allowed_hosts", "create_app", "is_loopback"]
