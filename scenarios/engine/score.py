"""Score a method's dictionary or decomposition against an export's true mechanism.

Inputs (safetensors, their schema in the metadata, as ``save_dictionary`` and
``save_components`` write them):

- a dictionary: ``layers.{t}`` (latents, n) per layer scored, optionally ``alive.{t}`` (latents,)
  marking latents that ever fired; or an SAELens SAE folder (``--sae``, the ``saelens`` extra);
- a decomposition: per matrix KEY (``embed``, ``blocks.{t}.read``, ...) the factors
  ``KEY.rows``, ``KEY.left``, ``KEY.right``, ``KEY.cols`` (``layers.factors``), optionally
  ``KEY.active`` (samples, C): which components it marks active on each of the export's
  sampled inputs, in order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import torch
from matplotlib.figure import Figure

from circuits.scoring import (
    FeatureScore,
    MatrixScore,
    activity_scores,
    chance_best_cosine,
    score_features,
    score_matrix,
)
from layers.factors import Factors
from layers.files import write_atomic
from scenarios.engine.export import Export, ExportFileError, load_export, read_tensors, write_tensors
from scenarios.engine.outputs import Written, check_out_dir, write_folder
from scenarios.engine.params import UsageError
from scenarios.engine.result import Result, jsonable

DICTIONARY_SCHEMA, COMPONENTS_SCHEMA, SCORE_SCHEMA, FILE_VERSION = (
    "superposim-dictionary", "superposim-components", "superposim-score", 1)
SAELENS_INSTALL = "pip install 'superposim[saelens]'"


def _save(path: str | Path, tensors: dict[str, torch.Tensor], schema: str) -> Path:
    return write_tensors(path, tensors, {"schema": schema, "version": FILE_VERSION})


def save_dictionary(path: str | Path, layers: dict[int, torch.Tensor],
                    alive: dict[int, torch.Tensor] | None = None) -> Path:
    """A dictionary file: ``layers[t]`` (latents, n) for each layer t scored."""
    tensors = {f"layers.{t}": d.float() for t, d in layers.items()}
    tensors |= {f"alive.{t}": a.to(torch.uint8) for t, a in (alive or {}).items()}
    return _save(path, tensors, DICTIONARY_SCHEMA)


def save_components(path: str | Path, matrices: dict[str, Factors],
                    active: dict[str, torch.Tensor] | None = None) -> Path:
    """A decomposition file: the factors of each matrix, and optionally which components are
    active on each of the export's sampled inputs."""
    tensors: dict[str, torch.Tensor] = {}
    for key, f in matrices.items():
        tensors |= f.tensors(key)
    tensors |= {f"{key}.active": a.to(torch.uint8) for key, a in (active or {}).items()}
    return _save(path, tensors, COMPONENTS_SCHEMA)


def load_sae_lens(path: str | Path) -> torch.Tensor:
    """The decoder (latents, n) of an SAE saved by SAELens (``SAE.save_model``)."""
    try:
        from sae_lens import SAE  # type: ignore[import-not-found]
    except ImportError:
        raise UsageError(f"--sae: scoring an SAELens SAE needs sae-lens: {SAELENS_INSTALL}") from None
    try:
        sae = SAE.load_from_disk(str(path), device="cpu")
    except Exception as err:  # SAELens raises many kinds; the message is what the user needs
        raise UsageError(f"--sae: {str(path)!r} is not an SAE SAELens can load ({type(err).__name__}: {err})") from None
    return sae.W_dec.detach().float()


