"""Atomic, self-verifying training checkpoints, and the identity of the run that wrote them.

A checkpoint is one file: a fixed-size header holding the sha256 of the payload, then the payload
(``torch.save`` of the state). It is written through ``gradprune.atomic`` (temporary file, fsync,
one rename), so a job killed at any point of a save leaves the previous checkpoint intact and
valid. Loading checks the digest first: a corrupt file is reported, never silently used.
``torch.load(weights_only=True)`` only reads tensors and plain containers (no pickled code).

A checkpoint also carries the identity of its run (``run_identity``): the run's config and the
digest of the checkpoint it continued from. A run resumes only its own checkpoint (training.loop).
Final model weights are exported as safetensors (``export_weights``).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from gradprune.atomic import atomic_file, fault_point, write_bytes
from gradprune.config import OPERATIONAL_KEYS, SCORING_KEYS, config_hash, without_keys

MAGIC = b"gradprune checkpoint v1 sha256:"
HEADER_BYTES = len(MAGIC) + 64 + 1  # magic, hex digest of the payload, newline
_ZIP = b"PK\x03\x04"  # what torch.save writes first: a checkpoint of gradprune <= 0.1 (sidecar)



class CorruptCheckpointError(RuntimeError):
    pass


def save_checkpoint(state: dict, path: str | Path) -> None:
    path = Path(path)
    with atomic_file(path) as fh:
        fh.write(bytes(HEADER_BYTES))  # the header is written last, once the digest is known
        torch.save(state, fh)
        fh.flush()
        fh.seek(HEADER_BYTES)
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        fault_point("payload", path)
        fh.seek(0)
        fh.write(MAGIC + digest.encode() + b"\n")


def checkpoint_digest(path: str | Path) -> str:
    """The sha256 of a checkpoint's payload as its header records it (verified by loading)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
    if head.startswith(MAGIC) and len(head) == HEADER_BYTES:
        return head[len(MAGIC):-1].decode("ascii", "replace")
    sidecar = _legacy_sidecar(path)
    if head.startswith(_ZIP) and sidecar.exists():
        return sidecar.read_text().strip()
    raise CorruptCheckpointError(_not_ours(path))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    expected = checkpoint_digest(path)
    with open(path, "rb") as fh:
        offset = HEADER_BYTES if fh.read(len(MAGIC)) == MAGIC else 0
        fh.seek(offset)
        actual = hashlib.file_digest(fh, "sha256").hexdigest()
        if actual != expected:
            raise CorruptCheckpointError(
                f"checkpoint {path} is corrupt (sha256 {actual}, expected {expected}). "
                f"Delete {path} to start this run afresh."
            )
        fh.seek(offset)
        try:
            return torch.load(fh, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            # Not torch's advice (weights_only=False would run the file's code): say what it is.
            raise CorruptCheckpointError(
                f"{path} is not a checkpoint this project wrote: it holds Python objects besides "
                "tensors and plain containers, which gradprune never loads. Delete it, or point to "
                "a checkpoint written by gradprune."
            ) from None
        except Exception as err:
            raise CorruptCheckpointError(f"checkpoint {path} cannot be read: {err}") from err


def run_identity(run_config: dict, init_checkpoint: str | Path | None) -> dict:
    """What a checkpoint must match to be resumed: the run's training config
    (gradprune.config.training_config, which leaves out what cannot change the trained weights:
    the other runs of the preset, the prose, the job's resources, how often it logs, scores its
    curve and checkpoints, how it scores its metrics) and the digest of the checkpoint the run
    continued from (None: a run from scratch, or pretraining)."""
    return {
        "config_hash": config_hash(run_config),
        "config": json.loads(json.dumps(run_config, default=str)),  # plain containers only
        "init_sha256": checkpoint_digest(init_checkpoint) if init_checkpoint else None,
    }


def identity_mismatch(saved: dict | None, current: dict) -> list[str]:
    """How a checkpoint's identity differs from the current run's ([] when it may be resumed)."""
    if not saved:
        return ["the checkpoint records no run identity (written by an older gradprune)"]
    # Checkpoints written before the operational and scoring keys left the identity record them:
    # they cannot change the weights, so they do not stop a resume.
    untracked = OPERATIONAL_KEYS + SCORING_KEYS
    old = _flat(without_keys(saved.get("config") or {}, untracked))
    new = _flat(without_keys(current["config"], untracked))
    differences = [
        f"{key}: {old.get(key, '(unset)')!r} -> {new.get(key, '(unset)')!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]
    if saved.get("init_sha256") != current["init_sha256"]:
        differences.append(
            f"continued from init checkpoint sha256 {saved.get('init_sha256')}, "
            f"now {current['init_sha256']}"
        )
    return differences


def export_weights(model: torch.nn.Module, masks: dict, path: str | Path, metadata: dict) -> None:
    """Model weights (plain state dict, loads into an unpruned model) plus masks as safetensors.

    The metadata is one JSON string with sorted keys: safetensors writes a metadata map in hash
    order, which would make identical runs give different files.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name, mask in masks.items():
        tensors[f"__mask__.{name}"] = mask.detach().cpu().to(torch.uint8).contiguous()
    meta = {"meta": json.dumps(metadata, sort_keys=True, default=str)}
    write_bytes(path, save(tensors, metadata=meta))


def import_weights(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, masks) from an exported safetensors file."""
    tensors = load_file(str(path))
    masks = {k[len("__mask__."):]: v.bool() for k, v in tensors.items() if k.startswith("__mask__.")}
    state = {k: v for k, v in tensors.items() if not k.startswith("__mask__.")}
    return state, masks


def _legacy_sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _not_ours(path: Path) -> str:
    return (f"{path} is not a checkpoint this project wrote (no gradprune checkpoint header, "
            f"nor an older checkpoint with its .sha256 file). Delete it to start this run afresh.")


def _flat(d: dict, prefix: str = "") -> dict:
    """{'a.b': value} for nested dicts (lists stay values)."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


__all__ = [
    "CorruptCheckpointError", "checkpoint_digest", "export_weights", "identity_mismatch",
    "import_weights", "load_checkpoint", "run_identity", "save_checkpoint",
]
