"""Temperature text sampling tab: widgets, validation and wiring; the model is models/charlm.py."""
from __future__ import annotations

import html
import math
import time

import gradio as gr
import matplotlib.pyplot as plt
import torch

from models.charlm import CharSampler, entropy, sampling_probs
from models.hub import WEIGHTS_DIR
from models.runtime import generator, gpu

from .common import (Deadline, Lane, Lazy, TabContext, Technique, number, seed_value, sentence,
                     visitor_of)

TECHNIQUE = Technique("charlm", "Text sampling", "sound",
                      "Character-level transformers writing reviews and plays, hot or cold.",
                      tab="Text")

CHECKPOINTS = {  # label -> checkpoint folder under weights/ (or a hub id)
    "IMDB movie reviews": "charlm-imdb",
    "tiny-shakespeare": "charlm-shakespeare",
    "Nietzsche": "charlm-nietzsche",
}
MODEL_NAMES = [label for label, folder in CHECKPOINTS.items()
               if (WEIGHTS_DIR / folder / "config.json").is_file()]
DEFAULT_MODEL = MODEL_NAMES[0] if MODEL_NAMES else None
AVAILABLE = bool(MODEL_NAMES)
PROMPTS = {"IMDB movie reviews": "This movie", "tiny-shakespeare": "ROMEO:\n",
           "Nietzsche": "The truth is"}
EXAMPLES = [["IMDB movie reviews", "This movie"], ["IMDB movie reviews", "I expected"],
            ["tiny-shakespeare", "ROMEO:\n"], ["tiny-shakespeare", "To be, or not to be"],
            ["Nietzsche", "What is a philosopher"]]
COMPARE_TEMPERATURES = (0.2, 0.5, 0.7, 1.0, 1.5)
MAX_LENGTH = 2000
MAX_PROMPT = 100_000
STREAM_EVERY = 0.08   # seconds between streamed updates, for one visitor (more when many share)
TEXT_STREAMS = 48     # text requests sampled at once (together, in one batch)
TEXT_PER_VISITOR = 3  # open text requests per visitor: a flood from one cannot fill the batch
TEXT_LANE = Lane("text", slots=TEXT_STREAMS, per_visitor=TEXT_PER_VISITOR)


PIPELINES = {label: Lazy(f"the {label} language model",
                         lambda report, folder=CHECKPOINTS[label]: CharSampler.from_pretrained(folder),
                         warm=True)
             for label in MODEL_NAMES}

EXPLAIN = """
**How it works.** The model is a small transformer that has read its corpus one character at a
time and learned, for every position, a probability for each possible next character. Writing
means: compute those probabilities, draw one character, append it, repeat.

* **Temperature** divides the model's scores (logits) before the softmax:
  p<sub>T</sub>(c) &prop; p(c)<sup>1/T</sup>. Below 1 the likely characters get likelier (safe,
  repetitive text; 0 always takes the most likely one); above 1 the distribution flattens
  (inventive, then gibberish).
* **Top-k** keeps only the k most likely characters (0 = off); **top-p** keeps the smallest set
  of characters whose probabilities add up to p (1 = off). Both cut off the unlikely tail.
* **Seed**: the same seed, prompt and settings give the same text.
* A key/value cache keeps each layer's keys and values of the text so far, so every new
  character costs one position's work instead of re-reading the whole context.
"""


def sampler_for(name) -> Lazy:
    if name not in PIPELINES:
        raise gr.Error(f"Unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}.")
    return PIPELINES[name]


def check_settings(prompt, temperature, length, top_k, top_p, seed):
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise gr.Error("The prompt must be text.")
    if len(prompt) > MAX_PROMPT:
        raise gr.Error(f"The prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT:,}.")
    temperature = number(temperature, "Temperature", 0, 10)
    length = number(length, "Length", 1, MAX_LENGTH, integer=True)
    top_k = number(top_k, "Top-k", 0, 10_000, integer=True)
    top_p = number(top_p, "Top-p", 0, 1)
    if top_p <= 0:
        raise gr.Error("Top-p must be above 0 (1 switches it off).")
    return prompt, temperature, length, top_k, top_p, seed_value(seed)


