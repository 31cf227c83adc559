"""break-even: the fewest neurons per layer that carry m boolean features, l on, through L layers
within an error budget, in superposition with error correction against the dedicated network.

The circuit is the relay (every layer copies every feature). The dedicated network spends m
ReLUs per layer and is exact; the threshold clean-up of the superposed stream spends 2 m. Three
superposed forms are searched: ``none`` (the relay in random directions of a D-dim stream, read
and rewritten as is, no correction: its m BUF gates are still one unit each, so only the stream
is narrower than m), and the corrected constructions of ``circuits.correction``, which carry all
m features on D neurons per layer: ``step`` (each feature's S copies re-binarised by a two-ReLU
step at every layer) and ``linear`` (the copies passed on as read, the averaging read-out).

For each form, l and L the search first runs D up a geometric grid (steps of ``growth``, from
the smallest placement that holds m features; one network per D serves every depth: the relay
at depth L is its first L layers), then bisects between the first grid width whose wrong features
per sample at layer L, averaged over ``seeds``, are within ``budget`` and the one below it, until
the two are within ``tolerance`` of each other. Each width is measured once, on the same seeds.
The seed post's own estimate: a read-out of l features among m is clean in about 8 l ln m
dimensions, a ratio of 8 l ln m / m.

Row keys (one row per form, l and L): ``form``, ``active``, ``layers``, ``width`` (the D found;
null when no D up to ``max_ratio`` m meets the budget), ``ratio`` (width / m, superposition wins
below 1), ``wrong_per_sample`` at that width and layer, ``predicted_wrong`` (the step form's
density evolution, ``circuits.theory.correction_step_wrong``; null for the other forms),
``width_failing`` (the largest width measured below it that misses the budget, within
``tolerance``; null when the smallest width searched meets it) with ``wrong_failing`` and
``predicted_wrong_failing``, ``neurons`` (units per layer in the cost ledger: D for the corrected
forms, m for ``none``), ``parameters`` (non-zero weights and biases per layer at that width),
``ratio_parameters`` (against the dedicated network's m per layer plus its biases),
``post_ratio`` (8 l ln m / m), ``dedicated_wrong`` (0, measured), ``cleanup_ratio`` (2).
Summary keys: ``break_even_active`` per form, a list over ``layers`` (the largest l whose ratio is
below 1, 0 when none), ``post_break_even_active`` (m / (8 ln m)), ``evaluations`` (networks
measured), ``dedicated_neurons``.
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits import theory
from circuits.compile import CompiledNetwork, compile_dedicated, compile_superposed
from circuits.correction import FORMS, WIDTH, compile_corrected_relay, relay_circuit, smallest_width
from circuits.sampling import ExactlyActive
from circuits.trace import trace_noise
from scenarios import plots
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result
from scenarios.engine.search import smallest_passing

SEARCHED = ("none", *FORMS)
UNIT = {"none": 1} | WIDTH  # widths are multiples of the form's neurons per feature copy
NONE_FROM = 32  # the narrowest stream the uncorrected form is tried at

PARAMS = {
    "m": Param(2000, "boolean features per layer", low=16, high=200_000),
    "active": Param((1, 2, 3, 4), "features on per input", kind="list[int]", low=1),
    "layers": Param((2, 4, 8), "depths L at which the budget is checked", kind="list[int]", low=1, high=64),
    "forms": Param(SEARCHED, "superposed forms: none (no correction), step, linear", kind="list[str]",
                   choices=SEARCHED),
    "S": Param(6, "copies per feature (neurons per small neuron)", low=2, high=32),
    "budget": Param(0.1, "wrong features per sample allowed at layer L", kind="float", above=0),
    "growth": Param(1.5, "factor between successive widths of the grid", kind="float", above=1, high=4),
    "tolerance": Param(0.05, "relative gap between the width found and the failing one below it",
                       kind="float", above=0, high=1),
    "max_ratio": Param(1.5, "widest network searched, in units of m", kind="float", above=0, high=8),
    "samples": Param(300, "sampled inputs per width and l", low=10),
    "seeds": Param(1, "networks (and input streams) averaged per width", low=1, high=16),
}


def check(p: Values) -> None:
    require(max(p.active) < p.m, f"active: fewer than m={p.m}, got {max(p.active)}")
    require(p.samples * p.m <= 200_000_000, f"samples: samples x m = {p.samples * p.m:,} is more than the "
                                             "200,000,000 reads a width is allowed")
    if "none" in p.forms:
        require(p.m * p.max_ratio * p.m <= 2e8, f"m: the uncorrected form stores m x D directions per layer, "
                                                 f"{p.m * p.max_ratio * p.m:,.0f} at the widest D; at most 2e8")


def narrowest(p: Values, form: str) -> int:
    return min(NONE_FROM, p.m) if form == "none" else smallest_width(p.m, p.S, form)


def widths(p: Values, form: str) -> list[int]:
    """The grid: from the narrowest width searched up to max_ratio m."""
    d, D = UNIT[form], narrowest(p, form)
    out = []
    while D <= p.max_ratio * p.m:
        out.append(D)
        D = d * max(D // d + 1, math.ceil(D * p.growth / d))
    return out


def network(p: Values, form: str, D: int, depth: int, generator: torch.Generator) -> CompiledNetwork:
    if form == "none":
        return compile_superposed(relay_circuit(p.m, depth), D, generator=generator)
    return compile_corrected_relay(p.m, depth, D, p.S, form, generator)


def _wrong(net: CompiledNetwork, l: int, p: Values, ctx: Context, seed: int) -> list[float]:
    sampler = ExactlyActive(p.m, l, ctx.seed_for(f"inputs:{l}:{seed}"), ctx.device)
    stats = trace_noise(net.circuit, {"net": net.read_features}, sampler, p.samples, progress=False,
                        device=ctx.device)["net"]
    return [s.false_positives + s.false_negatives for s in stats]


class Measurements:
    """Wrong features per sample by layer, per (width, l), averaged over the seeds' networks;
    each width's networks are built once per call and every l asked for is measured on them."""

    def __init__(self, p: Values, ctx: Context, form: str, bar: tqdm) -> None:
        self.p, self.ctx, self.form, self.bar = p, ctx, form, bar
        self.wrong: dict[tuple[int, int], list[float]] = {}
        self.neurons: dict[int, int] = {}
        self.parameters: dict[int, float] = {}
        self.evaluations = 0

    def at(self, D: int, ls: list[int]) -> None:
        todo = [l for l in ls if (D, l) not in self.wrong]
        if not todo:
            return
        p, depth = self.p, max(self.p.layers)
        nets = [self.ctx.place(network(p, self.form, D, depth, self.ctx.generator(f"net:{self.form}:{D}:{s}")))
                for s in range(p.seeds)]
        self.neurons[D] = nets[0].network.neurons()[0]
        self.parameters[D] = nets[0].network.nonzero_parameters() / depth
        for l in todo:
            runs = [_wrong(net, l, p, self.ctx, s) for s, net in enumerate(nets)]
            self.wrong[(D, l)] = [sum(col) / len(col) for col in zip(*runs)]
        self.evaluations += len(nets)
        self.bar.update(1)

    def passes(self, D: int, l: int, L: int) -> bool:
        self.at(D, [l])
        return self.wrong[(D, l)][L] <= self.p.budget


