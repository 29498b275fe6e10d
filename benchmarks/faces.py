"""Face arithmetic: a 64-face gallery, the arithmetic view and an attribute edit must feel
instant (goal: under 100 ms for 64 faces on this CPU)."""
from __future__ import annotations

import torch

from benchmarks import Row, best_of, row
from models.faces import (DCGANConfig, FaceAttributes, Generator, arithmetic, generate, latents,
                          load_directions, move_along, neighbours, sides)
from models.hub import WEIGHTS_DIR, from_pretrained
from models.runtime import bf16_cpu


def run() -> list[Row]:
    folder = WEIGHTS_DIR / "dcgan-faces"
    shipped = (folder / "README.md").is_file()
    G = from_pretrained(Generator, folder) if shipped else Generator(DCGANConfig()).eval()
    note = "shipped weights" if shipped else "random weights of the shipped size"
    z = latents(64, torch.Generator().manual_seed(0))
    gallery = best_of(lambda: generate(G, z), repeats=7)
    G_cl = G.to(memory_format=torch.channels_last)
    gallery_cl = best_of(lambda: generate(G_cl, z), repeats=7)
    gallery_fast = best_of(lambda: generate(G_cl, z, fast=True), repeats=7)
    err = (generate(G_cl, z, fast=True) - generate(G, z)).abs().max().item() * 127.5

    def view():
        groups = [z[0:3], z[3:6], z[6:9]]
        result = arithmetic(*groups)
        around = neighbours(result, 8, 0.25, torch.Generator().manual_seed(1))
        members = generate(G_cl, torch.cat(groups), fast=True)
        faces = generate(G_cl, torch.cat([result[None], around]), fast=True)
        pixels = arithmetic(members[:3], members[3:6], members[6:9])
        return faces, pixels

    arith = best_of(view, repeats=7)
    precision = "bf16" if bf16_cpu() else "fp32 (bf16 is not native here)"
    rows = []
    classifier, directions = WEIGHTS_DIR / "face-attributes", folder / "attribute_directions.safetensors"
    if shipped and (classifier / "README.md").is_file() and directions.is_file():
        clf = from_pretrained(FaceAttributes, classifier)
        dirs = load_directions(directions)
        names = clf.config.attributes

        def edit(keep: bool):   # as the tab: the face, its reading, the move, the edited face read
            before = generate(G_cl, z[:1], fast=True)
            now = sides(clf.probabilities(before)[0], names) if keep else None
            moved, _ = move_along(z[0], {"Eyeglasses": 6.0}, dirs, keep=now)
            return clf.probabilities(generate(G_cl, moved[None], fast=True))

        kept, plain = best_of(lambda: edit(True), repeats=7), best_of(lambda: edit(False), repeats=7)
        rows.append(row("faces", "attribute edit: glasses +6 keeping the other attributes, both faces "
                     "generated and read", f"{kept * 1000:.0f} ms",
                     f"the plain move: {plain * 1000:.0f} ms (one classifier pass less)"))
    return [
        row("faces", f"64-face gallery, one batched generator call, as the tab runs it ({note})",
         f"{gallery_fast * 1000:.0f} ms", f"{precision} convolutions, channels-last (max pixel "
         f"change {err:.1f} levels); fp32: {gallery * 1000:.0f} ms, fp32 channels-last: "
         f"{gallery_cl * 1000:.0f} ms; goal under 100 ms"),
        row("faces", "arithmetic view: 9 group faces + result + 8 neighbours + pixel sum",
         f"{arith * 1000:.0f} ms", f"{G.config.ngf}-wide generator, "
         f"{sum(p.numel() for p in G.parameters()) / 1e6:.1f} M parameters"),
    ] + rows
