"""Command line: ``python -m neural_style CONTENT STYLE -o OUT`` (or ``neural-style``)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from .config import Settings
from .layers import layer_name
from .options import add_settings_arguments, presets_help, settings_from_args, settings_to_argv
from .signals import SignalHandlers
from .version import __version__

if TYPE_CHECKING:
    from .train import Hook

DESCRIPTION = """\
Neural style transfer (Gatys et al.) as in the d2l.ai / STAT 157 lecture: the generated image is
optimised so that its VGG19 features match the content image's (conv4_4) and its Gram matrices
match the style image's (conv1_1 .. conv5_1), small to large.

With no images (or `demo`) it stylises scikit-image's `chelsea` with Van Gogh's Starry Night (the
copy inside this package, package:starry_night) by the photo preset at a long side of 256 px, in
about two minutes on two CPU cores.

Per-stage options (--size, --epochs, --lr, --lr-decay-epoch, --lr-decay, --optimizer) take one
value per stage, or one value for all stages. The defaults are the lecture's two stages:
300x200 (SGD lr 5, 500 epochs, x0.1 every 200) then 1200x800 (SGD lr 1, 300 epochs, x0.1 every 100).

--preset photo starts every option from values for any photo and painting instead (L-BFGS, a
strong style, coarse to fine up to --size N, the final long side); options given override a
preset's values. The presets are listed at the end.

Beyond the lecture: several styles (--style a.jpg b.jpg --style-blend 0.7 0.3), --style-scale,
--preserve-colors, --init and --seed, --content-layers/--style-layers by index or VGG name,
sizes by long side or `original`, --save-every snapshots with --resume, and the settings inside
the output image: `neural-style info OUT.png` prints them and the command that repeats the run.
"""


DEMO_CONTENT, DEMO_STYLE = "skimage:chelsea", "package:starry_night"
# The demo's defaults, which its options override: the photo preset, small enough for two minutes.
DEMO_DEFAULTS = {"preset": "photo", "size": [256]}


def build_parser() -> argparse.ArgumentParser:
    """The command's parser: the images and the output, then every setting's option (options.py)."""
    p = argparse.ArgumentParser(prog="neural-style", description=DESCRIPTION, epilog=presets_help(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="CONTENT STYLE",
                   help="content image and style image (any common format, skimage:NAME for an image "
                        "inside scikit-image, e.g. skimage:coffee, or package:starry_night for the painting "
                        "inside this package); none, or `demo`, runs the demo. "
                        "`neural-style info IMAGE` prints the settings a result was made with; "
                        "`neural-style doctor` what this machine offers (CPU, MXNet, weights, GPU)")
    p.add_argument("-o", "--output", type=Path,
                   help="output image, .png or .jpg (default: CONTENT_STYLE.png, or out/demo.png for the demo); "
                        "a loss plot (_loss.png) and a JSON log (.json) are written beside it")
    groups = add_settings_arguments(p)
    groups["style"].add_argument("--style", nargs="+", metavar="IMAGE",
                                 help="one or more style images (instead of the positional STYLE)")
    r = groups["run"]
    r.add_argument("--resume", nargs="?", const=True, metavar="CKPT",
                   help="continue an interrupted run from its checkpoint (default: OUT.ckpt); give the "
                        "same images and options: the result is the one the run would have given")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--overwrite", action="store_true",
                   help="allow the output to replace one of the input images (refused otherwise)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


class ProgressBar:
    """tqdm over all epochs of all stages, showing the latest losses."""

    def __init__(self, settings: Settings, enabled: bool, initial: int = 0) -> None:
        from tqdm import tqdm

        self.settings, self.partial = settings, 0.0  # partial: the share of the current epoch shown
        self.bar = tqdm(total=sum(s.epochs for s in settings.stages), initial=initial, disable=not enabled,
                        unit="epoch", dynamic_ncols=True)

    def __call__(self, p) -> None:
        self.bar.set_description(f"stage {p.stage + 1}/{p.stages} {p.size[0]}x{p.size[1]}", refresh=False)
        if p.losses is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in p.losses.items()}, refresh=False)
        if p.event is not None:  # a recovery from divergence: say so even with --quiet
            self.bar.write(f"neural-style: warning: {p.event}", file=sys.stderr)
        self.bar.update(1 - self.partial)
        self.partial = 0.0

    def tile(self, done: int, total: int) -> None:
        """Within a tiled epoch: move by the share of its tiles done since the last call."""
        self.bar.update(done / total - self.partial)
        self.partial = done / total

    def close(self) -> None:
        self.bar.close()


class Signals(SignalHandlers):
    """SIGINT and SIGTERM during a run: the first asks training to stop after the current epoch
    or tile (the latest image and the log are then saved); a second one quits at once without saving.
    While files are being written, signals only wait their turn, so no write is cut short.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()
        self.signum: Optional[int] = None
        self.saving = False

    def handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
            self.stop.set()
            if not self.saving:
                print(f"\nneural-style: {signal.Signals(signum).name} received; stopping after this epoch (in a "
                      "tiled stage, after this tile) and saving the latest image (send it again to quit without "
                      "saving)", file=sys.stderr, flush=True)
        elif not self.saving:
            raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


