"""Many transfers: ``neural-style batch`` and ``neural_style.batch()``.

One job per (content, style) pair, or per row of a manifest; each job writes
``OUTDIR/<content>__<style>.png`` (its settings inside), ``_loss.png`` and ``.json`` like a single
run. The driver skips a job whose output exists with the settings it would be made with, and a
stopped job resumes from its checkpoint (``OUT.ckpt``). Jobs run in local worker processes, each
loading VGG once, or as Ray tasks. Every file is written atomically (write to a temporary file,
rename), so a killed worker or a Ctrl-C never leaves half a file. ``OUTDIR/batch.json`` holds the
summary.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, fields, replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from .config import Settings, positive
from .hooks import StopFlag
from .images import atomic_write, is_named, read_source, source_stem
from .metadata import PREFIX, read_metadata, read_settings, styles_of
from .options import add_settings_arguments, presets_help, settings_from_args
from .outputs import check_outputs, output_paths, write_result
from .schedule import RESUME_MAY_CHANGE, Result, checkpoint_path, effective_settings
from .signals import SignalHandlers
from .version import __version__

PathLike = Union[str, os.PathLike]

#: The files a --content or --style folder contributes, by extension.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Settings that do not change the image: an output that differs from a job only in them is done.
#: (The memory limit decides which stages are tiled, which gives the same image to rounding.)
NOT_IN_THE_IMAGE = (*RESUME_MAY_CHANGE, "max_pixels", "max_memory")
#: Epochs between two checkpoints of a running job (0: only when stopped).
CHECKPOINT_EVERY = 50
#: A job whose worker dies (SIGKILL, a crash) runs again on a new one; after this many tries it fails.
MAX_ATTEMPTS = 2
SUMMARY_NAME = "batch.json"


class UsageError(ValueError):
    """A bad option, manifest or input list: nothing has run yet."""


@dataclass(frozen=True)
class Job:
    """One transfer: the content and style image as named (a path or skimage:NAME), its settings
    and its output image."""

    content: str
    style: str
    settings: Settings
    output: Path
    overwrite: bool = False

    @property
    def name(self) -> str:
        return self.output.stem


@dataclass
class Outcome:
    """How a job ended: "done", "skipped", "failed" or "interrupted". A Ray task also carries the
    files it made (name -> bytes), which the driver writes."""

    status: str
    seconds: float = 0.0
    error: Optional[str] = None
    resumed: bool = False
    files: dict[str, bytes] = field(default_factory=dict, repr=False)


# --- The jobs -----------------------------------------------------------------------------------

def expand_images(names: Union[PathLike, Sequence[PathLike]]) -> list[str]:
    """Image arguments with each folder replaced by the images in it (by name; hidden files left
    out). Files are kept as given, so that a missing or bad one fails its own jobs only."""
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    images = []
    for name in map(str, names):
        if not is_named(name) and Path(name).is_dir():
            found = sorted(str(p) for p in Path(name).iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
            if not found:
                raise UsageError(f"folder {name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            images += found
        else:
            images.append(name)
    return images


def output_for(outdir: PathLike, content: str, style: str) -> Path:
    """OUTDIR/<content>__<style>.png, named after the images' stems (or skimage names)."""
    return Path(outdir) / f"{source_stem(content)}__{source_stem(style)}.png"


def check_unique(jobs: Sequence[Job]) -> None:
    """A UsageError when two jobs would write the same output."""
    seen: dict[Path, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.output, job)
        if other is not job:
            raise UsageError(f"{other.content} + {other.style} and {job.content} + {job.style} would both "
                             f"write {job.output}; rename one of the images")


def pair_jobs(contents: Sequence[str], styles: Sequence[str], settings: Settings, outdir: PathLike,
              overwrite: bool = False) -> list[Job]:
    """One job per (content, style) pair, contents in the outer loop."""
    jobs = [Job(c, s, settings, output_for(outdir, c, s), overwrite) for c in contents for s in styles]
    check_unique(jobs)
    return jobs


