import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED_LECTURE = Path(__file__).resolve().parent.parent.parent / "shared" / "lecture"
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def script_module(name):
    """scripts/NAME.py loaded as a module, for a fixture to yield from; sys.modules holds it
    meanwhile (dataclasses look their module up there), and sys.path is restored after."""
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]
    sys.path[:] = path


@pytest.fixture(scope="session")
def vgg_caffe():
    """The default feature network (Caffe VGG19, preprocessing folded, k = 1)."""
    from neural_style.config import CONTENT_LAYERS, STYLE_LAYERS
    from neural_style.vgg import load_vgg

    return load_vgg(CONTENT_LAYERS + STYLE_LAYERS, "caffe", activation_scale=1.0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def smooth_image(rng, h, w):
    """A photo-like uint8 RGB image: smooth gradients plus a little noise."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1) * 200 + 20
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def lecture_pair():
    content, style = SHARED_LECTURE / "rainier.jpg", SHARED_LECTURE / "autumn_oak.jpg"
    if not (content.is_file() and style.is_file()):
        pytest.skip(f"the lecture's images are not at {SHARED_LECTURE} (only beside the project's own checkout)")
    return content, style


class StartImages:
    """A hook (train.Hook's interface) that keeps each stage's starting image."""

    name = ""

    def __init__(self):
        self.images = []

    def start(self, loop):
        self.images.append(loop.X.asnumpy())

    def after_epoch(self, loop):
        pass

    def finish(self, loop):
        pass


class RaiseAtStart(StartImages):
    """A hook that raises error when a stage of the given width starts."""

    def __init__(self, width, error):
        super().__init__()
        self.width, self.error = width, error

    def start(self, loop):
        if loop.X.shape[-1] == self.width:
            raise self.error
