"""Atomic file writes: a temporary file beside the target, flushed, then renamed over it, so a
reader (or an interrupted run) never sees a half-written file. A link is written through (its
target is replaced, the link stays), and nothing but a regular file is ever replaced."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from layers.errors import SuperposimError


class NotARegularFile(SuperposimError, OSError):
    """The target exists and is a folder, a device, a pipe or a socket: renaming over it would
    destroy it (a device node replaced by a file), so it is refused."""


def write_atomic(path: str | Path, data: bytes | Callable[[str], None]) -> Path:
    """Write ``data`` (bytes, or a function that writes the file at the path it is given);
    returns ``path`` as given."""
    given = Path(path)
    path = Path(os.path.realpath(given)) if given.is_symlink() else given
    if path.exists() and not path.is_file():
        raise NotARegularFile(f"{str(given)!r} is not a regular file; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return given


def unshared(tensors: dict) -> dict:
    """Tensors ready for safetensors, which refuses two that share memory: each contiguous on the
    CPU, and a copy of any whose memory an earlier one holds (only those are copied)."""
    out, storages = {}, set()
    for key, value in tensors.items():
        t = value.detach().cpu().contiguous()
        if t.numel():
            ptr = t.untyped_storage().data_ptr()
            if ptr in storages:
                t = t.clone()
            storages.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out
