"""lmvae.feature_store: encoder features on disk, keyed by the encoder's settings and the text,
written atomically, bounded, shared by processes, and training exactly as the in-memory cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from support import CORPUS

from lmvae.feature_store import FeatureStore, feature_settings
from lmvae.train_config import TrainConfig
from lmvae.training import train

SETTINGS = {"encoder": "e", "layers": [0], "pooling": "mean", "shape": [1, 4]}
HELD_OUT = CORPUS[30:34]


class Encoder:
    """encode(texts, labels) for FeatureStore.fetch, recording what it was asked for."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, texts, labels):
        self.calls.append(list(texts))
        return torch.stack([torch.full((1, 4), float(len(t))) + torch.rand(1, 4) for t in texts])

    @property
    def computed(self):
        return [t for call in self.calls for t in call]


def _store(root, max_bytes=2**30, settings=SETTINGS, **kw):
    return FeatureStore(root, settings, max_bytes, **kw)


def test_rows_are_computed_once_and_read_back_by_a_later_store(tmp_path):
    store, encode = _store(tmp_path), Encoder()
    first = store.fetch(["a cat", "a dog"], None, encode)
    again = store.fetch(["a dog", "a bird", "a cat"], None, encode)
    assert encode.calls == [["a cat", "a dog"], ["a bird"]]
    assert torch.equal(again[0], first[1]) and torch.equal(again[2], first[0])
    assert (store.hits, store.computed) == (2, 3)
    assert not list(store.dir.glob("shard-*"))  # gathered until a flush
    store.flush()
    [shard] = store.dir.glob("shard-*.safetensors")
    assert (store.dir / "settings.json").is_file()

    later, encode2 = _store(tmp_path), Encoder()  # another run
    rows = later.fetch(["a bird", "a cat", "a dog"], None, encode2)
    assert encode2.calls == [] and later.hits == 3 and len(later) == 3
    assert torch.equal(rows[0], again[1]) and torch.equal(rows[1], first[0])


def test_word_labels_are_part_of_the_key(tmp_path):
    store, encode = _store(tmp_path), Encoder()
    store.fetch(["a cat"], [["DET", "NOUN"]], encode)
    store.fetch(["a cat"], [["DET", "VERB"]], encode)
    store.fetch(["a cat"], [["DET", "NOUN"]], encode)
    assert encode.computed == ["a cat", "a cat"]


def test_other_encoder_settings_miss(tmp_path):
    store, encode = _store(tmp_path), Encoder()
    store.fetch(["a cat"], None, encode)
    store.flush()
    for change in ({"pooling": "cls"}, {"layers": [1]}, {"encoder": "other"}):
        other = _store(tmp_path, settings={**SETTINGS, **change})
        assert other.dir != store.dir
        other.fetch(["a cat"], None, encode)
        assert other.computed == 1
    assert len(encode.computed) == 4


def test_the_settings_name_pooling_layers_and_the_encoder_weights(make_vae):
    mean = feature_settings(make_vae(encoder_layer=0), torch.device("cpu"), "no")
    cls = feature_settings(make_vae(encoder_pooling="cls"), torch.device("cpu"), "no")
    top = feature_settings(make_vae(encoder_layer=-1), torch.device("cpu"), "no")
    t5 = feature_settings(make_vae("t5", encoder_layer=0), torch.device("cpu"), "no")
    assert mean["pooling"] == "mean" and cls["pooling"] == "cls" and mean["layers"] == [0]
    assert top["layers"] == [2] and mean["weights"] and mean["encoder"] is None
    assert t5["weights"] != mean["weights"] and mean["lmvae"] and mean["dtype"] == "torch.float32"
    assert len({str(sorted(s.items())) for s in (mean, cls, top, t5)}) == 4


def test_leftover_temporary_and_broken_shards_are_ignored(tmp_path):
    store, encode = _store(tmp_path), Encoder()
    store.fetch(["a cat"], None, encode)
    store.flush()
    (store.dir / ".tmp-shard-1-2-3.safetensors").write_bytes(b"half a shard")
    (store.dir / "shard-0-0-broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")
    later = _store(tmp_path)
    later.fetch(["a cat", "a dog"], None, encode)
    assert later.hits == 1 and encode.computed == ["a cat", "a dog"]
    old = store.dir / ".tmp-shard-old.safetensors"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))  # left by a writer killed long ago: removed when a store opens
    _store(tmp_path)
    assert not old.exists() and (store.dir / ".tmp-shard-1-2-3.safetensors").exists()


def test_a_shard_that_cannot_be_written_costs_reuse_not_the_run(tmp_path, monkeypatch):
    import lmvae.feature_store as feature_store

    def full(tensors, path):
        Path(path).write_bytes(b"part of a shard")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(feature_store, "save_file", full)
    store, encode = _store(tmp_path), Encoder()
    rows = store.fetch(["a cat"], None, encode)
    store.flush()
    assert rows.shape == (1, 1, 4) and not list(store.dir.glob("*shard*"))
    store.fetch(["a cat"], None, encode)
    assert encode.computed == ["a cat", "a cat"]  # computed again, never an error


