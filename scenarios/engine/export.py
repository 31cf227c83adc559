"""Export a scenario's network with its true mechanism, and read an export back.

An export folder holds (schemas in docs/ground-truth.md):

- ``model.safetensors`` + ``config.json`` + ``model.py``: the network as plain layers, loadable
  with torch and safetensors alone (``layers.portable``);
- ``truth.safetensors`` + ``truth.json``: the feature directions of every layer and the true
  components of every weight as low-rank factors (``circuits.mechanism``), with the check that
  they sum to the weights;
- ``data-NNNNN.safetensors``: sampled inputs, every layer's exact feature values, the network's
  streams and neurons, and which components each input needs, in chunks (memory bounded by the
  chunk).

Every file carries its schema and version; ``load_export`` refuses a foreign, truncated or newer
one in one line.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from circuits.compile import CompiledNetwork
from circuits.exportable import ExportView, view_of
from circuits.mechanism import check_sums, weights_of
from layers.errors import SuperposimError
from layers.factors import Factors, SharedTerm
from layers.files import unshared, write_atomic
from layers.portable import MODEL_SCHEMA, MODEL_SOURCE, MODEL_VERSION, model_files, weight_spec
from scenarios.engine.catalog import VERSION
from scenarios.engine.outputs import Written, check_out_dir, write_folder
from scenarios.engine.params import UsageError
from scenarios.engine.registry import export_builders
from scenarios.engine.result import jsonable

TRUTH_SCHEMA, TRUTH_VERSION = "superposim-truth", 1
DATA_SCHEMA, DATA_VERSION = "superposim-data", 1
CHUNK_BYTES = 64 * 2**20  # what one data chunk holds at most (unless one sample is bigger)
SUM_TOLERANCE = 1e-4  # components must sum to their weight to float rounding
RULE_TEXT = {
    "gate": "needed when the gate's exact value differs from its value with all its inputs removed",
    "value": "needed when its unit's exact value is not 0",
    "path": "needed when setting the feature to 0 changes a gate of the next layer (last layer: value not 0)",
    "circuit": "needed when its small circuit is active",
}


class ExportFileError(SuperposimError, ValueError):
    """An export file that is missing, truncated, foreign or of a newer schema."""


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """A safetensors file, atomically, with ``meta`` (its schema and version) in its metadata."""
    flat = unshared(tensors)
    return write_atomic(path, lambda tmp: save_file(flat, tmp, metadata={"config": json.dumps(meta)}))


def _json(path: Path, data: dict) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def default_active(values: Any) -> int:
    """The number of active inputs (or circuits) the scenario itself uses by default."""
    for key in ("active", "l", "z", "capacity_z"):
        value = getattr(values, key, None)
        if isinstance(value, list | tuple) and value:
            value = max(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 2


def _chunk_rows(view: ExportView, samples: int) -> int:
    widths = [w.shape[0] for w in view.readout_weights] + list(view.network.stream_widths)
    widths += view.network.neurons()
    if view.mechanism is not None:
        widths += [f.factors.count // 4 for m in view.mechanism.matrices for f in m.families]  # uint8
    per_sample = 4 * (view.network.n_inputs + sum(widths))
    return max(1, min(samples, CHUNK_BYTES // max(1, per_sample)))


@torch.no_grad()
def _data_chunk(view: ExportView, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs, exact features, streams, neurons and the needed components of one chunk."""
    values = view.exact(x)
    out = {"inputs": x}
    out |= {f"features.{t}": v.float() for t, v in enumerate(values)}
    stream = view.network.embed.apply_to_sparse(x)
    out["streams.0"] = stream
    for t, block in enumerate(view.network.relu_blocks()):
        pre = block.read(stream) + block.bias
        post = torch.where(block.relu_mask, torch.relu(pre), pre)
        stream = block.write(post) + (stream if block.residual else 0)
        out[f"neurons.{t}"], out[f"streams.{t + 1}"] = post, stream
    out |= {f"needed.{key}": v.to(torch.uint8) for key, v in view.needed(values).items()}
    return out


