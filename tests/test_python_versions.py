"""Which Pythons the project accepts: the Makefile's choice of interpreter (scripts/find_python.sh,
with fake pythons on PATH) and setup.py's refusal."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")


def which_python(tmp_path: Path, pythons: dict[str, str], *make_args: str) -> subprocess.CompletedProcess:
    """`make which-python` with PATH holding only fake interpreters that answer the version query
    (`-c ...`) with the given version."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, version in pythons.items():
        fake = bin_dir / name
        fake.write_text(f'#!/bin/sh\n[ "$1" = -c ] && echo {version}\n')
        fake.chmod(0o755)
    return subprocess.run([MAKE, "--no-print-directory", "-C", str(ROOT), "which-python", *make_args],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30)


pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make")


def test_only_python_3_13_stops_with_the_reason_and_the_ways_to_get_3_11(tmp_path):
    out = which_python(tmp_path, {"python3": "3.13.5", "python3.13": "3.13.5"})
    assert out.returncode != 0 and out.stdout == ""
    message = out.stderr
    assert f"python3 is Python 3.13.5 ({tmp_path / 'bin' / 'python3'})" in message
    assert "numpy below 1.24, which has\nno wheels for Python 3.12 or newer" in message
    for way in ("uv python install 3.11", "pyenv install 3.11", "conda env create -f environment.yml",
                "apt install python3.11-venv", "make PYTHON=/path/to/python3.11 demo"):
        assert way in message


def test_a_missing_python_is_named(tmp_path):
    out = which_python(tmp_path, {}, "PYTHON=python3")
    assert out.returncode != 0 and "python3 does not run here" in out.stderr


def test_python_3_11_beside_3_13_is_chosen(tmp_path):
    out = which_python(tmp_path, {"python3": "3.13.5", "python3.11": "3.11.9", "python3.10": "3.10.4"})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "python3.11\n"
    assert "python3 is Python 3.13.5, not 3.9 to 3.11; using python3.11" in out.stderr


def test_python3_that_is_3_11_is_used_as_it_is(tmp_path):
    out = which_python(tmp_path, {"python3": "3.11.2", "python3.10": "3.10.4"})
    assert out.returncode == 0 and out.stdout == "python3\n" and out.stderr == ""


def test_make_python_overrides_and_falls_back_to_3_9(tmp_path):
    out = which_python(tmp_path, {"python3": "3.11.2", "python3.12": "3.12.1", "python3.9": "3.9.18"},
                       "PYTHON=python3.12")
    assert out.stdout == "python3.9\n"


def setup_py(version: tuple) -> subprocess.CompletedProcess:
    """setup.py --version as this interpreter runs it, with sys.version_info set to ``version``
    first: the check itself, not pip on a real Python 3.13 (that was run by hand, see the README)."""
    code = f"import runpy, sys; sys.version_info = {version!r}; sys.argv = ['setup.py', '--version']; " \
           "runpy.run_path('setup.py', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("version", [(3, 12, 1, "final", 0), (3, 13, 5, "final", 0), (3, 8, 18, "final", 0)])
def test_setup_py_refuses_other_pythons_with_the_reason(version):
    out = setup_py(version)
    assert out.returncode == 1
    assert f"neural-style needs Python 3.9 to 3.11, and this is Python {'.'.join(map(str, version[:3]))}" in out.stderr
    assert "numpy below 1.24, which has no wheels for Python 3.12 or newer" in out.stderr


def test_setup_py_builds_on_python_3_11():
    out = setup_py((3, 11, 7, "final", 0))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0.1.0"
