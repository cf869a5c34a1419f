"""Reproduce the lecture: its two stages, its hyper-parameters, its images, its loss table.

Writes into --out: each stage's image, losses.md (our weighted losses beside the lecture's,
with the ratio) and, per stage, a side-by-side PNG of content, style, the lecture's result and
ours. The side-by-side PNGs hold the lecture's images: keep them out of the repository.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from neural_style import LECTURE_STAGES, Settings, transfer
from neural_style.config import parse_size
from neural_style.images import load_image, save_image
from neural_style.lecture_data import LECTURE_IMAGES, LECTURE_LOSSES, LECTURE_RESULTS, SHARED_LECTURE


def side_by_side(panels: list[tuple[str, np.ndarray]], height: int) -> Image.Image:
    """Panels scaled to one height, left to right, each with its title."""
    scaled = [(title, Image.fromarray(img).resize((round(img.shape[1] * height / img.shape[0]), height),
                                                  Image.BILINEAR)) for title, img in panels]
    canvas = Image.new("RGB", (sum(im.width for _, im in scaled) + 10 * (len(scaled) - 1), height + 20), "white")
    x = 0
    draw = ImageDraw.Draw(canvas)
    for title, im in scaled:
        canvas.paste(im, (x, 20))
        draw.text((x + 4, 4), title, fill="black")
        x += im.width + 10
    return canvas


def loss_table(history: list[dict], stage: int, note: str) -> str:
    rows = [f"### Stage {stage + 1}{note}", "",
            "| epoch | content (lecture, ratio) | style (lecture, ratio) | TV (lecture, ratio) |",
            "|---|---|---|---|"]
    ours = {h["epoch"]: h for h in history if h["stage"] == stage and "total" in h}
    for epoch, lecture in LECTURE_LOSSES[stage].items():
        if epoch in ours:
            cells = [f"{ours[epoch][k]:.2f} ({v:.2f}, {ours[epoch][k] / v:.2f})"
                     for k, v in zip(("content", "style", "tv"), lecture)]
            rows.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["1", "both"], default="both", help="run stage 1 only, or both (default)")
    parser.add_argument("--stage2-size", type=parse_size, default=LECTURE_STAGES[1].image_shape, metavar="WxH",
                        help="stage 2 size (the lecture: 1200x800; smaller fits a CPU budget)")
    parser.add_argument("--out", type=Path, default=Path("out/reproduction"), help="output folder")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    content, style = (SHARED_LECTURE / name for name, _, _ in LECTURE_IMAGES.values())
    if not (content.is_file() and style.is_file()):
        sys.exit(f"the lecture's images are not in {SHARED_LECTURE}; put rainier.jpg and autumn_oak.jpg there")
    stages = [LECTURE_STAGES[0]]
    if args.stage == "both":
        stages.append(replace(LECTURE_STAGES[1], width=args.stage2_size[0], height=args.stage2_size[1]))
    settings = Settings(stages=tuple(stages), device=args.device)

    def progress(p) -> None:
        if p.losses:
            print(f"stage {p.stage + 1} epoch {p.epoch:4d}  " + "  ".join(f"{k} {v:.2f}" for k, v in p.losses.items())
                  + f"  {p.elapsed / (p.epoch + 1):.2f} s/epoch", flush=True)
        elif p.event:
            print(f"stage {p.stage + 1}: {p.event}", flush=True)

    start = time.perf_counter()
    result = transfer(content, style, settings, progress)
    print(f"total {time.perf_counter() - start:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    tables = []
    content_img, style_img = load_image(content), load_image(style)
    for s, (stage, image, seconds) in enumerate(zip(stages, result.stage_images, result.stage_seconds)):
        name = f"stage{s + 1}_{stage.width}x{stage.height}"
        save_image(image, args.out / f"{name}.png")
        epochs = stage.epochs
        note = (f": {stage.width}x{stage.height}, {stage.optimizer} lr {stage.lr:g}, {epochs} epochs, "
                f"{seconds:.0f} s ({seconds / epochs:.2f} s/epoch)")
        if (stage.width, stage.height) != LECTURE_STAGES[s].image_shape:
            note += f" (the lecture: {LECTURE_STAGES[s].width}x{LECTURE_STAGES[s].height}; losses depend on size)"
        tables.append(loss_table(result.history, s, note))
        panels = [("content", content_img), ("style", style_img)]
        lecture_result = SHARED_LECTURE / LECTURE_RESULTS[s]
        if lecture_result.is_file():
            panels.append(("lecture", load_image(lecture_result)))
        panels.append(("neural-style", (image * 255 + 0.5).astype(np.uint8)))
        side_by_side(panels, height=min(400, stage.height)).save(args.out / f"compare_{name}.png")
    (args.out / "losses.md").write_text("\n".join(tables))
    print("\n".join(tables))
    print(f"wrote {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
