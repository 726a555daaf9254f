"""Fault injection for tests/test_training_faults.py, run as one subprocess (torch is imported
once; each fault runs in a forked child, so what it breaks dies with it).

    python tests/fault_helper.py WORKDIR    # prints one JSON report on its last line

Faults: kill -9 at every file-system step of an epoch's checkpoint writes (an audit hook kills
the child before the k-th operation under the run folder), kill -9 after random delays, the
same killed end to end (in the first checkpoint write; between the two renames of a swap) and
resumed; a full disk (writes under the run folder fail with ENOSPC once a byte budget is
spent); a read-only run folder (every write under it fails with EROFS; chmod too, for a user
that is not root).  After each, the run folder must resume: its checkpoints load, and history
has each finished epoch once.  The report lists what went wrong, per fault.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from support import CORPUS, BackboneFactory  # noqa: E402
from torch.optim.lr_scheduler import LambdaLR  # noqa: E402

import lmvae.checkpoint  # noqa: E402
from lmvae import LanguageVAE, TrainConfig, train  # noqa: E402
from lmvae.checkpoint import load_config, load_trainable_weights  # noqa: E402
from lmvae.errors import ConfigError  # noqa: E402
from lmvae.training.runfolder import check_run_folder  # noqa: E402
from lmvae.training.state import (  # noqa: E402
    TRAINER_STATE,
    RunState,
    record_epoch,
    recover_run,
    restore,
)

torch.set_num_threads(1)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
FS_EVENTS = ("open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree")
LEFTOVERS = (".best.tmp", ".last.tmp", ".best.old", ".last.old")


def _path_of(args) -> str:
    try:
        return os.fsdecode(os.fspath(args[0]))
    except (TypeError, IndexError):  # a file descriptor
        return ""


def _is_write(event: str, args) -> bool:
    if event != "open":
        return True
    mode, flags = args[1], args[2]
    if mode is not None:
        return any(c in mode for c in "wax+")
    return bool(flags & WRITE_FLAGS)


def kill_at(under: Path, k: int) -> None:
    """SIGKILL this process just before its k-th file-system operation under ``under``."""
    seen = [0]
    prefix = str(under)

    def hook(event, args):
        if event in FS_EVENTS and _path_of(args).startswith(prefix):
            seen[0] += 1
            if seen[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


def kill_before(under: Path, event_name: str, fragment: str) -> None:
    """SIGKILL before the first ``event_name`` whose path under ``under`` holds ``fragment``."""
    prefix = str(under)

    def hook(event, args):
        if event != event_name:
            return
        path = _path_of(args)
        if path.startswith(prefix) and fragment in path:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


def read_only(under: Path) -> None:
    """Every write under ``under`` fails as on a read-only mount (root ignores chmod)."""
    prefix = str(under)

    def hook(event, args):
        if event in FS_EVENTS and _path_of(args).startswith(prefix) and _is_write(event, args):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), _path_of(args))

    sys.addaudithook(hook)


def full_disk(under: Path, budget: int) -> list[int]:
    """Writes to files under ``under`` fail with ENOSPC once ``budget`` bytes are written
    (the bytes that fit are written first, as a real full disk does).  Returns the counter of
    bytes written; safetensors' own writer is routed through Python's files for this."""
    written = [0]
    real_open = io.open
    prefix = str(under)

    class Limited:
        def __init__(self, f, name):
            self._f, self._name = f, name

        def write(self, data):
            room = budget - written[0]
            if len(data) > room:
                self._f.write(data[: max(room, 0)])
                written[0] = budget
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._name)
            written[0] += len(data)
            return self._f.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def __getattr__(self, name):
            return getattr(self._f, name)

    def limited_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        path = _path_of([file])
        if path.startswith(prefix) and any(c in mode for c in "wax+"):
            return Limited(f, path)
        return f

    def save_file(tensors, filename, metadata=None):
        from safetensors.torch import save

        with limited_open(filename, "wb") as f:
            f.write(save(tensors, metadata))

    builtins.open = io.open = limited_open
    lmvae.checkpoint.save_file = save_file
    return written


def in_child(action) -> tuple[str, object]:
    """Run ``action()`` in a forked child; ('killed' | 'exit', its JSON-able return value)."""
    result_file = WORK / f"child-{time.monotonic_ns()}.json"
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            value = action()
        except BaseException as e:  # reported to the parent, which judges it
            value, code = {"error": type(e).__name__, "message": str(e)}, 1
        with open(result_file, "w") as f:
            json.dump(value, f)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    value = json.loads(result_file.read_text()) if result_file.is_file() else None
    if os.WIFSIGNALED(status):
        return "killed", value
    return "exit", value


# -- the model, an optimizer with state, and two sets of weights ----------------------------------
WORK = Path(sys.argv[1])
BACKBONES = BackboneFactory(WORK / "backbones")
ENCODER, DECODER = str(BACKBONES.encoder("bert")), str(BACKBONES.decoder("gpt2"))
OPTS = {"decoder_injection": "prefix", "encoder_layer": 0, "decoder_max_length": 10}


def new_model() -> LanguageVAE:
    return LanguageVAE.from_backbones(ENCODER, DECODER, 8, **OPTS)


MODEL = new_model()
PARAMS = [p for p in MODEL.parameters() if p.requires_grad]
OPTIMIZER = torch.optim.AdamW(PARAMS, lr=1e-3)
for p in PARAMS:
    p.grad = torch.ones_like(p)
OPTIMIZER.step()
SCHEDULER = LambdaLR(OPTIMIZER, lambda step: 1.0)


def weights(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) for k, v in MODEL.trainable_state_dict().items()}


WEIGHTS = {1: weights(1), 2: weights(2)}


def set_weights(epoch: int) -> None:
    MODEL.load_state_dict(WEIGHTS[min(epoch, 2)], strict=False)


def write_epoch(out: Path, epoch: int) -> None:
    """What the trainer writes at the end of ``epoch``: history, best, last."""
    out.mkdir(parents=True, exist_ok=True)
    set_weights(epoch)
    run = RunState(step=10 * epoch)
    run.result.history = [{"epoch": e, "loss": float(e)} for e in range(1, epoch + 1)]
    record_epoch(MODEL, out, run, run.result.history[-1], True, {}, SCHEDULER, OPTIMIZER)


def check_resumable(out: Path, newest: int) -> list[str]:
    """What is wrong with ``out`` as a run to resume (empty: nothing), once repaired as a
    resume repairs it; checkpoints must hold a finished epoch <= ``newest`` and its weights."""
    problems = []
    try:
        check_run_folder(out, resume=True, overwrite=False)
    except ConfigError as e:
        return [f"not resumable: {e}"]
    recover_run(out)
    left = [n for n in os.listdir(out) if n in LEFTOVERS or n.endswith(".tmp")]
    if left:
        problems.append(f"left after recovery: {left}")
    for name in ("best", "last"):
        folder = out / name
        try:
            load_config(folder)
            load_trainable_weights(MODEL, folder)
            epoch = json.loads((folder / TRAINER_STATE).read_text())["epoch"]
        except Exception as e:
            problems.append(f"{name}/ does not load: {type(e).__name__}: {e}")
            continue
        if not 1 <= epoch <= newest:
            problems.append(f"{name}/ holds epoch {epoch}")
            continue
        for k, v in WEIGHTS[min(epoch, 2)].items():
            if not torch.equal(MODEL.trainable_state_dict()[k], v):
                problems.append(f"{name}/ says epoch {epoch} but holds other weights ({k})")
                break
    try:
        run = restore(MODEL, out, OPTIMIZER, SCHEDULER)
        epochs = [r["epoch"] for r in run.result.history]
        if epochs != list(range(1, run.first_epoch)):
            problems.append(
                f"history after resume: epochs {epochs}, last/ at {run.first_epoch - 1}"
            )
    except Exception as e:
        problems.append(f"restore failed: {type(e).__name__}: {e}")
    return problems


def fresh_copy(base: Path, name: str) -> Path:
    out = WORK / name
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)
    return out


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


REPORT: dict[str, object] = {}
BASE = WORK / "base"
write_epoch(BASE, 1)


# -- kill -9 before every file-system step of epoch 2's writes -----------------------------------
def kill_every_step() -> None:
    problems, points = [], 0
    for k in range(1, 400):
        out = fresh_copy(BASE, "kill")

        def action(out=out, k=k):
            kill_at(out, k)
            write_epoch(out, 2)

        how, _ = in_child(action)
        problems += [f"kill at step {k}: {p}" for p in check_resumable(out, 2)]
        if how != "killed":
            break
        points += 1
    REPORT["kill_steps"] = {"points": points, "problems": problems}


# -- kill -9 after random delays, while epochs are written one after another ---------------------
def kill_at_random(times: int = 12) -> None:
    started = time.perf_counter()
    write_epoch(fresh_copy(BASE, "timing"), 2)
    one_epoch = time.perf_counter() - started
    rng = random.Random(16)
    problems = []
    for i in range(times):
        out = fresh_copy(BASE, "random")
        delay = rng.uniform(0, 2.5 * one_epoch)
        pid = os.fork()
        if pid == 0:
            for epoch in range(2, 1000):
                write_epoch(out, epoch)
            os._exit(0)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        problems += [f"kill {i} after {delay:.3f} s: {p}" for p in check_resumable(out, 1000)]
    REPORT["kill_random"] = {"kills": times, "epoch_seconds": one_epoch, "problems": problems}


# -- a full disk -----------------------------------------------------------------------------------
def full_disk_writes() -> None:
    def needed():
        counter = full_disk(out, 1 << 40)
        write_epoch(out, 2)
        return counter[0]

    out = fresh_copy(BASE, "disk")
    _, total = in_child(needed)
    problems, messages = [], set()
    for i in range(10):
        budget = total * i // 10
        out = fresh_copy(BASE, "disk")

        def action(out=out, budget=budget):
            full_disk(out, budget)
            write_epoch(out, 2)

        how, value = in_child(action)
        if how != "exit" or not isinstance(value, dict):
            problems.append(f"budget {budget}: the write did not fail cleanly ({how}, {value})")
            continue
        if value.get("error") != "CheckpointError" or "No space left" not in value["message"]:
            problems.append(f"budget {budget}: {value}")
        messages.add(value.get("message", "").split(":")[0])
        left = [n for n in os.listdir(out) if n in LEFTOVERS or n.endswith(".tmp")]
        if left:
            problems.append(f"budget {budget}: a failed save left {left}")
        problems += [f"budget {budget}: {p}" for p in check_resumable(out, 2)]
    REPORT["full_disk"] = {"bytes": total, "problems": problems, "messages": sorted(messages)}


def full_disk_cli() -> None:
    """lmvae train on a full disk: exit 2 and one error line."""
    data = WORK / "corpus.txt"
    data.write_text("\n".join(CORPUS) + "\n")
    out = WORK / "disk-cli"

    def action():
        from lmvae.cli import main

        full_disk(out, 0)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(
                ["train", "--encoder", ENCODER, "--decoder", DECODER, "--data", str(data)]
                + ["--out", str(out), "--epochs", "1", "--latent-size", "8", "--no-progress"]
            )
        return {"code": code, "stderr": err.getvalue()}

    _, value = in_child(action)
    REPORT["full_disk_cli"] = value


# -- a read-only run folder ----------------------------------------------------------------------
def read_only_folder() -> None:
    out = fresh_copy(BASE, "readonly")
    before = snapshot(out)
    data = WORK / "corpus.txt"

    def cli():
        from lmvae.cli import main

        read_only(out)
        for path in [out, *out.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(
                ["train", "--encoder", ENCODER, "--decoder", DECODER, "--data", str(data)]
                + ["--out", str(out), "--epochs", "2", "--latent-size", "8", "--resume"]
            )
        return {"code": code, "stderr": err.getvalue()}

    def api():
        read_only(out)
        try:
            train(new_model(), CORPUS[:8], (), TrainConfig(epochs=2), out, resume=True)
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e), "oserror": isinstance(e, OSError)}
        return {"error": None}

    REPORT["read_only_cli"] = in_child(cli)[1]
    REPORT["read_only_api"] = in_child(api)[1]
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    REPORT["read_only_unchanged"] = snapshot(out) == before
    REPORT["read_only_problems"] = check_resumable(out, 1)


# -- killed inside real training runs, then resumed ----------------------------------------------
def killed_runs() -> None:
    config = TrainConfig(epochs=2, batch_size=8, eval_fraction=0, progress=False)
    texts = CORPUS[:16]

    def run(out, resume=False, overwrite=True):
        notes = []
        result = train(new_model(), texts, (), config, out, notes.append, resume, overwrite)
        lines = (out / "history.jsonl").read_text().splitlines()
        history = [json.loads(line)["epoch"] for line in lines]
        return {"epochs": [r["epoch"] for r in result.history], "file": history, "log": notes}

    # Between the two renames of epoch 2's swap of last/: last/ is gone, .last.old complete.
    out = WORK / "swap"

    def killed_in_second_swap():  # epoch 1 renames .last.tmp once: kill before the second
        seen = []

        def hook(event, args):
            if event == "os.rename" and _path_of(args).endswith(".last.tmp"):
                seen.append(1)
                if len(seen) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)

        sys.addaudithook(hook)
        return run(out)

    how, _ = in_child(killed_in_second_swap)
    state = {"killed": how == "killed", "last": (out / "last").exists()}
    state["old"] = (out / ".last.old" / TRAINER_STATE).is_file()
    state["resumed"] = in_child(lambda: run(out, resume=True, overwrite=False))[1]
    REPORT["swap_kill"] = state

    # In the first checkpoint write: history.jsonl lists epoch 1, there is no last/.
    out = WORK / "first"

    def killed_in_first_write():
        kill_before(out, "open", ".last.tmp")
        return run(out)

    how, value = in_child(killed_in_first_write)
    state = {"killed": how == "killed", "value": value}
    state["resumed"] = in_child(lambda: run(out, resume=True, overwrite=False))[1]
    state["overwritten"] = in_child(lambda: run(out, resume=False, overwrite=True))[1]
    REPORT["first_write_kill"] = state


FAULTS = (kill_every_step, kill_at_random, full_disk_writes, full_disk_cli, read_only_folder)
for fault in (*FAULTS, killed_runs):
    if sys.argv[2:] and fault.__name__ not in sys.argv[2:]:  # a chosen few, when debugging
        continue
    started = time.perf_counter()
    fault()
    REPORT.setdefault("seconds", {})[fault.__name__] = round(time.perf_counter() - started, 2)
print(json.dumps(REPORT))
