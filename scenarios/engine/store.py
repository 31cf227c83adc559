"""The sweep store: one SQLite file (WAL), written only by the process that drives a sweep.

It records what the sweep is (scenario, fixed parameters, grid keys), and per cell its grid
parameters, seed, status (done, or failed with its one-line error), seconds, the versions that
ran it, its summary and every result row. Each finished cell is committed on its own, so an
interruption loses nothing that finished; running the sweep again skips what is done.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios.engine.params import UsageError

SCHEMA = "superposim-sweep"
SCHEMA_VERSION = 1

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    seconds REAL,
    version TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    UNIQUE (params, seed)
);
CREATE TABLE IF NOT EXISTS rows (cell INTEGER NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL,
                                 PRIMARY KEY (cell, idx));
"""


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def unwritable(path: Path, reason: str) -> UsageError:
    """The one message for a store a sweep cannot write."""
    return UsageError(f"--store: {str(path)!r} cannot be written ({reason}); a sweep writes its store: copy it "
                      "somewhere writable or use another --store")


def cell_key(params: dict[str, Any]) -> str:
    """The canonical text of a cell's grid parameters (lists as lists, keys sorted)."""
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}, sort_keys=True)


@dataclass(frozen=True)
class Identity:
    """What makes two sweeps the same sweep: the scenario and its fixed parameters."""

    scenario: str
    fixed: str  # canonical JSON
    grid_keys: tuple[str, ...]


class Store:
    def __init__(self, path: str | Path, identity: Identity | None = None) -> None:
        """Open (or, with ``identity``, create) a store; a store of another sweep, or a file that is
        not a store, is refused with one line."""
        self.path = Path(path)
        if self.path.is_dir():
            raise UsageError(f"store: {str(self.path)!r} is a folder, not a sweep store")
        if self.path.exists() and not self.path.is_file():
            raise UsageError(f"store: {str(self.path)!r} is not a regular file")
        if identity is None and not self.path.is_file():
            raise UsageError(f"store: {str(self.path)!r} does not exist")
        if self.path.is_file():
            with open(self.path, "rb") as f:
                head = f.read(16)
            if head and head != b"SQLite format 3\x00":
                raise UsageError(f"store: {str(self.path)!r} is not a superposim sweep store")
        if identity is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._connect(writing=identity is not None)
            meta = dict(self.db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as err:
            if "readonly" in str(err) or "read-only" in str(err):
                raise unwritable(self.path, "read-only") from None
            if isinstance(err, sqlite3.OperationalError) and "no such table" in str(err):
                raise UsageError(f"store: {str(self.path)!r} holds no sweep") from None
            raise UsageError(f"store: {str(self.path)!r} is not a superposim sweep store ({err})") from None
        if not meta:
            if identity is None:
                raise UsageError(f"store: {str(self.path)!r} holds no sweep")
            with self.db:
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema", SCHEMA), ("schema_version", str(SCHEMA_VERSION)), ("scenario", identity.scenario),
                    ("fixed", identity.fixed), ("grid_keys", json.dumps(list(identity.grid_keys)))])
            meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if meta.get("schema") != SCHEMA or meta.get("schema_version") != str(SCHEMA_VERSION):
            raise UsageError(f"store: {str(self.path)!r} is not a superposim sweep store of schema "
                             f"version {SCHEMA_VERSION}")
        self.identity = Identity(meta["scenario"], meta["fixed"], tuple(json.loads(meta["grid_keys"])))
        mine = (self.identity.scenario, self.identity.fixed)
        if identity is not None and (identity.scenario, identity.fixed) != mine:
            raise UsageError(f"--store: {str(self.path)!r} belongs to another sweep (scenario "
                             f"{self.identity.scenario!r}, fixed {self.identity.fixed}); use another --store")
        if identity is not None and set(identity.grid_keys) != set(self.identity.grid_keys):
            raise UsageError(f"--store: {str(self.path)!r} sweeps over {', '.join(self.identity.grid_keys)}, not "
                             f"{', '.join(identity.grid_keys)}; use another --store")

    def _connect(self, writing: bool) -> sqlite3.Connection:
        """A writer creates the tables (WAL journal); a reader opens read-only, so a store on a
        read-only mount reads as what it is (immutable there: nothing can change it)."""
        if writing:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_TABLES)
            return db
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            if os.access(self.path.parent, os.W_OK) and not _read_only_mount(self.path):
                raise
        return sqlite3.connect(f"{uri}?immutable=1", uri=True)

    def text_bytes(self) -> int:
        """Bytes of result-row text in the store: what reading it into a table costs, roughly."""
        return int(self.db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM rows").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def done(self) -> set[tuple[str, int]]:
        return {(p, s) for p, s in self.db.execute("SELECT params, seed FROM cells WHERE status = 'done'")}

    def record(self, params: str, seed: int, outcome: dict[str, Any]) -> None:
        """Write one finished cell (done or failed) in one transaction."""
        with self.db:
            self.db.execute(
                "INSERT INTO cells (params, seed, status, error, seconds, version, attempts, summary) "
                "VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT (params, seed) DO UPDATE SET status = excluded.status, "
                "error = excluded.error, seconds = excluded.seconds, version = excluded.version, "
                "attempts = cells.attempts + 1, summary = excluded.summary",
                (params, seed, outcome["status"], outcome.get("error"), outcome.get("seconds"),
                 outcome.get("version"), json.dumps(outcome.get("summary"))))
            cell = self.db.execute("SELECT id FROM cells WHERE params = ? AND seed = ?", (params, seed)).fetchone()[0]
            self.db.execute("DELETE FROM rows WHERE cell = ?", (cell,))
            self.db.executemany("INSERT INTO rows VALUES (?, ?, ?)",
                                [(cell, i, json.dumps(row)) for i, row in enumerate(outcome.get("rows") or [])])

    def cells(self) -> list[dict[str, Any]]:
        out = []
        for cid, params, seed, status, error, seconds, version, attempts, summary in self.db.execute(
                "SELECT id, params, seed, status, error, seconds, version, attempts, summary FROM cells ORDER BY id"):
            out.append({"id": cid, "params": json.loads(params), "seed": seed, "status": status, "error": error,
                        "seconds": seconds, "version": version, "attempts": attempts,
                        "summary": json.loads(summary) if summary else None})
        return out

    def rows(self) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {}
        for cell, data in self.db.execute("SELECT cell, data FROM rows ORDER BY cell, idx"):
            out.setdefault(cell, []).append(json.loads(data))
        return out

    @property
    def fixed(self) -> dict[str, Any]:
        return json.loads(self.identity.fixed)
