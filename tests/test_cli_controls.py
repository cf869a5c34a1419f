"""The controls beyond the lecture (issue 5) from the command line, end to end on tiny images."""
import json
import shlex

import numpy as np
import pytest
from PIL import Image

from neural_style.cli import build_parser, main
from neural_style.options import settings_from_args, settings_to_argv
from neural_style.config import Settings

from conftest import smooth_image
from test_cli import run_cli
from test_controls import Interrupted, rich_settings


@pytest.fixture
def trio(tmp_path, rng):
    """A 40x30 content image and two style images, as files."""
    paths = [tmp_path / "content.png", tmp_path / "a.png", tmp_path / "b.jpg"]
    Image.fromarray(smooth_image(rng, 30, 40)).save(paths[0])
    Image.fromarray(smooth_image(rng, 40, 40)[::-1]).save(paths[1])
    y, x = np.mgrid[0:40, 0:40]
    stripes = ((np.sin(x / 2.0) + np.cos(y / 3.0)) * 60 + 128)[..., None] * np.array([1.0, 0.4, 0.8])
    Image.fromarray(np.clip(stripes, 0, 255).astype(np.uint8)).save(paths[2])
    return paths


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def parse(argv):
    parser = build_parser()
    try:
        return settings_from_args(parser.parse_args(argv))
    except ValueError as e:
        parser.error(str(e))


def test_help_documents_the_controls():
    text = build_parser().format_help()
    for flag in ("--style ", "--style-blend", "--style-scale", "--preserve-colors", "--init", "--seed",
                 "--content-layers", "--style-layers", "--style-layer-weights", "--original-size",
                 "--save-every", "--resume", "relu4_2", "`original`"):
        assert flag in text, flag


def test_options_give_the_settings(trio):
    s = parse([str(trio[0]), "--style", str(trio[1]), str(trio[2]), "--style-blend", "0.7", "0.3",
               "--style-scale", "0.5", "--preserve-colors", "histogram", "--init", "random", "--seed", "5",
               "--content-layers", "relu4_2", "--style-layers", "conv1_1", "relu2_1", "10",
               "--style-layer-weights", "1", "0.5", "0.25", "--size", "512", "--original-size", "--save-every", "10"])
    assert s.style_blend == (0.7, 0.3) and s.style_scale == 0.5 and s.preserve_colors == "histogram"
    assert s.init == "random" and s.seed == 5 and s.save_every == 10
    assert s.content_layers == (22,) and s.style_layers == (0, 6, 10) and s.style_layer_weights == (1, 0.5, 0.25)
    assert [(st.long_side, st.original, st.epochs) for st in s.stages] == [(512, False, 500), (None, True, 300)]
    assert parse(["c", "s"]) == Settings()  # no options: exactly the lecture


def test_settings_to_argv_gives_them_back():
    s = rich_settings()
    assert parse(["c", "s", *settings_to_argv(s)]) == s
    lecture = Settings()
    assert parse(["c", "s", *settings_to_argv(lecture)]) == lecture


@pytest.mark.parametrize("args, message", [
    (["--style-layers", "conv1_1", "conv9_9"], "unknown VGG19 layer 'conv9_9'"),
    (["--style-layer-weights", "1", "2"], "2 style layer weights for 5 style layers"),
    (["--size", "0"], "must be positive"),
    (["--size", "32x", "64"], "WIDTHxHEIGHT (e.g. 300x200), a long side (e.g. 512) or 'original'"),
    (["--size", "32", "--original-size", "--epochs", "1", "2", "3"], "3 values for 2 stages"),
    (["--preserve-colors", "sepia"], "invalid choice"),
])
def test_bad_controls_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse(["c", "s", *args])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_blend_count_mismatch_exits_2(trio):
    proc = run_cli(trio[0], trio[1], "--style-blend", "1", "2", "3")
    assert proc.returncode == 2 and "--style-blend has 3 weights for 1 style images" in proc.stderr


def test_style_and_positional_style_together_is_an_error(trio):
    proc = run_cli(trio[0], trio[1], "--style", trio[2])
    assert proc.returncode == 2 and "CONTENT --style STYLE" in proc.stderr


