"""Train a character-level transformer on a corpus; resumable, logs, writes weights/<name>/.

    python -m train.charlm --corpus shakespeare --out weights/charlm-shakespeare
    python -m train.charlm --corpus imdb        --out weights/charlm-imdb
    python -m train.charlm --corpus shakespeare --tiny --out /tmp/charlm-tiny   # seconds, for tests
    python -m train.charlm --measure weights/charlm-imdb    # metrics.json, then
    python -m train.card weights/charlm-imdb                # its card

Every ``--eval-every`` steps it evaluates on the held-out split (nats per character), appends to
``<run>/log.jsonl``, saves ``<run>/last.pt`` (model + optimiser + step, loaded back with
``weights_only=True``) and exports the best model so far. Rerunning the same command resumes;
``--minutes`` stops cleanly after a wall-clock budget.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from models.charlm import CharGPT, CharLMConfig, CharSampler
from models.hub import from_pretrained, save_pretrained

from .common import (Budget, RunDir, add_device_flag, command_line, hardware, hours,
                     parse_or_measure, pick_device)
from .data import TEXT_FILES, load_corpus


def batches(data: np.ndarray, block: int, batch: int, gen: torch.Generator):
    starts = torch.randint(0, len(data) - block - 1, (batch,), generator=gen).numpy()
    x = np.stack([data[s:s + block] for s in starts])
    y = np.stack([data[s + 1:s + block + 1] for s in starts])
    return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))


@torch.no_grad()
def evaluate(model: CharGPT, data: np.ndarray, windows: int | None = 200, batch: int = 16) -> float:
    """Mean nats per character predicting every position of non-overlapping full-context windows
    (``windows`` of them, evenly spread; None = the whole split)."""
    model.eval()
    block = model.config.block_size
    n = (len(data) - 1) // block
    picks = np.arange(n) if windows is None or windows >= n else \
        np.linspace(0, n - 1, windows).astype(int)
    total, count, dev = 0.0, 0, next(model.parameters()).device
    for i in range(0, len(picks), batch):
        s = picks[i:i + batch] * block
        x = torch.from_numpy(np.stack([data[a:a + block] for a in s]).astype(np.int64))
        y = torch.from_numpy(np.stack([data[a + 1:a + block + 1] for a in s]).astype(np.int64))
        total += model.loss(x.to(dev), y.to(dev)).item() * y.numel()
        count += y.numel()
    return total / count


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def train(args) -> Path:
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    corpus = load_corpus(args.corpus)
    config = CharLMConfig(chars=corpus.chars, block_size=args.block, n_layer=args.layers,
                          n_head=args.heads, n_embd=args.embd, dropout=args.dropout,
                          corpus=corpus.title)
    train_ids, val_ids = corpus.train, corpus.val
    if args.tiny:
        train_ids, val_ids = train_ids[:20000], val_ids[:5000]
    model = CharGPT(config).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))
    run = RunDir(args.run_dir or f"runs/charlm-{args.corpus}{'-tiny' if args.tiny else ''}")
    step, best = 0, math.inf
    if (state := run.resume()) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best = state["step"], state["best"]
        print(f"resumed {run.path} at step {step} (best val {best:.4f})", flush=True)
    gen = torch.Generator().manual_seed(args.seed + step)
    budget, window_start, seen, window_steps = Budget(args.minutes), time.time(), 0.0, 0
    while step < args.steps:
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        x, y = batches(train_ids, args.block, args.batch_size, gen)
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += loss.item()
        window_steps += 1
        step += 1
        out_of_time = budget.spent()
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            val = evaluate(model, val_ids, windows=args.eval_windows)
            record = dict(step=step, lr=lr_at(step - 1, args), train=seen / window_steps,
                          val=val, seconds=time.time() - window_start)
            seen, window_start, window_steps = 0.0, time.time(), 0
            run.log(record)
            print(f"step {step}/{args.steps} train {record['train']:.4f} val {val:.4f} "
                  f"({record['seconds']:.0f}s)", flush=True)
            if val < best:
                best = val
                save_pretrained(model, args.out, half=True, training=dict(
                    step=step, batch_size=args.batch_size, lr=args.lr, steps=args.steps,
                    bf16=args.bf16, val_nats_estimate=val, device=device.type,
                    hardware=hardware(device), hours=hours(run.records()),
                    command=args.command))
            run.save(model=model.state_dict(), opt=opt.state_dict(), step=step, best=best)
            if out_of_time:
                budget.announce()
                break
    return Path(args.out)


SAMPLE_PROMPTS = {"shakespeare": "ROMEO:\n", "imdb": "This movie", "nietzsche": "The truth is"}


CORPORA = {"tiny-shakespeare": "shakespeare", "IMDB movie reviews": "imdb", "Nietzsche": "nietzsche"}
SAMPLE_TEMPERATURES = (0.2, 0.5, 0.7, 1.0, 1.5)


def measure(folder: Path) -> dict:
    """Held-out loss (every full-context window, at most 5,000 spread evenly), a training-loss
    estimate, the unigram baseline, and samples at five temperatures. Writes metrics.json."""
    folder = Path(folder)
    model = from_pretrained(CharGPT, folder)
    name = CORPORA[model.config.corpus]
    corpus = load_corpus(name)
    windows = (len(corpus.val) - 1) // model.config.block_size
    val = evaluate(model, corpus.val, windows=min(windows, 5000), batch=32)
    sampler = CharSampler(model)
    prompt = SAMPLE_PROMPTS.get(name, "\n")
    rows = [[] for _ in SAMPLE_TEMPERATURES]
    for step in sampler.stream(sampler.encode(prompt)[0], 300, SAMPLE_TEMPERATURES,
                               generator=torch.Generator().manual_seed(0)):
        for r, i in enumerate(step.ids.tolist()):
            rows[r].append(i)
    metrics = dict(val_nats_per_char=val, val_bits_per_char=val / math.log(2),
                   val_windows=min(windows, 5000), val_windows_total=windows,
                   train_nats_per_char_estimate=evaluate(model, corpus.train, windows=400, batch=32),
                   val_chars=int(len(corpus.val)), train_chars=int(len(corpus.train)),
                   unigram_entropy_nats=corpus.unigram_entropy(), corpus=corpus.description,
                   samples=dict(prompt=prompt, seed=0, length=300,
                                texts={f"{t:g}": prompt + sampler.decode(r)
                                       for t, r in zip(SAMPLE_TEMPERATURES, rows)}))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv=None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", choices=sorted(TEXT_FILES), default="shakespeare")
    p.add_argument("--out")
    p.add_argument("--run-dir")
    p.add_argument("--steps", type=int, default=None, help="schedule length (6000; tiny: 30)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-windows", type=int, default=200)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--threads", type=int, default=2)
    add_device_flag(p)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--tiny", action="store_true", help="a seconds-long run for tests")
    args = parse_or_measure(p, argv, measure)
    if args is None:
        return
    if args.tiny:
        args.layers, args.heads, args.embd, args.block = 2, 2, 32, 32
        args.batch_size, args.eval_every, args.eval_windows, args.warmup = 8, 15, 20, 5
    if args.steps is None:
        args.steps = 30 if args.tiny else 6000
    args.command = command_line("train.charlm", argv)
    train(args)


if __name__ == "__main__":
    main()
