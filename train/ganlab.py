"""GAN lab: the 2-D games train live in the tab, so nothing here is shipped to it. This measures
what the tab's named experiments claim: each played on several seeds, its modes covered and JS
divergence at the end, and the final plane of seed 0 side by side.

    python -m train.ganlab                       # docs/figures/ganlab: experiments.json, .png
    python -m train.ganlab --tiny --out /tmp/g   # seconds, for tests
"""
from __future__ import annotations

import argparse
import json
import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.ganlab import EXPERIMENTS, ToyGAN, experiment_config
from models.runtime import single_threaded

OUT = Path("docs/figures/ganlab")


def play(name: str, seed: int, rounds: int) -> ToyGAN:
    game = ToyGAN(experiment_config(name, seed=seed))
    game.step(rounds)
    return game


def measure(out: Path, seeds: int = 3, tiny: bool = False) -> dict:
    """Every named experiment on ``seeds`` seeds, on a one-core worker as the tab plays it."""
    out.mkdir(parents=True, exist_ok=True)
    worker = single_threaded(1)
    results, planes = {}, []
    for name, e in EXPERIMENTS.items():
        rounds = 20 if tiny else e.rounds
        runs = []
        for seed in range(seeds):
            t = time.time()
            game = worker.submit(play, name, seed, rounds).result()
            m = game.measure()
            runs.append(dict(seed=seed, covered=m.covered, modes=m.modes, js_bits=m.js_bits,
                             quality=m.quality, first_push=game.history[0].g_push,
                             seconds=time.time() - t))
            if seed == 0:
                planes.append((e.title, worker.submit(game.field, 320).result()))
        results[name] = dict(title=e.title, rounds=rounds, changes=e.changes, runs=runs)
    (out / "experiments.json").write_text(json.dumps(results, indent=2) + "\n")
    sheet(planes).save(out / "experiments.png")
    return results


def sheet(planes: list[tuple[str, np.ndarray]], columns: int = 3) -> Image.Image:
    size, caption = planes[0][1].shape[0], 36
    rows = -(-len(planes) // columns)
    im = Image.new("RGB", (columns * (size + 8), rows * (size + caption + 8)), "white")
    draw, font = ImageDraw.Draw(im), ImageFont.load_default(size=13)
    for k, (title, plane) in enumerate(planes):
        x, y = (k % columns) * (size + 8), (k // columns) * (size + caption + 8)
        draw.multiline_text((x + 4, y + 2), "\n".join(textwrap.wrap(title, 44)[:2]), fill="black",
                            font=font, spacing=2)
        im.paste(Image.fromarray(plane), (x, y + caption))
    return im


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="20 rounds each, one seed (tests)")
    args = p.parse_args(argv)
    results = measure(args.out, 1 if args.tiny else args.seeds, args.tiny)
    for name, r in results.items():
        cells = ", ".join(f"{x['covered']}/{x['modes']} ({x['js_bits']:.2f})" for x in r["runs"])
        print(f"{r['title']}: {r['rounds']} rounds: modes covered (JS bits) {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
