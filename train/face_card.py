"""Measure a trained DCGAN and write its card: FID, latent vs pixel arithmetic success, the
attribute directions the tab uses and how its sliders move faces, sample images.

    python -m train.dcgan --card-only --out weights/dcgan-faces   # the whole card (needs the run's log)
    python -m train.face_card --sliders weights/dcgan-faces       # only the sliders' section
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from models.dcgan import (PRESETS, FaceAttributes, Generator, arithmetic, attribute_directions,
                          generate, hits, latents, load_directions, matches, move_along, neighbours,
                          pick_groups, sides, slerp, to_uint8)
from models.hub import WEIGHTS_DIR, from_pretrained
from models.runtime import generator

from .dcgan import RUN, grid_image, real_features
from .fid import frechet_distance, inception_features, statistics

POOL = 8000
TRIPLETS = 200
TAB_SEEDS = 200    # seeds of the tab's own preset picks (each: 256 faces, the surest 3 per group)
TAB_POOL = 256
DIRECTIONS = "attribute_directions.safetensors"
SLIDER_FACES = 300   # faces per row of the sliders' table
SLIDER_SHIFT = 6.0
SLIDERS_BEGIN, SLIDERS_END = "<!-- sliders -->", "<!-- /sliders -->"


def training_schedule(log_path: Path, upto: int | None) -> str:
    """The batch sizes and precisions of the run, from its log (it changed once, mid-run)."""
    if not log_path.exists():
        return ""
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    rows = [r for r in rows if upto is None or r["epoch"] <= upto]
    phases: list[list] = []
    for r in rows:
        key = (r.get("batch_size", 128), r.get("bf16", False), r.get("balanced", False))
        if phases and phases[-1][0] == key:
            phases[-1][2] = r["epoch"]
        else:
            phases.append([key, r["epoch"], r["epoch"]])
    hours = sum(r["seconds"] for r in rows) / 3600
    fids = ", ".join(f"{r['fid_1k']:.0f} at epoch {r['epoch']}" for r in rows if "fid_1k" in r)
    parts = [f"epochs {a}-{b} at batch {bs}{' with bf16 autocast' if bf else ' in fp32'}"
             f"{', groups balanced' if bal else ''}" for (bs, bf, bal), a, b in phases]
    return (f"{'; '.join(parts)} (smaller batches gave twice the updates per epoch, bf16 1.55x "
            f"faster steps); FID-1k during training: {fids}; {hours:.1f} h of training in all;")


def pool(G: Generator, clf: FaceAttributes, n: int = POOL, seed: int = 7):
    z = latents(n, torch.Generator().manual_seed(seed), G.config.nz)
    images = generate(G, z)
    return z, images, clf.probabilities(images)


def arithmetic_rates(G, clf, z, images, probs, triplets: int = TRIPLETS, seed: int = 0) -> dict:
    """For each preset: the share of triplets (three faces per group, averaged) whose result the
    classifier calls the target, in latent space and in pixel space; and the share of random
    samples that already are the target (the prior)."""
    names = clf.config.attributes
    rng = np.random.default_rng(seed)
    out = {}
    for title, preset in PRESETS.items():
        groups = [torch.where(matches(probs, names, spec))[0].numpy()
                  for spec in (preset.a, preset.b, preset.c)]
        sizes = [len(g) for g in groups]
        if min(sizes) < 3:
            out[title] = dict(group_sizes=sizes, skipped="a group has fewer than 3 faces")
            continue
        picks = [[rng.choice(g, 3, replace=False) for g in groups] for _ in range(triplets)]
        z_res = torch.stack([arithmetic(*(z[p] for p in pk)) for pk in picks])
        px_res = torch.stack([arithmetic(*(images[p] for p in pk)) for pk in picks]).clamp(-1, 1)
        latent_ok = hits(clf.probabilities(generate(G, z_res)), names, preset.target)
        pixel_ok = hits(clf.probabilities(px_res), names, preset.target)
        out[title] = dict(latent=latent_ok.float().mean().item(), pixel=pixel_ok.float().mean().item(),
                          prior=hits(probs, names, preset.target).float().mean().item(),
                          group_sizes=sizes, triplets=triplets)
    return out


def tab_rates(G, clf, seeds: int = TAB_SEEDS, fast: bool = True) -> tuple[dict, dict]:
    """The success rate of the tab's preset button: for seeds 0..seeds-1, the 256 faces of the
    seed, the three faces per group the classifier is surest of (``pick_groups``, as the tab),
    the latent and the pixel result classified.  Also returns the result images per preset
    (latent, pixel), for the realism comparison.  ``fast``: generated as the tab generates them
    (bf16 convolutions where the CPU has them), so the figures are the tab's own."""
    names = clf.config.attributes
    pools = [latents(TAB_POOL, generator(s), G.config.nz) for s in range(seeds)]
    images = [generate(G, z, fast=fast) for z in pools]
    probs = [clf.probabilities(x) for x in images]
    out, results = {}, {}
    for title, preset in PRESETS.items():
        z_res, px_res = [], []
        for z, x, p in zip(pools, images, probs):
            try:
                groups = pick_groups(p, names, preset)
            except LookupError:
                continue
            z_res.append(arithmetic(*(z[g] for g in groups)))
            px_res.append(arithmetic(*(x[g] for g in groups)).clamp(-1, 1))
        if not z_res:
            out[title] = dict(seeds=0)
            continue
        results[title] = generate(G, torch.stack(z_res), fast=fast), torch.stack(px_res)
        latent_ok = hits(clf.probabilities(results[title][0]), names, preset.target)
        pixel_ok = hits(clf.probabilities(results[title][1]), names, preset.target)
        out[title] = dict(latent=latent_ok.float().mean().item(),
                          pixel=pixel_ok.float().mean().item(), seeds=len(z_res))
    return out, results