def error(message: object) -> int:
    """Print one line (an MXNet error without the C++ traceback MXNet puts in its text); exit status 2."""
    text = str(message)
    if "MXNetError:" in text:
        text = text.rsplit("MXNetError:", 1)[1].strip()
    print(f"neural-style: error: {text}", file=sys.stderr)
    return 2


def parse_run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """A run's arguments (build_parser's), the demo's defaults (DEMO_DEFAULTS) under its options
    when it runs the demo or stylises the demo's content; exits with a usage error when the
    images do not add up."""
    args = parser.parse_args(argv)
    images = list(args.images)
    demo = images in ([], ["demo"]) and not args.style
    if args.style and len(images) != 1:
        parser.error("give a CONTENT and a STYLE image: CONTENT --style STYLE [STYLE ...]")
    if not demo and not args.style and len(images) != 2:
        parser.error("give a CONTENT and a STYLE image, or none for the demo")
    if images[:1] in ([], ["demo"]):
        parser.set_defaults(**DEMO_DEFAULTS)
        args = parser.parse_args(argv)
    return args


def main(argv: Optional[Sequence[str]] = None, hooks: Sequence[Hook] = ()) -> int:
    """The command line; ``hooks`` are attached to the training loop (transfer(hooks=...))."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["info"]:
        return info_main(argv[1:])
    if argv[:1] == ["doctor"]:
        from .doctor import main as doctor_main

        return doctor_main(argv[1:])
    if argv[:1] == ["batch"]:
        from .jobs import batch_main

        return batch_main(argv[1:])
    parser = build_parser()
    args = parse_run(parser, argv)
    images = list(args.images)
    demo = images in ([], ["demo"]) and not args.style
    try:
        settings = settings_from_args(args)
    except ValueError as e:
        parser.error(str(e))
    from .images import source_stem

    if demo:
        names = (DEMO_CONTENT, DEMO_STYLE)
        output = args.output or Path("out/demo.png")
    else:
        names = (DEMO_CONTENT if images[0] == "demo" else images[0], *(args.style or images[1:]))
        output = args.output or Path(f"{source_stem(names[0])}_{'+'.join(map(source_stem, names[1:]))}.png")
    if settings.style_blend is not None and len(settings.style_blend) != len(names) - 1:
        parser.error(f"--style-blend has {len(settings.style_blend)} weights for {len(names) - 1} style images")
    return run(names, output, settings, args, hooks)


def run(names: Sequence[str], output: Path, settings: Settings, args: argparse.Namespace,
        hooks: Sequence[Hook] = ()) -> int:
    """One run from the command line: every cheap check before VGG loads, the transfer under the
    signal handlers, then the result written whatever happened, and one line that says so."""
    from .checkpoint import load_checkpoint
    from .errors import DivergedError, Interrupted, OutOfMemory
    from .hooks import OnTile
    from .images import is_named, read_image, read_source
    from .metadata import image_metadata
    from .outputs import check_outputs, output_paths, write_result
    from .report import load_plotting
    from .schedule import checkpoint_path, get_context, transfer
    from .weights import WeightsError

    roles = ("content image", *["style image"] * (len(names) - 1))
    try:
        get_context(settings.device)
        content, *styles = (read_source(name, settings.max_pixels, role) for name, role in zip(names, roles))
        if settings.init not in ("content", "random"):
            read_image(settings.init, settings.max_pixels, "initial image")
        check_outputs(output_paths(output), [n for n in names if not is_named(n)], args.overwrite)
    except (ValueError, OSError, RuntimeError) as e:
        return error(e)
    smallest = settings.smallest_side(tuple(settings.content_layers) + tuple(settings.style_layers))
    for role, name, img in zip(roles, names, (content, *styles)):
        if min(img.shape[:2]) < smallest:
            print(f"neural-style: warning: {role} {name} is only {img.shape[1]}x{img.shape[0]} px, less than "
                  f"the {smallest} px per side the network resolves; it is upscaled to each stage's size, "
                  "so expect a blurry result", file=sys.stderr)
    resume, done = None, 0
    if args.resume is not None:
        path = checkpoint_path(output) if args.resume is True else Path(args.resume)
        try:
            resume = load_checkpoint(path)
        except (OSError, ValueError) as e:
            return error(f"cannot resume from {path}: {e}")
        done = sum(s.epochs for s in settings.stages[:resume.stage]) + resume.epoch

    log = {"version": __version__, "content": names[0], "style": names[1] if len(names) == 2 else list(names[1:]),
           "output": str(output), "settings": settings.to_dict()}
    bar = ProgressBar(settings, enabled=not args.quiet, initial=done)
    load_plotting()  # now: the loss plot is also written after running out of memory
    start = time.perf_counter()
    with Signals() as signals:
        try:
            result = transfer(content, styles, settings, bar, stop=signals.stop, resume=resume, save_to=output,
                              hooks=[OnTile(bar.tile), *hooks])
            failure, log["status"] = None, "completed"
        except (Interrupted, DivergedError, OutOfMemory) as e:
            result, failure = e.result, e
            log["status"] = {Interrupted: "interrupted", DivergedError: "diverged"}.get(type(e), "out of memory")
            log["stopped_at"] = {"stage": e.stage, "epoch": e.epoch}
            if isinstance(e, Interrupted):
                log["signal"] = signal.Signals(signals.signum).name if signals.signum else None
            else:
                log["error"] = str(e)
        except KeyboardInterrupt:  # the second signal: quit without saving
            bar.close()
            print("neural-style: quit without saving", file=sys.stderr)
            return signals.exit_code if signals.signum else 130
        except (WeightsError, OSError, ValueError, RuntimeError) as e:
            bar.close()
            return error(e)
        bar.close()
        signals.saving = True
        saved = None
        if result is not None:
            log.update(settings=result.settings.to_dict(), seconds=time.perf_counter() - start,
                       stage_seconds=result.stage_seconds, history=result.history)
            finished = failure is None and (settings.save_every or resume is not None)
            try:
                written = write_result(result.image, output, image_metadata(result.settings, names[0], names[1:]),
                                       log, result.history, checkpoint_path(output) if finished else None)
            except (OSError, ValueError) as e:
                return error(f"could not save the result: {e}")
            saved = (f"{written[0]} ({result.image.shape[1]}x{result.image.shape[0]}), "
                     f"{' and '.join(str(p) for p in written[1:])}")
    if isinstance(failure, Interrupted) or signals.signum is not None:
        name = signal.Signals(signals.signum).name if signals.signum else "an interrupt"
        where = f"saved the latest image: {saved}" if saved else "there was no image to save yet"
        when = ("as the run finished" if failure is None else
                f"at stage {failure.stage + 1}/{len(settings.stages)}, epoch {failure.epoch}")
        again = ""
        if failure is not None and failure.checkpoint is not None:
            again = f"; to continue, run the same command with --resume (checkpoint {failure.checkpoint})"
        print(f"neural-style: interrupted by {name} {when}; {where}{again}", file=sys.stderr)
        return signals.exit_code if signals.signum else 130
    if failure is not None:
        where = f"; saved the last good image: {saved}" if saved else ""
        return error(f"{failure}{where}")
    print(f"wrote {saved} in {log['seconds']:.0f} s")
    return 0


def info_main(argv: Sequence[str]) -> int:
    """``neural-style info IMAGE``: the version, inputs and settings a result was made with, and a
    command that makes it again."""
    import json
    import shlex

    from .metadata import PREFIX, read_metadata, styles_of

    p = argparse.ArgumentParser(prog="neural-style info",
                                description="Print the settings and package version stored in a neural-style "
                                            "output (PNG text chunks or JPEG comment), and the command that "
                                            "repeats the run.")
    p.add_argument("image", type=Path, help="a PNG or JPEG written by neural-style")
    p.add_argument("--json", action="store_true", help="print the stored keys as JSON")
    args = p.parse_args(argv)
    try:
        meta = read_metadata(args.image)
    except OSError as e:
        print(f"neural-style info: error: cannot read {args.image}: {e}", file=sys.stderr)
        return 2
    if PREFIX + "settings" not in meta:
        print(f"neural-style info: error: {args.image} carries no neural-style settings", file=sys.stderr)
        return 2
    if args.json:
        out = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in meta.items()}
        out["settings"] = json.loads(out["settings"])
        if "style" in out:
            out["style"] = json.loads(out["style"])
        print(json.dumps(out, indent=2))
        return 0
    settings_dict = json.loads(meta[PREFIX + "settings"])
    settings = Settings.from_dict(settings_dict)
    content, styles = meta.get(PREFIX + "content"), styles_of(meta)
    print(f"{args.image}: made by neural-style {meta.get(PREFIX + 'version', '?')}")
    if content is not None:
        print(f"content: {content}")
        print(f"style: {', '.join(styles)}")
    if PREFIX + "epoch" in meta:
        print(f"snapshot after epoch {meta[PREFIX + 'epoch']} of stage {meta.get(PREFIX + 'stage', '?')}")
    print("settings:")
    for key, value in settings_dict.items():
        if key == "stages":
            for i, st in enumerate(settings.stages, start=1):
                print(f"  stage {i}: {st.size_text()}, {st.optimizer} lr {st.lr:g}, {st.epochs} epochs, "
                      f"lr x{st.lr_decay:g} every {st.lr_decay_epoch}")
        elif key in ("content_layers", "style_layers"):
            print(f"  {key}: " + ", ".join(f"{i} ({layer_name(i)})" for i in value))
        else:
            print(f"  {key}: {value}")
    if content is None:
        content, styles = "CONTENT", ["STYLE"]
    inputs = [content, styles[0]] if len(styles) == 1 else [content, "--style", *styles]
    print("command:")
    print("  " + shlex.join(["python", "-m", "neural_style", *inputs, *settings_to_argv(settings)]))
    return 0
