"""Model variants side by side on the demo corpus and its tiny frozen BERT / GPT-2 backbones.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/variants.py --threads 1 --out variants.json
    .venv/bin/python benchmarks/variants.py --out variants.json --tables-only   # tables again

Three tables, each variant trained the same way (latent 32, 16 epochs, batch 32, the library's
default schedule, seed 0) on 2700 of the 3000 role-labelled demo sentences, the other 300 held
out (the split of ``lmvae demo``):

1. conditioning: unconditioned vs conditioned on the semantic-role labels (encoder only, and
   encoder + decoder), and a mixture prior with one component per template family; held-out
   reconstruction and disentanglement metrics of the posterior means of all 3000 sentences
   against factors derived from the role labels and template family;
2. injection modes: prefix slots, per-position slots, Optimus memory;
3. LoRA / unfrozen layers: steps to reach a held-out BLEU target, trainable parameters, final
   BLEU, with and without adapters.

Each finished variant is stored in ``--out`` at once, so an interrupted run resumes; the
tables are printed as Markdown at the end.  Figures are from the last epoch's weights;
reconstruction is greedy from the posterior mean (a conditioned decoder gets the reference's
labels, and is also scored without them).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from lmvae import LanguageVAE, TrainConfig, evaluate, train
from lmvae.annotations import AnnotatedCorpus
from lmvae.data import split_corpus
from lmvae.demo.backbones import cached_demo_backbones
from lmvae.demo.corpus import ROLE_LABELS, load_demo_corpus
from lmvae.metrics import reconstruction_metrics
from lmvae.probes.metrics import beta_vae, dci, factor_vae, mig, modularity, sap

LATENT = 32
MAX_LENGTH = 32
BLEU_TARGETS = (0.3, 0.4)
ROLES = {"labels": list(ROLE_LABELS)}

#: name -> (table, options for LanguageVAE.from_backbones (``train``: TrainConfig overrides),
#: description)
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "base": ("all", {}, "unconditioned, prefix (16 slots)"),
    "cond-enc": ("cond", {"annotations": {**ROLES}}, "roles -> encoder"),
    "cond-both": (
        "cond",
        {"annotations": {**ROLES, "decoder": True}},
        "roles -> encoder + decoder",
    ),
    "prior-mixture": ("cond", {"prior_kind": "mixture"}, "mixture prior, 1 component / family"),
    "per-position": ("inject", {"decoder_injection": "per_position"}, "per-position slots"),
    "memory": ("inject", {"decoder_injection": "memory"}, "Optimus memory + embedding"),
    "lora-dec": ("lora", {"decoder_lora_rank": 8}, "+ LoRA r=8 on the decoder"),
    "lora-dec-fast": (
        "lora",
        {"decoder_lora_rank": 8, "train": {"backbone_lr": 1e-2}},
        "+ LoRA r=8 on the decoder, backbone lr 1e-2",
    ),
    "unfreeze-dec": ("lora", {"decoder_unfreeze_top": 1}, "+ top decoder layer unfrozen"),
    "base-last": ("lora", {"encoder_layer": -1}, "encoder pooled at its last layer"),
    "lora-enc-last": (
        "lora",
        {"encoder_layer": -1, "encoder_lora_rank": 8},
        "last layer + LoRA r=8 on the encoder",
    ),
}


def role_pattern(labels) -> str:
    out: list[str] = []
    for lab in labels:
        if not out or out[-1] != lab:
            out.append(lab)
    return " ".join(out)


def factors_of(records) -> tuple[np.ndarray, list[str]]:
    """Discrete factors per sentence from its role labels and template family."""
    patterns = Counter(role_pattern(r.labels) for r in records)
    columns = {
        "template": [r.template for r in records],
        # Role patterns seen fewer than 20 times are pooled, so every value has a group.
        "role_pattern": [
            p if patterns[p] >= 20 else "rare" for p in (role_pattern(r.labels) for r in records)
        ],
        "first_role": [r.labels[0] for r in records],
        "negated": ["ARGM-NEG" in r.labels for r in records],
        "has_location": ["ARGM-LOC" in r.labels for r in records],
        "has_time": ["ARGM-TMP" in r.labels for r in records],
        "has_modal": ["ARGM-MOD" in r.labels for r in records],
        "words": [len(r.labels) for r in records],
    }
    return np.array(list(columns.values()), dtype=object).T, list(columns)


def disentanglement(codes: np.ndarray, factors: np.ndarray) -> dict[str, float]:
    d = dci(codes, factors)
    return {
        "mig": mig(codes, factors)["mig"],
        "dci_d": d["disentanglement"],
        "dci_c": d["completeness"],
        "dci_i": d["informativeness"],
        "sap": sap(codes, factors)["sap"],
        "modularity": modularity(codes, factors)["modularity"],
        "beta_vae": beta_vae(codes, factors)["beta_vae"],
        "factor_vae": factor_vae(codes, factors)["factor_vae"],
    }


def nearest_template(texts, train_texts, train_templates) -> list[str]:
    """Template of the training sentence with the highest unigram F1 to each text."""
    bags = [Counter(t.split()) for t in train_texts]
    out = []
    for text in texts:
        words = Counter(text.split())
        best, best_f1 = None, -1.0
        for bag, template in zip(bags, train_templates, strict=True):
            hit = sum((words & bag).values())
            f1 = 2 * hit / (sum(words.values()) + sum(bag.values()))
            if f1 > best_f1:
                best, best_f1 = template, f1
        out.append(best)
    return out


def run_variant(name, records, split, dirs, args) -> dict:
    table, opts, description = VARIANTS[name]
    opts = dict(opts)
    train_opts = opts.pop("train", {})
    train_idx, eval_idx = split
    labels = "annotations" in opts
    categories = opts.get("prior_kind") == "mixture"
    templates = sorted({r.template for r in records})
    if categories:
        opts = {**opts, "prior_categories": templates, "prior_field": "template"}

    def corpus(indices):
        rows = [records[i] for i in indices]
        return AnnotatedCorpus(
            [r.text for r in rows],
            [list(r.labels) for r in rows] if labels else None,
            [r.template for r in rows] if categories else None,
        )

    train_set, eval_set = corpus(train_idx), corpus(eval_idx)
    model = LanguageVAE.from_backbones(
        str(dirs[0]),
        str(dirs[1]),
        LATENT,
        encoder_max_length=MAX_LENGTH,
        decoder_max_length=MAX_LENGTH,
        seed=args.seed,
        **{"preset": "tiny", **opts},  # the demo's tiny backbones (lmvae.presets)
    )
    cfg = TrainConfig.from_preset(
        "tiny", epochs=args.epochs, seed=args.seed, progress=False, **train_opts
    )
    started = time.perf_counter()
    result = train(model, train_set, eval_set, cfg, log=lambda s: print(f"  [{name}] {s}"))
    wall = time.perf_counter() - started
    history = result.history
    model.eval()
    final = evaluate(model, eval_set, decode_sentences=len(eval_set))
    out = {
        "table": table,
        "description": description,
        "trainable_parameters": model.num_parameters(trainable_only=True),
        "train_seconds": sum(r["train_seconds"] for r in history),
        "wall_seconds": wall,
        "train_sents_per_s": float(np.mean([r["train_sents_per_s"] for r in history[1:]])),
        "steps_per_epoch": history[0]["step"],
        "bleu": final["bleu"],
        "exact_match": final["exact_match"],
        "kl": final["kl"],
        "active_units": final["active_units"],
        "recon_nll": final["recon_nll"],
        "curve": [
            {k: r.get(k) for k in ("epoch", "step", "eval_bleu", "eval_exact_match", "train_recon")}
            for r in history
        ],
    }
    for target in BLEU_TARGETS:
        hit = next((r["step"] for r in history if r["eval_bleu"] >= target), None)
        out[f"steps_to_bleu_{target}"] = hit
    with torch.no_grad():
        mus = model.encode(eval_set.texts, word_labels=eval_set.labels)
    if model.decoder.label_embed is not None:
        plain = model.decode(mus)
        out["bleu_without_labels"] = reconstruction_metrics(plain, eval_set.texts)["bleu"]
    everything = corpus(range(len(records)))
    codes = model.encode(everything.texts, word_labels=everything.labels).cpu().numpy()
    factors, names = factors_of(records)
    out["factors"] = names
    out.update(disentanglement(codes, factors))
    if categories:
        per = args.samples_per_category
        train_templates = [records[i].template for i in train_idx]
        hits = 0
        for c in templates:
            texts = model.sample_prior(per, seed=args.seed, category=c)
            hits += sum(t == c for t in nearest_template(texts, train_set.texts, train_templates))
        out["generated_category_accuracy"] = hits / (per * len(templates))
        nearest = torch.cdist(mus, model.prior.means.detach()).argmin(1)
        out["posterior_component_accuracy"] = float(
            (nearest.cpu() == model.category_ids([records[i].template for i in eval_idx]))
            .float()
            .mean()
        )
    return out


def fmt(x, digits=3):
    if x is None:
        return "not reached"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def tables(results: dict, threads: int) -> str:
    lines = []

    def row(cells):
        lines.append("| " + " | ".join(cells) + " |")

    def header(cells):
        row(cells)
        row(["---"] * len(cells))

    names = [n for n in VARIANTS if n in results]
    lines.append(f"Conditioning (threads={threads})\n")
    header(
        ["variant", "BLEU", "exact", "BLEU w/o labels", "KL", "AU"]
        + ["MIG", "DCI-D", "DCI-C", "DCI-I", "SAP", "modularity", "beta-VAE", "FactorVAE"]
    )
    for n in [n for n in names if VARIANTS[n][0] in ("all", "cond")]:
        r = results[n]
        row(
            [f"{n}: {r['description']}", fmt(r["bleu"]), fmt(r["exact_match"])]
            + [fmt(r.get("bleu_without_labels", "-")), fmt(r["kl"], 1), fmt(r["active_units"], 0)]
            + [
                fmt(r[k])
                for k in ("mig", "dci_d", "dci_c", "dci_i", "sap", "modularity", "beta_vae")
            ]
            + [fmt(r["factor_vae"])]
        )
    if "prior-mixture" in results:
        r = results["prior-mixture"]
        lines.append(
            f"\nmixture prior: generated sentences whose nearest training sentence has the "
            f"requested family {r['generated_category_accuracy']:.3f} (chance 0.067); held-out "
            f"posterior means nearest their own family's component "
            f"{r['posterior_component_accuracy']:.3f}\n"
        )
    lines.append(f"\nInjection modes (threads={threads})\n")
    header(["mode", "trainable params", "train sent/s", "train s", "BLEU", "exact", "KL", "AU"])
    for n in [n for n in names if n == "base" or VARIANTS[n][0] == "inject"]:
        r = results[n]
        row(
            [
                f"{n}: {r['description']}",
                fmt(r["trainable_parameters"]),
                fmt(r["train_sents_per_s"], 0),
                fmt(r["train_seconds"], 0),
                fmt(r["bleu"]),
                fmt(r["exact_match"]),
                fmt(r["kl"], 1),
                fmt(r["active_units"], 0),
            ]
        )
    lines.append(f"\nLoRA and unfrozen layers (threads={threads})\n")
    targets = [f"steps to BLEU {t}" for t in BLEU_TARGETS]
    header(["variant", "trainable params", *targets, "final BLEU", "exact", "train sent/s"])
    for n in [n for n in names if n == "base" or VARIANTS[n][0] == "lora"]:
        r = results[n]
        row(
            [f"{n}: {r['description']}", fmt(r["trainable_parameters"])]
            + [fmt(r[f"steps_to_bleu_{t}"]) for t in BLEU_TARGETS]
            + [fmt(r["bleu"]), fmt(r["exact_match"]), fmt(r["train_sents_per_s"], 0)]
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="variants.json")
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS), help="variants to run")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples-per-category", type=int, default=20)
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    if not args.tables_only:
        records = load_demo_corpus()
        texts = [r.text for r in records]
        dirs = cached_demo_backbones(texts, seed=args.seed)
        train_idx, eval_idx = split_corpus(list(range(len(texts))), 0.1, 300, args.seed)
        for name in args.only or list(VARIANTS):
            if name in results:
                continue
            print(f"== {name}: {VARIANTS[name][2]}", flush=True)
            results[name] = run_variant(name, records, (train_idx, eval_idx), dirs, args)
            results[name]["threads"] = args.threads
            out.write_text(json.dumps(results, indent=1) + "\n")
    print(tables(results, args.threads))


if __name__ == "__main__":
    main()
