"""The same settings and seed give the same image, bit for bit, as the code before the redesign.

tests/data/reference_runs.npz holds the result of each run below, made once with the code as it
stood before train() became the lecture's loop with hooks (commit 81b4c67); the test runs them
again and compares. Floating-point kernels differ between CPU models, so exact equality is
asserted on the CPU the references were made on and a tight tolerance elsewhere.

The two L-BFGS runs (lbfgs, lbfgs_diverges) were made again when L-BFGS's first step changed on
purpose (optim.FIRST_STEP, replacing Torch's L1 rule); the others are still 81b4c67's.

    python tests/test_reference_runs.py [NAME ...]   # rewrites those references (all without names)
"""
import json
import platform
from pathlib import Path

import numpy as np
import pytest

from neural_style import Settings, Stage, transfer

REFERENCES = Path(__file__).parent / "data" / "reference_runs.npz"

# name -> Settings: each optimizer, two stages, a diverging run that recovers, a seeded random start.
RUNS = {
    "sgd": Settings(stages=(Stage(48, 32, "sgd", 5.0, 7, 3),), report_every=1),
    "adam": Settings(stages=(Stage(48, 32, "adam", 0.05, 6, 200),), report_every=1),
    "lbfgs": Settings(stages=(Stage(48, 32, "lbfgs", 1.0, 6, 200),), report_every=1),
    "two_stages": Settings(stages=(Stage(32, 24, "sgd", 5.0, 4, 2), Stage(48, 32, "adam", 0.05, 4, 200)),
                           report_every=2),
    "diverges": Settings(stages=(Stage(64, 48, "sgd", 50.0, 12, 200),), report_every=1),
    "adam_diverges": Settings(stages=(Stage(48, 32, "adam", 30.0, 8, 200),), report_every=1),
    "lbfgs_diverges": Settings(stages=(Stage(48, 32, "lbfgs", 50.0, 8, 200),), report_every=1),
    "random_seeded": Settings(stages=(Stage(48, 32, "adam", 0.05, 4, 200),), init="random", seed=5,
                              report_every=1),
}


def pair():
    from skimage import data

    return data.chelsea(), data.immunohistochemistry()


def cpu_model() -> str:
    """The CPU's model name and instruction sets: what decides which kernels oneDNN runs."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    fields = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    isa = sorted(set(fields.get("flags", "").split()) & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"})
    return " ".join([fields.get("model name", "?"), *isa])


def run(name: str):
    result = transfer(*pair(), RUNS[name])  # the default precision, float32, as when they were made
    return result.image, json.dumps(result.history)


def write(names: list[str]) -> None:
    """Rewrite the named runs' references (all of them without names), keeping the others."""
    arrays = {}
    if names and REFERENCES.exists():
        with np.load(REFERENCES) as ref:
            if str(ref["cpu"]) != cpu_model():
                raise SystemExit(f"the references were made on {ref['cpu']}; rewrite them all on this CPU")
            arrays = dict(ref)
    arrays["cpu"] = np.array(cpu_model())
    for name in names or RUNS:
        image, history = run(name)
        arrays[f"{name}/image"] = image
        arrays[f"{name}/history"] = np.array(history)
    REFERENCES.parent.mkdir(exist_ok=True)
    np.savez_compressed(REFERENCES, **arrays)


@pytest.mark.parametrize("name", list(RUNS))
def test_reproduces_the_reference_run(name):
    with np.load(REFERENCES) as ref:
        expected, history, cpu = ref[f"{name}/image"], json.loads(str(ref[f"{name}/history"])), str(ref["cpu"])
    image, got = run(name)
    got = [{k: v for k, v in h.items() if k != "seconds"} for h in json.loads(got)]
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    if cpu == cpu_model():
        assert got == history
        np.testing.assert_array_equal(image, expected)
    else:  # other kernels round differently; the method must still be the same
        assert [sorted(h) for h in got] == [sorted(h) for h in history]
        for g, h in zip(got, history):
            assert [g[k] for k in sorted(g)] == pytest.approx([h[k] for k in sorted(h)], rel=1e-4)
        np.testing.assert_allclose(image, expected, rtol=1e-3, atol=1e-3)


if __name__ == "__main__":
    import sys

    write(sys.argv[1:])
