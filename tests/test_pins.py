"""Every built-in scenario's numbers at a small size and seed 0, pinned: a change that moves
code around must not move a number (beyond float rounding). The pins are what the code gave
when they were written (``python tests/test_pins.py --write [NAME ...]``); a change that means to change
numbers rewrites them and says why in its message."""

import json
import math
import sys
from pathlib import Path

import pytest

PINS = Path(__file__).with_name("pins.json")
# Small settings that touch each scenario's whole body (every row kind, every figure's data).
SMALL = {
    "circuit": dict(m=40, n=24, layers=2, width=16, samples=300),
    "sparsity": dict(m=256, n=64, active=[1, 4], samples=300, capacity_n=[32], capacity_probe=512),
    "booleanish": dict(m=200, n=64, active=4, sigma_on=[0.0, 0.2], sigma_off=[0.0], samples=300),
    "compounding-noise": dict(m=128, n=48, active=2, layers=3, samples=400),
    "cost-ledger": dict(m=128, n=64, layers=2, active=[1, 2], samples=300),
    "trained-vs-handbuilt": dict(m=40, n=24, width=10, layers=2, hidden=16, steps=40, batch=64,
                                 probe_samples=300, samples=300),
    "u-and": dict(m=120, d=200, samples=200, per_case=8, sweep_d=[100], sweep_p=[0.1], sweep_d0=[0],
                  sweep_samples=100),
    "u-and-depth": dict(k=40, d=400, layers=2, samples=200),
    "circuits-in-superposition": dict(T=20, D=200, S=3, L=3, z=[1, 2], samples=100, capacity_D=[200],
                                      capacity_samples=50),
    "rotations-in-superposition": dict(T=60, D=200, S=4, L=3, z=[1, 2], samples=100),
    "toy-models": dict(features=5, dims=2, sparsity=[0.0, 0.9], instances=2, steps=50, phase_grid=3),
    "trained-u-and": dict(m=8, d=[4], steps=50, samples=300, p_grid=[0.5]),
    "compressed-computation": dict(features=20, neurons=10, embed=100, p=[0.01, 0.1], p_default=0.01, steps=50,
                                   batch=64, eval_samples=2000, mixing_scale=[0.5, 2.0]),
    "superposition-scaling": dict(features=40, widths=[4, 8], alpha=[1.0], weight_decay=[-1.0, 1.0], steps=30,
                                  batch=64, eval_samples=512),
    "compressed-storage": dict(T=[60], D=[10, 20], p=[0.1], samples=300, steps=30),
    "block-superposition": dict(D=40, d=4, L=3, z=[1, 2], samples=100),
    "break-even": dict(m=300, active=[1, 2], layers=[1, 2], samples=100, growth=1.5),
    "emulation-capacity": dict(widths=[120, 240], layers=3, samples=100, tolerance=0.1),
    "ground-truth-baselines": dict(m=32, n=[16, 8], gates=8, steps=100, batch=64, cis_T=[2, 8], cis_D=400),
}


def measured(name: str) -> dict:
    import scenarios

    body = scenarios.run(name, seed=0, **SMALL[name]).to_dict()
    timeless = {k: v for k, v in body["summary"].items() if "seconds" not in k}  # wall time is no result
    return {"params": body["params"], "rows": body["rows"], "summary": timeless}


def _close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: length {len(a)} != {len(b) if b else b}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, int | float) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-7), f"{where}: {a} != pinned {b}"
    else:
        assert a == b, f"{where}: {a!r} != pinned {b!r}"


def test_every_builtin_has_a_pin():
    from scenarios.engine.catalog import BUILTIN

    assert set(SMALL) == set(BUILTIN) == set(json.loads(PINS.read_text()))


@pytest.mark.parametrize("name", list(SMALL))
def test_a_scenario_gives_its_pinned_numbers(name):
    _close(measured(name), json.loads(PINS.read_text())[name], name)


if __name__ == "__main__" and "--write" in sys.argv:
    # `--write` rewrites every pin; `--write NAME ...` only those named, keeping the others as they are
    named = sys.argv[sys.argv.index("--write") + 1:] or list(SMALL)
    unknown = [n for n in named if n not in SMALL]
    if unknown:
        sys.exit(f"no pinned scenario {unknown[0]!r}; choose from {', '.join(SMALL)}")
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    pins = {name: measured(name) if name in named else pins[name] for name in SMALL}
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINS} ({', '.join(named)})")
