"""scripts/tiling.py's pure logic: the memory model's fit, the overheads, rows included from an
earlier run; nothing is timed here."""
import json

import pytest

from conftest import script_module


@pytest.fixture(scope="module")
def tiling():
    yield from script_module("tiling")


def rows_of(base, untiled, tiled_base, image, tile):
    """Rows whose peaks follow the model exactly (bytes), as the worker reports them (MB)."""
    rows = [{"size": [w, h], "tile": 0, "completed": True, "largest_tile_pixels": w * h,
             "peak_rss_mb": (base + untiled * w * h) / 2**20} for w, h in [(450, 300), (900, 600), (1800, 1200)]]
    rows += [{"size": [w, h], "tile": t, "completed": True, "largest_tile_pixels": px,
              "peak_rss_mb": (tiled_base + image * w * h + tile * px) / 2**20}
             for (w, h), t, px in [((1800, 1200), 448, 369664), ((2400, 1600), 448, 313600),
                                   ((7680, 4320), 1408, 1797120)]]
    return rows


def constants(lines):
    return {k: float(v) for k, _, v in (line.partition(" = ") for line in lines if " = " in line)}


def test_the_fit_recovers_the_models_constants(tiling):
    fitted = constants(tiling.fit(rows_of(1.2e9, 4000.0, 3e8, 180.0, 4700.0)))
    assert fitted["base"] == pytest.approx(1.2e9, rel=1e-3)
    assert fitted["untiled"] == pytest.approx(4000.0, rel=1e-3)
    assert fitted["tiled_base"] == pytest.approx(3e8, rel=1e-3)
    assert fitted["tiled_image"] == pytest.approx(180.0, rel=1e-3)
    assert fitted["tile"] == pytest.approx(4700.0, rel=1e-3)


def test_the_fit_leaves_out_rows_that_did_not_complete(tiling):
    rows = rows_of(1.2e9, 4000.0, 3e8, 180.0, 4700.0)
    rows.append({"size": [9000, 9000], "tile": 448, "completed": False, "largest_tile_pixels": 369664,
                 "peak_rss_mb": 1.0})
    assert constants(tiling.fit(rows))["tiled_image"] == pytest.approx(180.0, rel=1e-3)
    assert tiling.fit(rows[:1]) == ["--fit needs at least two untiled sizes"]
    assert tiling.fit(rows[:5])[-1] == "--fit needs at least three tiled rows for the tiled line"
    rows[0]["precision"] = "bfloat16"
    assert tiling.fit(rows) == ["--fit needs the rows of one precision, not bfloat16 and float32: a model is per precision"]


def test_overheads_compare_each_tiled_row_with_its_untiled_size(tiling):
    rows = [{"size": [900, 600], "tile": 0, "seconds_per_epoch": 10.0},
            {"size": [900, 600], "tile": 448, "seconds_per_epoch": 12.5},
            {"size": [2400, 1600], "tile": 448, "seconds_per_epoch": 99.0}]  # no untiled row: no line
    assert tiling.overheads(rows) == ["900x600 in tiles of 448: 12.5 s/epoch against 10.0 untiled, 1.25x"]


def test_rows_from_an_earlier_run_join_the_table_and_the_fit(tiling, tmp_path, capsys):
    rows = rows_of(1.2e9, 4000.0, 3e8, 180.0, 4700.0)
    for r in rows:
        r.update(epochs=2, tiles=4, seconds_per_epoch=1.0, setup_seconds=1.0)
    earlier = tmp_path / "8k.json"
    earlier.write_text(json.dumps(rows[-1:]))
    rest = tmp_path / "rest.json"
    rest.write_text(json.dumps(rows[:-1]))
    assert tiling.main(["--rows", "--include", str(rest), str(earlier), "--fit"]) == 0
    out = capsys.readouterr().out
    assert "| 7680x4320 | 33.18 | 1408 |" in out
    fitted = constants(out.splitlines())
    assert fitted["tile"] == pytest.approx(4700.0, rel=1e-3)
    assert fitted["tiled_image"] == pytest.approx(180.0, rel=1e-3)
