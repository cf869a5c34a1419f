"""The seams of the lecture's loop: hooks see every epoch, own their state, and a checkpoint is
the loop's state plus each hook's; losses come by name; every option is declared once."""
import json
from dataclasses import fields

import numpy as np
import pytest

from neural_style import Settings, Stage, transfer
from neural_style.checkpoint import FORMAT, load_checkpoint
from neural_style.cli import build_parser
from neural_style.errors import Interrupted
from neural_style.options import SETTINGS_OPTIONS, STAGE_OPTIONS, flags
from neural_style.train import Hook

from conftest import smooth_image


class Recorder(Hook):
    def __init__(self):
        self.seen = []

    def start(self, loop):
        self.seen.append(("start", loop.index, loop.epoch))

    def after_epoch(self, loop):
        self.seen.append(("epoch", loop.index, loop.epoch, sorted(loop.losses), loop.lr))

    def finish(self, loop):
        self.seen.append(("finish", loop.index, loop.epoch))


def pair(rng):
    return smooth_image(rng, 24, 32), smooth_image(rng, 30, 30)


def test_a_hook_from_outside_sees_every_epoch_with_the_losses_by_name(rng):
    hook = Recorder()
    settings = Settings(stages=(Stage(32, 24, "sgd", 0.5, 3, 1), Stage(40, 30, "adam", 0.05, 2, 200)))
    transfer(*pair(rng), settings, hooks=[hook])
    names = ["content", "style", "total", "tv"]
    assert hook.seen == [
        ("start", 0, -1), ("epoch", 0, 0, names, 0.5), ("epoch", 0, 1, names, 0.5),
        ("epoch", 0, 2, names, pytest.approx(0.05)), ("finish", 0, 2),  # the lecture decays after epoch 1
        ("start", 1, -1), ("epoch", 1, 0, names, 0.05), ("epoch", 1, 1, names, 0.05), ("finish", 1, 1),
    ]


def test_a_checkpoint_is_the_loops_state_plus_each_hooks(rng, tmp_path):
    class StopAfter(Hook):
        def after_epoch(self, loop):
            if loop.epoch == 1:
                flag.set()

    import threading

    flag = threading.Event()
    settings = Settings(stages=(Stage(32, 24, "adam", 0.05, 4, 200),), report_every=1)
    with pytest.raises(Interrupted) as e:
        transfer(*pair(rng), settings, stop=flag, save_to=tmp_path / "out.png", hooks=[StopAfter()])
    ckpt = load_checkpoint(e.value.checkpoint)
    assert (ckpt.stage, ckpt.epoch) == (0, 2)
    assert set(ckpt.hooks) == {"guard", "history", "run"}
    assert [h["epoch"] for h in ckpt.hooks["history"]["entries"]] == [1]
    assert ckpt.hooks["guard"]["recoveries"] == 0 and ckpt.hooks["guard"]["last_good"].shape == (1, 3, 24, 32)
    assert ckpt.image.shape == (1, 3, 24, 32) and np.isfinite(ckpt.image).all()
    assert ckpt.hooks["run"]["stage_images"] == []


def test_a_checkpoint_of_an_earlier_format_is_refused_clearly(tmp_path):
    old = tmp_path / "old.ckpt"
    with open(old, "wb") as f:
        np.savez(f, meta=np.array(json.dumps({"format": 1, "version": "0.1.0"})))
    with pytest.raises(ValueError, match=rf"checkpoint format 1, written by neural-style 0.1.0; this version reads "
                                         rf"format {FORMAT} only, so start the run again without --resume"):
        load_checkpoint(old)


def test_stop_carries_the_guards_last_good_image(rng):
    import threading

    from neural_style.images import preprocess

    flag = threading.Event()
    flag.set()
    content, style = pair(rng)
    with pytest.raises(Interrupted) as e:
        transfer(content, style, Settings(stages=(Stage(32, 24, "adam", 0.05, 3, 200),)), stop=flag)
    assert (e.value.stage, e.value.epoch) == (0, 0)
    # after one epoch nothing has been judged yet: the last good image is the start, the content
    np.testing.assert_array_equal(e.value.image.asnumpy(), preprocess(content, (32, 24)).asnumpy())


def test_every_setting_is_one_declared_option_in_the_help():
    text = build_parser().format_help()
    declared = [f.name for f in SETTINGS_OPTIONS] + [f.name for f in STAGE_OPTIONS]
    assert set(declared) == {f.name for f in fields(Settings)} - {"stages"} | {
        f.name for f in fields(Stage)} - {"width", "height", "long_side", "original"}
    for f in SETTINGS_OPTIONS + STAGE_OPTIONS:
        for flag in flags(f):
            assert flag in text, flag
    assert "--scale" in text and "--activation-scale" in text and "--weights {caffe,gluon}" in text


def test_validation_messages_name_the_declared_labels():
    for change, words in [({"content_weight": -1.0}, "content weight must be at least 0"),
                          ({"activation_scale": 0.0}, "activation scale must be greater than 0"),
                          ({"max_recoveries": -1}, "max_recoveries must be a whole number of at least 0"),
                          ({"stages": (Stage(32, 24, epochs=0),)}, "stage 1 epochs must be a whole number")]:
        with pytest.raises(ValueError, match=words):
            Settings(**change).validate()


def test_the_plot_and_the_log_take_the_loss_names_from_the_history(tmp_path):
    from PIL import Image

    from neural_style.report import loss_names, plot_losses

    entry = {"stage": 0, "width": 32, "height": 24, "lr": 1.0, "seconds": 0.1}
    history = [{**entry, "epoch": 1, "content": 1.0, "new_term": 0.5, "total": 1.5},
               {**entry, "epoch": 2, "event": "the loss diverged"},
               {**entry, "epoch": 3, "content": 0.8, "new_term": 0.4, "total": 1.2}]
    assert loss_names(history) == ["content", "new_term"]
    with Image.open(plot_losses(tmp_path / "loss.png", history)) as im:
        assert im.format == "PNG"