def prepare(sampler: CharSampler, prompt: str, top_k: int) -> tuple[list[int], list[str]]:
    ids, notes = sampler.encode(prompt)
    if not prompt:
        notes.append("empty prompt: starting from a new line")
    elif not ids:
        notes.append("nothing of the prompt is in the model's alphabet: starting from a new line")
    block = sampler.config.block_size
    if len(ids) > block:
        notes.append(f"the prompt is longer than the model's context; it reads the last {block} "
                     "characters")
    if top_k >= sampler.config.vocab_size:
        notes.append(f"top-k {top_k} is at least the alphabet size ({sampler.config.vocab_size}): "
                     "no cut")
    return ids, notes


def stream_every(batcher) -> float:
    """Seconds between a visitor's streamed updates: each update costs the server a few
    milliseconds of Python, so with thirty streams open they come less often (docs/charlm.md)."""
    return STREAM_EVERY * max(1.0, batcher.active / 4)


def status_line(notes: list[str], message: str) -> str:
    return sentence(notes) + message


def show_char(ch: str) -> str:
    return {"\n": "\\n", " ": "space", "\t": "\\t"}.get(ch, ch)


def streaming(prompt: str, text: str) -> str:
    """The text so far, plain, where the coloured text will be."""
    return (f'<div class="gdl-coloured"><span class="gdl-prompt">{html.escape(prompt)}</span>'
            f'{html.escape(text)}</div>')


def coloured(prompt: str, text: str, probs: list[float], probs_t1: list[float]) -> str:
    """The prompt in grey, then each sampled character on a background by its probability."""
    spans = [f'<span class="gdl-prompt">{html.escape(prompt)}</span>']
    for ch, p, p1 in zip(text, probs, probs_t1):
        hue = 120 * p  # red (unlikely) -> green (likely)
        shown = "\u21b5\n" if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background:hsla({hue:.0f},85%,55%,0.45)" '
                     f'title="{html.escape(repr(ch))}: p={p:.3f} (at T=1: {p1:.3f})">{shown}</span>')
    legend = ('<div class="gdl-legend">background = probability the character had when it was '
              'drawn: <span style="background:hsla(0,85%,55%,0.45)">&nbsp;0&nbsp;</span> '
              '<span style="background:hsla(60,85%,55%,0.45)">&nbsp;0.5&nbsp;</span> '
              '<span style="background:hsla(120,85%,55%,0.45)">&nbsp;1&nbsp;</span> '
              '(hover or tap a character for its numbers)</div>')
    return f'<div class="gdl-coloured">{"".join(spans)}</div>{legend}'


@gpu(duration=60)
def generate(model_name, prompt, temperature, length, top_k, top_p, seed,
             request: gr.Request = None, progress=gr.Progress()):
    """Stream (text, coloured HTML, status) while sampling one text."""
    with TEXT_LANE.ticket(visitor_of(request)):
        yield from generating(model_name, prompt, temperature, length, top_k, top_p, seed, progress)


def generating(model_name, prompt, temperature, length, top_k, top_p, seed, progress):
    prompt, temperature, length, top_k, top_p, seed = check_settings(
        prompt, temperature, length, top_k, top_p, seed)
    sampler = sampler_for(model_name).get(progress)
    ids, notes = prepare(sampler, prompt, top_k)
    gen = generator(seed)
    deadline = Deadline()
    chars, probs, probs_t1 = [], [], []
    last = 0.0
    yield "", "", status_line(notes, "Sampling...")
    batcher = sampler.batched()
    for step in batcher.stream(ids, length, [temperature], top_k, top_p, generator=gen):
        chars.append(sampler.config.chars[int(step.ids[0])])
        probs.append(float(step.prob[0]))
        probs_t1.append(float(step.prob_t1[0]))
        now = time.monotonic()
        done = step.index + 1 == length
        if deadline.passed():
            notes.append(f"stopped at the {deadline.seconds:.0f} s limit")
            done = True
        if done or now - last > stream_every(batcher) or step.index == 0:
            last = now
            text = "".join(chars)
            message = f"{len(chars)}/{length} characters"
            if done:
                mean_nats = -sum(math.log(max(p, 1e-12)) for p in probs_t1) / len(probs_t1)
                message = (f"Done: {len(chars)} characters; the model's average surprise at "
                           f"them (temperature 1): {mean_nats:.2f} nats per character")
                yield prompt + text, coloured(prompt, text, probs, probs_t1), status_line(notes, message)
                return
            progress((step.index + 1) / length, desc=message)
            yield prompt + text, streaming(prompt, text), status_line(notes, message)


