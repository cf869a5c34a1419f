"""The benchmark script's pure logic (FLOP count, sizes, report writing); nothing is timed here."""
import pytest

from conftest import script_module


@pytest.fixture(scope="module")
def bench():
    yield from script_module("benchmark")


def test_flops_at_300x200_by_hand(bench):
    # Spatial sizes after each 2x2 pool (floor): 300x200, 150x100, 75x50, 37x25, 18x12.
    # Forward FLOPs of a 3x3 conv: 2 * Cin * Cout * 9 * H * W.
    def conv(cin, cout, w, h):
        return 2 * cin * cout * 9 * w * h

    forward = (conv(3, 64, 300, 200) + conv(64, 64, 300, 200)
               + conv(64, 128, 150, 100) + conv(128, 128, 150, 100)
               + conv(128, 256, 75, 50) + 3 * conv(256, 256, 75, 50)
               + conv(256, 512, 37, 25) + 3 * conv(512, 512, 37, 25)
               + conv(512, 512, 18, 12))
    assert forward == 43_045_097_472
    # Forward plus the gradient to each convolution's input: twice the forward count.
    assert bench.iteration_flops(300, 200) == 2 * forward == 86_090_194_944


def test_conv_flops_layers_and_sizes(bench):
    convs = bench.conv_flops(300, 200)
    assert [c["index"] for c in convs] == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    assert [(c["width"], c["height"]) for c in convs][::4] == [(300, 200), (75, 50), (37, 25), (18, 12)]
    assert convs[0]["flops"] == 2 * 3 * 64 * 9 * 300 * 200


def test_layer_kinds_match_gluon_vgg19(bench):
    from mxnet.gluon.model_zoo import vision

    features = list(vision.vgg19().features)[:29]
    names = {"Conv2D": "conv", "Activation": "relu", "MaxPool2D": "pool"}
    assert [names[type(layer).__name__] for layer in features] == bench.vgg19_layer_kinds()
    out_channels = [features[i]._channels for i, _, _ in bench.VGG19_CONVS]
    assert out_channels == [cout for _, _, cout in bench.VGG19_CONVS]
    # Each convolution's input channels are the previous one's output (3 for the image).
    ins = [cin for _, cin, _ in bench.VGG19_CONVS]
    assert ins == [3] + out_channels[:-1]


def test_parse_size(bench):
    assert bench.parse_size("300x200") == (300, 200)
    assert bench.parse_size(" 64X48 ") == (64, 48)
    for bad in ("300", "0x10", "ax2", "3x-1"):
        with pytest.raises(Exception):
            bench.parse_size(bad)


def test_speed_rows_ratios(bench):
    rows = bench.speed_rows([
        {"size": "8x8", "path": "lecture", "label": "lecture", "seconds_per_iter": 2.0, "flops": 4e9,
         "peak_rss_mb": 500, "threads": 1},
        {"size": "8x8", "path": "default", "label": "default (sgd)", "seconds_per_iter": 0.5, "flops": 4e9,
         "peak_rss_mb": 600, "threads": 2},
        {"size": "8x8", "path": "torch", "label": "torch", "seconds_per_iter": 1.0, "flops": 4e9,
         "peak_rss_mb": 300, "threads": 2},
    ], sgemm_gflops=100.0)
    default = rows[1]
    assert default[:3] == ["8x8", "default (sgd)", "2"]
    assert default[4:] == ["4.00x", "2.00x", "2.00x", "8.0", "8%", "600"]


def test_speed_rows_compare_with_the_fastest_torch_row(bench):
    row = {"size": "8x8", "flops": 4e9, "peak_rss_mb": 1, "threads": 2}
    rows = bench.speed_rows([
        {**row, "path": "default", "label": "default", "seconds_per_iter": 0.5},
        {**row, "path": "torch", "label": "torch", "seconds_per_iter": 1.0},
        {**row, "path": "torch bf16 channels_last", "label": "torch bf16 channels_last", "seconds_per_iter": 0.25},
    ], sgemm_gflops=100.0)
    assert [r[5:7] for r in rows] == [["2.00x", "0.50x"], ["1.00x", "0.25x"], ["4.00x", "1.00x"]]


def test_bfloat16_rows_only_on_a_cpu_that_runs_bfloat16(bench):
    def paths(bf16, precision="float32"):
        return [p[0] for p in bench.speed_plan("py", "tpy", bf16, precision)]

    assert paths(False) == ["lecture", "default", "torch", "torch channels_last"]
    assert paths(True) == ["lecture", "default", "default --precision bfloat16", "torch", "torch channels_last",
                           "torch bf16", "torch bf16 channels_last"]
    assert paths(True, "auto")[2] == "default --precision float32"
    plan = {p[0]: p for p in bench.speed_plan("py", "tpy", True, "float32")}
    assert plan["torch bf16 channels_last"][1:] == ("tpy", bench.TORCH_WORKER, "time",
                                                    {"autocast": True, "channels_last": True})
    assert plan["default --precision bfloat16"][4] == {"precision": "bfloat16"}


def test_paths_choose_rows_of_the_plan(bench):
    plan = bench.speed_plan("py", "tpy", False, "float32")
    assert [p[0] for p in bench.chosen_paths(plan, ["torch", "default"])] == ["default", "torch"]
    assert bench.chosen_paths(plan, None) == plan
    with pytest.raises(SystemExit, match="no row 'torch bf16'"):
        bench.chosen_paths(plan, ["torch bf16"])


def test_write_report_keeps_text_outside_the_marks(bench, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    bench.write_report(path, "first")
    assert "first" in path.read_text()
    text = path.read_text().replace(bench.MARK_END, bench.MARK_END + "\n\n## What made the difference\n\nprose")
    path.write_text(text)
    bench.write_report(path, "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and "prose" in text
    assert text.count(bench.MARK_BEGIN) == 1


def test_quality_rows_shares_of_both_schedules(bench):
    run = {"optimizer": "x", "lr": 1.0, "events": [], "error": None}
    q = {"target": 10.0, "sgd_seconds": 100.0, "lecture_seconds": 250.0, "runs": [
        {**run, "run": "sgd", "reached": True, "reached_epoch": 499, "seconds": 100.0, "epochs_run": 500,
         "final_total": 10.0},
        {**run, "run": "lbfgs", "reached": True, "reached_epoch": 9, "seconds": 20.0, "epochs_run": 10,
         "final_total": 9.5},
        {**run, "run": "adam", "reached": False, "reached_epoch": None, "seconds": None, "epochs_run": 500,
         "final_total": 11.0, "events": ["diverged"]},
    ]}
    sgd, lbfgs, adam = bench.quality_rows(q)
    assert sgd[3:7] == ["500", "100.0", "0.400", "1.000"]
    assert lbfgs[3:7] == ["10", "20.0", "0.080", "0.200"]
    assert adam[3:7] == ["not in 500", "-", "-", "-"]
    assert adam[8] == "1 recoveries"
    q["lecture_seconds"] = None  # no speed row at the quality size: no share of the lecture loop's time
    assert bench.quality_rows(q)[1][5] == "-"
