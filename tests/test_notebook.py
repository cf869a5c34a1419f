"""The lecture notebook runs top to bottom, headless, on tiny sizes."""
import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "neural_style.ipynb"

QUICK = """
CONTENT_PATH = None
STYLE_PATH = None
LECTURE_DIR = None
DOWNLOAD_TO = None
SMALL, SMALL_EPOCHS, SMALL_LR, SMALL_DECAY = (48, 32), 3, 1.0, 200
LARGE, LARGE_EPOCHS, LARGE_LR, LARGE_DECAY = (96, 64), 2, 0.5, 100
DEVICE = "cpu"
REPORT_EVERY = 1
"""


def test_committed_notebook_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_notebook_runs_headless(monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel must use its inline backend
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one parameters cell at the top"
    params[0].source = QUICK
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "images:" in text and "conv4_4" in text
    figures = [o for o in outputs if o.get("output_type") == "display_data"
               and ({"image/png", "image/svg+xml"} & set(o.get("data", {})))]
    assert len(figures) >= 4  # the two inputs, two loss plots, two results (some share a figure)
    assert not [o for o in outputs if o.get("output_type") == "error"]
