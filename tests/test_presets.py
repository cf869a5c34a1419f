"""Presets (--preset, settings_for, stylize(preset=...)), the coarse-to-fine schedule and the demo."""
import json
import math
import shlex

import numpy as np
import pytest
from PIL import Image

import neural_style

from neural_style.cli import DEMO_CONTENT, DEMO_STYLE, build_parser, parse_run
from neural_style.config import PRESETS, CoarseToFine, Settings, Stage, settings_for
from neural_style.images import read_source
from neural_style.jobs import build_parser as batch_parser
from neural_style.layers import layer_index
from neural_style.metadata import read_settings
from neural_style.options import settings_from_args, settings_to_argv

from test_cli import pair, run_cli  # noqa: F401  (pair: a fixture)

PHOTO = PRESETS["photo"]


def parse(argv):
    parser = build_parser()
    try:
        return settings_from_args(parse_run(parser, argv))
    except ValueError as e:
        parser.error(str(e))


def sides_and_epochs(stages):
    return [(s.long_side, s.epochs) for s in stages]


# ---- the schedule ----

def test_coarse_to_fine_by_hand():
    """512 from 128 by at most x2: 2 steps of exactly x2. 300: 2 steps of sqrt(300/128), so the
    middle side is sqrt(128 * 300) = 195.96; epochs double from the last stage down."""
    schedule = CoarseToFine(smallest=128, factor=2.0, epochs=50, epoch_growth=2.0)
    assert sides_and_epochs(schedule.stages(512)) == [(128, 200), (256, 100), (512, 50)]
    assert sides_and_epochs(schedule.stages(300)) == [(128, 200), (196, 100), (300, 50)]
    # 100 to 400 by at most x1.5: log(4) / log(1.5) = 3.42, so 4 steps of 4 ** (1/4) = 1.4142:
    # 100, 141.42, 200, 282.84, 400; epochs 10 x 3 ** (4 - k).
    other = CoarseToFine(smallest=100, factor=1.5, epochs=10, epoch_growth=3.0)
    assert sides_and_epochs(other.stages(400)) == [(100, 810), (141, 270), (200, 90), (283, 30), (400, 10)]
    assert sides_and_epochs(schedule.stages(128)) == [(128, 50)]
    assert sides_and_epochs(schedule.stages(64)) == [(64, 50)]
    assert all(s.optimizer == "lbfgs" and s.lr == 1.0 for s in schedule.stages(512))


@pytest.mark.parametrize("n", [129, 200, 255, 256, 257, 384, 511, 700, 1024, 1500])
def test_coarse_to_fine_ends_at_n_growing_by_one_factor_with_fewer_epochs(n):
    schedule = PHOTO.schedule
    stages = schedule.stages(n)
    sides = [s.long_side for s in stages]
    assert sides[0] == schedule.smallest and sides[-1] == n
    ratios = np.array(sides[1:]) / np.array(sides[:-1])
    assert ratios.max() <= schedule.factor + 0.02 and ratios.max() - ratios.min() < 0.02
    assert len(stages) == 1 + math.ceil(math.log(n / schedule.smallest, schedule.factor) - 1e-9)
    epochs = [s.epochs for s in stages]
    assert epochs == sorted(epochs, reverse=True) and epochs[-1] == schedule.epochs and epochs[0] > epochs[-1]


# ---- presets in Python ----

def test_lecture_preset_is_the_default_and_the_lecture():
    assert settings_for() == settings_for("lecture") == Settings()
    assert Settings().preset == "lecture" and PRESETS["lecture"].values == {}


def test_photo_preset_values_and_overrides():
    s = settings_for("photo")
    assert s.preset == "photo"
    for name, value in PHOTO.values.items():
        assert getattr(s, name) == value, name
    assert s.style_layers == tuple(layer_index(f"relu{b}_1") for b in range(1, 5)) == (1, 6, 11, 20)
    assert s.content_layers == (22,) and s.style_weight == 3e5
    assert sides_and_epochs(s.stages) == sides_and_epochs(PHOTO.schedule.stages(512))
    s.validate()
    # An override wins, even where it is the lecture's own value; the rest stays the preset's.
    t = settings_for("photo", style_weight=1e3, style_layers=("conv1_1",))
    assert t.style_weight == 1e3 and t.style_layers == (0,) and t.content_layers == (22,)
    assert sides_and_epochs(settings_for("photo", size=256).stages) == [(128, 100), (256, 50)]
    stages = (Stage(64, 48, "adam", 0.1, 3),)
    assert settings_for("photo", stages=stages).stages == stages
    one = settings_for("photo", size=(300, 200)).stages  # not a long side: one stage of that size
    assert len(one) == 1 and one[0].image_shape == (300, 200) and one[0].optimizer == "lbfgs"
    with pytest.raises(TypeError, match="size or stages"):
        settings_for("photo", size=256, stages=stages)


def test_every_preset_sets_settings_fields_and_validates():
    names = {f for f in Settings.__dataclass_fields__}
    for name, preset in PRESETS.items():
        assert set(preset.values) <= names - {"stages", "preset"}, name
        assert preset.description and "\n" not in preset.description
        settings_for(name).validate()


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown preset 'paint' \(choose 'lecture' or 'photo'\)"):
        settings_for("paint")
    with pytest.raises(ValueError, match="unknown preset 'paint'"):
        Settings(preset="paint").validate()


# ---- presets on the command line ----

