"""Where a sentence's words are lost between the encoder and the frozen decoder (issue 13).

    .venv/bin/python benchmarks/information_probes.py [--vae RUN/best]

1. Bag-of-words probe: a ridge regression from features of the first 3,000 WordNet training
   sentences to their bag of words (the 3,000 commonest words), scored on 300 held-out
   sentences by R-precision (of a sentence's k in-vocabulary words, the share among the k
   highest predictions).  Features: all-MiniLM-L6-v2's mean-pooled states of each layer, all
   layers concatenated, their top 128 principal components, and with ``--vae`` a trained
   model's posterior means.
2. Copy oracle: the frozen SmolLM2-135M's NLL of 100 held-out sentences ``[BOS] x [EOS]`` with
   nothing before them, with their own tokens shuffled before them, and with the sentence
   itself before them, and after a chat turn (SmolLM2's own format, no system message) asking
   it to repeat the sentence, or the same turn empty: how much a frozen decoder gains from the
   words in its context, and whether it copies when asked to.
3. Linear-code oracle: in that chat turn, 16 input embeddings in place of the text to repeat
   (the sentence's own, or their best linear image in 128 or 512 dimensions, shuffled, mean).
"""

from __future__ import annotations

import argparse
import collections
import functools
import random
import re
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from lmvae.demo.real import real_backbones
from lmvae.prompt_template import INSTRUCTION
from lmvae.wordnet import build_corpus


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def layer_features(folder: str, texts: list[str]) -> torch.Tensor:
    """(N, layers + 1, H) mean-pooled hidden states of every layer."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    for i in range(0, len(texts), 64):
        batch = tok(texts[i : i + 64], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            states = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out.append(torch.stack([(h * mask).sum(1) / mask.sum(1) for h in states], 1))
    return torch.cat(out)


def bag_of_words_probe(train: list[str], heldout: list[str], vae: str | None) -> dict[str, float]:
    counts = collections.Counter(w for t in train for w in _words(t))
    vocab = {w: i for i, (w, n) in enumerate(counts.most_common(3000)) if n >= 2}

    def targets(texts: list[str]) -> np.ndarray:
        y = np.zeros((len(texts), len(vocab)), np.float32)
        for i, t in enumerate(texts):
            y[i, [vocab[w] for w in _words(t) if w in vocab]] = 1
        return y

    y_train, y_held = targets(train), targets(heldout)

    def r_precision(x_train: np.ndarray, x_held: np.ndarray) -> float:
        mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
        pred = Ridge(alpha=10.0).fit((x_train - mu) / sd, y_train).predict((x_held - mu) / sd)
        scores = []
        for p, gold in zip(pred, y_held, strict=True):
            k = int(gold.sum())
            if k:
                scores.append(gold[np.argsort(-p)[:k]].sum() / k)
        return round(float(np.mean(scores)), 3)

    encoder, _ = real_backbones()
    f_train, f_held = layer_features(encoder, train), layer_features(encoder, heldout)
    result = {
        f"layer {i}": r_precision(f_train[:, i].numpy(), f_held[:, i].numpy())
        for i in range(f_train.shape[1])
    }
    concat_train, concat_held = f_train.flatten(1).numpy(), f_held.flatten(1).numpy()
    result["all layers concatenated"] = r_precision(concat_train, concat_held)
    pca = PCA(128, random_state=0).fit(concat_train)
    result["top 128 principal components"] = r_precision(
        pca.transform(concat_train), pca.transform(concat_held)
    )
    if vae:
        from lmvae import LanguageVAE

        model = LanguageVAE.from_pretrained(vae).eval()

        def means(texts: list[str]) -> np.ndarray:
            with torch.no_grad():
                chunks = [model.encode(texts[i : i + 64]) for i in range(0, len(texts), 64)]
            return torch.cat(chunks).float().numpy()

        result["posterior means of --vae"] = r_precision(means(train), means(heldout))
    return result


@functools.cache
def frozen_decoder():
    """SmolLM2-135M-Instruct's tokenizer and LM from its GGUF file, loaded once for both
    oracles."""
    _, gguf = real_backbones()
    folder, name = str(Path(gguf).parent), Path(gguf).name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return tok, AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()


def copy_oracle(heldout: list[str]) -> dict[str, float]:
    tok, lm = frozen_decoder()
    rng = random.Random(0)

    def nll(before: list[int], ids: list[int]) -> float:
        seq = before + [tok.bos_token_id] + ids + [tok.eos_token_id]
        with torch.no_grad():
            logits = lm(torch.tensor([seq])).logits[0].float()
        logp = torch.log_softmax(logits[len(before) : -1], -1)
        gold = torch.tensor(seq[len(before) + 1 :])
        return -logp.gather(1, gold[:, None]).sum().item()

    def nll_after(before: list[int], ids: list[int]) -> float:
        """NLL of ``x [EOS]`` right after ``before`` (no BOS: a chat turn's role opens it)."""
        seq = before + ids + [tok.eos_token_id]
        with torch.no_grad():
            logits = lm(torch.tensor([seq])).logits[0].float()
        logp = torch.log_softmax(logits[len(before) - 1 : -1], -1)
        return -logp.gather(1, torch.tensor(seq[len(before) :])[:, None]).sum().item()

    def chat(content: str) -> list[int]:
        turn = f"<|im_start|>user\n{INSTRUCTION}{content}<|im_end|>\n<|im_start|>assistant\n"
        return tok(turn, add_special_tokens=False)["input_ids"]

    totals = collections.Counter()
    for text in heldout:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        shuffled = ids[:]
        rng.shuffle(shuffled)
        totals["nothing before"] += nll([], ids)
        totals["its tokens shuffled before"] += nll(shuffled, ids)
        totals["the sentence before"] += nll(ids, ids)
        totals["a chat turn asking to repeat it"] += nll_after(chat(text), ids)
        totals["the same chat turn, empty"] += nll_after(chat(""), ids)
    return {k: round(v / len(heldout), 1) for k, v in totals.items()}


def linear_code_oracle(train: list[str], heldout: list[str], slots: int = 16) -> dict[str, float]:
    """The frozen decoder's NLL of ``x [EOS]`` after the chat turn asking it to repeat, with
    ``slots`` input embeddings in place of the text to repeat: the sentence's own token
    embeddings (EOS-padded), their projection onto the top principal components of the
    training sentences' embedding sequences (what a linear map from a latent of that size
    could at best produce), the tokens shuffled, and their mean repeated."""
    tok, lm = frozen_decoder()
    table = lm.get_input_embeddings().weight.detach()

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    before = ids(f"<|im_start|>user\n{INSTRUCTION}")
    after = ids("<|im_end|>\n<|im_start|>assistant\n")
    eos = tok.eos_token_id

    def slots_of(token_ids: list[int]) -> torch.Tensor:
        token_ids = token_ids[:slots]
        return torch.cat([table[token_ids], table[eos].expand(slots - len(token_ids), -1)])

    def nll(soft: torch.Tensor, target: list[int]) -> float:
        embeds = torch.cat([table[before], soft, table[after], table[target]])
        with torch.no_grad():
            logits = lm(inputs_embeds=embeds[None]).logits[0].float()
        start = len(before) + slots + len(after)
        logp = torch.log_softmax(logits[start - 1 : -1], -1)
        return -logp.gather(1, torch.tensor(target)[:, None]).sum().item()

    codes = torch.stack([slots_of(ids(t)).flatten() for t in train]).float()
    mean = codes.mean(0)
    _, _, basis = torch.pca_lowrank(codes - mean, q=512, center=False)
    rng = random.Random(0)
    totals = collections.Counter()
    for text in heldout:
        token_ids = ids(text)
        target = token_ids + [eos]
        own = slots_of(token_ids)
        totals["its own token embeddings"] += nll(own, target)
        for k in (128, 512):
            flat = mean + ((own.flatten() - mean) @ basis[:, :k]) @ basis[:, :k].T
            totals[f"projected on {k} principal components"] += nll(flat.view(slots, -1), target)
        shuffled = token_ids[:]
        rng.shuffle(shuffled)
        totals["its tokens shuffled"] += nll(slots_of(shuffled), target)
        totals["their mean, repeated"] += nll(table[token_ids].mean(0).expand(slots, -1), target)
    return {k: round(v / len(heldout), 1) for k, v in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", default=None, help="a trained lmvae folder (e.g. RUN/best)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    corpus = build_corpus(seed=0)
    print(
        "bag-of-words R-precision:",
        bag_of_words_probe(corpus.train[:3000], corpus.heldout[:300], args.vae),
    )
    print("frozen decoder NLL (nats per sentence):", copy_oracle(corpus.heldout[:100]))
    print(
        "in the chat turn, 16 embeddings in place of the text (nats per sentence):",
        linear_code_oracle(corpus.train[:3000], corpus.heldout[:100]),
    )


if __name__ == "__main__":
    main()
