"""lmvae.encoder, per encoder architecture: layer selection, pooling against a hand computation
for both padding sides, the layer mix, normalisation and range errors."""

from __future__ import annotations

import pytest
import torch
from support import ENCODER_IDS, LAYERS

from lmvae.backbones import load_encoder
from lmvae.conditioning import PAD_LABEL
from lmvae.config import BackboneRef, EncoderConfig
from lmvae.data import tokenize_encoder
from lmvae.encoder import SentenceEncoder, num_hidden_states, pool, pool_by_label
from lmvae.errors import ConfigError

TEXTS = ["the cat sat on the mat", "a dog", "birds fly south in winter"]
N_STATES = LAYERS + 1


@pytest.fixture(scope="module")
def loaded(backbones):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_encoder(BackboneRef(str(backbones.encoder(name))))
        return cache[name]

    return get


def _inputs(tok, side):
    old = tok.padding_side
    tok.padding_side = side
    try:
        enc = tokenize_encoder(tok, TEXTS, max_length=32)
    finally:
        tok.padding_side = old
    return enc


def _head_input(encoder):
    """The first trainable module the pooled vector enters (an optional norm, else the head)."""
    norm = getattr(encoder, "norm", None)
    return norm if isinstance(norm, torch.nn.Module) else encoder.head


def _record_head_input(encoder):
    seen = []
    _head_input(encoder).register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    return seen


def _hand_pool(states, mask, how):
    rows = []
    for b in range(states.shape[0]):
        real = mask[b].nonzero().flatten().tolist()
        if how == "mean":
            rows.append(states[b, real].mean(0))
        elif how == "cls":
            rows.append(states[b, real[0]])
        else:
            rows.append(states[b, real[-1]])
    return torch.stack(rows)


@pytest.mark.parametrize("name", ENCODER_IDS)
def test_num_hidden_states(loaded, name):
    model, _ = loaded(name)
    assert num_hidden_states(model.config) == N_STATES
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[5, 6, 7]]), output_hidden_states=True)
    assert len(out.hidden_states) == N_STATES


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("how", ["mean", "cls", "last"])
@pytest.mark.parametrize("name", ENCODER_IDS)
def test_pooling_matches_a_hand_computation(loaded, name, how, side):
    model, tok = loaded(name)
    enc = _inputs(tok, side)
    mask = enc["attention_mask"]
    assert (mask == 0).any()  # the batch really is padded
    if side == "left":
        assert (mask[:, -1] == 1).all() and (mask[:, 0] == 0).any()
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    for layer in (0, -1, 1):
        head = SentenceEncoder(model, EncoderConfig(pooling=how, layer=layer), latent_size=4)
        feats = head.features(enc["input_ids"], enc["attention_mask"])
        assert feats.shape == (len(TEXTS), 1, 64)
        expected = _hand_pool(states[layer], mask, how)
        torch.testing.assert_close(feats[:, 0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ENCODER_IDS)
def test_mix_features_hold_every_layer_and_start_as_an_average(loaded, name):
    model, tok = loaded(name)
    enc = _inputs(tok, "right")
    head = SentenceEncoder(model, EncoderConfig(layer="mix"), latent_size=4)
    assert head.feature_shape == (N_STATES, 64)
    feats = head.features(enc["input_ids"], enc["attention_mask"])
    assert feats.shape == (len(TEXTS), N_STATES, 64)
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    for i in range(N_STATES):
        torch.testing.assert_close(
            feats[:, i], _hand_pool(states[i], enc["attention_mask"], "mean")
        )
    # Zero logits: the posterior sees the plain average of the layers.
    seen = _record_head_input(head)
    head.posterior(feats)
    torch.testing.assert_close(seen[0], feats.mean(1))
    assert head.layer_logits.requires_grad


def test_pool_on_hand_made_masks():
    states = torch.arange(2 * 5 * 1, dtype=torch.float32).view(2, 5, 1)
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    assert pool(states, right, "cls").flatten().tolist() == [0.0, 5.0]
    assert pool(states, right, "last").flatten().tolist() == [2.0, 9.0]
    assert pool(states, right, "mean").flatten().tolist() == [1.0, 7.0]
    assert pool(states, left, "cls").flatten().tolist() == [2.0, 6.0]
    assert pool(states, left, "last").flatten().tolist() == [4.0, 9.0]
    assert pool(states, left, "mean").flatten().tolist() == [3.0, 7.5]
    with pytest.raises(ConfigError, match="unknown pooling"):
        pool(states, right, "max")


@pytest.mark.parametrize("layer", [N_STATES, -N_STATES - 1, 99])
def test_out_of_range_layer_names_the_range(loaded, layer):
    model, _ = loaded("bert")
    with pytest.raises(ConfigError) as err:
        SentenceEncoder(model, EncoderConfig(layer=layer), latent_size=4)
    msg = str(err.value)
    assert f"encoder layer {layer} out of range" in msg
    assert f"-{N_STATES}..{N_STATES - 1}" in msg


def test_negative_layers_index_from_the_end(loaded):
    model, _ = loaded("bert")
    assert SentenceEncoder(model, EncoderConfig(layer=-1), 4).layers == [N_STATES - 1]
    assert SentenceEncoder(model, EncoderConfig(layer=-N_STATES), 4).layers == [0]


@pytest.mark.parametrize("layer", [-1, "mix"])
@pytest.mark.parametrize("name", ["bert", "t5"])
def test_normalize_feeds_unit_vectors_to_the_head(loaded, name, layer):
    model, tok = loaded(name)
    enc = _inputs(tok, "right")
    head = SentenceEncoder(model, EncoderConfig(layer=layer, normalize=True), latent_size=4)
    seen = _record_head_input(head)
    mu, logvar = head.posterior(head.features(enc["input_ids"], enc["attention_mask"]))
    assert mu.shape == logvar.shape == (len(TEXTS), 4)
    torch.testing.assert_close(seen[0].norm(dim=-1), torch.ones(len(TEXTS)))
    # Without normalize the head sees the raw (non-unit) features.
    raw = SentenceEncoder(model, EncoderConfig(layer=layer), latent_size=4)
    seen = _record_head_input(raw)
    raw.posterior(raw.features(enc["input_ids"], enc["attention_mask"]))
    assert not torch.allclose(seen[0].norm(dim=-1), torch.ones(len(TEXTS)))


def test_features_carry_no_gradient_but_the_posterior_does(loaded):
    model, tok = loaded("bert")
    enc = _inputs(tok, "right")
    head = SentenceEncoder(model, EncoderConfig(layer="mix"), latent_size=4)
    feats = head.features(enc["input_ids"], enc["attention_mask"])
    assert not feats.requires_grad and feats.dtype == torch.float32
    mu, logvar = head.posterior(feats)
    (mu.sum() + logvar.sum()).backward()
    assert head.head.weight.grad is not None and head.layer_logits.grad is not None
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("name", ENCODER_IDS)
def test_shallow_layers_stop_the_encoder_early_with_the_same_features(loaded, name, side):
    model, tok = loaded(name)
    enc = _inputs(tok, side)
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    for layer in range(N_STATES - 1):  # the last state may carry a final norm: a full pass
        head = SentenceEncoder(model, EncoderConfig(layer=layer), latent_size=4)
        # The first call checks the shortcut against a full pass.
        first = head.features(enc["input_ids"], enc["attention_mask"])
        assert head._early_exit is True
        ran: list[bool] = []
        handle = head._stack[-1].register_forward_hook(lambda *args, ran=ran: ran.append(True))
        try:
            again = head.features(enc["input_ids"], enc["attention_mask"])
        finally:
            handle.remove()
        assert not ran  # the layers above the pooled state did not run
        expected = _hand_pool(states[layer], enc["attention_mask"], "mean")
        torch.testing.assert_close(again[:, 0], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(again, first)


def test_a_wrong_layer_stack_falls_back_to_the_full_pass(loaded):
    model, tok = loaded("bert")
    enc = _inputs(tok, "right")
    head = SentenceEncoder(model, EncoderConfig(layer=1), latent_size=4)
    head._stack = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    for _ in range(2):
        feats = head.features(enc["input_ids"], enc["attention_mask"])
        expected = _hand_pool(states[1], enc["attention_mask"], "mean")
        torch.testing.assert_close(feats[:, 0], expected, atol=1e-5, rtol=1e-5)
    assert head._early_exit is False


def test_pool_by_label_by_hand():
    states = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 7.0]]])
    mask = torch.tensor([[1, 1, 1, 0]])
    labels = torch.tensor([[PAD_LABEL, 2, 2, 3]])  # the last token is padding
    out = pool_by_label(states, mask, labels, groups=3)  # groups: unknown, label 2, label 3
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.0], [4.0, 3.0], [0.0, 0.0]]]))


