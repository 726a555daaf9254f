"""An experiment, not a feature (issue 13, session 13): the soft prompt as a draft of the
sentence's tokens.  Each prompt vector is a softmax mixture of the decoder's own input
embeddings, and an auxiliary cross-entropy asks prompt position i to be the sentence's token i
(EOS past its end), so that an instruct decoder asked to "repeat this text" can copy the
draft.  It patches lmvae.decoder.LatentDecoder and runs benchmarks/real_quality.py with the
given arguments; DRAFT_WEIGHT (default 1) weighs the auxiliary loss, DRAFT_MIX=0 keeps free
prompt vectors (the auxiliary loss then reads them through the embedding matrix).

    .venv/bin/python benchmarks/draft_prompt.py --train 3000 --heldout 300 --epochs 1 \
        --set eval_decode_sentences=100 --tag s13_draft_chat --set $'decoder_prompt_template=\
<|im_start|>user\nRepeat this text exactly:\n{latent}<|im_end|>\n<|im_start|>assistant\n'

Result in docs/benchmarks.md (issue 13, session 13): far worse at equal steps, so not built.
"""

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from lmvae import decoder as D  # noqa: E402

WEIGHT = float(os.environ.get("DRAFT_WEIGHT", "1.0"))
MIX = os.environ.get("DRAFT_MIX", "1") == "1"
orig_soft_prompt = D.LatentDecoder.soft_prompt
orig_token_loss = D.LatentDecoder.token_loss


def soft_prompt(self, z):
    embed = self.lm.get_input_embeddings()
    E = embed.weight
    h = self.injector(z)[0]  # (B, S, H)
    logits = h.to(E.dtype) @ E.T
    self._draft_logits = logits
    vectors = torch.softmax(logits.float(), -1).to(E.dtype) @ E if MIX else h.to(E.dtype)
    if not self.template_prefix.numel() and not self.template_suffix.numel():
        return vectors
    batch = z.shape[0]
    parts = [embed(self.template_prefix), None, embed(self.template_suffix)]
    return torch.cat([vectors if p is None else p[None].expand(batch, -1, -1) for p in parts], 1)


EOS = None


def token_loss(self, z, input_ids, attention_mask, labels, label_ids=None):
    out = orig_token_loss(self, z, input_ids, attention_mask, labels, label_ids)
    if self.training and WEIGHT > 0:
        logits = self._draft_logits.float()  # (B, S, V)
        S = logits.shape[1]
        tgt = labels[:, :S].clone()
        tgt[tgt == D.IGNORE_INDEX] = EOS
        if tgt.shape[1] < S:
            tgt = torch.cat([tgt, tgt.new_full((tgt.shape[0], S - tgt.shape[1]), EOS)], 1)
        aux = F.cross_entropy(logits.transpose(1, 2), tgt, reduction="none").sum(1)
        out.nll = out.nll + WEIGHT * aux
    return out


D.LatentDecoder.soft_prompt = soft_prompt
D.LatentDecoder.token_loss = token_loss

# calibrate_prompt: start h at the embeddings' scale (kept as is).
import real_quality  # noqa: E402

from lmvae import model as M  # noqa: E402

orig_init = M.LanguageVAE.__init__


def init(self, *a, **k):
    global EOS
    orig_init(self, *a, **k)
    EOS = self.codec.eos_id


M.LanguageVAE.__init__ = init
if __name__ == "__main__":
    real_quality.main()
