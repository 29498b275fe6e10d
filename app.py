"""Generative Deep Learning Studio: one Gradio Blocks app, a tab per classic technique.

    python app.py            # http://localhost:7860
"""
from __future__ import annotations

import os

import gradio as gr

from tabs import deepdream, faces, latent, style, text, wavenet

HEADER = """
# Generative Deep Learning Studio
Classic generative deep learning, live: every tab runs a real network in PyTorch on this
server, and every knob is one the original papers and book chapters turn.
Pick a tab, start from an example, and watch the result build up step by step.
"""

CSS = """
#studio-header h1 { margin-bottom: 0.2em; }
@media (max-width: 640px) { .gradio-container { padding: 4px !important; } }
""" + text.CSS

LAUNCH_KWARGS = dict(
    # system fonts: no request leaves the server (classrooms behind firewalls, offline tests)
    theme=gr.themes.Soft(primary_hue="indigo", font=["ui-sans-serif", "system-ui", "sans-serif"],
                         font_mono=["ui-monospace", "monospace"]),
    css=CSS,
    max_file_size="25mb",
    show_error=True,
)


def build() -> gr.Blocks:
    with gr.Blocks(title="Generative Deep Learning Studio") as blocks:
        gr.Markdown(HEADER, elem_id="studio-header")
        with gr.Tabs():
            has_faces = faces.build(blocks)   # first, once its DCGAN checkpoint is shipped
            latent.build(blocks, first=not has_faces)
            style.build()
            deepdream.build()
            text.build()
            wavenet.build()
        gr.Markdown("Models load on first use of their tab. Source and model cards: see the "
                    "repository README.", elem_id="studio-footer")
    # heavy events share one slot (concurrency_id), the rest run two at a time
    blocks.queue(default_concurrency_limit=2, max_size=32)
    return blocks


demo = build()
# every lazily loaded model, for warm-up and the benchmarks
MODELS = [faces.STUDIO, *latent.EXPLORERS.values(), style.PIPELINE, deepdream.PIPELINE, *text.SAMPLERS.values(),
          *wavenet.MODELS.values()]

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), **LAUNCH_KWARGS)
