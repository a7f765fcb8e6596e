"""Atomic, verified training checkpoints.

A checkpoint is written to a temporary file beside its destination, fsynced and renamed, with a
``.sha256`` sidecar written the same way, so a job killed mid-write (preemption, kill -9) leaves the
previous checkpoint intact. Loading checks the digest first: a corrupt file is reported, never
silently used. ``torch.load(weights_only=True)`` only reads tensors and plain containers (no
arbitrary pickled code). Final model weights are exported as safetensors (see ``export``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from gradprune.data.fetch import sha256_file


class CorruptCheckpointError(RuntimeError):
    pass


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict, path: str | Path) -> None:
    path = Path(path)
    _atomic_write_bytes(path, lambda fh: torch.save(state, fh))
    digest = sha256_file(path)
    _atomic_write_bytes(path.with_name(path.name + ".sha256"), lambda fh: fh.write(digest.encode()))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not sidecar.exists():
        raise CorruptCheckpointError(
            f"checkpoint {path} has no {sidecar.name}: it was not written completely. "
            f"Delete {path} to start this run afresh."
        )
    expected = sidecar.read_text().strip()
    actual = sha256_file(path)
    if actual != expected:
        raise CorruptCheckpointError(
            f"checkpoint {path} is corrupt (sha256 {actual}, expected {expected}). "
            f"Delete {path} and {sidecar.name} to start this run afresh."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CorruptCheckpointError(f"checkpoint {path} cannot be read: {err}") from err


def export_weights(model: torch.nn.Module, masks: dict, path: str | Path, metadata: dict) -> None:
    """Model weights (plain state dict, loads into an unpruned model) plus masks as safetensors."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name, mask in masks.items():
        tensors[f"__mask__.{name}"] = mask.detach().cpu().to(torch.uint8).contiguous()
    meta = {k: str(v) for k, v in metadata.items()}
    _atomic_write_bytes(Path(path), lambda fh: fh.write(save(tensors, metadata=meta)))


def import_weights(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, masks) from an exported safetensors file."""
    tensors = load_file(str(path))
    masks = {k[len("__mask__."):]: v.bool() for k, v in tensors.items() if k.startswith("__mask__.")}
    state = {k: v for k, v in tensors.items() if not k.startswith("__mask__.")}
    return state, masks


__all__ = [
    "CorruptCheckpointError", "export_weights", "import_weights", "load_checkpoint",
    "save_checkpoint",
]