def test_cli_preset_resolution_and_overrides():
    assert parse(["c", "s"]) == Settings()
    assert parse(["c", "s", "--preset", "photo"]) == settings_for("photo")
    s = parse(["c", "s", "--preset", "photo", "--size", "256"])
    assert s == settings_for("photo", size=256) and sides_and_epochs(s.stages) == [(128, 100), (256, 50)]
    # --epochs with one value: every stage of the schedule; one per stage: each its own.
    assert [st.epochs for st in parse(["c", "s", "--preset", "photo", "--epochs", "7"]).stages] == [7, 7, 7]
    assert [st.epochs for st in parse(["c", "s", "--preset", "photo", "--epochs", "9", "8", "7"]).stages] == [9, 8, 7]
    # Several sizes: exactly those stages, each with the options of the preset's stage in its place.
    two = parse(["c", "s", "--preset", "photo", "--size", "150", "300"]).stages
    assert sides_and_epochs(two) == [(150, 200), (300, 100)] and {st.optimizer for st in two} == {"lbfgs"}
    # An explicit option overrides the preset, even with the lecture's default value.
    t = parse(["c", "s", "--preset", "photo", "--style-weight", "1000", "--optimizer", "adam"])
    assert t.style_weight == 1000 and t.tv_weight == PHOTO.values["tv_weight"] and t.preset == "photo"
    assert {st.optimizer for st in t.stages} == {"adam"}
    # --original-size adds a stage after the schedule.
    final = parse(["c", "s", "--preset", "photo", "--size", "256", "--original-size"]).stages
    assert [(st.long_side, st.original) for st in final] == [(128, False), (256, False), (None, True)]


def test_cli_preset_errors(capsys):
    with pytest.raises(SystemExit) as e:
        parse(["c", "s", "--preset", "paint"])
    assert e.value.code == 2 and "invalid choice: 'paint' (choose from 'lecture', 'photo')" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        parse(["c", "s", "--preset", "photo", "--epochs", "1", "2"])
    assert e.value.code == 2 and "--epochs has 2 values for 3 stages" in capsys.readouterr().err


@pytest.mark.parametrize("parser", [build_parser, batch_parser], ids=["run", "batch"])
def test_help_lists_the_presets(parser):
    text = parser().format_help()
    assert "--preset {lecture,photo}" in text
    for name, preset in PRESETS.items():
        assert f"  {name}" in text and preset.description in text


@pytest.mark.parametrize("settings", [
    settings_for("photo"),
    settings_for("photo", size=64),
    settings_for("photo", style_weight=1e3, tv_weight=0.0, seed=3),
    settings_for("photo", stages=tuple(st.resolved(451, 300) for st in PHOTO.stages_for())),
    settings_for("lecture", style_weight=1e5),
], ids=["photo", "photo-64", "photo-overridden", "photo-resolved", "lecture"])
def test_settings_to_argv_rebuilds_preset_settings(settings):
    argv = settings_to_argv(settings)
    assert parse(["c", "s", *argv]) == settings
    assert (argv[:2] == ["--preset", "photo"]) == (settings.preset == "photo")


# ---- end to end ----

def test_photo_preset_end_to_end_and_info_repeats_it(tmp_path, pair):
    out = tmp_path / "out.png"
    proc = run_cli(*pair, "--preset", "photo", "--size", "64", "--epochs", "3", "-o", out, "--quiet", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        assert im.size == (64, 48)
        first = np.asarray(im.convert("RGB"))
    s = read_settings(out)
    assert s.preset == "photo" and s.style_weight == 3e5 and s.style_layers == (1, 6, 11, 20)
    assert [(st.width, st.height, st.epochs, st.optimizer) for st in s.stages] == [(64, 48, 3, "lbfgs")]
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["settings"]["preset"] == "photo"
    info = run_cli("info", out)
    assert info.returncode == 0 and "preset: photo" in info.stdout
    command = shlex.split(info.stdout.split("command:\n")[1].strip())
    assert command[5:7] == ["--preset", "photo"]
    assert parse(command[3:]) == s
    again = tmp_path / "again.png"
    proc = run_cli(*command[3:], "-o", again, "--quiet")
    assert proc.returncode == 0, proc.stderr
    with Image.open(again) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), first)


def test_stylize_with_a_preset(pair):
    img = neural_style.stylize(str(pair[0]), str(pair[1]), preset="photo", size=48, seed=0)
    assert img.size == (48, 36)  # reflect padding needs 32 px per side at relu5_1
    s = Settings.from_dict(json.loads(img.info["neural-style:settings"]))
    assert s.preset == "photo" and s.style_weight == 3e5 and s.stages[0].epochs == PHOTO.schedule.epochs
    assert neural_style.settings_for("photo", size=32) == settings_for("photo", size=32)
    with pytest.raises(TypeError, match="settings or a preset"):
        neural_style.stylize(str(pair[0]), str(pair[1]), settings=Settings(), preset="photo")
    with pytest.raises(TypeError, match="unknown settings size"):
        neural_style.stylize(str(pair[0]), str(pair[1]), settings=Settings(), size=32)


# ---- the demo ----

def test_demo_settings_validate_and_its_images_are_there():
    s = parse([])
    assert s.preset == "photo" and s.stages[-1].long_side == 256 and len(s.stages) > 1
    s.validate()
    assert parse(["demo", "--preset", "lecture"]) == settings_for("lecture", size=256)  # its options win
    assert parse(["demo", "--size", "64"]).stages[-1].long_side == 64
    assert DEMO_STYLE == "package:starry_night"
    assert read_source(DEMO_STYLE).shape == (402, 512, 3) and read_source(DEMO_CONTENT).ndim == 3

