"""lmvae.explorer.server: every endpoint, the bad requests each refuses, and the guards
(Host header, token, origin, content type, body size, only its own files)."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from lmvae.explorer import Explorer, allowed_hosts, create_app, is_loopback
from lmvae.explorer.server import TOKEN_COOKIE

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def client(app):
    return TestClient(app, base_url=BASE)


def post(client, name, body, **kw):
    return client.post(f"/api/{name}", json=body, **kw)


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/explorer.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    js = client.get("/static/explorer.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/explorer.css").status_code == 200
    for path in ("/static/index.html", "/static/..%2F__init__.py", "/static/../server.py",
                 "/static/%2e%2e/session.py", "/nope"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 404, path
        assert "def " not in response.text


def test_info(client, explorer):
    info = client.get("/api/info").json()
    assert info["latent_size"] == 6 and info["corpus_size"] == 80 and info["model"] == "tiny"
    kl = [d["kl"] for d in info["dims"]]
    assert sorted(d["dim"] for d in info["dims"]) == list(range(6))
    assert kl == sorted(kl, reverse=True)  # ranked by KL
    assert info["maps"] == ["pca", "tsne", "umap"] and info["colour_by"][0] == "template"
    assert "length" in info["colour_by"] and info["needs"]["word_labels"] is False
    assert info["limits"]["max_sentences"] == 8


def test_reconstruct(client, explorer):
    r = post(client, "reconstruct", {"sentences": ["the cat sat on the mat", {"id": 3}],
                                     "samples": 2})  # fmt: skip
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [row["id"] for row in rows] == [None, 3]
    assert rows[1]["text"] == explorer.corpus.texts[3]
    assert len(rows[0]["samples"]) == 2 and len(rows[0]["sigma"]) == 6
    assert isinstance(rows[0]["reconstruction"], str) and r.json()["seconds"] >= 0
    beam = post(client, "reconstruct", {"sentences": ["a dog"], "samples": 0, "strategy": "beam"})
    assert beam.status_code == 200 and beam.json()["rows"][0]["samples"] == []


def test_interpolate(client):
    r = post(client, "interpolate", {"a": "the cat sat", "b": {"id": 1}, "steps": 4,
                                     "mode": "slerp"})  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["texts"]) == 4 and out["mode"] == "slerp"
    assert out["smoothness"] is None or 0 <= out["smoothness"] <= 1.0 + 1e-9


def test_traverse(client, explorer):
    at_mean = post(client, "traverse", {"sentence": "the cat sat", "dim": 2}).json()
    assert at_mean["value"] == pytest.approx(at_mean["mu"]) and at_mean["sigma"] > 0
    moved = post(client, "traverse", {"sentence": "the cat sat", "dim": 2, "value": 2.5}).json()
    assert moved["value"] == 2.5 and isinstance(moved["decoded"], str)
    z = explorer.vae.encode(["the cat sat"])
    z[0, 2] = 2.5
    assert moved["decoded"] == explorer.vae.decode(z, max_new_tokens=6)[0]


def test_arithmetic(client, explorer):
    r = post(client, "arithmetic", {"a": {"id": 0}, "b": {"id": 1}, "c": "a dog runs", "k": 3})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["z"]) == 6 and isinstance(out["text"], str)
    assert len(out["neighbours"]) == 3
    assert [n["distance"] for n in out["neighbours"]] == sorted(
        n["distance"] for n in out["neighbours"]
    )
    assert out["neighbours"][0]["text"] == explorer.corpus.texts[out["neighbours"][0]["id"]]


def test_prior(client):
    r = post(client, "prior", {"n": 3, "seed": 5, "strategy": "sample"})
    assert r.status_code == 200 and len(r.json()["texts"]) == 3
    assert post(client, "prior", {"n": 3, "seed": 5, "strategy": "sample"}).json() == {
        **r.json(),
        "seconds": pytest.approx(r.json()["seconds"], abs=60),
    }


def test_map_and_place(client, explorer):
    r = post(client, "map", {"method": "pca", "colour_by": "length"})
    assert r.status_code == 200, r.text
    m = r.json()
    assert len(m["coords"]) == len(m["labels"]) == len(m["texts"]) == 80
    assert set(m["colours"]) == set(m["labels"])
    placed = post(client, "place", {"sentences": [{"id": 7}, "the cat sat"], "method": "pca"})
    assert placed.status_code == 200, placed.text
    # A corpus sentence lands on its own point.
    assert placed.json()["coords"][0] == pytest.approx(m["coords"][7], abs=1e-3)


@pytest.mark.parametrize(
    ("name", "body", "status", "message"),
    [
        ("reconstruct", {}, 422, "non-empty list"),
        ("reconstruct", {"sentences": "a cat"}, 422, "non-empty list"),
        ("reconstruct", {"sentences": ["a"] * 9}, 422, "at most 8"),
        ("reconstruct", {"sentences": ["x" * 301]}, 422, "300 characters"),
        ("reconstruct", {"sentences": ["  "]}, 422, "empty"),
        ("reconstruct", {"sentences": [5]}, 422, "must be a string"),
        ("reconstruct", {"sentences": ["a"], "samples": 99}, 422, "samples must be in"),
        ("reconstruct", {"sentences": ["a"], "samples": "2"}, 422, "must be an integer"),
        ("reconstruct", {"sentences": ["a"], "strategy": "eval"}, 422, "strategy must be"),
        ("reconstruct", {"sentences": ["a"], "colour": 1}, 422, "unknown field 'colour'"),
        ("reconstruct", {"sentences": [{"id": 999}]}, 404, "unknown sentence id 999"),
        ("reconstruct", {"sentences": [{"id": "3"}]}, 422, "must be an integer"),
        ("reconstruct", {"sentences": [{"text": "a b", "labels": ["X"]}]}, 422, "1 labels"),
        ("interpolate", {"a": "x"}, 422, "missing field 'b'"),
        ("interpolate", {"a": "x", "b": "y", "steps": 1}, 422, "steps must be in"),
        ("interpolate", {"a": "x", "b": "y", "mode": "cubic"}, 422, "mode must be"),
        ("traverse", {"sentence": "x", "dim": 6}, 404, "unknown dimension 6"),
        ("traverse", {"sentence": "x", "dim": -1}, 404, "unknown dimension"),
        ("traverse", {"sentence": "x"}, 404, "unknown dimension None"),
        ("traverse", {"sentence": "x", "dim": 0, "value": 1e9}, 422, "value must be in"),
        ("traverse", {"sentence": "x", "dim": 0, "value": "1"}, 422, "must be a number"),
        ("arithmetic", {"a": "x", "b": "y", "c": {"id": -2}}, 404, "unknown sentence id"),
        ("prior", {"n": 0}, 422, "n must be in"),
        ("prior", {"category": "nope"}, 404, "unknown category 'nope'"),
        ("map", {"method": "mds"}, 422, "method must be"),
        ("map", {"colour_by": "nope"}, 404, "cannot colour by 'nope'"),
        ("place", {"sentences": ["x"], "method": "xyz"}, 422, "method must be"),
        ("eval", {}, 404, "unknown operation"),
    ],
)
def test_bad_requests_say_what_is_wrong(client, name, body, status, message):
    r = post(client, name, body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_bad_json_size_and_content_type(client):
    headers = {"content-type": "application/json"}
    r = client.post("/api/prior", content=b"{not json", headers=headers)
    assert r.status_code == 400 and "bad JSON" in r.json()["error"]
    assert client.post("/api/prior", content=b"[1, 2]", headers=headers).status_code == 400
    assert client.post("/api/prior", content=b"\xff\xfe", headers=headers).status_code == 400
    big = json.dumps({"sentences": ["a " * 20000]}).encode()
    r = client.post("/api/reconstruct", content=big, headers=headers)
    assert r.status_code == 413 and "over 32768 bytes" in r.json()["error"]
    r = client.post("/api/prior", content=b"n=3", headers={"content-type": "text/plain"})
    assert r.status_code == 415  # a cross-site form cannot post JSON without a preflight
    assert client.get("/api/prior").status_code == 405
    r = client.post("/api/prior", json={}, headers={"x-explorer-client": "bad id!"})
    assert r.status_code == 400


def test_host_header_and_origin_checked(app):
    rebinding = TestClient(app, base_url="http://attacker.example:8765")
    r = rebinding.get("/api/info")
    assert r.status_code == 400 and "unexpected Host header" in r.json()["error"]
    assert TestClient(app, base_url="http://localhost:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://[::1]:8765").get("/").status_code == 200
    client = TestClient(app, base_url=BASE)
    r = post(client, "prior", {"n": 1}, headers={"origin": "http://attacker.example"})
    assert r.status_code == 403
    assert post(client, "prior", {"n": 1}, headers={"origin": BASE}).status_code == 200


def test_token_required_beyond_loopback(explorer):
    app = create_app(explorer, hosts=allowed_hosts("10.1.2.3"), token="s3cret")
    client = TestClient(app, base_url="http://10.1.2.3:8765")
    assert client.get("/api/info").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert post(client, "prior", {"n": 1}).status_code == 401
    page = client.get("/?token=s3cret")
    assert page.status_code == 200 and TOKEN_COOKIE in page.headers["set-cookie"]
    assert "samesite=strict" in page.headers["set-cookie"].lower()
    assert client.get("/api/info").status_code == 200  # the cookie now authorises
    fresh = TestClient(app, base_url="http://10.1.2.3:8765")
    bearer = {"authorization": "Bearer s3cret"}
    assert post(fresh, "prior", {"n": 1}, headers=bearer).status_code == 200
    assert fresh.get("/api/info?token=s3cret").status_code == 401  # only the page takes ?token


def test_binding_helpers():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.org")
    hosts = allowed_hosts("0.0.0.0", ["box.lan"])
    assert {"127.0.0.1", "localhost", "box.lan"} <= set(hosts)


def test_conditioned_model_says_what_it_needs(make_vae, corpus_data):
    from lmvae.demo.corpus import ROLE_LABELS

    vae = make_vae(
        "bert", "gpt2", latent_size=4,
        annotations={"labels": list(ROLE_LABELS), "encoder": True, "decoder": True},
        prior_kind="mixture", prior_categories=sorted(set(corpus_data.labels["template"])),
        prior_field="template",
    )  # fmt: skip
    client = TestClient(create_app(Explorer(vae, corpus_data, max_new_tokens=4)), base_url=BASE)
    needs = client.get("/api/info").json()["needs"]
    assert needs["word_labels"] and needs["decoder_labels"] and needs["category"] == "template"
    r = post(client, "reconstruct", {"sentences": ["the cat sat"]})
    assert r.status_code == 422 and "give labels for 'the cat sat'" in r.json()["error"]
    labelled = {"text": "the cat sat", "labels": "ARG0 ARG0 V"}
    assert post(client, "reconstruct", {"sentences": [labelled]}).status_code == 200
    # A corpus sentence, typed or by id, brings its own labels.
    text = corpus_data.texts[2]
    assert post(client, "traverse", {"sentence": text, "dim": 0, "value": 1.0}).status_code == 200
    category = needs["categories"][0]
    r = post(client, "prior", {"n": 2, "category": category})
    assert r.status_code == 200 and r.json()["category"] == category
    with pytest.raises(ValueError, match="reads per-word labels"):
        corpus = corpus_data.subset(range(5))
        corpus.roles = None
        Explorer(vae, corpus)
