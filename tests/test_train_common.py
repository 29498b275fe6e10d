"""The trainers' shared run folder and time budget: resumable, never left half-written."""
from __future__ import annotations

import pytest
import torch

from train.common import Budget, RunDir


def test_a_run_folder_saves_logs_and_resumes(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.resume() is None and run.records() == []
    run.save(model={"w": torch.ones(2)}, step=3)
    run.log({"step": 3, "val": 1.5})
    run.log({"step": 6, "val": 1.25})
    state = RunDir(tmp_path / "run").resume()
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    assert [r["step"] for r in run.records()] == [3, 6]


def test_a_save_that_fails_keeps_the_previous_state(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.save(step=1)

    def broken(obj, path):  # a kill or a full disk in the middle of writing
        with open(path, "wb") as f:
            f.write(b"\x80half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        run.save(step=2)
    monkeypatch.undo()
    assert run.resume()["step"] == 1


def test_budget():
    assert not Budget(0).spent()             # no budget: never spent
    assert not Budget(60).spent()
    assert Budget(1e-9).spent()


def test_a_budget_stops_a_training_run_that_then_resumes(tmp_path, capsys):
    from train import vae as train_vae

    args = ["--dataset", "mnist", "--tiny", "--epochs", "2", "--out", str(tmp_path / "out"),
            "--run-dir", str(tmp_path / "run")]
    train_vae.main(args + ["--minutes", "1e-9"])
    assert "rerun to resume" in capsys.readouterr().out
    assert [r["epoch"] for r in RunDir(tmp_path / "run").records()] == [1]
    train_vae.main(args)
    assert [r["epoch"] for r in RunDir(tmp_path / "run").records()] == [1, 2]
