"""lmvae explore: the command builds the app for a saved model and a corpus and hands it to
uvicorn on loopback; another interface needs --allow-remote, and then a token."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from support import CORPUS

from lmvae.cli import main


@pytest.fixture(scope="module")
def saved(make_vae, tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    make_vae("bert", "gpt2", latent_size=4).save_pretrained(root / "model")
    (root / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    return root


@pytest.fixture
def served(monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_explore_serves_on_loopback(saved, served, capsys):
    argv = ["explore", str(saved / "model"), "--data", str(saved / "corpus.txt"), "--port", "9123"]
    assert main(argv) == 0
    ((app, options),) = served
    assert options["host"] == "127.0.0.1" and options["port"] == 9123
    assert "open http://localhost:9123/  (Ctrl-C" in capsys.readouterr().err
    info = TestClient(app, base_url="http://localhost:9123").get("/api/info").json()
    assert info["corpus_size"] == len(CORPUS) and info["latent_size"] == 4


def test_other_interfaces_need_the_flag_and_then_a_token(saved, served, capsys):
    assert main(["explore", str(saved / "model"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --host 0.0.0.0") and "--allow-remote" in err and not served
    argv = ["explore", str(saved / "model"), "--host", "0.0.0.0", "--allow-remote",
            "--allowed-host", "box.lan"]  # fmt: skip
    assert main(argv) == 0
    token = capsys.readouterr().err.split("?token=")[1].split()[0]
    client = TestClient(served[0][0], base_url="http://box.lan:8765")
    assert client.get("/api/info").status_code == 401
    assert client.get(f"/?token={token}").status_code == 200
    assert client.get("/api/info").json()["corpus_size"] == 0