@gpu(duration=60)
def compare(model_name, prompt, length, top_k, top_p, seed, request: gr.Request = None,
            progress=gr.Progress()):
    """The same prompt and seed at five temperatures, batched; streams the five texts."""
    with TEXT_LANE.ticket(visitor_of(request)):
        yield from comparing(model_name, prompt, length, top_k, top_p, seed, progress)


def comparing(model_name, prompt, length, top_k, top_p, seed, progress):
    prompt, _, length, top_k, top_p, seed = check_settings(prompt, 1.0, length, top_k, top_p, seed)
    sampler = sampler_for(model_name).get(progress)
    ids, notes = prepare(sampler, prompt, top_k)
    gen = generator(seed)
    deadline = Deadline()
    rows: list[list[str]] = [[] for _ in COMPARE_TEMPERATURES]
    last = 0.0
    yield *([prompt] * len(rows)), status_line(notes, "Sampling five temperatures at once...")
    batcher = sampler.batched()
    for step in batcher.stream(ids, length, COMPARE_TEMPERATURES, top_k, top_p, generator=gen):
        for row, i in zip(rows, step.ids.tolist()):
            row.append(sampler.config.chars[i])
        now = time.monotonic()
        done = step.index + 1 == length or deadline.passed()
        if done or now - last > stream_every(batcher) or step.index == 0:
            last = now
            message = f"{step.index + 1}/{length} characters in each column"
            if done:
                message = "Done: " + message
            else:
                progress((step.index + 1) / length, desc=message)
            yield *(prompt + "".join(r) for r in rows), status_line(notes, message)
            if done:
                return


