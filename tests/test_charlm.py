"""The character-level transformer: KV cache, sampling maths, prompts, training, measuring, the
shipped models; the tab through gradio_client."""
from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError

from models.charlm import (CharGPT, CharLMConfig, CharSampler, KVCache, draw, entropy,
                           pack_for_decoding, sampling_probs)
from models.hub import WEIGHTS_DIR, from_pretrained
from models.runtime import generator
from tabs.charlm import MODEL_NAMES as TEXT_MODELS, TEXT_PER_VISITOR
from train.data import load_corpus

SHAKESPEARE = WEIGHTS_DIR / "charlm-shakespeare"
IMDB = WEIGHTS_DIR / "charlm-imdb"
CHARS = "\n !\"',-.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def tiny_model(block: int = 16, seed: int = 0) -> CharGPT:
    torch.manual_seed(seed)
    model = CharGPT(CharLMConfig(chars=CHARS, block_size=block, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():  # larger weights than the init, so positions really matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


def incremental_logits(model: CharGPT, idx: torch.Tensor, prefill: int, chunk: int = 1):
    """Logits of every position computed with the cache: a prefill, then chunks."""
    cache = KVCache(model.config, idx.size(0), idx.device, torch.float32)
    out = [model(idx[:, :prefill], cache)]
    for s in range(prefill, idx.size(1), chunk):
        out.append(model(idx[:, s:s + chunk], cache))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("prefill,chunk", [(1, 1), (5, 1), (4, 3)])
def test_cached_and_uncached_logits_agree_on_a_tiny_model(prefill, chunk):
    model = tiny_model()
    idx = torch.randint(0, len(CHARS), (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(idx)
        cached = incremental_logits(model, idx, prefill, chunk)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    # and the cache really is used: positions differ from running each token alone
    with torch.no_grad():
        alone = model(idx[:, 5:6])
    assert (alone[:, 0] - full[:, 5]).abs().max() > 1e-2


def test_packed_linear_layers_compute_the_same_model():
    model = tiny_model()
    idx = torch.randint(0, len(CHARS), (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = model(idx)
        packed = pack_for_decoding(model)(idx)
    assert type(model.blocks[0].attn.qkv).__name__ == "PackedLinear"
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)


def test_context_overflow_is_refused_by_the_model():
    model = tiny_model(block=8)
    with pytest.raises(ValueError, match="exceed the context"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_temperature_reweights_as_exp_log_p_over_t():
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(0)) * 3
    p = logits.softmax(-1)
    for t in (0.2, 0.7, 1.0, 1.5, 4.0):
        expected = torch.exp(torch.log(p) / t)
        expected /= expected.sum(-1, keepdim=True)
        torch.testing.assert_close(sampling_probs(logits, t), expected, atol=1e-6, rtol=1e-5)
    # a temperature per row, and 0 = greedy
    rows = sampling_probs(logits, torch.tensor([1.0, 0.5, 0.0, 2.0]))
    torch.testing.assert_close(rows[0], p[0])
    assert rows[2].max() == 1 and rows[2].argmax() == logits[2].argmax()
    assert float(entropy(rows[2:3])) == pytest.approx(0.0, abs=1e-6)
    assert float(entropy(torch.full((1, 30), 1 / 30))) == pytest.approx(math.log(30))


def test_top_k_and_top_p_masks():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    k2 = sampling_probs(logits, 1.0, top_k=2)
    torch.testing.assert_close(k2, torch.tensor([[0.5, 0.2, 0, 0, 0]]) / 0.7)
    assert torch.equal(sampling_probs(logits, 1.0, top_k=50), logits.softmax(-1))  # k >= V: off
    # top-p: the smallest set of the likeliest characters whose mass reaches p
    torch.testing.assert_close(sampling_probs(logits, 1.0, top_p=0.7),
                               torch.tensor([[0.5, 0.2, 0, 0, 0]]) / 0.7)
    torch.testing.assert_close(sampling_probs(logits, 1.0, top_p=0.71),
                               torch.tensor([[0.5, 0.2, 0.15, 0, 0]]) / 0.85)
    assert sampling_probs(logits, 1.0, top_p=0.01)[0, 0] == 1  # always keeps the likeliest
    # order: temperature first, then the cuts (as Hugging Face's samplers do)
    hot = sampling_probs(logits, 2.0, top_k=3)
    assert (hot[0, 3:] == 0).all() and hot[0, 2] > 0.15 / 0.85


def test_draw_inverts_the_cdf_and_skips_zero_mass():
    probs = torch.tensor([[0.2, 0.0, 0.8], [0.0, 1.0, 0.0]])
    assert draw(probs, 0.1).tolist() == [0, 1]
    assert draw(probs, 0.2).tolist() == [2, 1]
    assert draw(probs, 0.999999).tolist() == [2, 1]
    counts = np.bincount([int(draw(probs[:1], u)) for u in np.linspace(0, 1, 1000, endpoint=False)])
    assert counts[0] == 200 and counts[2] == 800


def sample(sampler, ids, length, temps, seed=0, **kw):
    rows = [[] for _ in temps]
    for step in sampler.stream(ids, length, temps, generator=torch.Generator().manual_seed(seed), **kw):
        for r, i in zip(rows, step.ids.tolist()):
            r.append(i)
    return rows


def test_seeded_sampling_is_reproducible_and_batch_independent():
    sampler = CharSampler(tiny_model(block=32))
    ids, _ = sampler.encode("ROMEO: ")
    a = sample(sampler, ids, 20, [0.7], seed=5)
    assert a == sample(sampler, ids, 20, [0.7], seed=5)
    assert a != sample(sampler, ids, 20, [0.7], seed=6)
    batch = sample(sampler, ids, 20, [0.2, 0.7, 1.5], seed=5)
    assert batch[1] == a[0]                      # the comparison column = the single stream
    assert batch[0] != batch[2]
    # recomputing the context every step gives the same text while it fits the context
    assert sample(sampler, ids, 20, [0.7], seed=5, use_cache=False) == a


def test_generation_runs_past_the_context_window():
    sampler = CharSampler(tiny_model(block=16))
    ids, _ = sampler.encode("A long prompt, longer than sixteen characters")
    rows = sample(sampler, ids, 60, [1.0, 0.0])
    assert len(rows[0]) == 60 and all(0 <= i < len(CHARS) for i in rows[0])
    # greedy: the cached stream equals recomputing the same cropped context for each step
    steps = list(sampler.stream(ids, 10, [0.0], generator=torch.Generator()))
    assert [float(s.prob[0]) for s in steps] == [1.0] * 10


def alone_and_batched(sampler, requests):
    """Each request's rows sampled alone (the plain cached stream) and with all requests open
    at once in the sampler's batcher, from threads, as the app's visitors are."""
    def rows_of(steps, n):
        out = [[] for _ in range(n)]
        for step in steps:
            for r, i in zip(out, step.ids.tolist()):
                r.append(i)
        return out

    alone = [rows_of(sampler.stream(ids, n, temps, k, p, generator=generator(seed)), len(temps))
             for ids, n, temps, k, p, seed in requests]
    batched = [None] * len(requests)
    batcher = sampler.batched()
    gate = threading.Barrier(len(requests))

    def visit(i, ids, n, temps, k, p, seed):
        gate.wait()
        batched[i] = rows_of(batcher.stream(ids, n, temps, k, p, generator=generator(seed)), len(temps))

    threads = [threading.Thread(target=visit, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return alone, batched, batcher


def test_batched_visitors_get_the_text_they_would_get_alone():
    sampler = CharSampler(tiny_model(block=16))
    prompts = ["ROMEO:", "A long prompt, longer than sixteen characters", "", "To be"]
    requests = [(sampler.encode(prompts[i % 4])[0], 10 + 7 * i, temps, k, p, seed)
                for i, (temps, k, p, seed) in enumerate([
                    ([0.7], 0, 1.0, 1), ([1.0], 5, 1.0, 2), ([0.0], 0, 1.0, 3), ([1.3], 0, 0.9, 4),
                    ([0.2, 0.7, 1.0, 1.5], 0, 1.0, 5), ([0.7], 0, 1.0, 6), ([2.0], 3, 0.5, 7),
                    ([0.9], 0, 1.0, 1)])]
    alone, batched, batcher = alone_and_batched(sampler, requests)
    assert batched == alone                 # every row, past the 16-character context too
    assert batcher.rounds < sum(n for _, n, *_ in requests) / 2   # and they really shared rounds
    assert len(set(map(str, alone))) == len(alone)


def test_a_visitor_who_stops_frees_only_their_row():
    sampler = CharSampler(tiny_model(block=16))
    batcher = sampler.batched()
    ids, _ = sampler.encode("ROMEO:")
    keep = [batcher.stream(ids, 40, [0.8], generator=generator(s)) for s in (1, 2)]
    quitter = batcher.stream(ids, 40, [0.8], generator=generator(3))
    got = [[next(k).ids.item()] for k in keep]
    assert next(quitter).ids.numel() == 1
    quitter.close()                          # what Gradio does on Stop or when a tab closes
    for row, k in zip(got, keep):
        row += [s.ids.item() for s in k]
    assert got == [[s.ids.item() for s in sampler.stream(ids, 40, [0.8], generator=generator(s))]
                   for s in (1, 2)]
    deadline = time.monotonic() + 5
    while batcher.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.active == 0


def test_a_batcher_error_reaches_every_waiting_visitor_and_it_goes_on():
    sampler = CharSampler(tiny_model(block=16))
    batcher = sampler.batched()
    ids, _ = sampler.encode("ROMEO:")
    with pytest.raises(TypeError):
        list(batcher.stream(ids, 5, [0.8], top_k=0, top_p=1.0, generator="not a generator"))
    assert len(list(batcher.stream(ids, 5, [0.8], generator=generator(0)))) == 5


def test_prompts_outside_the_vocabulary_are_mapped_or_dropped_visibly():
    sampler = CharSampler(tiny_model())
    ids, notes = sampler.encode("Caf\u00e9 \u201cdéjà vu\u201d \u2014 ok \U0001F600!")
    assert sampler.decode(ids) == 'Cafe "deja vu" - ok !'
    joined = " ".join(notes)
    assert "mapped" in joined and "dropped" in joined and "\U0001F600" in joined
    assert sampler.encode("") == ([], [])
    # an empty prompt samples from a new line
    assert len(sample(sampler, [], 5, [1.0])[0]) == 5


def test_tiny_training_run_writes_a_loadable_checkpoint(tmp_path):
    from train.charlm import main

    main(["--corpus", "shakespeare", "--tiny", "--out", str(tmp_path / "ckpt"),
          "--run-dir", str(tmp_path / "run")])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val"] < log[0]["val"] < math.log(65) + 0.5
    model = from_pretrained(CharGPT, tmp_path / "ckpt")
    assert model.config.corpus == "tiny-shakespeare" and model.config.vocab_size == 65
    # resuming continues from the saved step instead of starting over
    main(["--corpus", "shakespeare", "--tiny", "--steps", "45", "--out", str(tmp_path / "ckpt"),
          "--run-dir", str(tmp_path / "run")])
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [15, 30, 45]


def test_measure_writes_what_the_card_needs(tmp_path):
    from train.card import render
    from train.charlm import main, measure

    out = tmp_path / "ckpt"
    main(["--corpus", "shakespeare", "--tiny", "--out", str(out), "--run-dir", str(tmp_path / "run")])
    metrics = measure(out)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["val_windows"] == metrics["val_windows_total"] == (metrics["val_chars"] - 1) // 32
    assert set(metrics["samples"]["texts"]) == {"0.2", "0.5", "0.7", "1", "1.5"}
    assert all(t.startswith("ROMEO:\n") and len(t) == 307 for t in metrics["samples"]["texts"].values())
    card = render(out)
    assert f"{metrics['val_nats_per_char']:.4f}" in card and metrics["samples"]["texts"]["1.5"] in card


# ---------------------------------------------------------------- the shipped checkpoints

shipped = pytest.mark.skipif(not SHAKESPEARE.is_dir(), reason="no shipped text checkpoint")


@shipped
@pytest.mark.parametrize("folder", [SHAKESPEARE, IMDB], ids=["shakespeare", "imdb"])
def test_shipped_model_cached_logits_match_the_plain_forward(folder):
    if not folder.is_dir():
        pytest.skip(f"{folder.name} not shipped")
    plain = from_pretrained(CharGPT, folder)                 # the model as trained
    sampler = CharSampler(from_pretrained(CharGPT, folder))  # the decoding path (packed, cached)
    ids, _ = sampler.encode("First Citizen:\nBefore we proceed any further, hear me speak. " * 6)
    idx = torch.tensor([ids[:plain.config.block_size]])
    with torch.no_grad():
        full = plain(idx)
        cached = incremental_logits(sampler.model, idx, prefill=7)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
    # and a sampled text is the same with and without the cache while it fits the context
    n = plain.config.block_size - len(ids[:20]) - 1
    assert sample(sampler, ids[:20], n, [0.8], seed=3) == \
        sample(sampler, ids[:20], n, [0.8], seed=3, use_cache=False)


@shipped
@pytest.mark.parametrize("name,folder,limit", [("shakespeare", SHAKESPEARE, 1.55),
                                               ("imdb", IMDB, 1.5)])
def test_shipped_model_card_and_held_out_loss(name, folder, limit):
    if not folder.is_dir():
        pytest.skip(f"{folder.name} not shipped")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["val_nats_per_char"] <= limit
    for f in folder.iterdir():
        assert f.stat().st_size < 10_000_000, f
    # recompute on part of the held-out text: the card's figure is the model's
    model = from_pretrained(CharGPT, folder)
    from train.charlm import evaluate
    val = evaluate(model, load_corpus(name).val, windows=150)
    assert val == pytest.approx(metrics["val_nats_per_char"], abs=0.06)
    assert val < metrics["unigram_entropy_nats"] - 1.0


# ------------------------------------------------------------------ the tab, through gradio_client

TEXT = dict(model_name="tiny-shakespeare", prompt="ROMEO:\n", temperature=0.7, length=60,
            top_k=0, top_p=1.0, seed=4)
needs_text = pytest.mark.skipif("tiny-shakespeare" not in TEXT_MODELS, reason="no text model")


@needs_text
def test_text_generate_streams_and_is_reproducible(client):
    job = client.submit(**TEXT, api_name="/text_generate")
    updates = list(job)
    text, html, status = job.result()
    assert len(updates) >= 2                      # streamed, not one answer at the end
    assert text.startswith("ROMEO:\n") and len(text) == len("ROMEO:\n") + 60
    assert "Done: 60 characters" in status and "nats per character" in status
    assert html.count(' title="') == 60 and "gdl-legend" in html
    again, _, _ = client.predict(**TEXT, api_name="/text_generate")
    assert again == text
    other, _, _ = client.predict(**{**TEXT, "seed": 5}, api_name="/text_generate")
    assert other != text
    greedy, _, _ = client.predict(**{**TEXT, "temperature": 0, "seed": 1}, api_name="/text_generate")
    assert greedy == client.predict(**{**TEXT, "temperature": 0, "seed": 2},
                                    api_name="/text_generate")[0]


@needs_text
def test_text_compare_columns_match_single_streams(client):
    *columns, status = client.predict("tiny-shakespeare", "ROMEO:\n", 40, 0, 1.0, 4,
                                      api_name="/text_compare")
    assert len(columns) == 5 and "Done" in status
    assert all(c.startswith("ROMEO:\n") and len(c) == 47 for c in columns)
    single, _, _ = client.predict(**{**TEXT, "length": 40}, api_name="/text_generate")
    assert columns[2] == single                   # the 0.7 column, same seed
    assert len(set(columns)) >= 3


@needs_text
def test_many_visitors_at_once_each_get_their_own_seeds_text(client, app_url):
    """Eight visitors (own sessions) generating at once, sampled in one shared batch: each text
    is the one its settings give alone."""
    from gradio_client import Client

    settings = [{**TEXT, "seed": 20 + i, "temperature": 0.5 + 0.1 * i, "length": 30 + 10 * i}
                for i in range(8)]
    alone = [client.predict(**kw, api_name="/text_generate")[0] for kw in settings]
    visitors = [Client(app_url, verbose=False) for _ in settings]
    jobs = [v.submit(**kw, api_name="/text_generate") for v, kw in zip(visitors, settings)]
    assert [j.result(timeout=120)[0] for j in jobs] == alone


@needs_text
def test_a_flood_from_one_visitor_does_not_starve_another(app_url):
    from gradio_client import Client

    flood, other = Client(app_url, verbose=False), Client(app_url, verbose=False)
    jobs = [flood.submit(**{**TEXT, "length": 2000, "seed": i}, api_name="/text_generate")
            for i in range(8)]
    time.sleep(0.5)
    text, _, status = other.submit(**TEXT, api_name="/text_generate").result(timeout=120)
    assert len(text) == len(TEXT["prompt"]) + TEXT["length"] and "Done" in status
    assert any(not j.done() for j in jobs)        # served while the flood was still running
    refused = 0
    for j in jobs:
        try:
            j.result(timeout=300)
        except AppError as exc:
            assert "per visitor" in str(exc)
            refused += 1
    assert refused >= 8 - TEXT_PER_VISITOR


@needs_text
def test_text_distribution_plot(client):
    plot, status = client.predict("tiny-shakespeare", "ROMEO", 0.5, 5, 0.9,
                                  api_name="/text_distribution")
    assert plot and "Most likely next character" in status and "Entropy" in status


@needs_text
@pytest.mark.parametrize("change,message", [
    (dict(prompt=""), "empty prompt: starting from a new line"),
    (dict(prompt="\U0001F3AC\u00e9t\u00e9 \u201cquoted\u201d"), "e; dropped 3 character(s)"),
    (dict(prompt="x" * 5000), "longer than the model's context"),
    (dict(top_k=100), "no cut"),
])
def test_text_odd_prompts_have_defined_behaviour(client, change, message):
    text, _, status = client.predict(**{**TEXT, "length": 5, **change}, api_name="/text_generate")
    assert message.lower() in status.lower() and "Done" in status
    assert len(text) >= 5


@needs_text
@pytest.mark.parametrize("change,message", [
    (dict(temperature=-1), "less than minimum"),
    (dict(temperature=50), "greater than maximum"),
    (dict(length=10**7), "greater than maximum"),
    (dict(length=0), "less than minimum"),
    (dict(top_p=0), "less than minimum"),
    (dict(top_p=1.5), "greater than maximum"),
    (dict(top_k=-3), "less than minimum"),
    (dict(model_name="gpt-5"), "gpt-5"),
    (dict(prompt="y" * 200_000), "limit is 100,000"),
])
def test_text_bad_settings_get_clear_errors(client, change, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{**TEXT, **change}, api_name="/text_generate")
    assert "Done" in client.predict(**{**TEXT, "length": 3}, api_name="/text_generate")[2]


@needs_text
def test_every_example_prompt_writes_words():
    """The tab's example prompts at its default settings: text with words, not gibberish or
    blanks."""
    import re

    from tabs import charlm as tab

    for model_name, prompt in [row for row in tab.EXAMPLES if row[0] in TEXT_MODELS]:
        text, html, status = list(tab.generate(model_name, prompt, 0.7, 300, 0, 1.0, 0,
                                               progress=lambda *a, **k: None))[-1]
        written = text[len(prompt):]
        words = re.findall(r"[A-Za-z]{2,}", written)
        assert "Done" in status and len(written) == 300 and len(words) > 30, (model_name, prompt)
        assert sum(c.isalpha() or c.isspace() for c in written) > 0.8 * len(written)
