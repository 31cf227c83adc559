"""Memory guard: a run whose tensors cannot fit is refused before anything is built, in one
line that names the sizes and the estimate."""

from __future__ import annotations

import os

from scenarios.engine.params import UsageError

FLOAT = 4  # bytes of a float32


def available_bytes() -> int:
    """Memory this machine can still give (MemAvailable; physical memory where that is unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def size(n_bytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}" if n_bytes < 1e6 * scale else f"{n_bytes / scale:.2e} {unit}"
    return f"{n_bytes / 2**10:.3g} KiB"


def require_memory(need: float, what: str) -> None:
    """Refuse a run that needs about ``need`` bytes when less is available."""
    have = available_bytes()
    if need > have:
        raise UsageError(f"{what}: about {size(need)} of memory needed, {size(have)} available")