def read_manifest(path: PathLike) -> list[dict[str, Any]]:
    """The rows of a manifest: CSV with a header row, or a JSON list of objects. Each has content,
    style and any overrides; empty CSV cells are left out."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the manifest {path}: {getattr(e, 'strerror', None) or e}") from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise UsageError(f"manifest {path} is not valid JSON ({e})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UsageError(f"manifest {path} must be a JSON list of objects, one per job")
    elif path.suffix.lower() == ".csv":
        rows = [{k.strip(): v.strip() for k, v in row.items() if k is not None and v is not None and v.strip()}
                for row in csv.DictReader(text.splitlines())]
    else:
        raise UsageError(f"manifest {path} must be .csv or .json")
    if not rows:
        raise UsageError(f"manifest {path} lists no jobs")
    for n, row in enumerate(rows, start=1):
        for key in ("content", "style"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise UsageError(f"{path} job {n}: no {key} image")
    return rows


# --- Skipping: is a job's output already there, with its settings? ------------------------------

def check_job(job: Job) -> tuple[np.ndarray, np.ndarray]:
    """Everything cheap about a job, before VGG: both images decode (and --init's), the output
    folder can be written and no input would be overwritten. Returns the content and style
    images; ValueError or OSError with the usual one-line message."""
    s = job.settings
    content = read_source(job.content, s.max_pixels, "content image")
    style = read_source(job.style, s.max_pixels, "style image")
    if s.init not in ("content", "random"):
        from .images import read_image

        read_image(s.init, s.max_pixels, "initial image")
    files = [n for n in (job.content, job.style) if not is_named(n)]
    check_outputs(output_paths(job.output), files, job.overwrite)
    return content, style


def image_settings(settings: Settings, seed_matters: bool = True) -> dict[str, Any]:
    """settings as JSON data without the keys that do not change the image."""
    d = json.loads(json.dumps(settings.to_dict()))
    for key in NOT_IN_THE_IMAGE + (() if seed_matters else ("seed",)):
        d.pop(key, None)
    return d


def is_done(job: Job, content_img: np.ndarray) -> bool:
    """Whether job.output exists, made from the same inputs (as named) with the settings the job
    would run with. The stored settings are the effective ones, so the job's are resolved the same
    way first (sizes to width x height); a random start without a seed matches any drawn seed."""
    try:
        meta = read_metadata(job.output)
        stored = read_settings(job.output)
    except (OSError, ValueError, TypeError):  # missing, not an image, no or odd settings
        return False
    if meta.get(PREFIX + "content") != job.content or styles_of(meta) != [job.style]:
        return False
    seed_matters = not (job.settings.init == "random" and job.settings.seed is None)
    wanted = effective_settings(job.settings, content_img)
    return image_settings(stored, seed_matters) == image_settings(wanted, seed_matters)


# --- One job: run and write ---------------------------------------------------------------------

def run_job(job: Job, stop: Optional[StopFlag] = None, sources: Optional[tuple[Any, Any]] = None,
            folder: Optional[Path] = None, checkpoint_every: int = CHECKPOINT_EVERY) -> Outcome:
    """Run one job and write its results (see write_result) into ``folder`` (default: the output's).

    It continues from the job's checkpoint (beside its output) when transfer() accepts it, and
    starts over when it does not; it writes a checkpoint every ``checkpoint_every`` epochs and
    when ``stop`` ends it ("interrupted", nothing else written). ``sources`` are the images to
    read instead of the job's names (arrays shipped with a Ray task, or absolute paths).
    """
    from .errors import DivergedError, Interrupted, OutOfMemory
    from .schedule import transfer
    from .weights import WeightsError

    start = time.perf_counter()
    ckpt = checkpoint_path(job.output)

    def save(p) -> None:
        if checkpoint_every and (p.epoch + 1) % checkpoint_every == 0:
            p.checkpoint(ckpt)

    resume = ckpt if ckpt.is_file() else None
    try:
        content, style = (src if isinstance(src, np.ndarray) else read_source(str(src), job.settings.max_pixels, role)
                          for src, role in zip(sources or (job.content, job.style), ("content image", "style image")))
        try:
            result = transfer(content, style, job.settings, save, stop, resume=resume, save_to=job.output)
        except ValueError:
            if resume is None:
                raise
            resume = None  # a checkpoint of other settings or images, or damaged: start over
            result = transfer(content, style, job.settings, save, stop, save_to=job.output)
    except Interrupted:
        return Outcome("interrupted", time.perf_counter() - start)
    except (DivergedError, OutOfMemory, WeightsError, OSError, ValueError, RuntimeError) as e:
        return Outcome("failed", time.perf_counter() - start, error=str(e))
    seconds = time.perf_counter() - start
    write_job_result(job, result, Path(folder or job.output.parent), seconds, resume is not None)
    ckpt.unlink(missing_ok=True)  # the job is done; its checkpoint is stale
    return Outcome("done", seconds, resumed=resume is not None)


def write_job_result(job: Job, result: Result, folder: Path, seconds: float, resumed: bool) -> Path:
    """Write a finished job's image (its settings inside), JSON log and loss plot into folder
    (outputs.write_result: the image last, so that an output image means a finished job)."""
    from .metadata import image_metadata

    log = {"version": __version__, "content": job.content, "style": job.style, "output": str(job.output),
           "status": "completed", "resumed": resumed, "settings": result.settings.to_dict(), "seconds": seconds,
           "stage_seconds": result.stage_seconds, "history": result.history}
    return write_result(result.image, folder / job.output.name, image_metadata(result.settings, job.content, [job.style]),
                        log, result.history)[0]


# --- The summary --------------------------------------------------------------------------------

class Summary:
    """The jobs' states: printed as they change and kept in OUTDIR/batch.json (rewritten
    atomically after every job, so a killed driver leaves an up-to-date one)."""

    def __init__(self, jobs: Sequence[Job], outdir: Path, quiet: bool, mode: str) -> None:
        self.jobs, self.path, self.quiet, self.mode = jobs, outdir / SUMMARY_NAME, quiet, mode
        self.outcomes: dict[int, Outcome] = {}
        self.attempts: Counter = Counter()
        self.start = time.perf_counter()
        self.startup_seconds: Optional[float] = None
        self.signal: Optional[str] = None

    def say(self, i: int, text: str) -> None:
        if not self.quiet:
            print(f"[{i + 1}/{len(self.jobs)}] {self.jobs[i].name}: {text}", flush=True)

    def started(self, i: int, where: str) -> None:
        self.attempts[i] += 1
        self.say(i, f"started ({where})")

    def finished(self, i: int, outcome: Outcome) -> None:
        self.outcomes[i] = outcome
        if outcome.status == "failed":
            print(f"neural-style: error: job {self.jobs[i].name}: {outcome.error}", file=sys.stderr)
        elif outcome.status == "skipped":
            self.say(i, "skipped (its output exists, with the same settings)")
        else:
            resumed = "resumed from its checkpoint, " if outcome.resumed else ""
            self.say(i, f"{resumed}{outcome.status} in {outcome.seconds:.1f} s")
        self.write()

    def counts(self) -> Counter:
        return Counter(o.status for o in self.outcomes.values())

    def as_dict(self) -> dict[str, Any]:
        counts = self.counts()
        jobs = []
        for i, job in enumerate(self.jobs):
            o = self.outcomes.get(i, Outcome("not run"))
            jobs.append({"name": job.name, "content": job.content, "style": job.style, "output": str(job.output),
                         "status": o.status, "seconds": o.seconds, "attempts": self.attempts[i],
                         "resumed": o.resumed, "error": o.error})
        return {"version": __version__, "mode": self.mode, "jobs": jobs,
                **{k: counts[k] for k in ("done", "skipped", "failed", "interrupted")},
                "not_run": len(self.jobs) - len(self.outcomes), "seconds": time.perf_counter() - self.start,
                "startup_seconds": self.startup_seconds, "signal": self.signal}

    def write(self) -> None:
        with atomic_write(self.path) as f:
            f.write(json.dumps(self.as_dict(), indent=2).encode())


# --- Signals ------------------------------------------------------------------------------------

class BatchSignals(SignalHandlers):
    """SIGINT and SIGTERM in the driver: the first stops launching jobs and asks the running ones
    to stop after their current epoch, keeping a checkpoint; a second one quits at once (what was
    written stays whole: every write is atomic)."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: Optional[int] = None
        self.quit = False

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\nneural-style batch: {signal.Signals(signum).name} received; no new jobs, running ones stop "
                  "after this epoch and keep a checkpoint (send it again to quit at once)", file=sys.stderr, flush=True)
        elif not self.quit:
            self.quit = True
            raise KeyboardInterrupt