def search(p: Values, ctx: Context, form: str, bar: tqdm) -> tuple[dict, Measurements]:
    """For every (l, L): (the smallest width meeting the budget, the failing width below it)."""
    grid, unit = widths(p, form), UNIT[form]
    measure = Measurements(p, ctx, form, bar)
    first: dict[tuple[int, int], int] = {}
    for D in grid:  # the grid, every open l at once
        open_l = [l for l in p.active if any((l, L) not in first for L in p.layers)]
        if not open_l:
            break
        measure.at(D, open_l)
        for l in open_l:
            for L in p.layers:
                if (l, L) not in first and measure.passes(D, l, L):
                    first[(l, L)] = D
    found: dict[tuple[int, int], tuple[int | None, int | None]] = {}
    for l in p.active:
        for L in p.layers:
            if (l, L) not in first:
                found[(l, L)] = (None, grid[-1] if grid else None)
                continue
            D = first[(l, L)]
            below = grid[grid.index(D) - 1] if grid.index(D) else None
            if below is None:
                found[(l, L)] = (D, None)
                continue
            bracket = smallest_passing(lambda k, l=l, L=L: measure.passes(k * unit, l, L), below // unit, D // unit,
                                       p.tolerance)
            found[(l, L)] = (bracket.passing * unit, bracket.failing * unit)
    return found, measure


class Predictions:
    """The step form's law per (l, D), computed once to the deepest layer."""

    def __init__(self, p: Values) -> None:
        self.p = p
        self.cache: dict[tuple[int, int], list[float]] = {}

    def __call__(self, form: str, l: int, D: int | None, L: int) -> float | None:
        if form != "step" or D is None:
            return None
        if (l, D) not in self.cache:
            self.cache[(l, D)] = theory.correction_step_wrong(self.p.m, l, D // WIDTH[form], self.p.S,
                                                              max(self.p.layers))
        return self.cache[(l, D)][L]


