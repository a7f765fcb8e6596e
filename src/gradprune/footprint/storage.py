"""A run's storage footprint in every format, and its task metric with int8 weights.

``footprint.json`` (one per run)::

    {"experiment", "model", "size", "role", "target_sparsity", "seed", "nnz", "params",
     "task_metric": "top1",
     "encoded_tensors": [...],   # the weights the experiment prunes, stored in each format's layout
     "pruned_tensors": [...],    # those with a mask in this run (none for dense / small-dense runs)
     "formats": {"bitmask": {"layout": "bitmask", "precision": "fp32",
                             "bytes": 123, "bytes_values": ..., "bytes_indices": ...,
                             "bytes_header": ..., "bytes_unencoded": ...,
                             "metrics": {"top1": ...}, "metrics_source": "metrics.json"}, ...},
     "int8": {"scheme": ..., "metrics": {...}},
     "blocks": {"<tensor>": [h, w], ...},  # experiments that prune in blocks: also bsr, bsr-int8
     "container": ..., "matrix_view": ...}

Every format is written to disk, its size read back and split into header, values and indices
(:class:`~gradprune.footprint.formats.Footprint`), then decoded and compared with what it must give
back: the exact weights (float32 formats) or the quantized ones (int8 formats); the file is then
deleted (only its bytes are kept). Float32 formats decode to the run's exact weights, so their
metrics are those of ``metrics.json``; the int8 formats all decode to the same dequantized weights,
which are scored once on the test split by the task's own ``evaluate`` (the code ``evaluate`` runs).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from gradprune.footprint.formats import (
    BLOCK_FORMATS,
    FORMATS,
    quantized,
    read_format,
    split_format,
    write_format,
)
from gradprune.training.checkpoint import import_weights

INT8_SCHEME = ("symmetric per-tensor linear quantization of the encoded weights: scale = "
               "max|w| / 127, q = round(w / scale) in [-127, 127], float32 scale stored")
CONTAINER = ("safetensors: 8-byte header length + JSON header (array names, dtypes, shapes, "
             "offsets, __metadata__) padded to 8 bytes, then the arrays; bytes_header is that "
             "overhead")
MATRIX_VIEW = ("2-D as stored; conv (out, in/groups, kh, kw) as (out, in/groups*kh*kw); "
               "1-D as one row")


def prunable_tensors(experiment: dict, model: torch.nn.Module) -> list[str]:
    """The weights the experiment prunes, whether or not this run pruned them: the pruner's own
    selection (include/exclude patterns, LSTM grouping), so every run of an experiment encodes the
    same tensors."""
    from gradprune.runner import make_pruner

    # Any non-zero target builds the pruner; only its tensor selection is read.
    return make_pruner(experiment, model, 0.5).tensor_names


def tensor_blocks(experiment: dict, model: torch.nn.Module, encoded: list[str]
                  ) -> dict[str, tuple[int, int]]:
    """The block shape of each encoded tensor under the experiment's ``pruning.block`` /
    ``block_map`` (the pruner's own rule); empty when the experiment prunes single weights."""
    from gradprune.pruning.structure import structures_for

    pr = experiment["pruning"]
    if pr.get("block", [1, 1]) == [1, 1] and not pr.get("block_map"):
        return {}
    params = dict(model.named_parameters())
    found = structures_for(encoded, [params[n].shape for n in encoded], pr.get("block", (1, 1)),
                           pr.get("block_pooling", "avg"), pr.get("block_map"))
    return {n: s.block for n, s in zip(encoded, found)}


def int8_state(state: dict, encoded: list[str]) -> dict:
    """The state dict every int8 format decodes to: encoded weights quantized, the rest as is."""
    return {k: (quantized(v) if k in encoded else v) for k, v in state.items()}


def measure_formats(state: dict, masks: dict, encoded: list[str], work_dir: Path,
                    blocks: dict | None = None) -> dict:
    """Footprint of every format (as dicts), each file written, checked by decoding, deleted;
    with ``blocks`` (tensor -> block shape) also the block formats."""
    expected = {"fp32": state, "int8": int8_state(state, encoded)}
    out = {}
    with tempfile.TemporaryDirectory(prefix=".footprint-", dir=work_dir) as tmp:
        for fmt in FORMATS + (BLOCK_FORMATS if blocks else ()):
            layout, precision = split_format(fmt)
            path = Path(tmp) / f"{fmt}.safetensors"
            fp = write_format(state, masks, encoded, fmt, path, blocks)
            _, decoded = read_format(path)
            want = expected[precision]
            wrong = [k for k in want if k not in decoded or not torch.equal(decoded[k], want[k])]
            if wrong or set(decoded) != set(want):
                raise RuntimeError(f"format {fmt}: decoding does not give back the "
                                   f"{'exact' if precision == 'fp32' else 'quantized'} weights "
                                   f"of {wrong or sorted(set(decoded) ^ set(want))}")
            path.unlink()
            out[fmt] = {"layout": layout, "precision": precision, "bytes": fp.total,
                        "bytes_values": fp.values, "bytes_indices": fp.indices,
                        "bytes_header": fp.header, "bytes_unencoded": fp.unencoded}
    return out


def footprint(settings: dict, run, data_files: dict, weights: Path, metrics_json: Path,
              out_json: Path, pruning: dict) -> dict:
    """What the ``footprint`` rule runs: ``footprint.json`` of one run (see the module docstring).

    ``settings``: the run's (gradprune.config.run_settings); ``pruning``: the experiment's pruning
    section for this size, whose patterns say which tensors are encoded (a dense or small-dense
    run's own settings carry no mask patterns)."""
    from gradprune.runner import new_state

    metrics = json.loads(Path(metrics_json).read_text())
    state, masks = import_weights(weights)
    train_state = new_state(settings, run, data_files, with_pruner=False)
    model, task = train_state.model, train_state.task
    encoded = prunable_tensors({**settings["experiment"], "pruning": pruning}, model)
    unknown = sorted(set(masks) - set(encoded))
    if unknown:
        raise ValueError(f"{weights}: masks of {unknown}, which the experiment does not prune; "
                         "was the run trained with other pruning patterns? Retrain it.")
    out_json = Path(out_json)
    blocks = tensor_blocks({**settings["experiment"], "pruning": pruning}, model, encoded)
    formats = measure_formats(state, masks, encoded, out_json.parent, blocks)
    model.load_state_dict(int8_state(state, encoded))
    int8_metrics = task.evaluate(model, split="test")
    for spec in formats.values():
        int8 = spec["precision"] == "int8"
        spec["metrics"] = int8_metrics if int8 else metrics["metrics"]
        spec["metrics_source"] = "int8 weights, test split" if int8 else "metrics.json (exact)"
    result = {
        **{k: metrics[k] for k in ("experiment", "model", "size", "role", "target_sparsity",
                                   "seed", "nnz", "params", "task_metric")},
        "encoded_tensors": encoded,
        "pruned_tensors": sorted(masks),
        "formats": formats,
        "int8": {"scheme": INT8_SCHEME, "metrics": int8_metrics},
        **({"blocks": {n: list(b) for n, b in blocks.items()}} if blocks else {}),
        "container": CONTAINER,
        "matrix_view": MATRIX_VIEW,
    }
    out_json.write_text(json.dumps(result, indent=2))
    return result
