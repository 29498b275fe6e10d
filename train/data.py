"""Readers for the training data in ../shared/data (never copied into the repository)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from models.digits import CLASS_NAMES, SETS, read_set  # noqa: F401 (CLASS_NAMES for trainers)

REPO = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """``$GDL_DATA`` or the project's ``../shared/data``."""
    return Path(os.environ.get("GDL_DATA") or REPO.parent / "shared" / "data")


def load_digits(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of MNIST or Fashion-MNIST, train or test."""
    folder = data_root() / "digits" / SETS[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: the training data lives in the project's "
                                "../shared/data (set GDL_DATA to point elsewhere)")
    return read_set(folder, split)


# ---------------------------------------------------------------- text corpora

TEXT_FILES = {"shakespeare": "tinyshakespeare.txt", "nietzsche": "nietzsche.txt",
              "imdb": "imdb_aclImdb_50k.jsonl.gz"}


class Corpus:
    """A character corpus as uint8 indices into ``chars``, split into train and held-out text."""

    def __init__(self, name: str, title: str, description: str, chars: str,
                 train: np.ndarray, val: np.ndarray):
        self.name, self.title, self.description = name, title, description
        self.chars, self.train, self.val = chars, train, val

    def unigram_entropy(self) -> float:
        counts = np.bincount(self.train, minlength=len(self.chars)).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())


def _encode(text: str, chars: str) -> np.ndarray:
    table = np.zeros(0x110000 if max(map(ord, chars)) > 255 else 256, dtype=np.uint8)
    for i, ch in enumerate(chars):
        table[ord(ch)] = i
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return table[codes]


def ascii_text(text: str) -> str:
    """Fold typographic characters and accents to ASCII, drop what has no ASCII form; newlines
    and printable ASCII stay."""
    import unicodedata

    from models.charlm import FOLD

    table = {}
    for ch in set(text):
        if ch == "\n" or " " <= ch <= "~":
            continue
        alt = ch.translate(FOLD)
        if alt == ch:
            alt = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        table[ord(ch)] = "".join(c for c in alt if c == "\n" or " " <= c <= "~")
    return text.translate(table)


def load_corpus(name: str) -> Corpus:
    """tiny-shakespeare and Nietzsche: first 90% train, last 10% held out (as nanoGPT and the Keras
    example split them).  IMDB: the 25,000 training reviews train; 2,500 test reviews are held out;
    ``<br />`` removed, one review per line, folded to ASCII."""
    path = data_root() / "text" / TEXT_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the training data lives in the project's "
                                "../shared/data (set GDL_DATA to point elsewhere)")
    if name == "imdb":
        import json
        import re

        train_txt, val_txt = [], []
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                text = re.sub(r"(<br\s*/?>\s*)+", " ", r["text"]).replace("\n", " ").strip()
                if r["split"] == "train":
                    train_txt.append(text)
                elif len(val_txt) < 2500 and int(r["id"]) % 5 == 0:
                    val_txt.append(text)
        train_s = ascii_text("\n".join(train_txt) + "\n")
        val_s = ascii_text("\n".join(val_txt) + "\n")
        chars = "".join(sorted(set(train_s)))
        val_s = "".join(c for c in val_s if c in set(chars))
        desc = (f"the Large Movie Review Dataset (Maas et al., 2011): the {len(train_txt):,} "
                f"training reviews ({len(train_s):,} characters), `<br />` removed, one review per "
                f"line, folded to ASCII; {len(val_txt):,} test-split reviews held out.")
        return Corpus(name, "IMDB movie reviews", desc, chars, _encode(train_s, chars),
                      _encode(val_s, chars))
    text = path.read_text(encoding="utf-8")
    chars = "".join(sorted(set(text)))
    n = int(len(text) * 0.9)
    title = {"shakespeare": "tiny-shakespeare", "nietzsche": "Nietzsche"}[name]
    desc = {"shakespeare": "karpathy/char-rnn's tiny-shakespeare (1,115,394 characters, public "
                           "domain): first 90% for training, last 10% held out, as in nanoGPT.",
            "nietzsche": "the Nietzsche corpus of the classic Keras text-generation example "
                         "(600,893 characters, public domain): first 90% train, last 10% held out."}
    return Corpus(name, title, desc[name], chars, _encode(text[:n], chars), _encode(text[n:], chars))


# ---------------------------------------------------------------- faces

def load_celeba() -> dict:
    """The 6,000 aligned CelebA faces: ``images`` uint8 (N, 64, 64, 3), ``attrs`` int8 (N, 40) in
    {-1, +1}, ``attr_names``, ``identity``."""
    import io

    from PIL import Image

    path = data_root() / "faces" / "celeba6k_64_jpeg.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the training data lives in the project's "
                                "../shared/data (set GDL_DATA to point elsewhere)")
    d = np.load(path)
    data, offsets = d["jpeg_data"], d["offsets"]
    images = np.stack([np.asarray(Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes()))
                                  .convert("RGB")) for i in range(len(offsets) - 1)])
    return dict(images=images, attrs=d["attrs"], attr_names=[str(n) for n in d["attr_names"]],
                identity=d["identity"])


# ---------------------------------------------------------------- audio

AUDIO_SETS = {
    "speech": ("ljspeech_16k", "LJSpeech: 364 clips of one speaker (36.6 min), 16 kHz"),
    "piano": ("piano_16k", "21 piano pieces rendered from a Steinway D soundfont (26.4 min), 16 kHz"),
}


def held_out(name: str, items: list) -> list:
    """The held-out part of a set's items in order: every 20th speech clip (of the sorted file
    names); every 10th 10-second clip of the piano pieces."""
    every = {"speech": 20, "piano": 10}[name]
    return [x for i, x in enumerate(items) if i % every == every - 1]


class AudioSet:
    """Clips of mu-law codes (uint8), split into training and held-out clips."""

    def __init__(self, name: str, description: str, train: list, val: list, sample_rate: int):
        self.name, self.description, self.sample_rate = name, description, sample_rate
        self.train, self.val = train, val

    def seconds(self, split: str) -> float:
        return sum(len(c) for c in getattr(self, split)) / self.sample_rate


def load_audio(name: str, sample_rate: int = 16000, piece_clip_seconds: float = 10.0) -> AudioSet:
    """An audio set as mu-law codes, split by :func:`held_out`."""
    from scipy.signal import resample_poly

    from models.wavenet import mu_law_encode

    folder_name, description = AUDIO_SETS[name]
    folder = data_root() / "audio" / folder_name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: the training data lives in the project's "
                                "../shared/data (set GDL_DATA to point elsewhere)")

    def read(path: Path) -> np.ndarray:
        import soundfile as sf

        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if rate != sample_rate:
            g = np.gcd(rate, sample_rate)
            audio = resample_poly(audio, sample_rate // g, rate // g).astype(np.float32)
        return mu_law_encode(audio).astype(np.uint8)

    clips = []
    if name == "speech":
        clips = [read(path) for path in sorted(folder.glob("*.flac"))]
    else:
        step = int(piece_clip_seconds * sample_rate)
        for path in sorted(folder.glob("*.flac")):
            codes = read(path)
            clips += [codes[start:start + step] for start in range(0, len(codes), step)]
    val_ids = {id(c) for c in held_out(name, clips)}
    return AudioSet(name, description, [c for c in clips if id(c) not in val_ids],
                    [c for c in clips if id(c) in val_ids], sample_rate)


# ---------------------------------------------------------------- speech for the vocoders
SPEECH_RATE = 16000


class SpeechClips:
    """LJSpeech clips as float audio at 16 kHz with their log-mels (models/mel.py), split as
    the WaveNet tab splits them (the vocoders' training and measurement)."""

    def __init__(self, tiny: bool = False):
        folder = data_root() / "audio" / AUDIO_SETS["speech"][0]
        paths = sorted(folder.glob("*.flac"))
        if not paths:
            raise FileNotFoundError(f"no clips in {folder}: the training data lives in the "
                                    "project's ../shared/data (set GDL_DATA to point elsewhere)")
        val = set(held_out("speech", paths))
        train = [p for p in paths if p not in val]
        val = sorted(val)
        if tiny:
            train, val = train[:4], val[:2]
        self.train_paths, self.val_paths = train, val
        self.train = [self.read(p) for p in train]
        self.val = [self.read(p) for p in val]
        from models.mel import log_mel

        self.train_mel = [log_mel(a) for a in self.train]
        self.val_mel = [log_mel(a) for a in self.val]

    @staticmethod
    def read(path: Path) -> np.ndarray:
        import soundfile as sf

        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate != SPEECH_RATE:
            raise ValueError(f"{path}: {rate} Hz, expected {SPEECH_RATE}")
        return audio.mean(1)

    def seconds(self, split: str) -> float:
        return sum(map(len, getattr(self, split))) / SPEECH_RATE
