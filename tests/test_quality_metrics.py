"""scripts/quality.py's metric formulas against values worked out by hand, and its plain logic
(command lines, turns, verdicts, contact sheets). None of this needs torch; one end-to-end smoke
run needs the benchmark environment and skips without it."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SCRIPTS, script_module

ROOT = SCRIPTS.parent
SCRIPT = SCRIPTS / "quality.py"


@pytest.fixture(scope="module")
def quality():
    yield from script_module("quality")


def test_gram_by_hand(quality):
    f = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])  # C = 2 channels, N = 3 positions
    # F F^T = [[1+4+9, 0+2+0], [2, 1]], divided by N = 3.
    np.testing.assert_allclose(quality.gram(f), np.array([[14.0, 2.0], [2.0, 1.0]]) / 3)
    # A C x H x W array is flattened to C x HW first.
    np.testing.assert_allclose(quality.gram(f.reshape(2, 3, 1)), quality.gram(f))


def test_relative_error_by_hand(quality):
    target = np.array([[1.0, 1.0], [1.0, -1.0]])  # |target|_F = 2
    value = np.array([[1.0, 1.0], [1.0, 1.0]])  # differs by 2 in one entry
    assert quality.relative_error(value, target) == pytest.approx(1.0)
    assert quality.relative_error(target, target) == 0.0


def test_style_distance_is_the_mean_over_the_style_layers(quality, rng):
    style = {t: rng.normal(size=(4, 10)) for t in quality.STYLE_TAPS}
    # Twice the features: four times the Gram matrix, |4G - G| / |G| = 3 on every layer.
    assert quality.style_distance({t: 2 * f for t, f in style.items()}, style) == pytest.approx(3.0)
    # Equal on the first layer, doubled on the other four: (0 + 4 * 3) / 5.
    out = {t: (f if t == quality.STYLE_TAPS[0] else 2 * f) for t, f in style.items()}
    assert quality.style_distance(out, style) == pytest.approx(12 / 5)
    assert len(quality.STYLE_TAPS) == 5


def test_content_distance_reads_relu4_2(quality, rng):
    assert quality.CONTENT_TAP == "relu4_2"
    content = {"relu4_2": rng.normal(size=(8, 6)), "relu1_1": rng.normal(size=(2, 6))}
    out = {"relu4_2": 1.5 * content["relu4_2"], "relu1_1": np.zeros((2, 6))}
    assert quality.content_distance(out, content) == pytest.approx(0.5)


def test_edge_distance_by_hand(quality):
    np.testing.assert_array_equal(quality.edge_distance(4, 5), [[0, 0, 0, 0, 0],
                                                                 [0, 1, 1, 1, 0],
                                                                 [0, 1, 1, 1, 0],
                                                                 [0, 0, 0, 0, 0]])


def framed(h, w, outer, inner, rest, ring=6):
    """An h x w x 3 image: outer on the outer ring, inner on the next ring in, rest inside."""
    img = np.full((h, w, 3), float(rest))
    img[ring:h - ring, ring:w - ring] = inner
    img[2 * ring:h - 2 * ring, 2 * ring:w - 2 * ring] = rest
    img[:ring], img[-ring:], img[:, :ring], img[:, -ring:] = outer, outer, outer, outer
    return img


def test_ring_contrast_by_hand(quality):
    assert quality.BORDER_RING == 6
    assert quality.ring_contrast(np.full((30, 40, 3), 100.0)) == 0.0
    # A bright frame: 160 against the next ring's 120; what lies further in does not count.
    assert quality.ring_contrast(framed(30, 40, 160, 120, 0)) == pytest.approx(40.0)
    # A dark frame counts the same.
    assert quality.ring_contrast(framed(30, 40, 80, 120, 255)) == pytest.approx(40.0)
    # The three channels are averaged: a red frame (255, 0, 0) on black is 85 levels.
    img = np.zeros((30, 40, 3))
    img[:6, :, 0] = img[-6:, :, 0] = img[:, :6, 0] = img[:, -6:, 0] = 255
    assert quality.ring_contrast(img) == pytest.approx(85.0)


def test_border_excess_subtracts_the_contents_own_frame(quality):
    output = framed(30, 40, 160, 100, 100)  # 60 levels brighter at the border
    content = framed(30, 40, 110, 100, 100)  # the content itself: 10
    assert quality.border_excess(output, content) == pytest.approx(50.0)
    assert quality.border_excess(content, output) == pytest.approx(-50.0)


def test_caffe_input_is_bgr_minus_the_mean_pixel(quality):
    img = np.zeros((2, 3, 3), dtype=np.uint8)
    img[1, 2] = (10, 20, 30)  # R, G, B
    x = quality.caffe_input(img)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 1, 2], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(x[:, 0, 0], [-103.939, -116.779, -123.68], rtol=1e-6)


def test_as_rgb_of_grey_boolean_and_rgba(quality):
    grey = np.array([[0, 7]], dtype=np.uint8)
    np.testing.assert_array_equal(quality.as_rgb(grey), [[[0, 0, 0], [7, 7, 7]]])
    np.testing.assert_array_equal(quality.as_rgb(np.array([[True, False]])), [[[255] * 3, [0] * 3]])
    rgba = np.array([[[1, 2, 3, 4]]], dtype=np.uint8)
    np.testing.assert_array_equal(quality.as_rgb(rgba), [[[1, 2, 3]]])


def test_every_image_is_one_that_ships(quality):
    for pair in quality.PAIRS:
        for name in pair:
            source = quality.IMAGES[name]
            if isinstance(source, Path):
                assert source.is_relative_to(ROOT / "neural_style" / "data")
            else:
                assert source.startswith("skimage:")
    assert len(quality.PAIRS) >= 6


def test_commands_of_the_methods(quality):
    tools = {"python": "/py", "pastiche": "/bench/bin/pastiche"}
    c, s, o = Path("c.png"), Path("s.png"), Path("o.png")
    assert quality.command(quality.METHODS["pastiche"], tools, c, s, o, 256) == [
        "/bench/bin/pastiche", "--content", "c.png", "--styles", "s.png", "--output", "o.png", "--size", "256", "--num-steps", "100"]
    assert quality.command(quality.METHODS["pastiche"], tools, c, s, o, 256, steps=3)[-2:] == ["--num-steps", "3"]
    lecture = quality.command(quality.METHODS["lecture"], tools, c, s, o, 512, steps=3)
    assert lecture[:3] == ["/py", "-m", "neural_style"]
    assert lecture[-7:] == ["--preset", "lecture", "--size", "128", "512", "--epochs", "3"]
    assert quality.command(quality.METHODS["photo"], tools, c, s, o, 256)[-4:] == ["--preset", "photo", "--size", "256"]
    extra = ["--precision", "bfloat16"]
    assert quality.command(quality.METHODS["photo"], tools, c, s, o, 256, extra=extra)[-6:] == [
        "--preset", "photo", "--size", "256", "--precision", "bfloat16"]
    assert quality.command(quality.METHODS["lecture"], tools, c, s, o, 512, steps=3, extra=extra)[-4:] == [
        "--epochs", "3", "--precision", "bfloat16"]
    assert "--precision" not in quality.command(quality.METHODS["pastiche"], tools, c, s, o, 256, extra=extra)


def test_turns_rotate_which_method_runs_first(quality):
    assert quality.turns(["a", "b"], 3) == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b")]
    assert quality.turns(["a", "b", "c"], 1) == [(0, "a"), (0, "b"), (0, "c")]


def test_verdict(quality):
    pastiche = {"style_distance": 0.5, "content_distance": 0.6, "border_excess": 1.0, "seconds": 100.0}
    assert quality.verdict(dict(pastiche), pastiche) == "photo dominates pastiche"
    slower = dict(pastiche, seconds=120.0, style_distance=0.4)
    assert quality.verdict(slower, pastiche) == "photo is worse on seconds 120.0 > 100.0"
    assert quality.verdict(None, pastiche).startswith("no verdict")


def test_partial_note_names_what_the_results_leave_out(quality):
    def rows(methods, sizes, pairs):
        return [{"method": m, "size": s, "pair": quality.pair_name(p)} for m in methods for s in sizes for p in pairs]

    full = rows(quality.METHODS, quality.DEFAULT_SIZES, quality.PAIRS)
    assert quality.partial_note(full, None) == ""
    assert quality.partial_note(full, 3) == "**Partial run**: without the methods' own step counts (this run: 3 steps)."
    note = quality.partial_note(rows(["pastiche", "lecture"], [256], quality.PAIRS[:2]), None)
    assert note.startswith("**Partial run**") and "method photo" in note and "size 512" in note
    assert quality.pair_name(quality.PAIRS[2]) in note and quality.pair_name(quality.PAIRS[0]) not in note


def test_contact_sheet_layout(quality):
    tiles = [("a", np.zeros((20, 10, 3), np.uint8)), ("b", np.full((20, 12, 3), 255, np.uint8))]
    sheet = quality.contact_sheet(tiles)
    assert sheet.size == (10 + 4 + 12, 20 + quality.SHEET_LABEL_HEIGHT)
    tall = quality.labelled(np.zeros((600, 300, 3), np.uint8), "x")
    assert tall.size == (128, quality.SHEET_TILE_HEIGHT + quality.SHEET_LABEL_HEIGHT)


def test_quick_run_end_to_end(quality, tmp_path):
    bench = ROOT / ".venv-bench" / "bin"
    if not (bench / "pastiche").is_file():
        pytest.skip(f"no benchmark environment with pastiche at {bench.parent} (scripts/benchmark.py --setup)")
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--methods", "lecture", "--steps", "1",
                           "--docs", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "quality" / "quality.json").read_text())
    (row,) = report["results"]
    assert row["method"] == "lecture" and row["size"] == quality.QUICK_SIZE
    assert max(row["output_size"]) == quality.QUICK_SIZE
    assert row["style_distance"] > 0 and row["content_distance"] > 0 and row["seconds"] > 0
    assert "**Partial run**" in (tmp_path / "QUALITY.md").read_text()
    assert len(list((tmp_path / "quality").glob("*.jpg"))) == 1


def test_verdicts_and_rows_per_pair_and_size(quality):
    def row(method, size, seconds):
        return {"pair": "a-b", "size": size, "method": method, "output_size": [size, size // 2],
                "style_distance": 0.5, "content_distance": 0.25, "border_excess": -1.0, "seconds": seconds}

    results = [row("pastiche", 256, 50.0), row("photo", 256, 40.0), row("pastiche", 512, 90.0),
               row("photo", 512, 95.0)]
    assert quality.verdicts(results) == [("a-b", 256, "photo dominates pastiche"),
                                         ("a-b", 512, "photo is worse on seconds 95.0 > 90.0")]
    assert quality.result_rows(results[:1]) == [["a-b", "256 (256x128)", "pastiche", "0.500", "0.250", "-1.00",
                                                 "50.0"]]
    assert len(quality.RESULT_HEADER) == len(quality.result_rows(results)[0])


def test_keep_takes_the_earlier_results_this_run_does_not_measure_and_names_each_run(quality):
    def row(method, size):
        return {"pair": "a-b", "size": size, "method": method, "output_size": [size, size],
                "style_distance": 0.5, "content_distance": 0.25, "border_excess": 1.0, "seconds": 10.0}

    def info(date, methods, earlier=()):
        return {"date": date, "cpu": "cpu", "cores": 2, "commit": date, "repeat": 1, "methods": methods,
                "steps": None, "command": f"run of {date}", **({"earlier": list(earlier)} if earlier else {})}

    first = info("d1", ["pastiche", "photo"])
    previous = {"info": info("d2", ["lecture"], [first]),
                "results": [row("pastiche", 256), row("photo", 256), row("lecture", 256), row("photo", 512)]}
    # This run measures photo at 512 again and pastiche at 512: the other three are kept.
    kept, earlier = quality.kept_results(previous, {("a-b", 512, "photo"), ("a-b", 512, "pastiche")})
    assert [(r["method"], r["size"]) for r in kept] == [("pastiche", 256), ("photo", 256), ("lecture", 256)]
    assert [run["date"] for run in earlier] == ["d1", "d2"] and all("earlier" not in run for run in earlier)
    now = info("d3", ["pastiche", "photo"], earlier)
    report = quality.report_markdown(now, kept + [row("pastiche", 512), row("photo", 512)], [])
    assert [line.split(",")[0] for line in report.splitlines() if line.startswith("Measured")] == [
        "Measured d1 on cpu (2 cores)", "Measured d2 on cpu (2 cores)", "Measured d3 on cpu (2 cores)"]
    assert "- lecture: `" in report and "- photo: `" in report
    # Nothing kept: no earlier run is named.
    assert quality.kept_results(previous, {("a-b", s, m) for s in (256, 512) for m in quality.METHODS}) == ([], [])


def test_kept_and_new_results_are_reported_in_table_order_with_every_output_on_the_sheet(quality, tmp_path):
    a, b = (quality.pair_name(p) for p in quality.PAIRS[:2])
    rows = [{"pair": b, "size": 256, "method": "photo"}, {"pair": a, "size": 512, "method": "pastiche"},
            {"pair": a, "size": 256, "method": "photo"}, {"pair": a, "size": 256, "method": "pastiche"}]
    assert [(r["size"], r["pair"], r["method"]) for r in quality.in_table_order(rows)] == [
        (256, a, "pastiche"), (256, a, "photo"), (256, b, "photo"), (512, a, "pastiche")]
    sheets = [Path(f"{a}_512.jpg"), Path(f"{b}_256.jpg"), Path(f"{a}_256.jpg")]
    assert sorted(sheets, key=quality.sheet_order) == [Path(f"{a}_256.jpg"), Path(f"{b}_256.jpg"), Path(f"{a}_512.jpg")]
    # A kept result's image is shown beside this run's while it is still in the work folder.
    kept_image = tmp_path / "kept.png"
    kept_image.write_bytes(b"")
    kept = [{"pair": a, "size": 256, "method": "lecture", "output": str(kept_image)},
            {"pair": a, "size": 256, "method": "pastiche", "output": str(tmp_path / "gone.png")},
            {"pair": b, "size": 256, "method": "lecture", "output": str(kept_image)}]
    runs = {"photo": {"output": "new.png"}}
    assert quality.sheet_runs(quality.PAIRS[0], 256, runs, kept) == {"lecture": {"output": str(kept_image)},
                                                                     "photo": {"output": "new.png"}}


def test_partial_note_names_the_methods_missing_at_a_size_for_some_pairs(quality):
    a, b = (quality.pair_name(p) for p in quality.PAIRS[:2])
    rows = [{"pair": p, "size": s, "method": m} for p in (a, b) for s in (256, 512) for m in quality.METHODS
            if not (s == 512 and (m == "lecture" or p == b))]
    assert quality.gaps(rows) == [f"pastiche at 512 for {b}", "lecture at 512 for any pair", f"photo at 512 for {b}"]
    assert "lecture at 512 for any pair" in quality.partial_note(rows, None)