@dataclass
class Scores:
    """What ``score`` measured: per layer feature scores, per matrix component scores, and the
    activity precision and recall."""

    export: Export
    features: list[FeatureScore] = field(default_factory=list)
    matrices: list[MatrixScore] = field(default_factory=list)
    threshold: float = 0.9
    precision: float = math.nan
    recall: float = math.nan
    inputs: int = 0

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for f in self.features:
            width = self.export.truth["layers"][f.layer]["width"]
            rows.append({"what": f"features L{f.layer}", "true": f.features, "found": f.latents,
                         "mean_best_true": f.mean_best_true, "mean_best_found": f.mean_best_latent,
                         "recovered": f.recovered, "chance_mean_best": chance_best_cosine(max(1, f.latents), width),
                         "dead": f.dead, "duplicates": f.duplicates})
        for m in self.matrices:
            out, inp = next(tuple(x["shape"]) for x in self.export.truth["components"]["matrices"]
                            if x["key"] == m.key)
            rows.append({"what": m.key, "true": m.true, "found": m.found, "mean_best_true": m.mean_best_true,
                         "mean_best_found": m.mean_best_found, "recovered": m.recovered(self.threshold),
                         "chance_mean_best": chance_best_cosine(max(1, m.found), max(2, out * inp))})
        return rows

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"export": str(self.export.folder), "threshold": self.threshold}
        if self.features:
            total = sum(f.features for f in self.features)
            out["features_recovered"] = sum(f.recovered * f.features for f in self.features) / total
            out["features_mean_best_true"] = sum(f.mean_best_true * f.features for f in self.features) / total
        if self.matrices:
            total = sum(m.true for m in self.matrices)
            out["components_recovered"] = sum(m.recovered(self.threshold) * m.true for m in self.matrices) / total
            out["components_mean_best_true"] = sum(m.mean_best_true * m.true for m in self.matrices) / total
            out["active_precision"], out["active_recall"], out["active_inputs"] = \
                self.precision, self.recall, self.inputs
        return out

    def result(self) -> Result:
        return Result("score", {"threshold": self.threshold}, 0, "", self.rows(), self.summary(),
                      columns=["what", "true", "found", "mean_best_true", "mean_best_found", "recovered",
                               "chance_mean_best", "dead", "duplicates"])

    def figure(self) -> Figure:
        """The matched similarity of every true feature / component, sorted, per layer / matrix."""
        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        for f in self.features:
            best = f.best.sort(descending=True).values
            ax.plot(torch.linspace(0, 1, best.numel()), best, label=f"features L{f.layer}")
        for m in self.matrices:
            matched = m.matched.sort(descending=True).values
            ax.plot(torch.linspace(0, 1, matched.numel()), matched, label=m.key, lw=1)
        ax.axhline(self.threshold, color="gray", ls=":", lw=1, label=f"threshold {self.threshold:g}")
        ax.set_xlabel("true features / components, best matched first (share)")
        ax.set_ylabel("cosine with its match")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{self.export.truth['scenario']}: {self.export.truth['name']}")
        if len(self.features) + len(self.matrices) <= 12:
            ax.legend(fontsize=7)
        return fig

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCORE_SCHEMA, "version": FILE_VERSION, "rows": jsonable(self.rows(), "rows"),
                "summary": jsonable(self.summary(), "summary")}

    def save(self, out: str | Path) -> Written:
        check_out_dir(out)

        def fill(tmp: Path) -> list[Path]:
            path = write_atomic(tmp / "score.json", (json.dumps(self.to_dict(), indent=2) + "\n").encode())
            fig = self.figure()
            return [path, write_atomic(tmp / "score.png", lambda t: fig.savefig(t, dpi=120, bbox_inches="tight",
                                                                               format="png"))]
        return write_folder(out, fill)


def true_components(export: Export) -> dict[str, Factors]:
    """The true components of each matrix, its families joined in order."""
    by_key: dict[str, list[Factors]] = {}
    for key, _, f in export.families():
        by_key.setdefault(key, []).append(f)
    return {key: join(parts) for key, parts in by_key.items()}