def _truth(view: ExportView, about: dict, check: float | None) -> tuple[dict, dict[str, torch.Tensor]]:
    tensors: dict[str, torch.Tensor] = {}
    layers = []
    for t, ((stream, readout, _), carrier) in enumerate(zip(view.readouts, view.carriers)):
        spec, found = weight_spec(carrier, f"directions.{t}")
        tensors |= found
        layers.append({"layer": t, "stream": stream, "features": readout.shape[0], "width": carrier.shape[1],
                       "directions": spec})
    components = None
    if view.mechanism is not None:
        matrices = []
        for m in view.mechanism.matrices:
            for f in m.families:
                tensors |= f.factors.tensors(f"components.{m.key}.{f.name}")
                if f.on_index is not None:
                    tensors[f"components.{m.key}.{f.name}.on_index"] = f.on_index
            shared = []
            for i, term in enumerate(m.shared):
                tensors |= term.tensors(f"shared.{m.key}.{i}")
                shared.append({"name": term.name, "low_rank": term.left is not None})
            matrices.append({"key": m.key, "shape": list(m.shape), "families": [f.describe() for f in m.families],
                             "shared": shared})
        components = {"matrices": matrices, "wiring": view.mechanism.wiring, "sum_check": check,
                      "rules": RULE_TEXT}
    meta = {"schema": TRUTH_SCHEMA, "version": TRUTH_VERSION, **about, "layers": layers,
            "components": components, "unknown": view.unknown or None}
    return meta, tensors


@dataclass(frozen=True)
class ExportSummary:
    folder: Path
    network: str
    samples: int
    chunks: int
    components: int | None
    sum_check: float | None
    written: Written


def export(name: str, out: str | Path, *, network: str | None = None, samples: int = 1000,
           active: int | None = None, seed: int = 0, progress: bool = False, **params: Any) -> ExportSummary:
    """Export one network of scenario ``name`` (built with ``params`` and ``seed``) into ``out``:
    the model, its true mechanism and ``samples`` sampled inputs with every exact value."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise UsageError(f"--samples: expected a non-negative integer, got {samples!r}")
    if active is not None and (isinstance(active, bool) or not isinstance(active, int) or active < 0):
        raise UsageError(f"--active: expected a non-negative integer, got {active!r}")
    folder = check_out_dir(out)
    scenario, values, ctx, builders = export_builders(name, seed=seed, **params)
    if network is None:
        network = "superposed" if "superposed" in builders else next(iter(builders))
    if network not in builders:
        raise UsageError(f"--network: {network!r} is not one of {', '.join(builders)}")
    built = builders[network]()
    k = default_active(values) if active is None else active
    view = view_of(built, k) if isinstance(built, CompiledNetwork) else built
    if not isinstance(view, ExportView):
        raise TypeError(f"{scenario.name}: export builder {network!r} gave a {type(built).__name__}")
    check = None
    if view.mechanism is not None:
        check = check_sums(view.mechanism, weights_of(view.network, view.readout_weights),
                           ctx.generator("export:sums"))
        if not check <= SUM_TOLERANCE:
            raise RuntimeError(f"the true components of {view.name} do not sum to its weights "
                               f"(relative difference {check:.2e})")
    about = {"scenario": scenario.name, "params": jsonable(values.to_dict(), "params"), "seed": seed,
             "network": network, "name": view.name, "superposim": VERSION}
    rows = _chunk_rows(view, samples)
    chunk_names = [f"data-{i:05d}.safetensors" for i in range(math.ceil(samples / rows))]

    def fill(tmp: Path) -> list[Path]:
        config, tensors = model_files(view.network, view.readouts, about)
        write_tensors(tmp / "model.safetensors", tensors, {"schema": MODEL_SCHEMA, "version": MODEL_VERSION})
        _json(tmp / "config.json", config)
        shutil.copyfile(MODEL_SOURCE, tmp / "model.py")
        truth, truth_tensors = _truth(view, about, check)
        truth["data"] = {"samples": samples, "chunks": chunk_names, "sampler": view.sampler,
                         "seed": ctx.seed_for("export:data"),
                         "tensors": "inputs; features.{t} (exact values of layer t); streams.{s}; neurons.{b} "
                                    "(block b's neurons after the ReLU); needed.{matrix}/{family} (1: needed)"}
        write_tensors(tmp / "truth.safetensors", truth_tensors, {"schema": TRUTH_SCHEMA, "version": TRUTH_VERSION})
        _json(tmp / "truth.json", truth)
        gen = ctx.generator("export:data")
        done = 0
        for i, chunk_name in enumerate(tqdm(chunk_names, desc="export data", disable=not progress, leave=False)):
            b = min(rows, samples - done)
            data = _data_chunk(view, view.sample(b, gen))
            write_tensors(tmp / chunk_name, data, {"schema": DATA_SCHEMA, "version": DATA_VERSION, "chunk": i,
                                           "first": done, "rows": b})
            done += b
        return [tmp / n for n in ("model.safetensors", "config.json", "model.py", "truth.safetensors",
                                  "truth.json", *chunk_names)]

    written = write_folder(folder, fill)
    count = None if view.mechanism is None else sum(f.factors.count for m in view.mechanism.matrices
                                                    for f in m.families)
    return ExportSummary(folder, network, samples, len(chunk_names), count, check, written)


# ---- reading an export back ------------------------------------------------------------------

def _read_json(path: Path, schema: str, version: int) -> dict:
    if not path.is_file():
        raise ExportFileError(f"{str(path)!r} does not exist (is {str(path.parent)!r} a superposim export?)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ExportFileError(f"{str(path)!r} is not readable JSON ({err})") from None
    return _check_meta(data, path, schema, version)


def _check_meta(meta: Any, path: Path, schema: str, version: int) -> dict:
    if not isinstance(meta, dict) or meta.get("schema") != schema:
        found = meta.get("schema") if isinstance(meta, dict) else None
        raise ExportFileError(f"{str(path)!r} is not a {schema} file (schema {found!r})")
    v = meta.get("version")
    if not isinstance(v, int) or v > version or v < 1:
        raise ExportFileError(f"{str(path)!r} has {schema} version {v!r}; this superposim reads up to {version}")
    return meta


def read_tensors(path: Path, schema: str, version: int) -> tuple[dict[str, torch.Tensor], dict]:
    """A safetensors file's tensors and metadata, its schema checked; one line if it is not."""
    if not path.is_file():
        raise ExportFileError(f"{str(path)!r} does not exist")
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("config", "null"))
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ExportFileError(f"{str(path)!r} is not a readable safetensors file "
                              f"({type(err).__name__}: {err}); was it cut short?") from None
    return tensors, _check_meta(meta, path, schema, version)