# --- Local workers ------------------------------------------------------------------------------

def default_workers(settings: Settings) -> int:
    """One worker per GPU with --device gpu. On the CPU one worker with every core: MXNet already
    spreads each convolution over all cores, so more workers would only split the same cores
    between them, and each would hold its own VGG and feature maps in memory."""
    if settings.device == "gpu":
        import mxnet as mx

        return max(1, mx.context.num_gpus())
    return 1


def _worker(conn, device: Optional[str]) -> None:
    """A worker process: runs the jobs the driver sends until it sends None. SIGINT is left to the
    driver; SIGTERM (the driver's stop) ends the running job after its epoch, with a checkpoint."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the driver is gone
            return
        if task is None:
            return
        job, checkpoint_every = task
        if device is not None and job.settings.device == "gpu":
            job = replace(job, settings=replace(job.settings, device=device))
        try:
            outcome = run_job(job, stop, checkpoint_every=checkpoint_every)
        except Exception as e:  # a bug should fail its job, not the batch
            outcome = Outcome("failed", error=f"{type(e).__name__}: {e}")
        conn.send(outcome)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """os.environ[name] = value for a child started inside (spawn copies the environment)."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


class LocalWorker:
    """A 'spawn'ed worker process (MXNet's engine threads do not survive fork) and its pipe. MXNet
    reads OMP_NUM_THREADS when the worker imports it, so it is set for the child before it starts."""

    def __init__(self, device: Optional[str], threads: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, device), daemon=True, name="neural-style worker")
        with _environment("OMP_NUM_THREADS", str(threads)):
            self.process.start()
        child.close()
        self.job: Optional[int] = None
        self.stopping = False

    def stop(self) -> None:
        """Ask the running job to stop after its epoch (once)."""
        if not self.stopping and self.process.is_alive():
            self.stopping = True
            os.kill(self.process.pid, signal.SIGTERM)

    def close(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def exit_text(code: Optional[int]) -> str:
    """A dead process's exit code in words: 'SIGKILL', 'exit status 3'."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit status {code}"


def run_local(todo: Sequence[int], jobs: Sequence[Job], summary: Summary, signals: BatchSignals, workers: int,
              checkpoint_every: int) -> None:
    """Run the jobs numbered todo on ``workers`` processes, started as needed. A job whose worker
    dies runs again on a new worker, MAX_ATTEMPTS times at most."""
    settings = jobs[todo[0]].settings
    threads = max(1, (os.cpu_count() or 1) // workers)
    gpus = default_workers(settings) if settings.device == "gpu" else 0
    devices = [f"gpu:{k % gpus}" if gpus > 1 else None for k in range(workers)]
    queue = deque(todo)
    pool: list[Optional[LocalWorker]] = [None] * workers
    try:
        while True:
            for k in range(workers):
                if not queue or signals.stopped:
                    break
                if pool[k] is None:
                    pool[k] = LocalWorker(devices[k], threads)
                worker = pool[k]
                if worker.job is None:
                    worker.job = queue.popleft()
                    worker.conn.send((jobs[worker.job], checkpoint_every))
                    summary.started(worker.job, f"worker pid {worker.process.pid}")
            busy = [w for w in pool if w is not None and w.job is not None]
            if not busy:
                return
            if signals.stopped:
                for w in busy:
                    w.stop()
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.5)
            for k, w in enumerate(pool):
                if w is None or w.job is None or (w.conn not in ready and w.process.sentinel not in ready):
                    continue
                outcome = None
                if w.conn in ready:
                    with contextlib.suppress(EOFError, OSError):
                        outcome = w.conn.recv()
                if outcome is not None:
                    summary.finished(w.job, outcome)
                    w.job = None
                    continue
                w.process.join()
                how, i = exit_text(w.process.exitcode), w.job
                w.job = None
                w.close()
                pool[k] = None
                if signals.stopped:
                    summary.finished(i, Outcome("interrupted", error=f"its worker died ({how})"))
                elif summary.attempts[i] >= MAX_ATTEMPTS:
                    summary.finished(i, Outcome("failed", error=f"its worker died {summary.attempts[i]} times "
                                                                f"(last: {how})"))
                else:
                    summary.say(i, f"its worker died ({how}); running it again on a new worker")
                    queue.appendleft(i)
    except KeyboardInterrupt:  # the second signal: stop the workers now
        for k, w in enumerate(pool):
            if w is not None:
                if w.job is not None:
                    summary.outcomes[w.job] = Outcome("interrupted", error="quit at once")
                w.close(kill=True)
                pool[k] = None
        raise
    finally:
        for w in pool:
            if w is not None:
                w.close()


# --- Ray ----------------------------------------------------------------------------------------

def ray_job(job: Job, content: Any, style: Any, checkpoint_every: int) -> Outcome:
    """A job as a Ray task: run it into a temporary folder on its node and return the files with
    the outcome; the driver writes them (atomically) into the output folder. Its checkpoint goes
    beside the job's output path on the node: on storage every node sees, a retried or rerun
    job resumes wherever it lands."""
    with tempfile.TemporaryDirectory(prefix="neural-style-") as folder:
        outcome = run_job(job, sources=(content, style), folder=Path(folder), checkpoint_every=checkpoint_every)
        if outcome.status == "done":
            outcome.files = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
    return outcome


def write_files(job: Job, files: dict[str, bytes]) -> None:
    """A Ray job's files into its output folder, each atomically, the image last."""
    for name in sorted(files, key=lambda n: n == job.output.name):
        with atomic_write(job.output.parent / name) as f:
            f.write(files[name])


def run_ray(todo: Sequence[int], jobs: Sequence[Job], summary: Summary, signals: BatchSignals, address: str,
            inputs: str, cpus: Optional[int], images: dict[str, np.ndarray], checkpoint_every: int) -> None:
    """Run the jobs numbered todo as Ray tasks: on the cluster at ``address``, on a new local Ray
    without one, or on the Ray this process already started. ``inputs`` "ship" sends the driver's
    decoded images with the tasks (``images``, by name); "path" has the nodes read the files.
    ``cpus`` per task defaults to 1 with a GPU, else to the cores of the smallest node."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install ray==2.60.0 (the version requirements.txt pins)") from None

    start = time.perf_counter()
    owned = not ray.is_initialized()
    if owned and address:
        ray.init(address=address)
    elif owned:
        ray.init(include_dashboard=False)
    summary.startup_seconds = time.perf_counter() - start
    pending: dict = {}
    try:
        gpu = jobs[todo[0]].settings.device.startswith("gpu")
        if cpus is None:  # every node with CPUs can take a task, and computes with all the cores it has
            cpus = 1 if gpu else int(min((n["Resources"]["CPU"] for n in ray.nodes()
                                          if n["Alive"] and n["Resources"].get("CPU")), default=1))
        summary.mode += f", {cpus} CPU{'s' * (cpus > 1)} a task, inputs {inputs}"
        task = ray.remote(ray_job).options(
            num_cpus=cpus, num_gpus=1 if gpu else 0, max_retries=MAX_ATTEMPTS - 1,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(cpus)}})
        shipped: dict[str, Any] = {}

        def source(name: str) -> Any:
            if inputs == "ship":
                if name not in shipped:
                    shipped[name] = ray.put(images[name])
                return shipped[name]
            return name if is_named(name) else str(Path(name).resolve())

        for i in todo:
            job = jobs[i]
            pending[task.remote(job, source(job.content), source(job.style), checkpoint_every)] = i
            summary.attempts[i] += 1
        cancelled = False
        while pending:
            if signals.stopped and not cancelled:
                for ref in pending:
                    ray.cancel(ref)
                cancelled = True
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    outcome = Outcome("interrupted")
                except ray.exceptions.RayError as e:  # its worker died on every try, or a bug
                    outcome = Outcome("failed", error=str(e).strip().splitlines()[-1] if str(e).strip() else repr(e))
                if outcome.files:
                    write_files(jobs[i], outcome.files)
                    outcome.files = {}
                summary.finished(i, outcome)
    except KeyboardInterrupt:  # the second signal
        for ref, i in pending.items():
            ray.cancel(ref, force=True)
            summary.outcomes[i] = Outcome("interrupted", error="quit at once")
        raise
    finally:
        if owned:
            ray.shutdown()


# --- The batch ----------------------------------------------------------------------------------

def run_batch(jobs: Sequence[Job], outdir: PathLike, *, workers: Optional[int] = None, ray: Optional[str] = None,
              ray_inputs: str = "ship", ray_cpus: Optional[int] = None, checkpoint_every: int = CHECKPOINT_EVERY,
              quiet: bool = False) -> dict[str, Any]:
    """Check every job, skip the done ones, run the rest (``ray`` None: on local workers; "" or an
    address: as Ray tasks) and return the summary, which is also in OUTDIR/batch.json."""
    if ray_inputs not in ("ship", "path"):
        raise ValueError(f"ray_inputs is {ray_inputs!r}; use 'ship' or 'path'")
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the output folder {outdir}: {e.strerror or e}") from None
    settings = jobs[0].settings if jobs else Settings()
    if ray is None:
        workers = workers or default_workers(settings)
        mode = f"{workers} local worker{'s' * (workers > 1)}"
    else:
        mode = f"ray {ray or '(local)'}"
    summary = Summary(jobs, outdir, quiet, mode)
    with BatchSignals() as signals:
        todo, images = [], {}
        try:
            for i, job in enumerate(jobs):
                if signals.stopped:
                    break
                try:
                    content, style = check_job(job)
                except (ValueError, OSError) as e:
                    summary.finished(i, Outcome("failed", error=str(e)))
                    continue
                if is_done(job, content):
                    summary.finished(i, Outcome("skipped"))
                    continue
                todo.append(i)
                if ray is not None and ray_inputs == "ship":
                    images.setdefault(job.content, content)
                    images.setdefault(job.style, style)
            if todo and not signals.stopped:
                if ray is None:
                    run_local(todo, jobs, summary, signals, workers, checkpoint_every)
                else:
                    run_ray(todo, jobs, summary, signals, ray, ray_inputs, ray_cpus, images, checkpoint_every)
        except KeyboardInterrupt:  # the second signal (or an interrupt of our handler's): the runner has stopped
            if signals.signum is None:
                signals.signum = signal.SIGINT
        if signals.signum is not None:
            summary.signal = signal.Signals(signals.signum).name
        summary.write()
    result = summary.as_dict()
    if not quiet:
        print(f"batch: {result['done']} done, {result['skipped']} skipped, {result['failed']} failed"
              + (f", {result['interrupted'] + result['not_run']} not finished" if summary.signal else "")
              + f" in {result['seconds']:.0f} s; summary in {summary.path}", flush=True)
    return result


def batch(contents: Union[PathLike, Sequence[PathLike]], styles: Union[PathLike, Sequence[PathLike]],
          outdir: PathLike, *, settings: Optional[Settings] = None, workers: Optional[int] = None,
          ray: Optional[str] = None, ray_inputs: str = "ship", ray_cpus: Optional[int] = None,
          checkpoint_every: int = CHECKPOINT_EVERY, quiet: bool = False, **overrides) -> dict[str, Any]:
    """Stylise every content with every style into outdir; returns the summary (also in
    OUTDIR/batch.json): counts of done, skipped, failed and interrupted jobs, and each job's state.

    ``contents`` and ``styles`` are image paths, folders of images or skimage:NAME. ``overrides``
    are fields of Settings, over ``settings`` (default: the lecture's), as in stylize().
    ``workers`` local processes run the jobs (default: default_workers); ``ray`` "" runs them as
    tasks on a local Ray, an address on that cluster, with ``ray_cpus`` CPUs each and the inputs
    shipped with the tasks (``ray_inputs="ship"``) or read from paths every node sees ("path").
    """
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"batch() got unknown settings {', '.join(unknown)}; the settings are: "
                        + ", ".join(sorted(known)))
    settings = replace(settings or Settings(), **overrides).validate()
    jobs = pair_jobs(expand_images(contents), expand_images(styles), settings, outdir)
    return run_batch(jobs, outdir, workers=workers, ray=ray, ray_inputs=ray_inputs, ray_cpus=ray_cpus,
                     checkpoint_every=checkpoint_every, quiet=quiet)


# --- The command line: the settings' own options (options.py), and the batch's ------------------

#: Long options that belong to the whole batch, not to a manifest row.
BATCH_ONLY = ("content", "style", "jobs", "output", "resume", "workers", "ray", "ray-inputs", "ray-cpus",
              "checkpoint-every", "quiet", "overwrite", "help", "version")

USAGE = "neural-style batch (--content FILE|DIR ... --style FILE|DIR ... | --jobs FILE) -o OUTDIR [options]"

DESCRIPTION = """\
One style transfer per (content, style) pair, or per row of a manifest (--jobs), into
OUTDIR/<content>__<style>.png with its settings inside, its _loss.png and .json log. Every
single-run option below applies to every job. A job whose output exists with the same settings is
skipped; a stopped job resumes from its checkpoint. Ctrl-C: no new jobs, running ones stop after
their epoch with a checkpoint (twice: quit at once). The summary is in OUTDIR/batch.json.
Exit status: 0 when every job is done, 1 when some failed, 2 for bad options, 130 after Ctrl-C.
"""


class BatchParser(argparse.ArgumentParser):
    """Raises UsageError instead of exiting, so that a manifest row's bad value names its job."""

    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> BatchParser:
    """Every setting's option (the same as a single run's), and the batch's own."""
    p = BatchParser(prog="neural-style batch", usage=USAGE, description=DESCRIPTION, epilog=presets_help(),
                    allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = add_settings_arguments(p)["run"]
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--overwrite", action="store_true",
                     help="allow an output to replace one of the input images (refused otherwise)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    b = p.add_argument_group("batch")
    b.add_argument("--content", nargs="+", metavar="FILE|DIR",
                   help="content images, folders of images or skimage:NAME")
    b.add_argument("--style", nargs="+", metavar="FILE|DIR", help="style images, folders of images or skimage:NAME")
    b.add_argument("--jobs", type=Path, metavar="FILE",
                   help="a manifest instead of --content/--style: CSV with a header row or a JSON list of "
                        "objects; keys content, style and any option above by its long name without --, "
                        "e.g. epochs, size, style-weight (several values: separated by spaces, or a JSON list)")
    b.add_argument("-o", "--output", type=Path, metavar="OUTDIR", help="the output folder (created if missing)")
    b.add_argument("--workers", type=positive(int), metavar="N",
                   help="local worker processes, each loading VGG once (default: one per GPU with --device gpu; "
                        "on the CPU one, with every core, since each convolution already uses them all)")
    b.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run each job as a Ray task on the cluster at ADDRESS (e.g. auto, or ray://HOST:10001), "
                        "or on a new local Ray without one; a task whose worker dies is run again once")
    b.add_argument("--ray-inputs", choices=("ship", "path"), default="ship",
                   help="ship: the driver reads the images and sends them with the tasks (works anywhere); "
                        "path: the nodes read them, from paths every node sees (default: %(default)s)")
    b.add_argument("--ray-cpus", type=positive(int), metavar="N",
                   help="CPUs each Ray task reserves and computes with (default: 1 with --device gpu, else the "
                        "cores of the cluster's smallest node, so that any node can take a task)")
    b.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY, metavar="N",
                   help="checkpoint a running job every N epochs, so that a killed one resumes there "
                        "(0: only when stopped; default: %(default)s)")
    return p


def job_args(parser: argparse.ArgumentParser, base: argparse.Namespace, row: dict[str, Any],
             where: str) -> argparse.Namespace:
    """base with a manifest row's overrides, parsed by the command line's own parser. The keys
    are long option names without --; a flag takes true or false."""
    options = {o[2:]: a for a in parser._actions for o in a.option_strings if o.startswith("--")}
    args, tokens = copy.copy(base), []
    for key, value in row.items():
        if key in ("content", "style"):
            continue
        action = options.get(key)
        if action is None or key in BATCH_ONLY:
            raise UsageError(f"{where}: unknown key {key!r}; a job takes content, style and the long name of a "
                             "single-run option without --, e.g. epochs, size, style-weight")
        if action.nargs == 0:
            text = str(value).strip().lower()
            if text not in ("true", "false", "yes", "no", "1", "0"):
                raise UsageError(f"{where}: {key} is {value!r}; give true or false")
            if text in ("true", "yes", "1"):
                tokens.append(f"--{key}")
            else:
                setattr(args, action.dest, action.default)
        else:
            tokens += [f"--{key}", *map(str, value if isinstance(value, list) else str(value).split())]
    try:
        return parser.parse_args(tokens, namespace=args)
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None


def settings_of(args: argparse.Namespace) -> Settings:
    """The Settings the options ask for (the preset named, else the lecture's)."""
    try:
        return settings_from_args(args)
    except ValueError as e:
        raise UsageError(str(e)) from None


def manifest_jobs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Job]:
    """One job per manifest row: the command line's options, then the row's."""
    jobs = []
    for n, row in enumerate(read_manifest(args.jobs), start=1):
        where = f"{args.jobs} job {n}"
        try:
            settings = settings_of(job_args(parser, args, row, where))
        except UsageError as e:
            raise UsageError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
        jobs.append(Job(row["content"], row["style"], settings, output_for(args.output, row["content"], row["style"]),
                        args.overwrite))
    check_unique(jobs)
    return jobs


def batch_main(argv: Sequence[str]) -> int:
    """``neural-style batch``: 0 when every job is done, 1 when some failed, 2 for a usage error
    (nothing run), 128 + N after signal N (130 for Ctrl-C)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
        if args.output is None:
            raise UsageError("give the output folder: -o OUTDIR")
        if args.checkpoint_every < 0:
            raise UsageError("--checkpoint-every must be 0 or more")
        if args.ray is not None and args.workers:
            raise UsageError("--workers is for local workers; with --ray, Ray places the tasks (see --ray-cpus)")
        if args.jobs is not None:
            if args.content or args.style:
                raise UsageError("give either --jobs or --content and --style, not both")
            jobs = manifest_jobs(parser, args)
        elif args.content and args.style:
            jobs = pair_jobs(expand_images(args.content), expand_images(args.style), settings_of(args),
                             args.output, args.overwrite)
        else:
            raise UsageError("give the images: --content FILE|DIR ... --style FILE|DIR ..., or --jobs FILE")
        summary = run_batch(jobs, args.output, workers=args.workers, ray=args.ray, ray_inputs=args.ray_inputs,
                            ray_cpus=args.ray_cpus, checkpoint_every=args.checkpoint_every, quiet=args.quiet)
    except UsageError as e:
        print(f"neural-style batch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while the summary was being written: it is whole, or the last one
        print("neural-style batch: quit", file=sys.stderr)
        return 130
    if summary["signal"] is not None:
        return 128 + int(signal.Signals[summary["signal"]])
    return 1 if summary["failed"] else 0