def slider_rates(G, clf, dirs: dict, faces: int = SLIDER_FACES, shift: float = SLIDER_SHIFT,
                 seed: int = 11) -> dict:
    """How the tab's attribute sliders move faces: for each attribute, faces that lack it (by
    the classifier) are moved +shift along its direction, plainly and keeping the other
    attributes (``move_along`` with the face's reading); reported: the share that gain the
    attribute, and per other attribute the share whose reading stayed on the same side."""
    names = clf.config.attributes
    z = latents(8 * faces, torch.Generator().manual_seed(seed), G.config.nz)
    p = clf.probabilities(generate(G, z))
    out = {}
    rows = [(name, name, p[:, j] < 0.5) for j, name in enumerate(names) if name in dirs]
    if "Eyeglasses" in dirs and "Male" in names:   # the headline case: glasses for women
        rows.append(("Eyeglasses (women)", "Eyeglasses",
                     (p[:, names.index("Eyeglasses")] < 0.5) & (p[:, names.index("Male")] < 0.5)))
    for label, name, lacking in rows:
        j = names.index(name)
        idx = torch.where(lacking)[0][:faces]
        if len(idx) == 0:
            continue
        before = p[idx] > 0.5
        row = {"faces": len(idx)}
        for kind in ("plain", "kept"):
            moved = torch.stack([move_along(z[i], {name: shift}, dirs, keep=(
                sides(p[i], names) if kind == "kept" else None))[0] for i in idx])
            after = clf.probabilities(generate(G, moved)) > 0.5
            row[kind] = dict(gained=after[:, j].float().mean().item(),
                             others_kept={n: (after[:, k] == before[:, k]).float().mean().item()
                                          for k, n in enumerate(names) if k != j})
        out[label] = row
    return out


