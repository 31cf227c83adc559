"""Weights on disk: safetensors for tensors, JSON for everything else; never pickle.

A saved file pair is ``NAME.safetensors`` (tensors, with the JSON config also in its metadata)
and ``NAME.json`` (the same config, for people). Both are written atomically; loading checks
the schema and refuses anything it does not understand with one clear message.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from layers.errors import SuperposimError
from layers.files import write_atomic

SCHEMA = "superposim-weights"
SCHEMA_VERSION = 2
# Version 1 held the embedding and each block's weights as bare tensors ("network.blocks.0.read");
# version 2 holds weight modules ("network.blocks.0.read.matrix"): the names are all that changed.
_VERSION_1_WEIGHT = re.compile(r"(network\.(?:embed|blocks\.\d+\.(?:read|write)))(?=\.|$)")


def _from_version_1(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {_VERSION_1_WEIGHT.sub(r"\1.matrix", key, count=1): value for key, value in tensors.items()}


class WeightFileError(SuperposimError, ValueError):
    """A weight file that is missing, truncated, foreign or of an unknown schema."""


def save_weights(path: str | Path, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors) and its .json twin; the config must be JSON-serialisable."""
    path = Path(path)
    meta = {"schema": SCHEMA, "version": SCHEMA_VERSION, **config}
    text = json.dumps(meta, sort_keys=True)
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_atomic(path, lambda tmp: _save_file(flat, tmp, text))
    write_atomic(path.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())


def _save_file(tensors: dict[str, torch.Tensor], tmp: str, config: str) -> None:
    """safetensors' writer, its I/O failures (a full disk) raised as the OSError they are."""
    try:
        save_file(tensors, tmp, metadata={"config": config})
    except SafetensorError as err:
        text = str(err)
        code = errno.ENOSPC if "os error 28" in text else errno.EIO
        raise OSError(code, os.strerror(code) if code == errno.ENOSPC else text, tmp) from None


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by ``save_weights``: (tensors, config)."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{str(path)!r} does not exist")
    try:
        tensors = load_file(path)
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        config = json.loads(meta["config"])
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as err:
        raise WeightFileError(
            f"{str(path)!r} is not a readable superposim weight file ({type(err).__name__}: {err})") from None
    if config.get("schema") != SCHEMA:
        raise WeightFileError(f"{str(path)!r} is not a superposim weight file (schema {config.get('schema')!r})")
    version = config.get("version")
    if version not in (1, SCHEMA_VERSION):
        raise WeightFileError(f"{str(path)!r} has weight schema version {version!r}; "
                              f"this superposim reads 1 and {SCHEMA_VERSION}")
    _check_twin(path.with_suffix(".json"), version)
    if version == 1:
        tensors = _from_version_1(tensors)
    return tensors, config


def _check_twin(twin: Path, version: int) -> None:
    """The .json beside a weight file must be of the same schema and version, when it is there:
    a twin from another version means the pair was mixed up."""
    if not twin.exists():
        return
    try:
        meta = json.loads(twin.read_text())
    except (OSError, ValueError) as err:
        raise WeightFileError(f"{str(twin)!r} is not readable JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or meta.get("version") != version:
        found = (meta.get("schema"), meta.get("version")) if isinstance(meta, dict) else (None, None)
        raise WeightFileError(f"{str(twin)!r} has schema {found[0]!r} version {found[1]!r}; the weight file "
                              f"beside it is {SCHEMA!r} version {version}")
