"""The lecture's data, not its code: its images (where to find or fetch them) and the losses it
printed, for the notebook and the reproduction scripts."""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path
from typing import Optional, Union

import numpy as np

# Where the project's checkout finds the lecture's files: ../shared/lecture beside it.
SHARED_LECTURE = Path(__file__).resolve().parent.parent.parent / "shared" / "lecture"

# The lecture's pair, as the d2l repository serves it, with the md5 of each file.
LECTURE_IMAGES = {
    "content": ("rainier.jpg", "https://raw.githubusercontent.com/d2l-ai/d2l-en/master/img/rainier.jpg",
                "b79654ea1abf9b40b2b2d6d60f443ae4"),
    "style": ("autumn_oak.jpg", "https://raw.githubusercontent.com/d2l-ai/d2l-en/master/img/autumn-oak.jpg",
              "f1d05c423691f4e80650724873831804"),
}

# The lecture's own results, beside its images (never part of this project).
LECTURE_RESULTS = ("lecture_result_300x200.png", "lecture_result_1200x800.png")

# Weighted (content, style, TV) losses the lecture notebook printed, by stage and epoch.
LECTURE_LOSSES = {
    0: {50: (7.12, 14.02, 3.26), 100: (5.50, 9.55, 3.41), 150: (5.04, 7.49, 3.49),
        200: (4.69, 6.57, 3.54), 250: (4.47, 6.40, 3.54), 300: (4.43, 6.32, 3.54),
        350: (4.40, 6.25, 3.54), 400: (4.37, 6.19, 3.54), 450: (4.36, 6.18, 3.54)},
    1: {50: (20.51, 43.77, 0.74), 100: (17.54, 31.44, 0.77), 150: (17.29, 30.58, 0.77),
        200: (17.09, 29.90, 0.77), 250: (17.07, 29.83, 0.78)},
}

Image = Union[Path, np.ndarray]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _download(url: str, target: Path, expected_md5: str, timeout: float) -> Optional[Path]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except OSError:
        return None
    if hashlib.md5(data).hexdigest() != expected_md5:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def lecture_pair(folder: Optional[Union[str, Path]] = None, download_to: Optional[Union[str, Path]] = None,
                 timeout: float = 10.0) -> tuple[Image, Image, str]:
    """The lecture's (content, style) images and where they came from.

    Looked for in ``folder`` (if given), then ``../shared/lecture``, then downloaded from the d2l
    repository into ``download_to`` (md5 checked); failing all, the embedded demo pair.
    """
    folders = [Path(f) for f in (folder, SHARED_LECTURE, download_to) if f is not None]
    for place in folders:
        paths = [place / name for name, _, _ in LECTURE_IMAGES.values()]
        if all(p.is_file() and md5(p) == digest for p, (_, _, digest) in zip(paths, LECTURE_IMAGES.values())):
            return paths[0], paths[1], str(place)
    if download_to is not None:
        got = [_download(url, Path(download_to) / name, digest, timeout) for name, url, digest in LECTURE_IMAGES.values()]
        if all(got):
            return got[0], got[1], "downloaded from the d2l repository"
    from skimage import data

    return data.chelsea(), data.immunohistochemistry(), "the embedded demo pair (scikit-image)"
