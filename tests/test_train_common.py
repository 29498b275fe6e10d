"""The trainers' shared run folder, time budget and weight average: resumable, never left
half-written."""
from __future__ import annotations

import json

import pytest
import torch

from train.common import Budget, RunDir, WeightAverage


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


def test_the_weight_average_follows_the_model_at_its_decay():
    model = torch.nn.Linear(3, 2)
    avg = WeightAverage(model, decay=0.75)
    start = model.weight.detach().clone()
    assert not avg.module.weight.requires_grad and not avg.module.training
    with torch.no_grad():
        model.weight.add_(4.0)
    avg.update(model)
    torch.testing.assert_close(avg.module.weight, start + 1.0)  # 0.75 * w + 0.25 * (w + 4)
    avg.update(model)
    torch.testing.assert_close(avg.module.weight, start + 1.75)
    # the model itself is untouched and not tied to the copy
    torch.testing.assert_close(model.weight, start + 4.0)


def test_the_warm_up_gives_the_average_a_short_memory_early():
    model = torch.nn.Linear(2, 2, bias=False)
    avg = WeightAverage(model, decay=0.999, warmup=True)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update(model, step=0)  # d = min(0.999, 1/10): mostly the new weights
    torch.testing.assert_close(avg.module.weight, start + 0.9)
    late = WeightAverage(model, decay=0.999, warmup=True)
    with torch.no_grad():
        model.weight.add_(1.0)
    late.update(model, step=10**6)  # d = 0.999
    torch.testing.assert_close(late.module.weight, start + 1.0 + 0.001)
    with pytest.raises(ValueError):
        WeightAverage(model, decay=1.0)


def test_the_weight_average_resumes_from_either_format():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    avg = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)
    avg.update(model)
    again = WeightAverage(model, decay=0.9)
    again.load_state_dict(avg.state_dict())
    for a, b in zip(again.module.parameters(), avg.module.parameters()):
        torch.testing.assert_close(a, b)
    # run folders written by the VAE trainer when it used torch's AveragedModel
    old = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    old.update_parameters(model)
    again.load_state_dict(old.state_dict())
    for a, b in zip(again.module.parameters(), model.parameters()):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ devices
TRAINERS = {  # a tiny run of each trainer that has a --device flag
    "vae": ["--dataset", "mnist", "--tiny", "--epochs", "{epochs}"],
    "faces": ["dcgan", "--tiny", "--epochs", "{epochs}"],
    "wavenet": ["--data", "speech", "--tiny", "--steps", "{steps}"],
    "charlm": ["--corpus", "shakespeare", "--tiny", "--steps", "{steps}"],
}


def run_trainer(name: str, tmp_path, device: str, epochs: int = 1):
    import importlib

    args = [a.format(epochs=epochs, steps=10 * epochs) for a in TRAINERS[name]]
    importlib.import_module(f"train.{name}").main(
        args + ["--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"),
                "--device", device])
    return RunDir(tmp_path / "run").records()


def test_auto_picks_the_cpu_without_a_gpu():
    from train.common import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_asking_for_a_gpu_where_there_is_none_is_a_clear_error(name, tmp_path):
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        run_trainer(name, tmp_path, "cuda")
    assert not (tmp_path / "run" / "log.jsonl").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_run_started_on_the_gpu_resumes_on_the_cpu(name, tmp_path):
    """The GPU path end to end (data, model, autocast and random numbers on the device), and the
    run folder moving between machines: last.pt is read back to the CPU and resumed there."""
    if name == "wavenet":
        from train.data import data_root

        if not (data_root() / "audio" / "ljspeech_16k").is_dir():
            pytest.skip("the project's audio data is not here")
    first = run_trainer(name, tmp_path, "cuda", epochs=1)
    # the first evaluation always exports, so the checkpoint says where it was trained
    assert json.loads((tmp_path / "out" / "config.json").read_text())["training"]["device"] == "cuda"
    both = run_trainer(name, tmp_path, "cpu", epochs=2)
    assert len(both) > len(first) >= 1 and both[:len(first)] == first
