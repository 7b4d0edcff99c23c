"""The reliability promise: a training run killed at any moment resumes to the same result.

* A real ``urbanst fit`` process is SIGKILLed once its first ``last.ckpt`` exists and is resumed
  with ``--resume``; it must end with the test metrics and weights of an uninterrupted run.
* With validation (and so ``best.ckpt``) in the middle of epochs, a kill right after a mid-epoch
  save must resume exactly too (``last.ckpt`` is only written at epoch ends).
* A checkpoint is never half written: a failing or killed ``torch.save`` leaves the previous file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from urbanst.cli import main

# A small STID (dropout on, so the RNG matters) on a short protocol: 5 training batches per epoch.
TINY = ["--option", "embed_dim=16", "--option", "num_layers=1", "--batch-size", "128", "--horizon", "3",
        "--split", "40/10/50"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fit_argv(output: Path, data_dir: Path, epochs: int, *extra: str) -> list[str]:
    return ["fit", "--dataset", "synthetic_grid", "--model", "stid", *TINY, "--max-epochs", str(epochs),
            "--patience", "50", "--output", str(output), "--data-dir", str(data_dir), *extra]


def _urbanst_command() -> list[str]:
    script = Path(sys.executable).with_name("urbanst")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "urbanst.cli"]


def _mae(run: Path) -> float:
    return json.loads((run / "results.json").read_text())[0]["metrics"]["mae"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_sigkilled_fit_resumes_to_the_uninterrupted_result(tmp_path):
    epochs = 3
    killed, full = tmp_path / "killed", tmp_path / "full"
    last = killed / "checkpoints" / "last.ckpt"
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen([*_urbanst_command(), *_fit_argv(killed, tmp_path, epochs)], stdout=log, stderr=log,
                                env=ONE_THREAD)
        try:
            deadline = time.monotonic() + 240
            while not last.exists():
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint after 240 s"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "results.json").exists(), "the run finished before it could be killed"
    interrupted_at = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert interrupted_at < epochs - 1

    assert main(_fit_argv(killed, tmp_path, epochs, "--resume", str(last))) == 0
    assert main(_fit_argv(full, tmp_path, epochs)) == 0

    # Same test metrics and the very same weights as the run that was never interrupted.
    assert abs(_mae(killed) - _mae(full)) <= 1e-6, (_mae(killed), _mae(full))
    resumed_w, full_w = _weights(killed), _weights(full)
    assert resumed_w.keys() == full_w.keys()
    for key in full_w:
        torch.testing.assert_close(resumed_w[key], full_w[key], rtol=0, atol=1e-6)
    # The history logged before the kill is kept; the resumed part goes beside it.
    before = (killed / "logs" / "metrics.csv").read_text().splitlines()
    after = (killed / "logs" / "resume-1" / "metrics.csv").read_text().splitlines()
    assert len(before) > 1 and len(after) > 1
    assert max(int(row.split(",")[0]) for row in after[1:]) == epochs - 1


class _Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint file was renamed into place."""


def test_kill_after_a_mid_epoch_checkpoint_resumes_exactly(tmp_path, monkeypatch):
    """Validation after 3 of 5 batches writes best.ckpt mid-epoch; a run killed right after such a
    save (last.ckpt then holds the previous epoch end) must resume to the uninterrupted weights."""
    from urbanst.data.splits import SplitRule
    from urbanst.engine import train as engine_train
    from urbanst.engine.experiment import ExperimentConfig, prepare
    from urbanst.engine.runs import build_model

    prepared = prepare(ExperimentConfig(dataset="synthetic_grid", history=12, horizon=3, split=SplitRule(0.4, 0.1),
                                        data_dir=str(tmp_path)))
    assert len(prepared.train_windows) // 128 + 1 == 5  # validation after batch 3 of 5: mid-epoch only

    def run(output: Path, resume: str | None = None):
        torch.manual_seed(0)
        model = build_model("stid", prepared, embed_dim=16, num_layers=1)
        cfg = engine_train.TrainConfig(max_epochs=2, batch_size=128, patience=50, val_every=3, output=output,
                                       resume=resume, progress=False)
        result = engine_train.train(model, prepared.train_windows, prepared.val_windows, cfg, prepared.task)
        return model, result

    full_model, full_result = run(tmp_path / "full")

    saves = []
    save = engine_train.AtomicCheckpointIO.save_checkpoint

    def save_then_die(self, checkpoint, path, storage_options=None):
        save(self, checkpoint, path, storage_options)
        saves.append((Path(path).name, checkpoint["epoch"], checkpoint["global_step"]))
        if Path(path).name == "best.ckpt" and checkpoint["epoch"] == 1:  # mid-epoch, after last.ckpt of epoch 0
            raise _Killed

    monkeypatch.setattr(engine_train.AtomicCheckpointIO, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        run(tmp_path / "killed")
    monkeypatch.undo()
    assert ("last.ckpt", 0, 5) in saves and saves[-1] == ("best.ckpt", 1, 8), saves

    resumed_model, resumed_result = run(tmp_path / "killed", resume=str(tmp_path / "killed/checkpoints/last.ckpt"))
    assert resumed_result.best_score == full_result.best_score
    for (key, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), key


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_fails(tmp_path, monkeypatch):
    from urbanst.engine.train import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(4.0)}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the write fails
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    old = io.load_checkpoint(path)
    assert old["step"] == 1 and torch.equal(old["w"], torch.arange(4.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_killed_while_saving_leaves_the_old_checkpoint(tmp_path):
    from urbanst.engine.train import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    pid = os.fork()
    if pid == 0:  # child: start writing a checkpoint and die with SIGKILL in the middle of it
        try:
            def dying_save(obj, f, *args, **kwargs):
                f.write(b"PK\x03\x04 half a checkpoint")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            torch.save = dying_save
            io.save_checkpoint({"step": 2}, path)
        finally:
            os._exit(1)  # only reached if the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert io.load_checkpoint(path)["step"] == 1
