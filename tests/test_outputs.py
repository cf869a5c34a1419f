"""Outputs: never over an input, folders made and proven writable up front, every write atomic."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_style.images import atomic_write, save_image
from neural_style.outputs import OutputError, check_outputs, output_paths, write_result
from neural_style.report import plot_losses, write_log

from conftest import smooth_image


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder nobody may create files in: permissions for a normal user; for root (who ignores
    them) the immutable attribute where chattr works, else sysfs, which refuses new files."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    if Path("/sys/kernel").is_dir():
        yield Path("/sys/kernel")
        return
    pytest.skip("no way to make an unwritable folder as root here")


@pytest.fixture
def photo(tmp_path, rng):
    path = tmp_path / "photo.png"
    Image.fromarray(smooth_image(rng, 48, 64)).save(path)
    return path


def test_output_paths_are_image_plot_and_log():
    assert output_paths("out/x.png") == (Path("out/x.png"), Path("out/x_loss.png"), Path("out/x.json"))


def test_output_that_is_an_input_is_refused_unless_overwrite(tmp_path, photo):
    before = photo.read_bytes()
    with pytest.raises(OutputError, match=f"output {photo} is the input image {photo}.*--overwrite"):
        check_outputs(output_paths(photo), [photo])
    # through a symlink and a hard link too
    link, hard = tmp_path / "link.png", tmp_path / "hard.png"
    link.symlink_to(photo)
    os.link(photo, hard)
    for other in (link, hard):
        with pytest.raises(OutputError, match="is the input image"):
            check_outputs(output_paths(other), [photo])
    check_outputs(output_paths(photo), [photo], overwrite=True)
    assert photo.read_bytes() == before


def test_side_files_may_not_hit_an_input_either(tmp_path, photo):
    style = tmp_path / "result_loss.png"  # the loss plot of -o result.png
    style.write_bytes(photo.read_bytes())
    with pytest.raises(OutputError, match="result_loss.png is the input image"):
        check_outputs(output_paths(tmp_path / "result.png"), [photo, style])


def test_unknown_extension_and_folder_outputs(tmp_path):
    with pytest.raises(OutputError, match=r"out.gif has an unknown extension '.gif'; use one of .jpeg, .jpg, .png"):
        check_outputs(output_paths(tmp_path / "out.gif"))
    with pytest.raises(OutputError, match="unknown extension ''"):
        check_outputs(output_paths(tmp_path / "out"))
    folder = tmp_path / "dir.png"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_outputs(output_paths(folder))


def test_missing_folders_are_created_and_leave_nothing_behind(tmp_path):
    out = tmp_path / "a" / "b" / "c.png"
    check_outputs(output_paths(out))
    assert out.parent.is_dir() and list(out.parent.iterdir()) == []


def test_a_file_in_the_way_of_the_folder(tmp_path):
    (tmp_path / "a").write_text("x")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        check_outputs(output_paths(tmp_path / "a" / "c.png"))


def test_unwritable_folder_is_found_up_front(unwritable_dir):
    with pytest.raises(OutputError, match=f"cannot (write to|create) the output folder {unwritable_dir}"):
        check_outputs(output_paths(unwritable_dir / "out.png"))


# --- atomic writes ------------------------------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    for exc in (OSError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_write(path) as f:
                f.write(b"half of the new")
                raise exc
        assert path.read_bytes() == b"old" and leftovers(tmp_path) == []
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_a_crash_while_saving_an_image_keeps_the_previous_image(tmp_path, rng, monkeypatch):
    path = tmp_path / "out.png"
    save_image(smooth_image(rng, 48, 64), path)
    before = path.read_bytes()

    def crash(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half an image")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(OSError, match="No space"):
        save_image(smooth_image(rng, 48, 64), path)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_a_failing_log_or_plot_keeps_the_previous_one(tmp_path, monkeypatch):
    log, plot = tmp_path / "r.json", tmp_path / "r_loss.png"
    history = [{"stage": 0, "epoch": e, "content": 1.0, "style": 2.0, "tv": 0.5, "total": 3.5} for e in (1, 2)]
    write_log(log, {"ok": 1})
    plot_losses(plot, history)
    old_log, old_plot = log.read_bytes(), plot.read_bytes()

    class Unprintable:
        def __str__(self):
            raise RuntimeError("cannot print")

    with pytest.raises(RuntimeError):
        write_log(log, {"bad": Unprintable()})
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda self, f, **kw: f.write(b"\x89PNG") and 1 / 0)
    with pytest.raises(ZeroDivisionError):
        plot_losses(plot, history)
    assert log.read_bytes() == old_log and plot.read_bytes() == old_plot
    assert json.loads(log.read_text()) == {"ok": 1} and leftovers(tmp_path) == []


def test_a_plot_that_cannot_be_drawn_costs_neither_the_image_nor_the_log(tmp_path, rng, monkeypatch):
    """Near its address-space limit (the command line saving the last good image after running
    out of memory) matplotlib may fail to load: the image and the log are still written."""
    from matplotlib.figure import Figure

    def cannot_load(self, *args, **kwargs):
        raise ImportError("failed to map segment from shared object")

    monkeypatch.setattr(Figure, "savefig", cannot_load)
    history = [{"stage": 0, "epoch": e, "content": 1.0, "style": 2.0, "tv": 0.5, "total": 3.5} for e in (1, 2)]
    with pytest.warns(RuntimeWarning, match="the loss plot was not drawn"):
        written = write_result(smooth_image(rng, 24, 32), tmp_path / "r.png", {}, {"ok": 1}, history)
    assert written == [tmp_path / "r.png", tmp_path / "r.json"]
    assert Image.open(tmp_path / "r.png").size == (32, 24) and json.loads((tmp_path / "r.json").read_text()) == {"ok": 1}
    assert not (tmp_path / "r_loss.png").exists() and leftovers(tmp_path) == []


def test_nan_never_reaches_a_written_image(tmp_path):
    img = np.full((24, 32, 3), 0.5, np.float32)
    img[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        save_image(img, tmp_path / "nan.png")
    assert not (tmp_path / "nan.png").exists() and leftovers(tmp_path) == []


def test_log_stays_strict_json_when_a_loss_was_nan(tmp_path):
    path = write_log(tmp_path / "r.json", {"history": [{"epoch": 4, "total": float("nan")}, {"x": (1.0, float("inf"))}]})
    log = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert log["history"] == [{"epoch": 4, "total": "nan"}, {"x": [1.0, "inf"]}]
