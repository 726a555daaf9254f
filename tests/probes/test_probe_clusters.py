"""lmvae.probes.clusters: projections and label separation in latent space."""

from __future__ import annotations

import numpy as np
import pytest

from lmvae.errors import ConfigError
from lmvae.probes.clusters import cluster_scores, fit_projection, nearest, project


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 8)) * 10
    labels = np.repeat(["a", "b", "c"], 40)
    codes = centres[np.repeat(np.arange(3), 40)] + rng.standard_normal((120, 8)) * 0.3
    return codes, labels


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_projection_is_2d_deterministic_and_keeps_blobs_apart(blobs, method):
    codes, labels = blobs
    xy = project(codes, method, seed=3)
    assert xy.shape == (120, 2) and np.isfinite(xy).all()
    np.testing.assert_allclose(project(codes, method, seed=3), xy)
    # Well-separated blobs stay separated in 2-D: a 1-NN vote in the map recovers the label.
    scores = cluster_scores(xy, labels, k=1)
    assert scores["knn_accuracy"] > 0.95


def test_pca_of_a_line_puts_it_on_the_first_axis():
    t = np.linspace(-1, 1, 30)
    codes = np.stack([t, 2 * t, -t], axis=1)
    xy = project(codes, "pca")
    assert np.abs(np.corrcoef(xy[:, 0], t)[0, 1]) == pytest.approx(1.0)
    np.testing.assert_allclose(xy[:, 1], 0.0, atol=1e-9)


def test_cluster_scores_high_for_blobs_and_near_chance_for_random_labels(blobs):
    codes, labels = blobs
    good = cluster_scores(codes, labels)
    assert good["silhouette"] > 0.8
    assert good["knn_accuracy"] == pytest.approx(1.0)
    assert good["majority_baseline"] == pytest.approx(1 / 3)
    assert good["n_classes"] == 3 and good["n"] == 120
    shuffled = np.random.default_rng(1).permutation(labels)
    bad = cluster_scores(codes, shuffled)
    assert abs(bad["silhouette"]) < 0.1
    assert bad["knn_accuracy"] < 0.6


def test_singleton_labels_are_left_out_of_the_scores(blobs):
    codes, labels = blobs
    labels = labels.copy()
    labels[0] = "lonely"
    scores = cluster_scores(codes, labels)
    assert scores["n_classes"] == 4 and scores["knn_accuracy"] > 0.95


@pytest.mark.parametrize(
    "codes, kw, fragment",
    [
        (np.zeros((2, 3)), {}, "N >= 3"),
        (np.full((5, 3), np.nan), {}, "NaN"),
        (np.zeros((5, 3)), {"method": "lda"}, "unknown projection"),
    ],
)
def test_project_errors(codes, kw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        project(codes, **kw)


def test_cluster_scores_errors(blobs):
    codes, labels = blobs
    with pytest.raises(ConfigError, match="labels for"):
        cluster_scores(codes, labels[:10])
    with pytest.raises(ConfigError, match="two different labels"):
        cluster_scores(codes, ["x"] * len(codes))


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_new_codes_fall_near_their_blob(blobs, method):
    codes, labels = blobs
    projection = fit_projection(codes, method, seed=3)
    np.testing.assert_allclose(projection.coords, project(codes, method, seed=3))
    placed = projection.place(codes[[0, 40, 80]] + 0.01)
    assert placed.shape == (3, 2)
    for point, blob in zip(placed, ["a", "b", "c"], strict=True):
        centre = projection.coords[labels == blob].mean(0)
        others = [projection.coords[labels == o].mean(0) for o in "abc" if o != blob]
        assert all(np.linalg.norm(point - centre) < np.linalg.norm(point - o) for o in others)
    with pytest.raises(ConfigError, match="codes to place"):
        projection.place(np.zeros((1, 3)))


def test_nearest_known_answer():
    codes = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    index, dist = nearest(codes, np.array([[0.9, 0.0], [4.0, 4.0]]), k=2)
    assert index.tolist() == [[1, 0], [2, 1]]
    np.testing.assert_allclose(dist[0], [0.1, 0.9])
    assert nearest(codes, codes[:1], k=10)[0].shape == (1, 3)
    with pytest.raises(ConfigError):
        nearest(codes, np.zeros((1, 3)))