def test_init_logvar_sets_the_starting_posterior_spread(loaded):
    model, tok = loaded("bert")
    enc = _inputs(tok, "right")
    for start in (0.0, -4.0):
        head = SentenceEncoder(model, EncoderConfig(init_logvar=start), latent_size=16)
        _, logvar = head.posterior(head.features(enc["input_ids"], enc["attention_mask"]))
        # The weights add a spread around the bias, not a shift.
        assert abs(logvar.mean().item() - start) < 0.5


def _labelled_features(head, enc, seed=0):
    """Conditioned features of TEXTS with random token labels of the head's groups."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, head.label_groups + 1, enc["input_ids"].shape, generator=generator)
    return head.features(enc["input_ids"], enc["attention_mask"], labels)


def test_a_conditioned_encoder_starts_as_the_plain_one(loaded):
    model, tok = loaded("bert")
    enc = _inputs(tok, "right")
    torch.manual_seed(0)
    plain = SentenceEncoder(model, EncoderConfig(layer="mix"), latent_size=8)
    torch.manual_seed(0)
    conditioned = SentenceEncoder(model, EncoderConfig(layer="mix"), latent_size=8, num_labels=4)
    feats = _labelled_features(conditioned, enc)
    assert feats.shape[2] == 1 + conditioned.label_groups
    for got, want in zip(
        conditioned.posterior(feats), plain.posterior(feats[:, :, 0]), strict=True
    ):
        torch.testing.assert_close(got, want)
    # ... and the label columns learn: they take a gradient from the first step.
    mu, _ = conditioned.posterior(feats)
    mu.square().sum().backward()
    assert conditioned.head.weight.grad[:, model.config.hidden_size :].abs().sum() > 0


def test_label_blocks_enter_the_head_scaled_by_one_over_the_groups(loaded):
    model, tok = loaded("bert")
    enc = _inputs(tok, "right")
    moves = {}
    for scale in (None, 1.0):
        torch.manual_seed(0)
        head = SentenceEncoder(model, EncoderConfig(label_scale=scale), latent_size=8, num_labels=4)
        feats = _labelled_features(head, enc)
        with torch.no_grad():
            start, _ = head.posterior(feats)
            torch.manual_seed(1)
            head.head.weight[:, model.config.hidden_size :].normal_()
            moved, _ = head.posterior(feats)
        moves[scale] = moved - start  # what the label blocks add to mu
    groups = 4 + 1  # the labels and "unknown"
    torch.testing.assert_close(moves[None], moves[1.0] / groups)
