"""Generative Deep Learning Studio: one Gradio Blocks app, a tab per classic technique.

    python app.py            # http://localhost:7860

``TECHNIQUES`` is the registry: each is a module of tabs/ declaring ``TECHNIQUE`` (id, title,
group, one-line summary), ``AVAILABLE``, ``PIPELINES`` (its lazily loaded models) and
``build(ctx)``. Adding a technique is one line there.
"""
from __future__ import annotations

import os
import sys
import threading

import gradio as gr

from tabs import (charlm, cyclegan, deepdream, faces, ganlab, pianowave, pixelcnn, style, vae,
                  vocoder, wavenet)
from tabs.common import GROUPS, TabContext, write_pictures_once

TECHNIQUES = [faces, vae, pixelcnn, ganlab, cyclegan, style, deepdream, charlm, wavenet, pianowave,
              vocoder]

HEADER = """
# Generative Deep Learning Studio
Classic generative deep learning, live: every technique runs a real network in PyTorch on this
server, and every knob is one the original papers and book chapters turn.
"""

LANDING = """
Pick a technique. Each one starts from an example, explains its knobs, and shows the result
building up step by step; the models load the first time their tab is opened.
"""

CSS = """
#studio-header h1 { margin-bottom: 0.2em; }
.gdl-landing-row { align-items: center; }
.gdl-sketch button[aria-label="Clear canvas"] { display: none; }
/* a component's label and its buttons sit above its picture, never on it */
.block:not(.gdl-sketch) > label[data-testid="block-label"].float { position: static !important; margin: 0 0 4px 0; }
.block:not(.gdl-sketch) > .image-container:has(> .icon-button-wrapper.top-panel) { position: static !important; }
.block:has(> .image-container > .icon-button-wrapper.top-panel) > label[data-testid="block-label"].float { max-width: calc(100% - 84px); }
.gdl-landing-row p { margin: 0; }
@media (max-width: 640px) {
  .gradio-container { padding: 4px !important; }
  /* a group's four techniques fit one row of a 390px phone */
  button[role="tab"] { padding: 0 9px !important; }
}
""" + "".join(getattr(module, "CSS", "") for module in TECHNIQUES)

# a landing button also scrolls to the navigation: on a phone the tab would open mid-page
TO_TOP = "() => { document.getElementById('studio-nav')?.scrollIntoView({block: 'start'}); }"

# a sketchpad starts (and restarts after "clear") with no tool, so a drag, by mouse or touch,
# drew nothing: whenever one shows its "select the draw tool" prompt, pick its brush (an eraser a
# visitor chose is left alone: the prompt shows only when no tool is picked)
BRUSH_FIRST = """
<script>
(() => {
  let queued = false;
  const arm = () => {
    queued = false;
    document.querySelectorAll('button[aria-label="Brush"]:not(.highlight)').forEach((b) => {
      const editor = b.closest(".block");
      if (editor && editor.innerText.includes("select the draw tool")) b.click();
    });
  };
  new MutationObserver(() => {
    if (!queued) { queued = true; requestAnimationFrame(arm); }
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
"""

LAUNCH_KWARGS = dict(
    # system fonts: no request leaves the server (classrooms behind firewalls, offline tests)
    theme=gr.themes.Soft(primary_hue="indigo", font=["ui-sans-serif", "system-ui", "sans-serif"],
                         font_mono=["ui-monospace", "monospace"]),
    css=CSS,
    head=BRUSH_FIRST,
    max_file_size="25mb",
    show_error=True,
    # a thread per open request: text streams wait on one shared batch (tabs/charlm.py)
    max_threads=96,
)


def available() -> list:
    return [module for module in TECHNIQUES if module.AVAILABLE]


def build() -> gr.Blocks:
    write_pictures_once()
    shown = available()
    groups = {g: [m for m in shown if m.TECHNIQUE.group == g] for g in GROUPS}
    with gr.Blocks(title="Generative Deep Learning Studio") as blocks:
        gr.Markdown(HEADER, elem_id="studio-header")
        # wrap, never a "..." menu: a phone visitor sees every group and technique
        with gr.Tabs(elem_id="studio-nav", overflow_behavior="wrap") as nav:
            with gr.Tab("Start", id="start", elem_id="start-panel"):
                gr.Markdown(LANDING)
                buttons = {}
                for group, members in groups.items():
                    if not members:
                        continue
                    gr.Markdown(f"#### {GROUPS[group]}")
                    for module in members:
                        t = module.TECHNIQUE
                        with gr.Row(equal_height=True, elem_classes="gdl-landing-row"):
                            buttons[t.id] = gr.Button(t.title, scale=1, min_width=150,
                                                      elem_id=f"start-{t.id}")
                            gr.Markdown(t.summary, container=False)
            for group, members in groups.items():
                if not members:
                    continue
                with gr.Tab(GROUPS[group], id=group, elem_id=f"group-{group}") as group_tab:
                    with gr.Tabs(overflow_behavior="wrap") as inner:
                        for k, module in enumerate(members):
                            t = module.TECHNIQUE
                            with gr.Tab(t.label, id=t.id, elem_id=f"{t.id}-panel") as tab:
                                triggers = [tab.select, buttons[t.id].click]
                                if k == 0:       # a group opens on its first technique
                                    triggers.append(group_tab.select)
                                module.build(TabContext(blocks, triggers))
                    for module in members:
                        buttons[module.TECHNIQUE.id].click(
                            lambda g=group, i=module.TECHNIQUE.id: (gr.Tabs(selected=g),
                                                                   gr.Tabs(selected=i)),
                            None, [nav, inner], queue=False, js=TO_TOP, api_visibility="private")
        gr.Markdown("Models load on first use of their tab. Source and model cards: see the "
                    "repository README.", elem_id="studio-footer")
    # heavy events share one slot (concurrency_id), text streams share one batch, the rest run
    # two at a time; a classroom of thirty can all be in line at once
    blocks.queue(default_concurrency_limit=2, max_size=128)
    return blocks


demo = build()
# every lazily loaded pipeline, for warm-up and the benchmarks
PIPELINES = [lazy for module in available() for lazy in module.PIPELINES.values()]


def warm_up() -> threading.Thread:
    """Load the small models a classroom presses first (``Lazy(warm=True)``) on a background
    thread at low priority while the server already answers, so a class's first presses do
    not wait for a model load and a compile."""
    def run() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)   # this thread only
        except (AttributeError, OSError):
            pass
        for lazy in PIPELINES:
            if lazy.warm and not lazy.loaded:
                try:
                    lazy.get()
                except Exception as exc:           # noqa: BLE001 - the tab says so on use
                    print(f"warm-up: {exc}", file=sys.stderr)

    thread = threading.Thread(target=run, name="warm-up", daemon=True)
    thread.start()
    return thread

if __name__ == "__main__":
    warm_up()
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), **LAUNCH_KWARGS)
