"""Output places: checked before any work starts, and a run's folder written as one set.

A run writes result.json and its figures into a temporary folder beside the target and then
swaps it in whole (under a lock), so the folder always holds one run's complete set: never
result.json of one run beside figures of another, never half a set after Ctrl-C. A folder that
holds anything but an earlier run is refused rather than replaced.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scenarios.params import UsageError

RESULT = "result.json"


def default_folder(name: str) -> Path:
    """runs/NAME, with the name reduced to a safe folder name (no '/', no '..')."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "scenario"
    return Path("runs") / slug


def _writable_ancestor(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder we can create files in."""
    probe = path.parent
    while not probe.exists():
        if probe == probe.parent:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what}: {str(path)!r} lies under {str(probe)!r}, which is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".superposim-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise UsageError(f"{what}: cannot write under {str(probe)!r} ({err.strerror or err})") from None


def check_out_file(path: str | Path, what: str = "--out") -> Path:
    """A file we are about to write: not a folder, not under a file, in a writable place."""
    text = str(path)
    if not text.strip():
        raise UsageError(f"{what}: expected a file name, got an empty path")
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what}: {text!r} is a folder; give a file name")
    _writable_ancestor(path, what)
    return path


def check_out_dir(path: str | Path, what: str = "--out") -> Path:
    """A run folder we are about to fill: not a file, not under a file, writable, and either
    new, empty, or an earlier run's folder (which the run will replace)."""
    text = str(path)
    if not text.strip():
        raise UsageError(f"{what}: expected a folder, got an empty path")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what}: {text!r} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / RESULT).is_file():
        raise UsageError(f"{what}: {text!r} holds files that are not a superposim run; choose another folder")
    _writable_ancestor(path / RESULT, what)
    return path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.parent / f".{path.name}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_folder(path: str | Path, fill: Callable[[Path], list[Path]]) -> tuple[list[Path], bool]:
    """Fill a fresh temporary folder beside ``path`` with ``fill(tmp)`` and swap it in as a
    whole; returns the final paths and whether an earlier run was replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new-"))
    try:
        written = fill(tmp)
        with _locked(path):
            check_out_dir(path)  # still a run folder (or nothing) at the moment of the swap
            replaced = path.exists()
            old = None
            if replaced:
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
                os.rename(path, old / "run")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
            os.rename(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [path / p.relative_to(tmp) for p in written], replaced