def body(p: Values, ctx: Context) -> Outcome:
    depth = max(p.layers)
    dedicated = ctx.place(compile_dedicated(relay_circuit(p.m, depth)))
    dedicated_wrong = {l: _wrong(dedicated, l, p, ctx, 0) for l in p.active}
    per_layer_dedicated = p.m + p.m  # m weights and m biases per layer
    rows, evaluations, break_even, predicted = [], 0, {}, Predictions(p)
    bar = tqdm(total=sum(len(widths(p, f)) for f in p.forms), desc="widths", disable=not ctx.progress, leave=False)
    for form in p.forms:
        found, measure = search(p, ctx, form, bar)
        evaluations += measure.evaluations
        for l in p.active:
            for L in p.layers:
                D, failing = found[(l, L)]
                params = None if D is None else measure.parameters[D]
                rows.append({
                    "form": form, "active": l, "layers": L, "width": D,
                    "ratio": None if D is None else D / p.m,
                    "wrong_per_sample": None if D is None else measure.wrong[(D, l)][L],
                    "predicted_wrong": predicted(form, l, D, L),
                    "width_failing": failing,
                    "wrong_failing": None if failing is None else measure.wrong[(failing, l)][L],
                    "predicted_wrong_failing": predicted(form, l, failing, L),
                    "neurons": None if D is None else measure.neurons[D],
                    "parameters": params,
                    "ratio_parameters": None if params is None else params / per_layer_dedicated,
                    "post_ratio": 8 * l * math.log(p.m) / p.m,
                    "dedicated_wrong": dedicated_wrong[l][L],
                    "cleanup_ratio": 2.0,
                })
        break_even[form] = [max((r["active"] for r in rows if r["form"] == form and r["layers"] == L
                                 and r["ratio"] is not None and r["ratio"] < 1), default=0) for L in p.layers]
    bar.close()
    summary = {"break_even_active": break_even, "post_break_even_active": p.m / (8 * math.log(p.m)),
               "evaluations": evaluations, "dedicated_neurons": p.m}
    return Outcome(rows, summary, columns=list(rows[0]))


def map_figure(result: Result) -> Figure | None:
    """Neurons per layer against the dedicated network's, over (l, L), one panel per form."""
    p, rows = result.p, result.rows
    forms = list(p.forms)
    fig = Figure(figsize=(4.6 * len(forms) + 0.8, 3.8))
    axes = fig.subplots(1, len(forms), squeeze=False)[0]
    for ax, form in zip(axes, forms):
        grid = torch.full((len(p.layers), len(p.active)), float("nan"))
        for r in rows:
            if r["form"] == form and r["ratio"] is not None:
                grid[list(p.layers).index(r["layers"]), list(p.active).index(r["active"])] = r["ratio"]
        shown = torch.where(torch.isnan(grid), torch.full_like(grid, p.max_ratio), grid)
        image = ax.imshow(shown.numpy(), origin="lower", cmap="RdYlGn_r", vmin=0, vmax=2, aspect="auto")
        for i in range(len(p.layers)):
            for j in range(len(p.active)):
                value = grid[i, j].item()
                ax.text(j, i, "none" if math.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=8)
        if len(p.active) > 1 and len(p.layers) > 1:
            ax.contour(grid.nan_to_num(p.max_ratio * 2).numpy(), levels=[1.0], colors="black", linewidths=1.5)
        ax.set_xticks(range(len(p.active)), [str(v) for v in p.active])
        ax.set_yticks(range(len(p.layers)), [str(v) for v in p.layers])
        ax.set_xlabel("features on per input, l")
        ax.set_ylabel("layers L")
        post = result.summary["post_break_even_active"]
        what = "stream dims" if form == "none" else "neurons"
        ax.set_title(f"{form}: {what} / dedicated (m={p.m})\nblack: ratio 1; the post's estimate: l < {post:.0f}",
                     fontsize=9)
    fig.colorbar(image, ax=list(axes), label="neurons per layer / m (superposition wins below 1)")
    return fig


def post_figure(result: Result) -> Figure | None:
    """Width / m against l at each depth, every form, beside the seed post's 8 l ln m / m."""
    p, rows = result.p, result.rows
    fig = Figure(figsize=(4.2 * len(p.layers) + 0.6, 3.8))
    axes = fig.subplots(1, len(p.layers), squeeze=False, sharey=True)[0]
    post_l = result.summary["post_break_even_active"]
    ls = [1.0, 2.0 * post_l]
    colors = {"none": "tab:grey", "step": "tab:blue", "linear": "tab:orange"}
    for ax, L in zip(axes, p.layers):
        for form in p.forms:
            sel = [r for r in rows if r["form"] == form and r["layers"] == L]
            plots.line(ax, [r["active"] for r in sel], [r["ratio"] for r in sel], form, colors[form])
        ax.plot(ls, [8 * v * math.log(p.m) / p.m for v in ls], "k--", linewidth=1,
                label=f"the post: 8 l ln m / m (1 at l = {post_l:.0f})")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("features on per input, l")
        ax.set_title(f"L = {L}, m = {p.m}", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("width / m (superposition wins below 1)")
    labelled: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    axes[0].legend(list(labelled.values()), list(labelled), fontsize=7, loc="lower right")
    return fig


scenario = Scenario(
    name="break-even",
    description="the fewest neurons that carry m features through L layers within a budget: corrected "
                "superposition against the dedicated network",
    params=PARAMS,
    body=body,
    check=check,
    figures={"break_even": map_figure, "against_the_post": post_figure},
    networks=lambda p, ctx: {
        "superposed": compile_corrected_relay(p.m, max(p.layers), smallest_width(p.m, p.S, "step"), p.S, "step",
                                              ctx.generator("net:graph"))},
    cost="minutes",
)