def test_the_folder_stays_within_its_bound_oldest_shards_first(tmp_path):
    probe = _store(tmp_path / "probe", shard_rows=2)
    probe.fetch(["x0", "x1"], None, Encoder())
    shard_bytes = next(probe.dir.glob("shard-*")).stat().st_size
    store, encode = (
        _store(tmp_path / "c", max_bytes=int(2.5 * shard_bytes), shard_rows=2),
        Encoder(),
    )
    for i in range(5):  # five shards of two rows
        store.fetch([f"s{2 * i}", f"s{2 * i + 1}"], None, encode)
    shards = sorted(store.dir.glob("shard-*"))
    assert len(shards) == 2 and sum(p.stat().st_size for p in shards) <= 2.5 * shard_bytes
    store.fetch(["s9", "s8", "s0"], None, encode)  # the newest kept, the oldest gone
    assert encode.computed[10:] == ["s0"]


def test_a_store_sees_what_another_process_wrote(tmp_path):
    # Processes share nothing but the folder: a second store on it stands for another process
    # (a subprocess importing torch took minutes on the loaded test machine).
    reader, encode = _store(tmp_path), Encoder()
    assert len(reader) == 0
    writer = _store(tmp_path)
    writer.fetch(["a cat", "a dog"], None, lambda texts, _: torch.ones(len(texts), 1, 4))
    writer.flush()
    rows = reader.fetch(["a dog", "a cow"], None, encode)
    assert encode.computed == ["a cow"] and torch.equal(rows[0], torch.ones(1, 4))
    assert len(reader) == 2  # the writer's shard, indexed when the reader missed


def _config(tmp_path, **kw):
    base = dict(epochs=2, batch_size=4, lr=3e-3, free_bits=0.1, eval_decode_sentences=2)
    return TrainConfig(**{**base, "progress": False, **kw})


def _counted(vae):
    """The VAE, counting the sentences its frozen encoder runs on."""
    original, seen = vae.encoder.features, []

    def features(input_ids, *args, **kw):
        seen.append(len(input_ids))
        return original(input_ids, *args, **kw)

    vae.encoder.features = features
    return vae, seen


def test_training_with_the_disk_cache_is_bit_identical_and_a_second_run_encodes_nothing(
    make_vae, tmp_path
):
    train_texts = CORPUS[:22]

    def run(feature_cache_dir):
        vae, seen = _counted(make_vae("bert", "gpt2", encoder_layer=-1, decoder_max_length=10))
        config = _config(tmp_path, feature_cache_dir=feature_cache_dir)
        result = train(vae, train_texts, HELD_OUT, config)
        return vae.trainable_state_dict(), sum(seen), result

    memory, encoded, _ = run(None)
    cold, encoded_cold, _ = run(tmp_path / "features")
    warm, encoded_warm, result = run(tmp_path / "features")
    assert encoded == encoded_cold == 22 + 4 and encoded_warm == 0
    for k, v in memory.items():
        assert torch.equal(cold[k], v) and torch.equal(warm[k], v), k
    assert [r["encoder_passes"] for r in result.history] == [22, 22]  # fetched, from disk


def test_a_cache_folder_that_cannot_be_made_is_one_line(backbones, tmp_path, capsys):
    from lmvae.cli import main

    data, blocker = tmp_path / "corpus.txt", tmp_path / "file"
    data.write_text("\n".join(CORPUS))
    blocker.write_text("not a folder")
    argv = [
        "train",
        *("--encoder", str(backbones.encoder("bert")), "--decoder"),
        *(str(backbones.decoder("gpt2")), "--data", str(data), "--out", str(tmp_path / "run")),
        *("--epochs", "1", "--batch-size", "4", "--latent-size", "8", "--max-length", "10"),
        *("--injection", "prefix", "--encoder-layer", "0", "--threads", "1", "--no-progress"),
        *("--feature-cache", str(blocker / "sub")),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot use the feature cache" in err and "Traceback" not in err


@pytest.mark.parametrize("stream", [False, True])
def test_lmvae_train_feature_cache_is_reused_by_a_second_run(backbones, tmp_path, capsys, stream):
    from lmvae.cli import main

    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(CORPUS))

    def argv(out):
        return [
            "train",
            *("--encoder", str(backbones.encoder("bert")), "--decoder"),
            *(str(backbones.decoder("gpt2")), "--data", str(data), "--out", str(out)),
            *("--epochs", "2", "--batch-size", "4", "--latent-size", "8", "--max-length", "10"),
            *("--injection", "prefix", "--encoder-layer", "0", "--threads", "1"),
            *("--no-progress", "--feature-cache", str(tmp_path / "fc")),
            *(("--stream",) if stream else ()),
        ]

    assert main(argv(tmp_path / "a")) == 0
    first = capsys.readouterr().err
    assert main(argv(tmp_path / "b")) == 0
    second = capsys.readouterr().err
    assert " 0 sentences read" in first and " 0 computed" in second, (first, second)
