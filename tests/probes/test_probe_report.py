"""lmvae.probes.report: every probe on a tiny model, the written folder, and the HTML as a
browser renders it (headless Chromium)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from lmvae.errors import ConfigError
from lmvae.probes.records import load_probe_data
from lmvae.probes.report import PROBES, find_history, run_probes, write_report
from lmvae.probes.usage import latent_usage

STS = [("a cat is a kind of mammal", "a dog is a kind of mammal", 4.0),
       ("a cat is a kind of mammal", "water turns into ice", 0.5),
       ("wood turns into ash", "water turns into ice", 2.5),
       ("a hawk can fly", "an eagle can fly", 4.5)]  # fmt: skip


@pytest.fixture(scope="module")
def vae(make_vae):
    return make_vae("bert", "gpt2", latent_size=6)


@pytest.fixture(scope="module")
def data():
    return load_probe_data("demo").subset(range(120))


@pytest.fixture(scope="module")
def history():
    return [
        {"epoch": e, "train_loss": 10.0 - e, "eval_recon_nll": 9.0 - e, "eval_kl": 1.0 + e,
         "eval_bleu": 0.1 * e, "eval_exact_match": 0.05 * e, "beta": 1.0}
        for e in (1, 2, 3)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def results(vae, data, history):
    return run_probes(vae, data, sts=STS, history=history, decode_sentences=20,
                      meta={"model": "tiny", "data": "demo[:120]"}, seed=0)  # fmt: skip


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    return write_report(results, tmp_path_factory.mktemp("report"))


def test_all_probes_run_with_a_pairs_file(results):
    assert results["meta"]["probes"] == list(PROBES)
    assert results["meta"]["n_sentences"] == 120 and results["meta"]["latent_size"] == 6
    for key in ("latent_usage", "training", "reconstruction", "traversal", "interpolation",
                "arithmetic", "disentanglement", "clusters", "properties", "sts"):  # fmt: skip
        assert results[key], key
    rec = results["reconstruction"]
    assert {"bleu", "exact_match", "token_accuracy", "perplexity", "kl"} <= set(rec)
    assert 0.0 <= results["latent_usage"]["mutual_information"] <= 5.0
    assert len(results["traversal"]["rows"]) == 2 * 4 * 7  # 2 seeds x 4 dims x 7 steps
    assert len(results["interpolation"]) == 3
    assert len(results["arithmetic"]["rows"]) == 9
    assert "template" in results["disentanglement"]["factors"]
    assert set(results["clusters"]["coords"]) == {"pca", "tsne", "umap"}
    assert len(results["clusters"]["coords"]["tsne"]) == 120
    assert results["clusters"]["color_by"] == "template"
    assert {"length", "template"} <= set(results["properties"])
    assert results["sts"]["n"] == 4


def test_same_seed_same_results(vae, data):
    a = run_probes(vae, data, ["traversal", "clusters"], methods=["pca"], seed=3)
    b = run_probes(vae, data, ["traversal", "clusters"], methods=["pca"], seed=3)
    assert a["traversal"] == b["traversal"]
    assert a["clusters"]["coords"] == b["clusters"]["coords"]


def test_report_folder(report, results):
    folder = report.parent
    names = set(os.listdir(folder))
    assert {"report.html", "report.json"} <= names
    for m in ("pca", "tsne", "umap"):
        assert {f"clusters_{m}.png", f"clusters_{m}.html"} <= names
        assert (folder / f"clusters_{m}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = json.loads((folder / "report.json").read_text())
    assert back["sts"]["n"] == 4
    assert back["disentanglement"]["scores"].keys() == results["disentanglement"]["scores"].keys()
    page = report.read_text()
    assert "<script src" not in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", ""
    )  # self-contained: nothing fetched from elsewhere
    for anchor in ("metrics", "training", "traversal", "interpolation", "arithmetic",
                   "disentanglement", "clusters", "properties", "sts"):  # fmt: skip
        assert f'id="{anchor}"' in page, anchor


def test_probe_selection_and_errors(vae, data):
    out = run_probes(vae, data, ["properties"])
    assert "properties" in out and "traversal" not in out and "reconstruction" not in out
    with pytest.raises(ConfigError, match="unknown probe 'nope'"):
        run_probes(vae, data, ["nope"])
    with pytest.raises(ConfigError, match="needs a file of sentence pairs"):
        run_probes(vae, data, ["sts"])
    with pytest.raises(ConfigError, match="cannot colour by 'colour'"):
        run_probes(vae, data, ["clusters"], color_by="colour")
    with pytest.raises(ConfigError, match="at least 10 sentences"):
        run_probes(vae, data.subset(range(5)), ["properties"])


def test_find_history_in_model_folder_or_run_folder(tmp_path):
    (tmp_path / "best").mkdir()
    assert find_history(tmp_path / "best") is None
    (tmp_path / "history.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    assert [r["epoch"] for r in find_history(tmp_path / "best")] == [1, 2]


def _browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(browser, tmp_path, *args):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-extensions", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _browser()
    if browser is None:
        if os.environ.get("LMVAE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (make test installs it with apt-get)")
        pytest.skip("chromium is not installed")
    dom = _headless(browser, tmp_path, "--dump-dom", report.as_uri()).stdout
    rendered = dom.split('data-figures-rendered="', 1)[1].split('"', 1)[0]
    total = dom.split('data-figures-total="', 1)[1].split('"', 1)[0]
    # 4 PNGs (KL per dim, training, disentanglement, properties) + 3 interactive maps
    assert int(total) == 7 and rendered == total, (rendered, total)
    shot = tmp_path / "shot.png"
    _headless(browser, tmp_path, f"--screenshot={shot}", "--window-size=1100,2400",
              report.as_uri())  # fmt: skip
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(shot)[..., :3].reshape(-1, 3)
    colours = np.unique((pixels * 255).astype(np.uint8), axis=0)
    assert len(colours) > 50  # a page of text, charts and coloured points, not a blank canvas


def test_conditioned_model_gets_its_labels_and_categories(make_vae, data):
    from lmvae.demo.corpus import ROLE_LABELS

    templates = sorted(set(data.labels["template"]))
    vae = make_vae(
        "bert", "gpt2", latent_size=4,
        annotations={"labels": list(ROLE_LABELS), "encoder": True, "decoder": True},
        prior_kind="mixture", prior_categories=templates, prior_field="template",
    )  # fmt: skip
    out = run_probes(vae, data, ["reconstruction", "traversal", "properties"], decode_sentences=8)
    assert out["reconstruction"]["kl"] > 0 and len(out["traversal"]["rows"]) == 2 * 4 * 7
    # The probes saw the labelled posterior of each sentence.
    mu, logvar = vae.posterior(data.texts, word_labels=data.roles)
    assert out["latent_usage"]["kl"] == pytest.approx(latent_usage(mu, logvar)["kl"], rel=1e-6)
    unlabelled = load_probe_data("demo").subset(range(120))
    unlabelled.roles = None
    with pytest.raises(ConfigError, match="conditioned on word labels"):
        run_probes(vae, unlabelled, ["properties"])
    no_category = load_probe_data("demo").subset(range(120))
    no_category.labels = {}
    with pytest.raises(ConfigError, match="mixture prior over 'template'"):
        run_probes(vae, no_category, ["properties"])
