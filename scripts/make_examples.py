"""Make the README's example images of the controls (docs/examples/*.png).

Every example is a command line of the CLI, run here through the Python API (the same Settings,
so `python -m neural_style ...` with the printed options makes the same image), on pictures that
ship inside scikit-image: no download. They are small (150x100, 60 epochs) with a stronger
style weight and Adam than the lecture, so the effect of each control shows in a few minutes on
two CPU cores. Each PNG carries its settings: `python -m neural_style info docs/examples/X.png`.

    python scripts/make_examples.py            # all of them, into docs/examples/
    python scripts/make_examples.py blend      # just some
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neural_style import stylize  # noqa: E402
from neural_style.cli import build_parser  # noqa: E402
from neural_style.images import read_source  # noqa: E402
from neural_style.options import settings_from_args  # noqa: E402
from neural_style.images import save_image  # noqa: E402

CAT, IHC, COFFEE = "skimage:chelsea", "skimage:immunohistochemistry", "skimage:coffee"
# Options every example shares; an example's own options replace these where they name the same flag.
BASE = ["--size", "150x100", "--epochs", "60", "--optimizer", "adam", "--lr", "0.05", "--style-weight", "1e4"]
SNAPSHOT_EVERY = 10

# name: (content, styles, options)
EXAMPLES = {
    "baseline": (CAT, [IHC], ["--save-every", str(SNAPSHOT_EVERY)]),
    "coffee": (CAT, [COFFEE], []),
    "blend": (CAT, [IHC, COFFEE], ["--style-blend", "0.5", "0.5"]),
    "style_scale_0.5": (CAT, [IHC], ["--style-scale", "0.5"]),
    "style_scale_2": (CAT, [IHC], ["--style-scale", "2"]),
    "luminance": (CAT, [COFFEE], ["--preserve-colors", "luminance"]),
    "histogram": (CAT, [COFFEE], ["--preserve-colors", "histogram"]),
    "init_random": (CAT, [IHC], ["--init", "random", "--seed", "1"]),
    "layers": (CAT, [IHC], ["--content-layers", "relu4_2", "--style-layers", "relu1_1", "relu2_1", "relu3_1",
                            "--style-layer-weights", "1", "1", "2"]),
    "long_side": ("skimage:astronaut", [IHC], ["--size", "120"]),
}


def merge(base: list[str], extra: list[str]) -> list[str]:
    """base with extra's flags appended, a flag in both taking extra's values."""
    def groups(argv):
        out, current = [], None
        for a in argv:
            if a.startswith("--"):
                current = [a]
                out.append(current)
            else:
                current.append(a)
        return out

    extra_groups = groups(extra)
    named = {g[0] for g in extra_groups}
    return [a for g in groups(base) if g[0] not in named for a in g] + [a for g in extra_groups for a in g]


def command(content: str, styles: list[str], options: list[str]) -> list[str]:
    inputs = [content, styles[0]] if len(styles) == 1 else [content, "--style", *styles]
    return [*inputs, *options]


def montage(paths: list[Path], out: Path) -> None:
    images = [Image.open(p).convert("RGB") for p in paths]
    w, h = images[0].size
    sheet = Image.new("RGB", (w * len(images), h), "white")
    for i, im in enumerate(images):
        sheet.paste(im, (i * w, 0))
    save_image(sheet, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="examples to make (default: all): " + ", ".join(EXAMPLES))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "examples")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in EXAMPLES]
    if unknown:
        parser.error(f"unknown examples {', '.join(unknown)}; choose from {', '.join(EXAMPLES)}")
    cli = build_parser()
    total = time.perf_counter()
    for name in args.names or EXAMPLES:
        content, styles, extra = EXAMPLES[name]
        argv = command(content, styles, merge(BASE, extra))
        settings = settings_from_args(cli.parse_args(argv))
        out = args.out / f"{name}.png"
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            # stylize() writes the image with its settings; the inputs are named as on the command line.
            work = Path(tmp) / f"{name}.png"
            img = stylize(read_source(content), [read_source(s) for s in styles], settings=settings, output=work)
            meta = {k: v for k, v in img.info.items() if k.startswith("neural-style:") or k == "Software"}
            meta["neural-style:content"] = content
            meta["neural-style:style"] = json.dumps(styles)
            save_image(img, out, metadata=meta)
            snapshots = sorted(Path(tmp).glob(f"{name}_s1_e*.png"))
            if snapshots:
                montage(snapshots, args.out / f"{name}_snapshots.png")
        print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} in {time.perf_counter() - start:.0f} s:"
              f"\n  python -m neural_style {shlex.join(argv)}", flush=True)
    print(f"all in {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
