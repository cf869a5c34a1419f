"""What a run leaves beside its image: a JSON log and a loss-curve plot."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Union

from .images import atomic_write

# What a history entry (hooks.History) holds besides the losses, which compute_loss names.
ENTRY_FIELDS = ("stage", "width", "height", "epoch", "lr", "seconds")


def loss_names(history: list[dict]) -> list[str]:
    """The names of the loss terms in a history, in compute_loss's order, without their total."""
    names: dict[str, None] = {}
    for h in history:
        names.update((k, None) for k in h if k not in ENTRY_FIELDS and k not in ("total", "event"))
    return list(names)


def _json_safe(value: Any) -> Any:
    """NaN and infinities as the strings "nan", "inf", "-inf": JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_log(path: Union[str, os.PathLike], log: dict[str, Any]) -> Path:
    """Write the run's settings and losses as JSON (strict: a diverged loss is "nan"), atomically."""
    with atomic_write(path) as f:
        f.write(json.dumps(_json_safe(log), indent=2, default=str, allow_nan=False).encode())
    return Path(path)


def load_plotting() -> None:
    """Load matplotlib's Agg backend now: a caller that may plot after running out of memory (the
    command line saves the last good image and its loss plot then) loads it first, since a
    process near its address-space limit may no longer map the backend's shared objects."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends import backend_agg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401


def plot_losses(path: Union[str, os.PathLike], history: list[dict]) -> Path:
    """Each weighted loss term against the epoch, one line each, stages marked."""
    load_plotting()
    from matplotlib.figure import Figure

    history = [h for h in history if "total" in h]  # leave out events such as a recovery
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    # The x axis counts epochs across stages; the last report of a stage is its last epoch.
    stage_epochs: dict[int, int] = {}
    for h in history:
        stage_epochs[h["stage"]] = max(stage_epochs.get(h["stage"], 0), h["epoch"] + 1)
    offsets, total = {}, 0
    for stage in sorted(stage_epochs):
        offsets[stage] = total
        total += stage_epochs[stage]
        if stage > 0:
            ax.axvline(offsets[stage], color="grey", lw=0.8, ls=":")
    for name in loss_names(history):
        xs = [offsets[h["stage"]] + h["epoch"] for h in history]
        ax.plot(xs, [h[name] for h in history], marker=".", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted loss")
    ax.legend()
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
    return Path(path)
