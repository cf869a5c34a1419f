"""The process-wide settings the package applies on import."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

# Allocates and frees a 256 MiB array twice (larger than anything the imports allocate) and counts the page faults of each allocation.
PROBE = textwrap.dedent("""
    import json, os, resource
    import numpy as np
    import neural_style  # applies (or not) the malloc settings

    np.core.multiarray._set_madvise_hugepage(False)  # count 4 KiB pages, as MXNet's buffers get
    if os.environ.get("PROBE_RELEASE"):
        neural_style.runtime.keep_freed_memory(False)  # what train() does for the largest stages
    def faults_of_one_allocation():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.ones(64 * 2**20, np.float32)
        del a
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    print(json.dumps({"first": faults_of_one_allocation(), "second": faults_of_one_allocation(),
                      "threads": os.environ.get("OMP_NUM_THREADS"),
                      "scratch": os.environ.get("MXNET_CPU_TEMP_COPY")}))
""")


def probe(**env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the malloc settings are glibc's")
def test_freed_memory_is_reused_without_faulting_it_in_again():
    pages = 256 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    kept = probe()
    assert kept["first"] > pages // 2  # the first allocation touches fresh memory
    assert kept["second"] < pages // 20  # the second reuses it
    system = probe(NEURAL_STYLE_MALLOC="system")
    assert system["second"] > pages // 2  # glibc's default: returned to the kernel, faulted in again
    released = probe(PROBE_RELEASE="1")
    assert released["second"] > pages // 2  # large stages: large blocks mmap'ed and returned again


def test_threads_default_to_the_cores_and_respect_the_user():
    assert probe()["threads"] == os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    assert probe(OMP_NUM_THREADS="1")["threads"] == "1"


def test_one_scratch_space_unless_the_user_asks_for_more():
    env = {k: v for k, v in os.environ.items() if k != "MXNET_CPU_TEMP_COPY"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                         timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1])["scratch"] == "1"
    assert probe(MXNET_CPU_TEMP_COPY="4")["scratch"] == "4"
