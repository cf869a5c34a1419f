"""scripts/layer_memory.py: its arguments, and one real measurement in a fresh process."""
import argparse

import pytest

from conftest import script_module


@pytest.fixture(scope="module")
def layer_memory():
    yield from script_module("layer_memory")


def test_stacks_are_checked(layer_memory):
    assert layer_memory.stack_spec("c,r,p") == "c,r,p"
    for bad in ("", "c,x", "c,,r"):
        with pytest.raises(argparse.ArgumentTypeError):
            layer_memory.stack_spec(bad)


def test_a_convolution_holds_at_least_its_output_and_both_gradients(layer_memory):
    # At the end of an iteration the output, the head gradient of ones and the input's
    # gradient are live together: three maps at the least, on top of the input itself.
    maps = layer_memory.run_worker("static", "c", 256, 256)
    assert maps is not None and 2.9 < maps < 20


def test_the_table_has_a_row_per_stack(layer_memory, capsys):
    assert layer_memory.main(["--size", "64x48", "--stacks", "c", "c,r,p", "--no-torch"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| c")]
    assert [row.split(" | ")[0] for row in rows] == ["| c", "| c,r,p"]
    assert all(len(row.strip("|").split("|")) == 1 + len(layer_memory.MXNET_MODES) for row in rows)