@dataclass
class Export:
    """An export read back: truth.json, the true directions and components, and the data."""

    folder: Path
    truth: dict
    tensors: dict[str, torch.Tensor]

    def directions(self, layer: int) -> torch.Tensor:
        """(m_t, n) dense unit directions of layer t's features."""
        spec = self.truth["layers"][layer]["directions"]
        d = _dense(spec, self.tensors, f"directions.{layer}")
        return d / d.norm(dim=1, keepdim=True).clamp_min(1e-30)

    def families(self) -> list[tuple[str, dict, Factors]]:
        """(matrix key, family record, factors) of every true component family."""
        comps = self.truth.get("components")
        if comps is None:
            raise UsageError(f"{str(self.folder)!r}: {self.truth.get('unknown') or 'no components are known'}")
        out = []
        for m in comps["matrices"]:
            shape = tuple(m["shape"])
            for f in m["families"]:
                out.append((m["key"], f, Factors.from_tensors(self.tensors, f"components.{m['key']}.{f['name']}",
                                                              shape)))
        return out

    def shared(self, key: str) -> list[SharedTerm]:
        comps = self.truth.get("components") or {"matrices": []}
        for m in comps["matrices"]:
            if m["key"] == key:
                return [SharedTerm.from_tensors(self.tensors, f"shared.{key}.{i}", s["name"], tuple(m["shape"]))
                        for i, s in enumerate(m["shared"])]
        return []

    def data(self) -> list[dict[str, torch.Tensor]]:
        """Every data chunk's tensors, in order."""
        return [read_tensors(self.folder / name, DATA_SCHEMA, DATA_VERSION)[0]
                for name in self.truth["data"]["chunks"]]


def _dense(spec: dict, tensors: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    shape = tuple(spec["shape"])
    if spec["form"] == "identity":
        return torch.eye(shape[0])
    if spec["form"] == "dense":
        return tensors[f"{key}.matrix"].float()
    if spec["form"] == "sparse":
        out = torch.zeros(shape)
        return out.index_put_((tensors[f"{key}.rows"], tensors[f"{key}.cols"]), tensors[f"{key}.values"].float(),
                              accumulate=True)
    return _dense(spec["base"], tensors, f"{key}.base") + tensors[f"{key}.left"] @ tensors[f"{key}.right"]


def load_export(folder: str | Path) -> Export:
    """An export folder, every file's schema checked (one line naming the file if not)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportFileError(f"{str(folder)!r} is not a folder (give the folder superposim export wrote)")
    _read_json(folder / "config.json", MODEL_SCHEMA, MODEL_VERSION)
    truth = _read_json(folder / "truth.json", TRUTH_SCHEMA, TRUTH_VERSION)
    tensors, _ = read_tensors(folder / "truth.safetensors", TRUTH_SCHEMA, TRUTH_VERSION)
    return Export(folder, truth, tensors)
