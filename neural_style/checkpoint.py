"""Checkpoints: the loop's state and each hook's, in one file, so a resumed run ends with exactly
the image an uninterrupted one would have.

A checkpoint is taken between two epochs. The loop's part is the generated image, the
optimizer's state (gluon.Trainer.save_states, which includes the optimizer itself: learning
rate, update counts, Adam's moments) and the epochs of the stage done; each hook adds what it
owns (the divergence guard its last good image and judge, the history its losses, the run its
finished stages), beside the effective settings and fingerprints of the input images. Nothing
random happens after the first stage's starting image is drawn, so no random-generator state
is needed.

The file is a NumPy .npz archive written atomically. The optimizer state inside is MXNet's
pickle: resume only checkpoints you wrote yourself.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from mxnet import gluon

from .images import atomic_write

FORMAT = 2


@dataclass
class Checkpoint:
    version: str
    settings: dict[str, Any]
    inputs: dict[str, Any]  # fingerprints of the content and style images
    stage: int  # the stage being trained
    epoch: int  # epochs of that stage done
    image: np.ndarray  # the generated image, NCHW, preprocessed
    trainer_states: bytes
    hooks: dict[str, dict[str, Any]] = field(default_factory=dict)  # each hook's state, by its name


def trainer_states(trainer: gluon.Trainer) -> bytes:
    """The trainer's optimizer state as bytes (save_states only writes to a file name)."""
    with tempfile.TemporaryDirectory() as d:
        fname = os.path.join(d, "states")
        trainer.save_states(fname)
        with open(fname, "rb") as f:
            return f.read()


def load_trainer_states(trainer: gluon.Trainer, states: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        fname = os.path.join(d, "states")
        with open(fname, "wb") as f:
            f.write(states)
        trainer.load_states(fname)


def _split(hooks: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Hook states as JSON and arrays: an array (or a list of arrays) becomes archive entries."""
    meta, arrays = {}, {}
    for name, state in hooks.items():
        meta[name] = {}
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                arrays[f"{name}/{key}"] = value
                meta[name][key] = {"array": True}
            elif isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
                for i, v in enumerate(value):
                    arrays[f"{name}/{key}/{i}"] = v
                meta[name][key] = {"arrays": len(value)}
            else:
                meta[name][key] = {"value": value}
    return meta, arrays


def _join(meta: dict[str, Any], z) -> dict[str, dict[str, Any]]:
    hooks = {}
    for name, keys in meta.items():
        hooks[name] = {}
        for key, how in keys.items():
            if "array" in how:
                hooks[name][key] = z[f"{name}/{key}"]
            elif "arrays" in how:
                hooks[name][key] = [z[f"{name}/{key}/{i}"] for i in range(how["arrays"])]
            else:
                hooks[name][key] = how["value"]
    return hooks


def save_checkpoint(path: Union[str, os.PathLike], ckpt: Checkpoint) -> Path:
    """Write ckpt to path atomically (a crash never leaves a half-written checkpoint)."""
    hooks_meta, arrays = _split(ckpt.hooks)
    meta = {"format": FORMAT, "version": ckpt.version, "settings": ckpt.settings, "inputs": ckpt.inputs,
            "stage": ckpt.stage, "epoch": ckpt.epoch, "hooks": hooks_meta}
    arrays.update(meta=np.array(json.dumps(meta)), image=np.asarray(ckpt.image, np.float32),
                  trainer_states=np.frombuffer(ckpt.trainer_states, np.uint8))
    path = Path(path)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def load_checkpoint(path: Union[str, os.PathLike]) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; a clear ValueError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"it is in checkpoint format {meta.get('format')!r}, written by neural-style "
                                 f"{meta.get('version', '?')}; this version reads format {FORMAT} only, so start "
                                 "the run again without --resume")
            return Checkpoint(
                version=meta["version"], settings=meta["settings"], inputs=meta["inputs"], stage=meta["stage"],
                epoch=meta["epoch"], image=z["image"], trainer_states=z["trainer_states"].tobytes(),
                hooks=_join(meta["hooks"], z),
            )
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a neural-style checkpoint ({e})") from None
