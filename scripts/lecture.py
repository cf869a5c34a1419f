"""The lecture's printed losses and where its images live, shared by the scripts."""
from __future__ import annotations

import sys
from pathlib import Path

LECTURE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "lecture"
CONTENT = LECTURE_DIR / "rainier.jpg"
STYLE = LECTURE_DIR / "autumn_oak.jpg"

# Weighted (content, style, TV) losses the lecture notebook printed, by stage and epoch.
LECTURE_LOSSES = {
    0: {50: (7.12, 14.02, 3.26), 100: (5.50, 9.55, 3.41), 150: (5.04, 7.49, 3.49),
        200: (4.69, 6.57, 3.54), 250: (4.47, 6.40, 3.54), 300: (4.43, 6.32, 3.54),
        350: (4.40, 6.25, 3.54), 400: (4.37, 6.19, 3.54), 450: (4.36, 6.18, 3.54)},
    1: {50: (20.51, 43.77, 0.74), 100: (17.54, 31.44, 0.77), 150: (17.29, 30.58, 0.77),
        200: (17.09, 29.90, 0.77), 250: (17.07, 29.83, 0.78)},
}


def require_lecture_images() -> None:
    """Exit with a clear reason when the lecture's images are not beside the project."""
    if not (CONTENT.is_file() and STYLE.is_file()):
        sys.exit(f"the lecture's images are not at {LECTURE_DIR} (rainier.jpg, autumn_oak.jpg); "
                 "download them as LECTURE.md describes and put them there")
