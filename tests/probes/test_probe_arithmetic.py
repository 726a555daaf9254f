from __future__ import annotations

import pytest
import torch

from lmvae.probes.arithmetic import analogy, combine, latent_arithmetic


def test_combine_known_answers():
    za = torch.tensor([[1.0, 2.0, -3.0], [0.0, 4.0, 1.0]])
    zb = torch.tensor([[0.5, -2.0, 1.0], [2.0, 0.0, 1.0]])
    torch.testing.assert_close(
        combine(za, zb, "sum"), torch.tensor([[1.5, 0.0, -2.0], [2, 4, 2.0]])
    )
    torch.testing.assert_close(
        combine(za, zb, "sub"), torch.tensor([[0.5, 4.0, -4.0], [-2, 4, 0.0]])
    )
    torch.testing.assert_close(
        combine(za, zb, "avg"), torch.tensor([[0.75, 0.0, -1.0], [1, 2, 1.0]])
    )
    torch.testing.assert_close(combine(za, za, "sub"), torch.zeros(2, 3))
    torch.testing.assert_close(combine(za, za, "avg"), za)


def test_combine_bad_input():
    with pytest.raises(ValueError, match="unknown latent operation"):
        combine(torch.zeros(3), torch.zeros(3), "mul")
    with pytest.raises(ValueError, match="same shape"):
        combine(torch.zeros(3), torch.zeros(4), "sum")


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae("bert", "gpt2", latent_size=8)


def test_latent_arithmetic_batched(vae, corpus, monkeypatch):
    calls = []
    decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda z, **kw: calls.append(z) or decode(z, **kw))
    a, b = corpus[:3], corpus[3:6]
    out = latent_arithmetic(vae, a, b, op=["sum", "sub", "avg"], max_new_tokens=4)
    assert len(calls) == 1 and calls[0].shape == (9, 8)
    assert out["ops"] == ["sum", "sub", "avg"]
    assert [(r["a"], r["b"], r["op"]) for r in out["rows"][:3]] == [
        (a[0], b[0], "sum"),
        (a[0], b[0], "sub"),
        (a[0], b[0], "avg"),
    ]
    assert out["texts"] == [r["text"] for r in out["rows"]]
    za, zb = vae.encode(a), vae.encode(b)
    torch.testing.assert_close(calls[0][3], za[1] + zb[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(calls[0][4], za[1] - zb[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(calls[0][8], (za[2] + zb[2]) / 2, rtol=1e-5, atol=1e-6)
    # avg of a sentence with itself decodes like its posterior mean; single strings work too.
    same = latent_arithmetic(vae, a[0], a[0], op="avg", max_new_tokens=4)
    assert same["texts"] == decode(za[:1], max_new_tokens=4)
    assert latent_arithmetic(vae, a[0], a[0], op="avg", max_new_tokens=4) == same


@pytest.mark.parametrize(
    "args",
    [
        (["x y"], ["a b", "c d"], "sum"),
        ([], [], "sum"),
        (["x y"], ["a b"], "mul"),
        (["x y"], ["a b"], []),
    ],
)
def test_latent_arithmetic_bad_input(vae, args):
    with pytest.raises(ValueError):
        latent_arithmetic(vae, *args)


def test_analogy_decodes_a_minus_b_plus_c(vae, corpus):
    a, b, c = corpus[:3]
    out = analogy(vae, a, b, c, max_new_tokens=4)
    z = vae.encode([a, b, c])
    expected = z[0] - z[1] + z[2]
    torch.testing.assert_close(torch.tensor(out["z"]), expected, rtol=1e-5, atol=1e-5)
    assert out["text"] == vae.decode(expected[None], max_new_tokens=4)[0]
    assert (out["a"], out["b"], out["c"]) == (a, b, c)
    with pytest.raises(ValueError, match="c must be a sentence"):
        analogy(vae, a, b, 3)
