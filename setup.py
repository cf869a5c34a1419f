"""Stops `pip install .` on a Python that MXNet 1.9.1 cannot run on, with the reason; pyproject.toml
holds everything else. (pip's own refusal names only the version range, and comes after it has
tried to build the dependencies; numpy 1.23 from source then fails at length.)"""
import sys

from setuptools import setup

if not (3, 9) <= sys.version_info[:2] <= (3, 11):
    sys.exit(
        f"neural-style needs Python 3.9 to 3.11, and this is Python {'.'.join(map(str, sys.version_info[:3]))} ({sys.executable}): "
        "MXNet 1.9.1 works only with numpy below 1.24, which has no wheels for Python 3.12 or newer. "
        "Install with a Python 3.11 (`uv python install 3.11`, pyenv, your OS's python3.11 package, or "
        "conda with the project's environment.yml); the README's 'Which Python' section has the steps."
    )
setup()
