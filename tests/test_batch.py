"""neural-style batch on tiny images: every pair, skipping, a failing job, killed workers, Ctrl-C, Ray."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

import neural_style
from neural_style.jobs import Job, batch_main, build_parser, is_done, manifest_jobs
from neural_style.config import Settings, Stage
from neural_style.images import save_image
from neural_style.metadata import image_metadata, read_metadata, read_settings
from neural_style.schedule import effective_settings

from conftest import smooth_image

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--size", "32x24", "--optimizer", "adam", "--lr", "0.05"]
TINY_STAGE = Stage(32, 24, "adam", 0.05, 2)


@pytest.fixture
def images(tmp_path, rng):
    """contents/ with two content images, and two style images."""
    (tmp_path / "contents").mkdir()
    for name, (h, w) in {"a": (24, 32), "b": (30, 40)}.items():
        Image.fromarray(smooth_image(rng, h, w)).save(tmp_path / "contents" / f"{name}.png")
    styles = []
    for name, size in {"s": 32, "t": 28}.items():
        Image.fromarray(smooth_image(rng, size, size)[:, ::-1]).save(tmp_path / f"{name}.jpg")
        styles.append(tmp_path / f"{name}.jpg")
    return tmp_path / "contents", styles


def files_state(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir() if p.name != "batch.json"}


def whole_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        return im.size


def test_every_pair_is_written_and_a_rerun_writes_nothing(tmp_path, images, capsys):
    contents, styles = images
    out = tmp_path / "out"
    summary = neural_style.batch(contents, styles, out, stages=(TINY_STAGE,), seed=1, workers=1)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (4, 0, 0)
    for c in ("a", "b"):
        for s in ("s", "t"):
            image = out / f"{c}__{s}.png"
            assert whole_png(image) == (32, 24)
            assert read_settings(image).stages[0].epochs == 2
            assert read_metadata(image)["neural-style:content"] == str(contents / f"{c}.png")
            assert (out / f"{c}__{s}_loss.png").is_file()
            assert json.loads((out / f"{c}__{s}.json").read_text())["status"] == "completed"
    assert not list(out.glob("*.ckpt"))
    assert json.loads((out / "batch.json").read_text())["done"] == 4
    before = files_state(out)
    capsys.readouterr()

    # The same batch again, with another report interval (it does not change the image): nothing to do.
    again = neural_style.batch(contents, styles, out, stages=(TINY_STAGE,), seed=1, report_every=7)
    assert (again["done"], again["skipped"]) == (0, 4)
    assert files_state(out) == before
    assert "started" not in capsys.readouterr().out  # no worker was even started
    assert json.loads((out / "batch.json").read_text())["skipped"] == 4


def test_a_job_is_done_only_with_the_same_inputs_and_image_settings(tmp_path, rng):
    content = smooth_image(rng, 30, 40)
    # float32 so that the device alone may change (auto would be float32 on a GPU, bfloat16 on some CPUs).
    settings = Settings(stages=(Stage(long_side=32, epochs=3),), init="random", precision="float32")
    out = tmp_path / "c__s.png"
    job = Job("c.png", "s.png", settings, out)
    assert not is_done(job, content)  # no output yet
    save_image(np.zeros((24, 32, 3)), out, metadata=image_metadata(effective_settings(settings, content), "c.png",
                                                                   ["s.png"]))
    assert is_done(job, content)  # the size resolved the same way; the drawn seed is any seed
    assert is_done(Job("c.png", "s.png", replace(settings, device="gpu", report_every=1), out), content)
    assert not is_done(Job("c.png", "s.png", Settings(stages=(Stage(long_side=32, epochs=4),), init="random"), out),
                       content)
    assert not is_done(Job("c.png", "s.png", Settings(stages=settings.stages, init="random", seed=5), out), content)
    assert not is_done(Job("other.png", "s.png", settings, out), content)
    assert not is_done(job, smooth_image(rng, 40, 40))  # another size once resolved


def test_a_failing_job_among_good_ones_fails_alone(tmp_path, images):
    contents, (style, _) = images
    (tmp_path / "broken.png").write_text("not an image")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("content,style,size,epochs\n"
                        f"{contents / 'a.png'},{style},,\n"
                        f"{tmp_path / 'broken.png'},{style},,\n"
                        f"{contents / 'b.png'},{style},40x30,3\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "neural_style", "batch", "--jobs", str(manifest), "-o", str(out),
                           *TINY, "--epochs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [f"neural-style: error: job broken__s: content image {tmp_path / 'broken.png'} is not an image "
                      "(Pillow recognises no image format in it)"]
    assert whole_png(out / "a__s.png") == (32, 24)
    assert whole_png(out / "b__s.png") == (40, 30) and read_settings(out / "b__s.png").stages[0].epochs == 3
    assert not (out / "broken__s.png").exists()
    summary = json.loads((out / "batch.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["done", "failed", "done"]
    assert "1 failed" in proc.stdout


def test_manifest_overrides_use_the_long_option_names(tmp_path):
    manifest = tmp_path / "jobs.json"
    manifest.write_text(json.dumps([{"content": "a.png", "style": "s.png"},
                                    {"content": "b.png", "style": "s.png", "size": ["32x24", "64x48"],
                                     "epochs": 5, "style-weight": 1e4, "original-size": True}]))
    parser = build_parser()
    args = parser.parse_args(["--jobs", str(manifest), "-o", str(tmp_path), "--size", "40x30", "--epochs", "2"])
    first, second = manifest_jobs(parser, args)
    assert [(s.width, s.epochs) for s in first.settings.stages] == [(40, 2)]
    assert [(s.width, s.original, s.epochs) for s in second.settings.stages] == [(32, False, 5), (64, False, 5),
                                                                                 (0, True, 5)]
    assert second.settings.style_weight == 1e4 and second.output == tmp_path / "b__s.png"


@pytest.mark.parametrize("row, message", [
    ('{"content": "a.png", "style": "s.png", "epoch": 3}', "jobs.json job 2: unknown key 'epoch'"),
    ('{"content": "a.png", "style": "s.png", "output": "x.png"}', "jobs.json job 2: unknown key 'output'"),
    ('{"content": "a.png", "style": "s.png", "epochs": -1}', "jobs.json job 2: argument --epochs: -1 must be"),
    ('{"content": "a.png"}', "jobs.json job 2: no style image"),
])
def test_a_bad_manifest_is_a_usage_error_naming_the_job(tmp_path, capsys, row, message):
    manifest = tmp_path / "jobs.json"
    manifest.write_text(f'[{{"content": "b.png", "style": "s.png"}}, {row}]')
    assert batch_main(["--jobs", str(manifest), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing ran


def start_batch(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "neural_style", "batch", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def started_pid(proc, name: str, seen: list) -> int:
    """The worker pid of the next 'started' line of job name in the batch's output (the lines
    read on the way are added to seen)."""
    for line in proc.stdout:
        seen.append(line)
        if f"{name}: started (worker pid " in line:
            return int(line.rsplit(" ", 1)[1].rstrip(")\n"))
    raise AssertionError("the batch ended before the job started")


def test_sigkill_of_a_local_worker_loses_only_its_job_which_runs_again(tmp_path, images):
    contents, (style, _) = images
    out = tmp_path / "out"
    proc = start_batch(tmp_path, "--content", contents / "a.png", contents / "b.png", "--style", style, "-o", out,
                       *TINY, "--epochs", "60", "--checkpoint-every", "5", "--workers", "1")
    # Job 1 loses its first worker at once, and its second one mid-job (after a checkpoint).
    seen = []
    os.kill(started_pid(proc, "a__s", seen), signal.SIGKILL)
    pid = started_pid(proc, "a__s", seen)
    wait_for(lambda: (out / "a__s.ckpt").exists())
    os.kill(pid, signal.SIGKILL)
    # That was its second death: it fails, and the batch goes on with job 2.
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "a__s: its worker died (SIGKILL); running it again on a new worker" in "".join(seen)
    assert "neural-style: error: job a__s: its worker died 2 times (last: SIGKILL)" in err
    assert whole_png(out / "b__s.png") == (32, 24) and not (out / "a__s.png").exists()
    summary = json.loads((out / "batch.json").read_text())
    assert [(j["status"], j["attempts"]) for j in summary["jobs"]] == [("failed", 2), ("done", 1)]

    # Run again: job 1 continues from the checkpoint its second worker wrote; job 2 is skipped.
    proc = start_batch(tmp_path, "--content", contents / "a.png", contents / "b.png", "--style", style, "-o", out,
                       *TINY, "--epochs", "60", "--checkpoint-every", "5", "--workers", "1")
    seen = []
    pid = started_pid(proc, "a__s", seen)
    wait_for(lambda: json.loads((out / "batch.json").read_text())["jobs"][1]["status"] == "skipped")
    stamp = (out / "a__s.ckpt").stat().st_mtime_ns
    wait_for(lambda: (out / "a__s.ckpt").stat().st_mtime_ns != stamp)  # this worker has got somewhere
    os.kill(pid, signal.SIGKILL)
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "a__s: its worker died (SIGKILL); running it again" in rest and "a__s: resumed from its checkpoint" in rest
    assert "".join(seen).count("a__s: started") == 1
    assert whole_png(out / "a__s.png") == (32, 24) and not (out / "a__s.ckpt").exists()
    log = json.loads((out / "a__s.json").read_text())
    assert log["resumed"] and log["history"][-1]["epoch"] == 59


def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(tmp_path, images):
    contents, (style, _) = images
    out = tmp_path / "out"
    args = ["--content", contents / "a.png", contents / "b.png", "--style", style, "-o", out, *TINY,
            "--epochs", "60", "--checkpoint-every", "5"]
    proc = start_batch(tmp_path, *args)
    wait_for(lambda: (out / "a__s.ckpt").exists())  # the job is training
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGINT received; no new jobs" in err
    summary = json.loads((out / "batch.json").read_text())
    assert summary["signal"] == "SIGINT"
    assert [j["status"] for j in summary["jobs"]] == ["interrupted", "not run"]
    assert (out / "a__s.ckpt").is_file() and not (out / "a__s.png").exists()  # stopped with a checkpoint

    proc = start_batch(tmp_path, *args)
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "a__s: resumed from its checkpoint, done" in rest
    assert whole_png(out / "a__s.png") == (32, 24) and whole_png(out / "b__s.png") == (32, 24)


# --- Ray: one local Ray with 2 CPUs for all the tests below -------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_runs_every_pair_with_the_inputs_shipped(tmp_path, images, local_ray):
    contents, styles = images
    out = tmp_path / "out"
    summary = neural_style.batch(contents / "a.png", styles, out, stages=(TINY_STAGE,), ray="")
    assert (summary["done"], summary["failed"]) == (2, 0) and summary["mode"].startswith("ray (local), 2 CPUs")
    for s in ("s", "t"):
        assert whole_png(out / f"a__{s}.png") == (32, 24)
        assert read_metadata(out / f"a__{s}.png")["neural-style:style"] == json.dumps([str(out.parent / f"{s}.jpg")])
        assert (out / f"a__{s}_loss.png").is_file() and (out / f"a__{s}.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_ray_worker_killed_mid_job_is_retried(tmp_path, images, local_ray):
    contents, (style, _) = images
    out = tmp_path / "out"
    killed = []

    def kill_the_task_mid_job():
        wait_for(lambda: (out / "a__s.ckpt").exists(), timeout=240)
        for p in psutil.process_iter(["cmdline"]):
            if (p.info["cmdline"] or [""])[0].startswith("ray::ray_job"):
                p.kill()
                killed.append(p.pid)

    killer = threading.Thread(target=kill_the_task_mid_job, daemon=True)
    killer.start()
    summary = neural_style.batch(contents / "a.png", style, out, stages=(Stage(32, 24, "adam", 0.05, 60),),
                                 ray="", ray_inputs="path", checkpoint_every=5)
    killer.join()
    assert len(killed) == 1
    assert (summary["done"], summary["failed"]) == (1, 0)
    assert whole_png(out / "a__s.png") == (32, 24) and not (out / "a__s.ckpt").exists()
    log = json.loads((out / "a__s.json").read_text())
    assert log["resumed"] and log["history"][-1]["epoch"] == 59  # the retry went on from the checkpoint
