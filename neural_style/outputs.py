"""Where a run writes, checked before it starts (never over an input, never into a folder it
cannot write), and writing what it leaves: the image, its log and its loss plot."""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from .images import SAVE_FORMATS, save_image

PathLike = Union[str, os.PathLike]


class OutputError(ValueError):
    """An output path that cannot be used; the message names it and says what to do."""


def output_paths(output: PathLike) -> tuple[Path, Path, Path]:
    """The files a run writes: the image, its loss plot (_loss.png) and its JSON log (.json)."""
    output = Path(output)
    stem = output.with_suffix("")
    return output, Path(f"{stem}_loss.png"), Path(f"{stem}.json")


def check_outputs(paths: Sequence[PathLike], inputs: Iterable[PathLike] = (), overwrite: bool = False) -> None:
    """Make sure every path can be written, creating missing folders; raise OutputError if not.

    paths[0] is the image, whose extension must be one save_image knows. A path that is one of
    the inputs (the same file, through links too) is refused unless ``overwrite``: the inputs are
    read before training, so overwriting them is safe, but never by accident.
    """
    image = Path(paths[0])
    if image.suffix.lower() not in SAVE_FORMATS:
        known = ", ".join(sorted(SAVE_FORMATS))
        raise OutputError(f"output {image} has an unknown extension {image.suffix!r}; use one of {known}")
    inputs = [Path(p) for p in inputs]
    for path in map(Path, paths):
        if path.is_dir():
            raise OutputError(f"output {path} is a folder; give a file name such as {path / 'result.png'}")
        if not overwrite:
            for source in inputs:
                if path.exists() and source.exists() and os.path.samefile(path, source):
                    raise OutputError(f"output {path} is the input image {source}; writing it would destroy the "
                                      "input, so choose another -o (or pass --overwrite if that is what you want)")
    for folder in sorted({Path(p).parent for p in paths}):
        _writable_folder(folder)


def _writable_folder(folder: Path) -> None:
    """Create folder if needed and prove it writable by creating and removing a file in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create the output folder {folder}: a file of that name is in the way") from None
    except OSError as e:
        raise OutputError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".neural-style-probe-", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write to the output folder {folder}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


def write_result(image: Any, output: PathLike, metadata: dict[str, str], log: Optional[dict[str, Any]] = None,
                 history: Sequence[dict] = (), checkpoint: Optional[Path] = None) -> list[Path]:
    """Write what a run leaves: with ``log`` its JSON log and (where losses were read) the loss
    plot, then the image with its metadata, last, so that an image whose log is missing never
    stands for a finished run (a plot that matplotlib cannot draw is left out, with a warning);
    then remove ``checkpoint``, stale once the run is done. Every file is written atomically.
    Returns the files written, the image first."""
    from .report import plot_losses, write_log

    image_path, plot_path, log_path = output_paths(output)
    written = []
    if log is not None:
        if any("total" in h for h in history):
            try:
                written.append(plot_losses(plot_path, history))
            except (ImportError, MemoryError) as e:  # near its memory limit a process may not load matplotlib
                warnings.warn(f"the loss plot was not drawn ({type(e).__name__}: {e}); the image and the log are "
                              "saved", RuntimeWarning)
        written.append(write_log(log_path, log))
    written.insert(0, save_image(image, image_path, metadata=metadata))
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return written
