"""ground-truth-baselines: what the export-and-score benchmark measures, on known baselines.

A random circuit of AND / OR gates over m input features, compiled with its features along
random directions of an n-dim stream, for two stream widths (two levels of superposition m / n).
Each network is what ``superposim export`` writes; here its true mechanism is scored against:

- features of layer 0 (the embedded inputs, ``active`` of m on): the true directions (score 1),
  random Gaussian latents (chance: ``chance_best_cosine``), and a plain L1 sparse autoencoder
  trained on the network's layer-0 activations (``layers.sae``);
- components of every weight: the true decomposition (score 1), random Gaussian matrices
  (chance), and the SVD of each weight (its leading rank-one terms, as many as true components):
  what a naive decomposition finds when every gate's reads mix superposed directions;
- the SVD against neuron sharing: circuits in superposition (2025, plain weights, so that each
  weight is exactly the sum of its circuits' rank-d pieces) at ``cis_D`` neurons for each T of
  ``cis_T``, the SVD's singular terms split evenly into T components (the weight's rank over T,
  consecutive by falling singular value) against the circuits' pieces, as the circuits per
  neuron (T S / n) grow.

Row keys: ``n``, ``superposition`` (m / n), ``target`` (features / components), ``method``,
``mean_best_true`` (mean over true units of the best cosine with the method's), ``recovered``
(share matched one-to-one above ``threshold``; features: best cosine above it),
``predicted_chance`` (random rows: the closed-form mean best cosine), ``dead``, ``duplicates``,
``reconstruction_mse`` (SAE rows), ``circuits`` and ``circuits_per_neuron`` (sharing rows).
Summary: the SAE's recovered share at each width, and the
largest relative gap between a random row and its prediction, the SVD's mean best cosine with
the circuits' pieces at the fewest and the most circuits per neuron.
"""

from __future__ import annotations

from typing import Any

import torch
from matplotlib.figure import Figure

from circuits.cis import small_circuits
from circuits.cis2025 import capacity, compile_boolean_cis2025
from circuits.compile import compile_superposed
from circuits.exportable import ExportView, view_of
from circuits.generators import random_circuit
from circuits.mechanism import mechanism, weights_of
from circuits.scoring import (
    FeatureScore,
    chance_best_cosine,
    random_components,
    score_features,
    score_matrix,
    svd_components,
)
from layers.sae import train_sae
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result
from scenarios.engine.score import join

# the small circuits of the sharing rows: 4 gates wide, 3 layers, 6 neurons per small neuron
CIS_GATES, CIS_LAYERS, CIS_S = 4, 3, 6
PARAMS = {
    "m": Param(256, "input features", low=8, high=4096),
    "n": Param((128, 32), "stream widths (levels of superposition m / n)", kind="list[int]", low=2, high=4096),
    "active": Param(3, "input features on per sample", low=1),
    "gates": Param(64, "gates per layer of the circuit", low=1),
    "layers": Param(2, "layers of the circuit", low=1, high=8),
    "latents": Param(2, "SAE latents per true feature", low=1, high=16),
    "steps": Param(3000, "SAE training steps", low=1),
    "batch": Param(512, "SAE batch", low=1),
    "l1": Param(0.2, "SAE L1 coefficient", kind="float", low=0.0),
    "lr": Param(3e-3, "SAE learning rate", kind="float", above=0.0),
    "threshold": Param(0.9, "cosine counted as recovered", kind="float", above=0.0, high=1.0),
    "cis_T": Param((2, 20, 180), "small circuits of the 2025 construction for the SVD against neuron sharing",
                   kind="list[int]", low=1),
    "cis_D": Param(1000, "neurons per layer of that construction", low=10, high=8000),
}


def check(p: Values) -> None:
    require(p.active <= p.m, f"active: at most m={p.m} features can be on, got {p.active}")
    cap = capacity(p.cis_D, 2 * (CIS_GATES + 1), CIS_S)
    require(cap is None or max(p.cis_T) <= cap, f"cis_T: D={p.cis_D} holds at most {cap} circuits, got {max(p.cis_T)}")


def _sharing_rows(p: Values, ctx: Context, curves: dict) -> list[dict]:
    """SVD of the 2025 construction's weights (plain form: the weight is exactly the sum of the
    circuits' rank-d pieces), in groups of d singular terms, against the circuits' true pieces,
    as more circuits share each neuron."""
    rows = []
    for T in p.cis_T:
        smalls = small_circuits(T, CIS_GATES, CIS_LAYERS, ctx.generator(f"cis circuits:{T}"))
        net = ctx.place(compile_boolean_cis2025(smalls, p.cis_D, CIS_S, "plain", ctx.generator(f"cis placement:{T}")))
        mech = mechanism(net)
        assert mech is not None
        matched, best, total = [], 0.0, 0
        for layer in range(1, CIS_LAYERS):
            m = mech.matrix(f"blocks.{layer}.read")
            truth = m.families[0].factors
            sc = score_matrix(m.key, truth, svd_components(net.network.relu_blocks()[layer].read.dense(),
                                                           truth.count, rank=None))
            matched.append(sc.matched)
            best += sc.mean_best_true * truth.count
            total += truth.count
        every = torch.cat(matched)
        n = p.cis_D // net.cis.small.d
        rows.append({"n": p.cis_D, "target": "circuit components", "method": "svd", "circuits": T,
                     "circuits_per_neuron": T * CIS_S / n, "mean_best_true": best / total,
                     "recovered": float((every >= p.threshold).float().mean())})
        curves[f"circuits svd T={T}"] = every.sort(descending=True).values.tolist()
    return rows