def distribution(model_name, prompt, temperature, top_k, top_p, progress=gr.Progress()):
    """Bar chart of the likeliest next characters at temperature 1 and at the chosen one."""
    prompt, temperature, _, top_k, top_p, _ = check_settings(prompt, temperature, 1, top_k,
                                                             top_p, 0)
    sampler = sampler_for(model_name).get(progress)
    ids, notes = prepare(sampler, prompt, top_k)
    logits = sampler.next_distribution(ids)[None]
    plain = logits.softmax(-1)[0]
    chosen = sampling_probs(logits, temperature, top_k, top_p)[0]
    h1, ht = float(entropy(plain[None])), float(entropy(chosen[None]))
    order = torch.argsort(torch.maximum(plain, chosen), descending=True)[:15].tolist()
    labels = [show_char(sampler.config.chars[i]) for i in order]
    plt.rcParams.update({"font.size": 12})      # readable when a phone scales the figure down
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=100)
    xs = range(len(order))
    ax.bar([x - 0.2 for x in xs], [float(plain[i]) for i in order], width=0.4, color="#94a3b8",
           label=f"temperature 1 (entropy {h1:.2f} nats)")
    ax.bar([x + 0.2 for x in xs], [float(chosen[i]) for i in order], width=0.4, color="#4f46e5",
           label=f"temperature {temperature:g}"
                 f"{', top-k ' + str(top_k) if top_k else ''}"
                 f"{', top-p ' + format(top_p, 'g') if top_p < 1 else ''} (entropy {ht:.2f} nats)")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("probability of the next character")
    tail = prompt[-20:].replace("\n", "\\n")
    ax.set_title(f"after \u2026{tail!s}" if prompt else "at the start of a line", fontsize=12)
    top = max(float(plain.max()), float(chosen.max()))
    ax.set_ylim(0, min(1.0, top * 1.3 + 0.02))
    ax.legend(fontsize=10, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    best = sampler.config.chars[int(plain.argmax())]
    message = (f"Most likely next character: {show_char(best)!r} (p={float(plain.max()):.2f}). "
               f"Entropy {h1:.2f} nats at temperature 1, {ht:.2f} with your settings "
               f"(uniform over {sampler.config.vocab_size} characters would be "
               f"{math.log(sampler.config.vocab_size):.2f}).")
    return fig, status_line(notes, message)


def example_prompt(model_name):
    return PROMPTS.get(model_name, "")


CSS = """
.gdl-coloured { font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.6;
                padding: 8px; border-radius: 6px; }
.gdl-prompt { color: #6b7280; }
.gdl-legend { font-size: 0.85em; margin-top: 6px; opacity: 0.8; }
"""


def build(ctx: TabContext) -> None:
    gr.Markdown("### Temperature text sampling\nCharacter-level language models trained by "
                "the studio; the *temperature* decides between safe and surprising. Pick a "
                "model, write a prompt, press **Generate**.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(MODEL_NAMES, value=DEFAULT_MODEL, label="Model",
                                info="the corpus it learned from")
            prompt = gr.Textbox(PROMPTS.get(DEFAULT_MODEL, ""), label="Prompt", lines=3,
                                max_lines=12, info="any text; empty starts a new line")
            temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature",
                                    info="0 = always the likeliest character; 1 = the model "
                                         "as trained; above 1 = wilder")
            length = gr.Slider(1, MAX_LENGTH, value=400, step=1, label="Length (characters)")
            with gr.Accordion("Top-k, top-p, seed", open=False):   # short, so on a phone the
                with gr.Row():                                       # buttons come soon
                    top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0.01, 1, value=1, step=0.01, label="Top-p (1 = off)")
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed")
        with gr.Column(scale=2, min_width=300):
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id="text-run")
                run_compare = gr.Button("Compare temperatures", elem_id="text-compare")
                run_dist = gr.Button("See the distribution", elem_id="text-dist")
                stop = gr.Button("Stop", variant="stop")
            status = gr.Markdown("", elem_id="text-status")
            with gr.Tabs() as views:
                with gr.Tab("Text", id="text-out"):
                    # one view of the text: streamed plain, then coloured by probability (the
                    # plain text is the API's first output)
                    output = gr.Textbox(label="Generated text", visible=False, elem_id="text-output")
                    colours = gr.HTML(label="coloured by probability", elem_id="text-colours")
                with gr.Tab("Compare", id="text-compare-tab"):
                    columns = [gr.Textbox(label=f"temperature {t}", lines=6, max_lines=20,
                                          interactive=False, elem_id=f"text-t{i}")
                               for i, t in enumerate(COMPARE_TEMPERATURES)]
                with gr.Tab("Distribution", id="text-dist-tab"):
                    plot = gr.Plot(label="next character", elem_id="text-plot")
            gr.Examples([row for row in EXAMPLES if row[0] in MODEL_NAMES],
                        inputs=[model, prompt], label="Prompts")
            gr.Markdown(EXPLAIN)
    for button, view in ((run, "text-out"), (run_compare, "text-compare-tab"),
                         (run_dist, "text-dist-tab")):
        button.click(lambda view=view: gr.Tabs(selected=view), None, views, queue=False,
                     api_visibility="private")
    # .input: only a person's choice resets the prompt (an example sets both at once)
    model.input(example_prompt, model, prompt, api_name="text_example_prompt", queue=False)
    # every visitor's text is sampled in one shared batch (models/charlm.py, Batcher): a request
    # waits on it, so many may be open at once
    event = run.click(generate, [model, prompt, temperature, length, top_k, top_p, seed],
                      [output, colours, status], api_name="text_generate",
                      concurrency_id="text", concurrency_limit=TEXT_STREAMS)
    cmp_event = run_compare.click(compare, [model, prompt, length, top_k, top_p, seed],
                                  [*columns, status], api_name="text_compare",
                                  concurrency_id="text", concurrency_limit=TEXT_STREAMS)
    run_dist.click(distribution, [model, prompt, temperature, top_k, top_p], [plot, status],
                   api_name="text_distribution")
    stop.click(lambda: "Stopped.", None, status, cancels=[event, cmp_event],
               api_name="text_stop", queue=False)