def figure_sliders(G, clf, dirs: dict, path: Path, seed: int = 11, per: int = 6) -> bool:
    """Three blocks (glasses, male, smiling +shift), each of women who lack the attribute: the
    face, the plain move, the move keeping the other attributes. False (nothing drawn) when
    the seed's faces hold no such women."""
    names = clf.config.attributes
    z = latents(TAB_POOL, generator(seed), G.config.nz)
    p = clf.probabilities(generate(G, z))
    woman = p[:, names.index("Male")] < 0.5
    blocks = []
    for attr in ("Eyeglasses", "Male", "Smiling"):
        idx = torch.where(woman & (p[:, names.index(attr)] < 0.5))[0][:per]
        if attr not in dirs or len(idx) < per:
            continue
        rows = []
        for i in idx:
            trio = torch.stack([z[i], move_along(z[i], {attr: SLIDER_SHIFT}, dirs)[0],
                                move_along(z[i], {attr: SLIDER_SHIFT}, dirs, keep=sides(p[i], names))[0]])
            rows.append(np.concatenate(list(to_uint8(generate(G, trio))), 1))
        blocks.append(np.concatenate(rows, 0))
    if not blocks:
        return False
    image = np.concatenate(blocks, 1)
    Image.fromarray(image).resize((image.shape[1] * 3 // 2, image.shape[0] * 3 // 2),
                                  Image.NEAREST).save(path)
    return True


def sliders_section(rates: dict, dirs: dict, figure: bool = True) -> str:
    """The card's section on the attribute sliders (between markers, so it can be rewritten)."""
    names = list(dirs)
    cos = {(a, b): float(dirs[a] @ dirs[b]) for a in names for b in names}
    pairs = sorted(((a, b) for i, a in enumerate(names) for b in names[i + 1:]),
                   key=lambda ab: -abs(cos[ab]))[:3]
    tangled = ", ".join(f"{a} / {b} {cos[(a, b)]:+.2f}" for a, b in pairs)
    attrs = [n for n in rates if n in dirs]
    rows = []
    for label, r in rates.items():
        own = label.split(" (")[0]
        for kind, move in (("plain", "plain"), ("kept", "keeping the others")):
            kept = " / ".join("-" if o == own else f"{r[kind]['others_kept'][o]:.0%}" for o in attrs)
            rows.append(f"| {label} | {move} | {r[kind]['gained']:.0%} | {kept} | {r['faces']} |")
    women = rates.get("Eyeglasses (women)")
    headline = "" if women is None else (
        f"Women given glasses: with the plain move {women['plain']['others_kept']['Male']:.0%} stay "
        f"women ({women['plain']['gained']:.0%} wear glasses); keeping the others, "
        f"{women['kept']['others_kept']['Male']:.0%} stay women ({women['kept']['gained']:.0%} wear "
        "glasses).")
    linked = ""
    if cos.get(("Eyeglasses", "Male"), 0.0) > 0.3:
        linked = ('This generator saw few women with glasses, and its glasses direction also '
                  'points towards\n"male". ')
    picture = "" if not figure else f"""
![sliders](sliders.png)

Women of the tab's seed 11, three blocks: glasses, male, smiling (+{SLIDER_SHIFT:g}); in each, the
face, the plain move, and the move keeping the other attributes.
"""
    return f"""{SLIDERS_BEGIN}
## Attribute sliders

The tab's sliders move a face along the attribute directions (mean *z* of faces the classifier
calls positive minus that of the negatives, unit length; `attribute_directions.safetensors`).
They are tangled; the largest cosines between them:
{tangled}.
{linked}**Keep the other attributes** (the tab's default) drops the part of a move that points
across another attribute the face has or lacks (`models.dcgan.move_along`).

Measured: for each attribute, up to {SLIDER_FACES} generated faces the classifier says lack it, moved
+{SLIDER_SHIFT:g} along its direction; *gained*: the share the classifier then calls positive;
then, for each other attribute, the share whose reading stayed on the same side of 50%
(a slider's own attribute is marked -). {headline}
{picture}
| slider | move | gained | kept: {' / '.join(attrs)} | faces |
|---|---|---|---|---|
{chr(10).join(rows)}
{SLIDERS_END}"""


def update_sliders(folder: Path) -> dict:
    """Measure the sliders and write (or rewrite) their section of an existing card."""
    folder = Path(folder)
    G = from_pretrained(Generator, folder)
    clf = from_pretrained(FaceAttributes, WEIGHTS_DIR / "face-attributes")
    dirs = load_directions(folder / DIRECTIONS)
    rates = slider_rates(G, clf, dirs)
    section = sliders_section(rates, dirs, figure_sliders(G, clf, dirs, folder / "sliders.png"))
    readme = (folder / "README.md").read_text()
    if SLIDERS_BEGIN in readme:
        head, rest = readme.split(SLIDERS_BEGIN, 1)
        readme = head + section + rest.split(SLIDERS_END, 1)[1]
    elif "## Samples and interpolation" in readme:
        readme = readme.replace("## Samples and interpolation", section + "\n\n## Samples and interpolation")
    else:
        readme = readme.rstrip("\n") + "\n\n" + section + "\n"
    (folder / "README.md").write_text(readme)
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["sliders"] = dict(shift=SLIDER_SHIFT, rates=rates)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    return rates


def figure_arithmetic(G, clf, z, images, probs, path: Path, title: str, seed: int = 3) -> None:
    """Rows: the three faces of A, B, C and their averages; the result with 8 neighbours; pixels."""
    names = clf.config.attributes
    preset = PRESETS[title]
    rng = np.random.default_rng(seed)
    groups = [rng.choice(torch.where(matches(probs, names, s))[0].numpy(), 3, replace=False)
              for s in (preset.a, preset.b, preset.c)]
    mean_faces = generate(G, torch.stack([z[g].mean(0) for g in groups]))
    row1 = [images[i] for g in groups for i in g]
    res = arithmetic(*(z[g] for g in groups))
    around = generate(G, torch.cat([res[None], neighbours(res, 8, 0.25, torch.Generator().manual_seed(1))]))
    pixel = arithmetic(*(images[g] for g in groups)).clamp(-1, 1)
    blank = torch.ones_like(pixel)
    tiles = torch.stack(row1 + list(mean_faces) + [pixel] + [blank] * 5 + list(around))
    grid_image(to_uint8(tiles), cols=9).resize((9 * 96, 3 * 96), Image.NEAREST).save(path)


def write_card(folder: Path) -> None:
    folder = Path(folder)
    G = from_pretrained(Generator, folder)
    clf = from_pretrained(FaceAttributes, WEIGHTS_DIR / "face-attributes")
    z, images, probs = pool(G, clf)
    names = clf.config.attributes
    dirs = attribute_directions(z, probs, names)
    save_file({k: v.contiguous() for k, v in dirs.items()}, str(folder / DIRECTIONS))
    sliders = slider_rates(G, clf, dirs)
    drawn = figure_sliders(G, clf, dirs, folder / "sliders.png")
    rates = arithmetic_rates(G, clf, z, images, probs)
    tab, results = tab_rates(G, clf)
    # FID: 2,000 generated vs 2,000 real faces; and 2,000 other real faces vs the same (the floor)
    RUN.mkdir(parents=True, exist_ok=True)
    real = real_features(RUN, 2000)
    fake = inception_features(to_uint8(images[:2000]))
    fid = frechet_distance(*statistics(fake), *statistics(real))
    floor_path = RUN / "fid_real_other_2000.npy"
    if floor_path.exists():
        other = np.load(floor_path)
    else:
        from .data import load_celeba
        faces = load_celeba()["images"]
        used = set(np.linspace(0, len(faces) - 1, 2000).astype(int).tolist())
        rest = np.array([i for i in range(len(faces)) if i not in used])[::2][:2000]
        other = inception_features(faces[rest])
        np.save(floor_path, other)
    floor = frechet_distance(*statistics(other), *statistics(real))
    # realism of the results: FID of the headline preset's 200 latent and 200 pixel results
    # against the real faces (small samples inflate FID; compare the two with each other)
    headline = next(iter(PRESETS))
    realism = {}
    if headline in results:
        realism = {kind: frechet_distance(*statistics(inception_features(to_uint8(x))), *statistics(real))
                   for kind, x in zip(("latent", "pixel"), results[headline])}
        realism["random_samples"] = frechet_distance(
            *statistics(fake[:len(results[headline][0])]), *statistics(real))
    attr_share = {n: float((probs[:, j] > 0.5).float().mean()) for j, n in enumerate(names)}
    metrics = dict(fid_2k=fid, fid_2k_real_vs_real=floor, arithmetic_tab_picks=tab,
                   result_fid=realism, arithmetic=rates,
                   generated_attribute_share=attr_share, pool=POOL,
                   sliders=dict(shift=SLIDER_SHIFT, rates=sliders))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    grid_image(to_uint8(images[:64])).resize((8 * 96, 8 * 96), Image.NEAREST).save(folder / "samples.png")
    for i, title in enumerate(list(PRESETS)[:2]):
        figure_arithmetic(G, clf, z, images, probs, folder / f"arithmetic_{i + 1}.png", title)
    ends = z[:4]
    strip = torch.cat([slerp(ends[0], ends[1], torch.linspace(0, 1, 8)),
                       slerp(ends[2], ends[3], torch.linspace(0, 1, 8))])
    grid_image(to_uint8(generate(G, strip))).resize((8 * 96, 2 * 96), Image.NEAREST).save(
        folder / "interpolation.png")
    cfg = json.loads((folder / "config.json").read_text())
    tr = cfg.get("training", {})
    schedule = training_schedule(Path(tr.get("run", RUN)) / "log.jsonl", tr.get("epoch"))
    params = sum(p.numel() for p in G.parameters())
    realism_text = ""
    if realism:
        n = tab[headline]["seeds"]
        realism_text = f"""
**Are the results faces?** The classifier looks for a smile and for a man, and a double exposure
can show both, so it often accepts pixel arithmetic (see the ghostly pixel results in the figure
below). FID against the real faces tells them apart: for the "{headline}" results of the
{n} seeds, latent arithmetic **{realism['latent']:.0f}**, pixel arithmetic **{realism['pixel']:.0f}**,
and {n} random generated faces {realism['random_samples']:.0f} (FID from {n} samples is inflated;
compare the three with each other, not with the FID above).
"""
    balance_note = ""
    if tr.get("balanced"):
        log = [json.loads(line) for line in (Path(tr["run"]) / "log.jsonl").read_text().splitlines()]
        first = min(r["epoch"] for r in log if r.get("balanced"))
        balance_note = f"""
  From epoch {first} on, faces are drawn so that the four groups smiling/neutral x man/woman are
  equally likely, and faces with eyeglasses 3x likelier within their group (`--balance`): the
  6,000 faces hold 538 smiling men against 2,173 smiling women and 53 women with glasses, and a
  generator that has seen few smiling men has little room for the arithmetic to land in."""
    rows = "\n".join(
        f"| {t} | **{r['latent']:.0%}** | {r['pixel']:.0%} | {r['prior']:.0%} | "
        f"{' / '.join(map(str, r['group_sizes']))} |" if "latent" in r else
        f"| {t} | - | - | - | {' / '.join(map(str, r['group_sizes']))} (too few) |"
        for t, r in rates.items())
    tab_rows = "\n".join(
        f"| {t} | **{r['latent']:.0%}** | {r['pixel']:.0%} | {rates[t].get('prior', 0):.0%} | {r['seeds']} |"
        if "latent" in r else f"| {t} | - | - | - | 0 |" for t, r in tab.items())
    (folder / "README.md").write_text(f"""---
license: other
tags: [dcgan, gan, faces, pytorch, generative-deep-learning-studio]
---
# DCGAN, 64x64 faces (CelebA)

The generator of a DCGAN (Radford et al., 2015) trained by the Generative Deep Learning Studio for
its Face arithmetic tab.

* **Architecture** (the paper's): z of {cfg['nz']} -> transposed convolutions
  {cfg['ngf'] * 8}-{cfg['ngf'] * 4}-{cfg['ngf'] * 2}-{cfg['ngf']}-3 channels, batch norm, ReLU, tanh;
  discriminator of strided convolutions with LeakyReLU 0.2 (not shipped). {params / 1e6:.2f} M
  generator parameters, stored in fp16.
* **Data**: the 6,000 aligned CelebA faces (centre 140 px of the aligned image at 64x64), mirrored
  at random. LFW (13,233 faces) was looked at and left out: its crop is tighter (the mean LFW
  face has its eyes at 39% of the height and 24 px from eyes to mouth; CelebA's at 51% and 18.5 px),
  so mixing the two would teach the generator two framings, and matching them would mean
  upsampling CelebA's faces 1.3x.{balance_note}
* **Training**: Adam 2e-4, beta1 0.5, the non-saturating GAN loss; {schedule}
  {tr.get('epoch')} epochs ({tr.get('images_seen', 0):,} images seen) on this 2-core CPU (no GPU
  was lent); the generator with the best FID-1k (measured every 5 epochs) is kept.
  Command: `{tr.get('command')}` (rerun to resume).

## Quality

| measure | value |
|---|---|
| FID, 2,000 generated vs 2,000 real faces (Inception-v3 pool features, the FID network) | **{fid:.1f}** |
| the same for 2,000 *other real* faces vs those 2,000 (the floor at this sample size) | {floor:.1f} |

FID from 2,000 samples is biased upwards compared with the usual 50,000; compare it with the
real-vs-real floor above, not with published 50k figures.

## Latent arithmetic (measured with the face-attribute classifier)

**As the tab does it.** For each of the seeds 0-{TAB_SEEDS - 1}, the tab's preset button takes
the seed's {TAB_POOL} generated faces and, per group, the three faces the classifier is surest of;
the result mean(A) - mean(B) + mean(C) is generated (latent) or computed on the images (pixel) and
classified; a success is a result the classifier calls the target (both attributes on the right
side of 50%). *Prior*: the share of random generated faces that already are the target.

| preset | latent arithmetic | pixel arithmetic | prior | seeds |
|---|---|---|---|---|
{tab_rows}
{realism_text}
**Random triplets.** {POOL:,} generated faces are classified; groups are faces the classifier is at least 80% sure
of. For each preset, {TRIPLETS} random triplets (three faces per group, averaged as in the paper)
are combined as mean(A) - mean(B) + mean(C), in latent space (then generated) and, for contrast,
on pixels; a success is a result the classifier calls the target. *Prior* is the share of random
generated faces that already are the target.

| preset | latent arithmetic | pixel arithmetic | prior | group sizes A / B / C |
|---|---|---|---|---|
{rows}

![arithmetic](arithmetic_1.png)
![glasses](arithmetic_2.png)

Rows: the three faces of A, B and C; the faces generated from the three mean vectors, then the
pixel result; the latent result followed by eight neighbours (noise 0.25).

{sliders_section(sliders, dirs, drawn)}

## Samples and interpolation

![samples](samples.png)
![interpolation](interpolation.png)

Licence: CelebA is for non-commercial research use; so are these weights.
""")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sliders", metavar="FOLDER", required=True,
                        help="rewrite only the attribute sliders' section of this card")
    print(json.dumps(update_sliders(Path(parser.parse_args().sliders)), indent=2))