def _feature_row(p: Values, n: int, method: str, score: FeatureScore, **more: Any) -> dict:
    return {"n": n, "superposition": p.m / n, "target": "features", "method": method,
            "mean_best_true": score.mean_best_true, "recovered": score.recovered, "dead": score.dead,
            "duplicates": score.duplicates, **more}


def body(p: Values, ctx: Context) -> Outcome:
    rows, curves = [], {}
    circuit = random_circuit(p.m, p.layers, p.gates, 2, ("AND", "OR"), ctx.generator("circuit"))
    for n in p.n:
        net = ctx.place(compile_superposed(circuit, n, generator=ctx.generator(f"embedding:{n}")))
        view = view_of(net, p.active)
        true = view.carriers[0].dense()
        gen = ctx.generator(f"baselines:{n}")
        k = p.latents * p.m
        for method, dictionary in (("true", true), ("random", torch.randn(k, n, generator=gen))):
            s = score_features(true, dictionary, 0, p.threshold)
            chance = chance_best_cosine(dictionary.shape[0], n) if method == "random" else None
            rows.append(_feature_row(p, n, method, s, predicted_chance=chance))
            curves[f"features {method} n={n}"] = s.best.sort(descending=True).values.tolist()
        data_gen = ctx.generator(f"sae data:{n}")

        def draw(batch: int, view: ExportView = view, data_gen: torch.Generator = data_gen) -> torch.Tensor:
            return view.network.embed.apply_to_sparse(view.sample(batch, data_gen))

        sae, mse = train_sae(draw, n, k, p.steps, p.batch, p.l1, p.lr, gen, ctx.progress)
        with torch.no_grad():
            alive = (sae.encode(draw(8192)) > 0).any(dim=0)
        s = score_features(true, sae.dictionary, 0, p.threshold, alive=alive)
        rows.append(_feature_row(p, n, "sae", s, reconstruction_mse=mse))
        curves[f"features sae n={n}"] = s.best.sort(descending=True).values.tolist()
        mech = view.mechanism
        assert mech is not None
        weights = {m.key: m for m in mech.matrices}
        dense = {key: w.dense() for key, w in weights_of(view.network, view.readout_weights).items() if key in weights}
        for method in ("true", "random", "svd"):
            matched, best, chance, total = [], 0.0, 0.0, 0
            for key, m in weights.items():
                truth = join([f.factors for f in m.families])
                found = (truth if method == "true" else random_components(truth, truth.count, gen)
                         if method == "random" else svd_components(dense[key], truth.count))
                sc = score_matrix(key, truth, found)
                matched.append(sc.matched)
                best += sc.mean_best_true * truth.count
                total += truth.count
                chance += chance_best_cosine(truth.count, m.shape[0] * m.shape[1]) * truth.count
            every = torch.cat(matched)
            rows.append({"n": n, "superposition": p.m / n, "target": "components", "method": method,
                         "mean_best_true": best / total, "recovered": float((every >= p.threshold).float().mean()),
                         "predicted_chance": chance / total if method == "random" else None})
            curves[f"components {method} n={n}"] = every.sort(descending=True).values.tolist()
    rows += _sharing_rows(p, ctx, curves)
    randoms = [r for r in rows if r["method"] == "random"]
    summary = {f"sae_recovered_n{r['n']}": r["recovered"] for r in rows if r["method"] == "sae"}
    summary["random_gap_to_chance"] = max(abs(r["mean_best_true"] / r["predicted_chance"] - 1) for r in randoms)
    summary["true_scores"] = min(r["mean_best_true"] for r in rows if r["method"] == "true")
    sharing = [r for r in rows if r["target"] == "circuit components"]
    summary["svd_circuits_best_fewest_shared"] = sharing[0]["mean_best_true"]
    summary["svd_circuits_best_most_shared"] = sharing[-1]["mean_best_true"]
    columns = ["n", "superposition", "target", "method", "mean_best_true", "recovered", "predicted_chance",
               "dead", "duplicates", "reconstruction_mse", "circuits", "circuits_per_neuron"]
    return Outcome(rows, summary, columns, {"curves": curves})


def matches_figure(result: Result) -> Figure:
    """Best-match cosine of every true feature / component, sorted, per method and width."""
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3, sharey=True)
    styles = {"true": "-", "random": ":", "sae": "--", "svd": "-."}
    for ax, target in zip(axes, ("features", "components", "circuits")):
        for label, values in result.data["curves"].items():
            if not label.startswith(target):
                continue
            method = label.split()[1]
            ax.plot(torch.linspace(0, 1, len(values)), values, styles[method], label=label[len(target) + 1:])
        ax.axhline(result.params["threshold"], color="gray", lw=0.8)
        title = {"features": "true features of layer 0: best match",
                 "components": "true components: one-to-one match",
                 "circuits": "circuits in superposition: SVD against sharing"}[target]
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("share of true units, best first")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("cosine")
    return fig


scenario = Scenario(
    name="ground-truth-baselines",
    description="export-and-score baselines: true, random (against its closed-form chance), SVD and an L1 SAE",
    params=PARAMS,
    body=body,
    check=check,
    figures={"matches": matches_figure},
    devices=("cpu",),
    cost="minutes",
)