def test_info_prints_settings_and_a_command_that_repeats_the_run(tmp_path, trio, capsys):
    """Every control at once; then the output alone is enough to make it again, bit for bit."""
    out = tmp_path / "out.png"
    proc = run_cli(trio[0], "--style", trio[1], trio[2], "--style-blend", "0.7", "0.3", "--style-scale", "1.5",
                   "--preserve-colors", "luminance", "--init", "random", "--content-layers", "relu4_2",
                   "--style-layers", "conv1_1", "relu2_1", "conv3_1", "--style-layer-weights", "1", "0.5", "0.25",
                   "--size", "32", "--original-size", "--epochs", "3", "1", "--optimizer", "adam", "--lr", "0.05",
                   "-o", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert pixels(out).shape == (30, 40, 3)  # ended at the content's own size
    info = run_cli("info", out)
    assert info.returncode == 0, info.stderr
    text = info.stdout
    assert "neural-style 0.1.0" in text and f"content: {trio[0]}" in text
    assert "style_blend: [0.7, 0.3]" in text and "preserve_colors: luminance" in text
    assert "style_layers: 0 (conv1_1), 6 (relu2_1), 10 (conv3_1)" in text
    assert "stage 1: 32x24, adam lr 0.05, 3 epochs" in text and "stage 2: 40x30" in text
    command = shlex.split(text.split("command:\n")[1].strip())
    assert command[:3] == ["python", "-m", "neural_style"] and "--seed" in command  # the drawn seed
    again = tmp_path / "again.png"
    proc = run_cli(*command[3:], "-o", again, "--quiet")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(pixels(again), pixels(out))
    assert main(["info", str(out), "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["version"] == "0.1.0" and raw["settings"]["style_layers"] == [0, 6, 10]


def test_images_inside_scikit_image_by_name():
    from skimage import data

    from neural_style.images import read_source

    np.testing.assert_array_equal(read_source("skimage:coffee"), data.coffee())
    with pytest.raises(ValueError, match="content image photos/cat.jpg does not exist"):
        read_source("photos/cat.jpg", role="content image")
    for bad in ("skimage:nope", "skimage:download_all", "skimage:_fetch"):
        with pytest.raises(ValueError, match="scikit-image has no image"):
            read_source(bad)


def test_images_inside_the_package_by_name():
    from neural_style.images import PACKAGE_DATA, read_image, read_source, source_stem

    starry = read_source("package:starry_night")
    assert starry.shape == (402, 512, 3)
    np.testing.assert_array_equal(starry, read_image(PACKAGE_DATA / "starry_night.jpg"))
    assert source_stem("package:starry_night") == "starry_night" and source_stem("skimage:coffee") == "coffee"
    with pytest.raises(ValueError, match="neural-style ships no image 'mona_lisa' .*package:starry_night"):
        read_source("package:mona_lisa")


def test_info_on_an_image_without_settings(tmp_path, rng, capsys):
    path = tmp_path / "plain.png"
    Image.fromarray(smooth_image(rng, 8, 8)).save(path)
    assert main(["info", str(path)]) == 2
    assert "carries no neural-style settings" in capsys.readouterr().err


def test_save_every_and_resume_end_with_the_uninterrupted_result(tmp_path, trio):
    from neural_style import transfer

    options = ["--size", "32x24", "40x30", "--epochs", "4", "2", "--optimizer", "adam", "--lr", "0.05",
               "--lr-decay-epoch", "2", "--save-every", "2", "--quiet"]
    whole = tmp_path / "whole.png"
    proc = run_cli(trio[0], trio[1], *options, "-o", whole)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tmp_path.glob("whole*"))
    assert names == ["whole.json", "whole.png", "whole_loss.png", "whole_s1_e0002.png", "whole_s1_e0004.png",
                     "whole_s2_e0002.png"]  # the checkpoint is gone once the run is done

    # the same run, interrupted during stage 2 (after its first epoch) by the test...
    out = tmp_path / "out.png"

    def stop(p):
        if (p.stage, p.epoch) == (1, 0):
            raise Interrupted

    with pytest.raises(Interrupted):
        transfer(trio[0], [trio[1]], parse([str(trio[0]), str(trio[1]), *options]), stop, save_to=out)
    assert (tmp_path / "out.ckpt").is_file()  # written after stage 1's last epoch
    # ...and resumed from the command line, in another process
    proc = run_cli(trio[0], trio[1], *options, "-o", out, "--resume")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(pixels(out), pixels(whole))
    assert not (tmp_path / "out.ckpt").exists()


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, trio, capsys):
    argv = [str(trio[0]), str(trio[1]), "--size", "32x24", "--epochs", "1", "-o", str(tmp_path / "o.png"), "--resume"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot resume from" in err and "o.ckpt" in err
