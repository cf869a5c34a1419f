"""Measure vgg.AVG_POOL_SCALES: how much each 2x2 average pool must be scaled up for the network
with average pools (--pooling avg) to have, after every pool, the mean activation of the
network with max-pools, so that the loss weights and learning rates keep their meaning.

Each image (scikit-image's photographs and the project's Starry Night, long side --size) runs
through both networks layer by layer (the Caffe VGG19). At each pool the ratio of the max-pool
network's mean output to the average-pool network's is taken per image; the scale is their
geometric mean, and the average-pool network goes on with its pool times that scale, so that
the next ratio is measured on the network as --pooling avg builds it. The activation scale k
cancels in the ratios (ReLU, pooling and the convolutions with their biases divided by k are
homogeneous), so k = 1 here.

    .venv/bin/python scripts/calibrate_pooling.py [--size 256]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from mxnet import nd

from neural_style.images import load_image, preprocess
from neural_style.layers import LAYER_NAMES, POOL_INDICES
from neural_style.vgg import load_vgg

STARRY_NIGHT = Path(__file__).resolve().parent.parent / "neural_style" / "data" / "starry_night.jpg"
SKIMAGE_IMAGES = ("chelsea", "astronaut", "coffee", "rocket", "immunohistochemistry", "gravel")


def images() -> dict[str, np.ndarray]:
    from skimage import data

    found = {name: getattr(data, name)() for name in SKIMAGE_IMAGES}
    found["starry_night"] = load_image(STARRY_NIGHT)
    return {name: np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img for name, img in found.items()}


def long_side(img: np.ndarray, side: int) -> tuple[int, int]:
    h, w = img.shape[:2]
    ratio = side / max(h, w)
    return max(1, round(w * ratio)), max(1, round(h * ratio))


def pool(X: nd.NDArray, kind: str) -> nd.NDArray:
    return nd.Pooling(X, kernel=(2, 2), stride=(2, 2), pool_type=kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="long side of each image (default: %(default)s)")
    args = parser.parse_args()
    net = load_vgg((POOL_INDICES[-1],), "caffe", activation_scale=1.0)
    found = images()
    inputs = {name: preprocess(img, long_side(img, args.size)) - net.input_shift.data() for name, img in found.items()}
    by_max, by_avg = dict(inputs), dict(inputs)
    print("| pool | " + " | ".join(found) + " | scale (geometric mean) | spread |")
    print("|---" * (len(found) + 3) + "|")
    scales = []
    for i, layer in enumerate(net.layers):
        if i not in POOL_INDICES:
            by_max = {name: layer(x) for name, x in by_max.items()}
            by_avg = {name: layer(x) for name, x in by_avg.items()}
            continue
        by_max = {name: pool(x, "max") for name, x in by_max.items()}
        by_avg = {name: pool(x, "avg") for name, x in by_avg.items()}
        ratios = {name: by_max[name].mean().asscalar() / by_avg[name].mean().asscalar() for name in found}
        scale = float(np.exp(np.mean(np.log(list(ratios.values())))))
        spread = max(abs(r / scale - 1) for r in ratios.values())
        scales.append(scale)
        print(f"| {LAYER_NAMES[i]} | " + " | ".join(f"{r:.3f}" for r in ratios.values())
              + f" | {scale:.3f} | {spread:.1%} |")
        by_avg = {name: x * scale for name, x in by_avg.items()}
    print("\nAVG_POOL_SCALES = (" + ", ".join(f"{s:.3f}" for s in scales) + ")")


if __name__ == "__main__":
    main()
