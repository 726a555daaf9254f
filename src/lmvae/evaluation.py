"""Held-out evaluation: the figures the trainer logs each epoch and ``lmvae evaluate`` writes.

Reconstructions decode greedily from the posterior mean with no repetition penalty, so what is
measured is the model, not a decoding trick.  The decoder's own unconditional NLL of the same
token sequences is reported beside the reconstruction NLL and the negative ELBO, so a reader
can see what the latent buys.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from lmvae.annotations import AnnotatedCorpus, as_corpus
from lmvae.conditioning import prepare_conditions
from lmvae.decoder import IGNORE_INDEX
from lmvae.distributed import Processes
from lmvae.fsdp import is_sharded
from lmvae.generation import GenerationConfig, generate_batches
from lmvae.head import head_cross_entropy
from lmvae.metrics import active_units, distinct_n, loop_rate, reconstruction_metrics
from lmvae.model import LanguageVAE
from lmvae.objective import reparameterize


def device_batch(model: LanguageVAE, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.to(model.device, non_blocking=True) for k, v in batch.items()}


def decoding_figures(
    model: LanguageVAE, rows: list[list[int]], references: Sequence[str], max_new: int
) -> dict[str, float]:
    """BLEU, exact match, loop and EOS rates of decoded token rows against their references.

    A row shorter than ``max_new`` ended with EOS; the EOS rate counts only references whose
    tokens plus EOS fit ``max_new`` (the others cannot end in time)."""
    hyps = model.codec.decode(rows)
    figures = reconstruction_metrics(hyps, references)
    ref_rows = model.decoder_tokenizer(list(references), add_special_tokens=False)["input_ids"]
    fits = [i for i, r in enumerate(ref_rows) if len(r) + 1 <= max_new]
    figures["eos_rate"] = sum(len(rows[i]) < max_new for i in fits) / max(len(fits), 1)
    figures["loop_rate"] = loop_rate(hyps)
    figures["reference_loop_rate"] = loop_rate(references)
    return figures


@torch.no_grad()
def evaluate(
    model: LanguageVAE,
    texts: Sequence[str] | AnnotatedCorpus,
    batch_size: int = 64,
    decode_sentences: int = 200,
    features: Callable[[list[int]], Tensor] | None = None,
    free_bits: float = 0.0,
    beta: float = 1.0,
    processes: Processes | None = None,
) -> dict[str, float]:
    """Held-out figures with z = posterior mean: reconstruction NLL and KL per sentence (beta 1,
    no free bits, so epochs compare), token accuracy, active units, and greedy-decoding BLEU-4,
    exact match, loop and EOS rates on the first ``decode_sentences`` texts.

    ``features`` maps text indices to frozen encoder features (a trainer's cache), so that
    repeated evaluations do not run the encoder again.  ``loss`` is the training objective at
    ``beta`` with the ``free_bits`` floor on the held-out set's per-dimension KL.  An
    :class:`AnnotatedCorpus` gives the conditions of a conditioned model (the decoder decodes
    with the labels of the reference sentence).  Several training ``processes`` each evaluate
    every ``world``-th text and gather the sums, latents and decodings, so all of them return
    the figures of the whole set.
    """
    processes = processes or Processes()
    return _evaluate(
        model, texts, batch_size, decode_sentences, features, free_bits, beta, processes
    )[0]


@torch.no_grad()
def _evaluate(
    model: LanguageVAE,
    texts: Sequence[str] | AnnotatedCorpus,
    batch_size: int,
    decode_sentences: int,
    features: Callable[[list[int]], Tensor] | None,
    free_bits: float,
    beta: float,
    processes: Processes | None = None,
) -> tuple[dict[str, float], list[str]]:
    """:func:`evaluate`'s figures and the decoded reconstructions."""
    corpus = model.annotate(as_corpus(texts))
    texts, cond = corpus.texts, prepare_conditions(model, corpus)
    was_training = model.training
    model.eval()
    processes = processes or Processes()
    sums = torch.zeros(3, device=model.device, dtype=torch.float64)  # NLL, tokens, correct
    kl_dims = torch.zeros(model.latent_size, device=model.device)
    mus = []
    mine = list(range(processes.rank, len(texts), processes.world))
    lockstep = processes.world > 1 and is_sharded(model)
    for indices, counted in _batches(mine, len(texts), batch_size, processes, lockstep):
        chunk = [texts[j] for j in indices]
        if features is not None:
            feats = features(indices)
        else:
            feats = model.features(**model.encoder_inputs(chunk, cond.labels_of(indices)))
        batch = model.decoder_inputs(chunk)
        batch.update(cond.batch(indices, batch["input_ids"].shape[1]))
        out = model(**device_batch(model, batch), features=feats, sample=False)
        if not counted:
            continue
        sums += torch.stack(
            [out.tokens.nll.sum(), out.tokens.num_tokens.sum(), out.tokens.num_correct.sum()]
        ).double()
        kl_dims += out.kl_per_dim.sum(0)
        mus.append(out.mu)
    nll, tokens, correct = processes.sum(sums).tolist()
    kl_dims = processes.sum(kl_dims)
    # The latents in text order, whichever process encoded them.
    local = torch.cat(mus).cpu() if mus else torch.zeros(0, model.latent_size)
    pairs = sorted(processes.gather(list(zip(mine, local, strict=True))), key=lambda p: p[0])
    mu_all = torch.stack([mu for _, mu in pairs]).to(model.device)
    n = len(texts)
    kl_dims = kl_dims / n
    kl = float(kl_dims.sum()) * n
    metrics = {
        "loss": nll / n + beta * float(kl_dims.clamp_min(free_bits).sum()),
        "recon_nll": nll / n,
        "kl": kl / n,
        "neg_elbo": (nll + kl) / n,
        "perplexity": math.exp(min(nll / max(tokens, 1.0), 50.0)),
        "token_accuracy": correct / max(tokens, 1.0),
        "active_units": float(active_units(mu_all)),
    }
    hyps: list[str] = []
    if decode_sentences > 0:
        refs = list(texts[:decode_sentences])
        labels = None
        if cond.decoder_labels is not None:  # decode given the references' own labels
            width = max(len(r) for r in cond.decoder_labels[: len(refs)]) + 1
            labels = cond.batch(range(len(refs)), width)["label_ids"]
        z = mu_all[: len(refs)]
        rows = _decode_shared(model, z, labels, batch_size, processes, lockstep)
        metrics.update(decoding_figures(model, rows, refs, model.config.decoder.max_length))
        hyps = model.codec.decode(rows)
    model.train(was_training)
    return metrics, hyps


def _batches(
    mine: list[int], total: int, size: int, processes: Processes, lockstep: bool
) -> list[tuple[list[int], bool]]:
    """This process's batches of its texts ``mine`` (of ``total``), each with whether it
    counts.  With a sharded decoder (``lockstep``) every process runs as many batches as the
    one with the most texts: a process short of one runs sentence 0 again, uncounted."""
    batches = [(mine[i : i + size], True) for i in range(0, len(mine), size)]
    if lockstep:
        most = math.ceil(math.ceil(total / processes.world) / size)
        batches += [([0], False)] * (most - len(batches))
    return batches


def _decode_shared(
    model: LanguageVAE,
    z: Tensor,
    labels: Tensor | None,
    batch_size: int,
    processes: Processes,
    lockstep: bool = False,
) -> list[list[int]]:
    """Greedy token rows of latents z (N, D), every ``world``-th decoded by each process.
    With a sharded decoder (``lockstep``) every process decodes as many rows (repeating its
    last) and they stop together, when every process's rows have ended."""
    mine = list(range(processes.rank, z.shape[0], processes.world))
    rows: list[list[int]] = []
    if lockstep:
        most = math.ceil(z.shape[0] / processes.world)
        padded = mine + [mine[-1] if mine else 0] * (most - len(mine))
        if model.decoder.label_embed is None:
            labels = None
        rows = generate_batches(
            model.decoder,
            z[padded],
            model.codec.start_id,
            model.eos_id,
            GenerationConfig(),
            label_ids=None if labels is None else labels[padded],
            batch_size=batch_size,
            all_done=processes.all,
        )[: len(mine)]
    elif mine:
        rows = model.decode_ids(
            z[mine], batch_size=batch_size, label_ids=None if labels is None else labels[mine]
        )
    pairs = sorted(processes.gather(list(zip(mine, rows, strict=True))), key=lambda p: p[0])
    return [row for _, row in pairs]


@torch.no_grad()
def decoder_nll(
    model: LanguageVAE, texts: Sequence[str], batch_size: int = 64, eos: bool = True
) -> tuple[Tensor, Tensor]:
    """The frozen decoder's own NLL (nats) and target count per text, with no latent: the
    same ``[BOS] x -> x [EOS]`` sequences the VAE reconstructs (``eos=False`` leaves EOS out)."""
    lm = model.decoder.lm
    nlls, counts = [], []
    rows = model.codec.decoder_rows(texts)
    for i in range(0, len(rows), batch_size):
        # BOS, not a prompt template's start token: the LM's own NLL with nothing before x.
        batch = device_batch(
            model, model.codec.collate(rows[i : i + batch_size], start_id=model.codec.bos_id)
        )
        labels = batch["labels"]
        if not eos:
            last = batch["attention_mask"].sum(1) - 1
            labels = labels.clone()
            labels[torch.arange(labels.shape[0]), last] = IGNORE_INDEX
        # Through the trunk and the chunked head loss: the full (B, T, V) logits of a
        # 262k-token vocabulary would take gigabytes.
        hidden = lm.base_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        target = labels != IGNORE_INDEX
        nll, _ = head_cross_entropy(lm, model.decoder.head_quirks, hidden[target], labels[target])
        rows_of = target.nonzero(as_tuple=True)[0]
        nlls.append(torch.zeros(labels.shape[0], device=nll.device).index_add(0, rows_of, nll))
        counts.append(target.sum(1))
    return torch.cat(nlls), torch.cat(counts)


def _log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


@torch.no_grad()
def importance_weighted_nll(
    model: LanguageVAE,
    texts: Sequence[str],
    samples: int = 16,
    batch_size: int = 32,
    generator: torch.Generator | None = None,
) -> float:
    """Mean over texts of -log p(x) estimated with ``samples`` importance samples from q(z|x)
    (Burda et al., 2016); a tighter bound than the negative ELBO.  Gaussian prior only."""
    estimates = []
    for i in range(0, len(texts), batch_size):
        chunk = list(texts[i : i + batch_size])
        mu, logvar = model.posterior(chunk)
        batch = device_batch(model, model.decoder_inputs(chunk))
        log_w = []
        for _ in range(samples):
            z = reparameterize(mu, logvar, generator)
            nll = model.decoder.token_loss(z, **batch).nll
            log_prior = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
            log_w.append(-nll + log_prior - _log_normal(z, mu, logvar))
        estimates.append(-(torch.logsumexp(torch.stack(log_w), 0) - math.log(samples)))
    return float(torch.cat(estimates).mean())


def evaluate_model(
    model: LanguageVAE,
    texts: Sequence[str] | AnnotatedCorpus,
    full: bool = True,
    seed: int = 0,
    batch_size: int = 64,
    iw_samples: int = 16,
    iw_sentences: int = 200,
    prior_samples: int = 200,
) -> dict:
    """Every figure of a trained model on held-out ``texts``: the per-epoch figures on all
    texts, the decoder's own NLL, example reconstructions, and with ``full`` the
    importance-weighted NLL (unconditioned Gaussian-prior models), mutual information and
    prior-sample diversity and perplexity under the frozen decoder.  An
    :class:`AnnotatedCorpus` gives a conditioned model its labels, as in :func:`evaluate`."""
    corpus = model.annotate(as_corpus(texts))
    texts = corpus.texts
    figures, hyps = _evaluate(model, corpus, batch_size, len(texts), None, 0.0, 1.0)
    own, _ = decoder_nll(model, texts, batch_size)
    figures["decoder_nll"] = float(own.mean())
    figures["examples"] = [
        {"reference": ref, "reconstruction": hyp} for ref, hyp in zip(texts, hyps, strict=True)
    ]
    if not full:
        return figures
    from lmvae.probes.usage import mutual_information  # the probes' estimator, not a second

    generator = torch.Generator(device=model.device).manual_seed(seed)
    labels = corpus.labels if model.encoder.label_groups else None
    mu, logvar = model.posterior(texts, word_labels=labels)
    figures["mutual_information"] = mutual_information(mu, logvar, seed)
    if model.config.prior.kind == "gaussian" and not model.config.annotations.enabled:
        figures["iw_nll"] = importance_weighted_nll(
            model, texts[:iw_sentences], iw_samples, generator=generator
        )
    samples = [s for s in model.sample_prior(prior_samples, seed=seed) if s.strip()]
    figures["prior_distinct_2"] = distinct_n(samples, 2)
    if samples:
        nll, count = decoder_nll(model, samples, batch_size, eos=False)
        figures["prior_decoder_perplexity"] = math.exp(float(nll.sum() / count.sum().clamp_min(1)))
    figures["prior_examples"] = samples[:10]
    return figures