def join(parts: list[Factors]) -> Factors:
    """Families of one matrix as one (padded to a common support and rank)."""
    if len(parts) == 1:
        return parts[0]
    a = max(p.rows.shape[1] for p in parts)
    b = max(p.cols.shape[1] for p in parts)
    r = max(p.rank for p in parts)

    def pad(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        out = torch.zeros(shape, dtype=t.dtype)
        out[tuple(slice(0, s) for s in t.shape)] = t
        return out
    return Factors(torch.cat([pad(p.rows, (p.count, a)) for p in parts]),
                   torch.cat([pad(p.left, (p.count, a, r)) for p in parts]),
                   torch.cat([pad(p.right, (p.count, r, b)) for p in parts]),
                   torch.cat([pad(p.cols, (p.count, b)) for p in parts]), parts[0].shape)


def true_needed(export: Export) -> dict[str, torch.Tensor]:
    """Per matrix, (samples, true components) which the export's inputs need."""
    chunks = export.data()
    out: dict[str, torch.Tensor] = {}
    keys: dict[str, list[str]] = {}
    for key, family, _ in export.families():
        keys.setdefault(key, []).append(f"needed.{key}/{family['name']}")
    for key, names in keys.items():
        out[key] = torch.cat([torch.cat([c[n] for n in names], dim=1) for c in chunks]) if chunks else torch.zeros(0)
    return out


def score(export: str | Path | Export, *, features: str | Path | None = None, sae: str | Path | None = None,
          sae_layer: int | None = None, components: str | Path | None = None,
          threshold: float = 0.9) -> Scores:
    """Score a dictionary (``features`` file or an SAELens ``sae`` at ``sae_layer``) and / or a
    decomposition (``components`` file) against an export."""
    if not 0 < threshold <= 1:
        raise UsageError(f"--threshold: expected a cosine in (0, 1], got {threshold}")
    if features is None and components is None and sae is None:
        raise UsageError("score: give --features FILE, --sae FOLDER --layer T or --components FILE")
    exp = export if isinstance(export, Export) else load_export(export)
    result = Scores(exp, threshold=threshold)
    layers = exp.truth["layers"]
    dictionaries: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
    if features is not None:
        tensors, _ = read_tensors(Path(features), DICTIONARY_SCHEMA, FILE_VERSION)
        for name, value in tensors.items():
            if name.startswith("layers."):
                t = _layer(name, len(layers), features)
                dictionaries[t] = (value, tensors.get(f"alive.{t}"))
        if not dictionaries:
            raise ExportFileError(f"{str(features)!r} holds no layers.T dictionary")
    if sae is not None:
        if sae_layer is None or not 0 <= sae_layer < len(layers):
            raise UsageError(f"--layer: give the layer the SAE was trained on, 0..{len(layers) - 1}")
        dictionaries[sae_layer] = (load_sae_lens(sae), None)
    for t, (dictionary, alive) in sorted(dictionaries.items()):
        try:
            result.features.append(score_features(exp.directions(t), dictionary, t, threshold, alive=alive))
        except ValueError as err:
            raise UsageError(f"--features: {err}") from None
    if components is not None:
        tensors, _ = read_tensors(Path(components), COMPONENTS_SCHEMA, FILE_VERSION)
        truth = true_components(exp)
        keys = sorted({n.rsplit(".", 1)[0] for n in tensors if n.endswith(".rows")})
        unknown = [k for k in keys if k not in truth]
        if unknown:
            raise UsageError(f"--components: {unknown[0]!r} is not a matrix with true components; "
                             f"valid: {', '.join(truth)}")
        if not keys:
            raise ExportFileError(f"{str(components)!r} holds no KEY.rows / left / right / cols factors")
        active = {}
        for key in keys:
            try:
                found = Factors.from_tensors(tensors, key, truth[key].shape)
                found.check_distinct()
            except ValueError as err:
                raise UsageError(f"--components: {key}: {err}") from None
            result.matrices.append(score_matrix(key, truth[key], found))
            if f"{key}.active" in tensors:
                active[key] = tensors[f"{key}.active"]
        if active:
            try:
                result.precision, result.recall, result.inputs = activity_scores(
                    result.matrices, true_needed(exp), active, threshold)
            except ValueError as err:
                raise UsageError(f"--components: {err}") from None
    return result


def _layer(name: str, count: int, path: str | Path) -> int:
    try:
        t = int(name.split(".", 1)[1])
    except ValueError:
        t = -1
    if not 0 <= t < count:
        raise UsageError(f"--features: {str(path)!r} names {name!r}; the export's layers are 0..{count - 1}")
    return t
