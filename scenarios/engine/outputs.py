"""Output places: checked before any work starts, and a run's folder written as one set.

A run writes result.json and its figures into a temporary folder beside the target and then
swaps it in whole (under a lock), so the folder always holds one run's complete set: never
result.json of one run beside figures of another, never half a set after Ctrl-C. Each run
folder lists what superposim wrote into it (``.superposim-run.json``); a later run there
replaces only those files and keeps everything else (a note, a graph saved there). A folder
that holds anything but an earlier run is refused rather than filled. A link is written
through, into its target; no output ever replaces an input or a non-regular file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scenarios.engine.params import UsageError

RESULT = "result.json"
MANIFEST = ".superposim-run.json"  # the files a run wrote into its folder
MANIFEST_SCHEMA = "superposim-run-files"


def default_folder(name: str) -> Path:
    """runs/NAME, with the name reduced to a safe folder name (no '/', no '..')."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "scenario"
    return Path("runs") / slug


def through_link(path: str | Path) -> Path:
    """The place a path names: a symbolic link's target (so that writing goes into it and the
    link stays), the path itself otherwise."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


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


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_out_file(path: str | Path, what: str = "--out") -> Path:
    """A file we are about to write: not a folder, not a device or pipe, not under a file, in a
    writable place. A link is checked (and later written) through its target."""
    text = str(path)
    if not text.strip():
        raise UsageError(f"{what}: expected a file name, got an empty path")
    path = Path(path)
    target = through_link(path)
    if target.is_dir():
        raise UsageError(f"{what}: {text!r} is a folder; give a file name")
    if target.exists() and not target.is_file():
        raise UsageError(f"{what}: {text!r} is {_kind(target)}; give the name of a regular file")
    _writable_ancestor(target, what)
    return path


def check_out_dir(path: str | Path, what: str = "--out") -> Path:
    """A run folder we are about to fill: not a file, not under a file, writable, and either
    new, empty, or an earlier run's folder (whose run files the new run will replace)."""
    text = str(path)
    if not text.strip():
        raise UsageError(f"{what}: expected a folder, got an empty path")
    path = Path(path)
    target = through_link(path)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{what}: {text!r} is a file, not a folder")
    ours = (target / RESULT).is_file() or (target / MANIFEST).is_file()  # a run's or an export's folder
    if target.is_dir() and any(target.iterdir()) and not ours:
        raise UsageError(f"{what}: {text!r} holds files that are not a superposim run; choose another folder")
    _writable_ancestor(target / RESULT, what)
    return path


def _same_file(a: Path, b: Path) -> bool:
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_distinct(outputs: Mapping[str, str | Path | None],
                   inputs: Mapping[str, str | Path | None] | None = None) -> None:
    """No output may overwrite an input, and no two outputs may be one file: each pair of
    clashing names is refused in one line, before any work."""
    outs = [(what, Path(p)) for what, p in outputs.items() if p is not None]
    ins = [(what, Path(p)) for what, p in (inputs or {}).items() if p is not None]
    for i, (what, path) in enumerate(outs):
        for other, source in ins:
            if _same_file(path, source):
                raise UsageError(f"{what}: {str(path)!r} is the {other}, which this command reads; "
                                 "writing there would destroy it: choose another file")
        for other, earlier in outs[:i]:
            if _same_file(path, earlier):
                raise UsageError(f"{what} and {other} both name {str(path)!r}; give each its own file")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.parent / f".{path.name}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _own_files(folder: Path, incoming: Iterable[str]) -> set[str]:
    """What an earlier run wrote into ``folder``: its manifest's list. A run folder from before
    manifests existed owns result.json and the files the new run writes again (its figures)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("schema") == MANIFEST_SCHEMA and isinstance(manifest.get("files"), list):
            return {str(f) for f in manifest["files"]} | {MANIFEST}
    except (OSError, ValueError, AttributeError):
        pass
    return {RESULT, MANIFEST} | set(incoming)


@dataclass(frozen=True)
class Written:
    """What a swap did: the run's files, whether an earlier run was replaced, and the names of
    the files no run wrote that were kept."""

    paths: list[Path]
    replaced: bool
    kept: list[str]


def write_folder(path: str | Path, fill: Callable[[Path], list[Path]]) -> Written:
    """Fill a fresh temporary folder beside ``path`` with ``fill(tmp)`` and swap it in as a
    whole. Files in the earlier folder that no run wrote move into the new one unchanged."""
    given = Path(path)
    path = through_link(given)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new-"))
    try:
        written = fill(tmp)
        names = [p.relative_to(tmp).as_posix() for p in written]
        from layers.files import write_atomic

        write_atomic(tmp / MANIFEST, (json.dumps({"schema": MANIFEST_SCHEMA, "version": 1, "files": names},
                                                 indent=2) + "\n").encode())
        with _locked(path):
            check_out_dir(path)  # still a run folder (or nothing) at the moment of the swap
            replaced = path.exists()
            kept = []
            if replaced:
                own = _own_files(path, names)
                kept = sorted(e.name for e in path.iterdir() if e.name not in own)
                clash = [name for name in kept if name in names]
                if clash:
                    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.run-"))
                    os.rename(tmp, aside / "run")
                    raise UsageError(f"--out: {str(given)!r} holds {', '.join(clash)}, which no run wrote and this "
                                     f"run writes too; nothing there was changed, and this run is in "
                                     f"{str(aside / 'run')!r}")
            old = None
            if replaced:
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
                os.rename(path, old / "run")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
            os.rename(tmp, path)
            if old is not None:
                for name in kept:  # a user's files: into the new folder before the old one goes
                    os.rename(old / "run" / name, path / name)
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Written([given / name for name in names], replaced, kept)
