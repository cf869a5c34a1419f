"""Checkpoints: everything the rest of a run depends on, in one file, so a resumed run ends with
exactly the image an uninterrupted one would have.

A checkpoint is taken between two epochs. It holds the generated image, the optimizer's state
(gluon.Trainer.save_states, which includes the optimizer itself: learning rate, update counts,
Adam's moments), the learning rate, the stage and the number of its epochs done, the training
loop's divergence-recovery state (last good image, best loss, recoveries, the loss and image of
the epoch still being judged), the finished stages' images, the loss history, the effective
settings and fingerprints of the input images. Nothing random happens after the first stage's
starting image is drawn, so no random-generator state is needed.

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
from typing import Any, Optional, Union

import numpy as np
from mxnet import gluon

from .images import atomic_write

FORMAT = 1


@dataclass
class Checkpoint:
    version: str
    settings: dict[str, Any]
    inputs: dict[str, Any]  # fingerprints of the content and style images
    stage: int  # the stage being trained
    epoch: int  # epochs of that stage done
    lr: float
    best: float
    recoveries: int
    image: np.ndarray  # the generated image, NCHW, preprocessed
    last_good: np.ndarray
    trainer_states: bytes
    previous_loss: Optional[float] = None  # the last epoch's loss, not yet judged by the loop
    previous_image: Optional[np.ndarray] = None
    stage_images: list[np.ndarray] = field(default_factory=list)  # finished stages, HWC in [0, 1]
    history: list[dict] = field(default_factory=list)
    stage_seconds: list[float] = field(default_factory=list)


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


def save_checkpoint(path: Union[str, os.PathLike], ckpt: Checkpoint) -> Path:
    """Write ckpt to path atomically (a crash never leaves a half-written checkpoint)."""
    meta = {
        "format": FORMAT, "version": ckpt.version, "settings": ckpt.settings, "inputs": ckpt.inputs,
        "stage": ckpt.stage, "epoch": ckpt.epoch, "lr": ckpt.lr, "best": ckpt.best,
        "recoveries": ckpt.recoveries, "previous_loss": ckpt.previous_loss,
        "stages_done": len(ckpt.stage_images), "history": ckpt.history, "stage_seconds": ckpt.stage_seconds,
    }
    arrays = {
        "meta": np.array(json.dumps(meta)),
        "image": np.asarray(ckpt.image, np.float32),
        "last_good": np.asarray(ckpt.last_good, np.float32),
        "trainer_states": np.frombuffer(ckpt.trainer_states, np.uint8),
    }
    if ckpt.previous_image is not None:
        arrays["previous_image"] = np.asarray(ckpt.previous_image, np.float32)
    for i, img in enumerate(ckpt.stage_images):
        arrays[f"stage_image_{i}"] = np.asarray(img)
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
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
            return Checkpoint(
                version=meta["version"], settings=meta["settings"], inputs=meta["inputs"],
                stage=meta["stage"], epoch=meta["epoch"], lr=meta["lr"], best=meta["best"],
                recoveries=meta["recoveries"], image=z["image"], last_good=z["last_good"],
                trainer_states=z["trainer_states"].tobytes(), previous_loss=meta["previous_loss"],
                previous_image=z["previous_image"] if "previous_image" in z.files else None,
                stage_images=[z[f"stage_image_{i}"] for i in range(meta["stages_done"])],
                history=meta["history"], stage_seconds=meta["stage_seconds"],
            )
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a neural-style checkpoint ({e})") from None
