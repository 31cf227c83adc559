"""trained-u-and: one hidden layer of d ReLU neurons trained on all m-choose-2 pairwise ANDs of
sparse boolean inputs (Newgas 2025), beside the hand-built Universal-AND at the same d.

Inputs have exactly ``active`` of m features on, on the basis (d0 = 0) or along random unit
vectors of R^d0. The trained model is h = ReLU(W a + b) with one logit per AND, y = U h + c,
fitted by Adam with binary cross-entropy (``loss=bce``; ``mse`` fits y to the 0/1 values, which
with rare ANDs settles on the dedicated solution, an AND per neuron and the rest near their mean,
below 1/2); the hand-built one is
``circuits.uand.compile_uand`` with the connection probability of ``p_grid`` that reads the
fewest ANDs wrong at that d.

Row keys (one row per d): ``d``, ``error_trained``, ``error_handbuilt`` (MSE per AND of the
probability, resp. the read-out, against the exact value), ``wrong_features_trained``, ``wrong_features_handbuilt``
(ANDs on the wrong side of the decision, per input), ``p_handbuilt``, ``density`` (share of the
trained neuron-to-output weights above a tenth of the largest), ``density_handbuilt`` (the same
for the hand-built read-out), ``binarity`` (how well two values per neuron describe its input
weights: the variance a two-level fit explains, averaged over neurons; 1 for binary weights),
``class_a``, ``class_b``, ``class_c`` (per AND, the neurons reading both, one or none of its
inputs among their high-weight inputs), ``class_r2`` (share of the output weights' variance that
the class of the neuron explains, per AND), ``intended_share_trained``, ``intended_share_handbuilt``
(feature graph: share of each AND's incoming weight on its own two inputs),
``wrong_features_no_hidden`` (the baseline without hidden neurons: a logit per AND straight from
the inputs, trained the same way; with 0/1 inputs on the basis every AND is a threshold on its two
inputs' sum, so this model reads every AND and a row that does not beat it shows no computation),
``error_no_hidden`` (its MSE per AND, on the scale of ``error_trained``),
``wrong_features_copying`` (the input-copying solution at the row's d: its neurons copy input
coordinates and each AND reads the copies linearly; from ``copying_neurons`` on it is the
no-hidden baseline, below that it sees only part of the input; null below ``copying_neurons``
in superposition), ``predicted_error_dedicated`` (inputs on the basis: the MSE per AND of the
dedicated solution of d neurons, one AND each computed exactly and the rest read as their mean,
``circuits.theory.dedicated_and_mse``; null in superposition).
Summary keys: ``pairs``, ``dedicated_neurons`` (one per AND), ``smallest_exact_d`` (the
smallest d whose trained network reads every AND right on every sampled input),
``wrong_features_no_hidden``, ``error_no_hidden``, ``predicted_error_no_hidden`` (with ``loss=mse``
and inputs on the basis, the best linear read's error in closed form,
``circuits.theory.linear_and_mse``; else null), ``copying_neurons`` (m on the basis, 2 d0 in superposition).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from circuits.compile import CompiledNetwork
from circuits.generators import all_pairs_and
from circuits.graph import FeatureGraph
from circuits.sampling import ExactlyActive
from circuits.spec import Circuit
from circuits.theory import dedicated_and_mse, linear_and_mse
from circuits.trace import trace_noise
from circuits.uand import compile_uand
from layers import Dense, Identity, Network, ReLUBlock, make_embedding
from layers.threads import sized_threads
from scenarios import plots
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.params import Param, Values, require
from scenarios.engine.registry import Context, Outcome, Scenario
from scenarios.engine.result import Result

LOSSES = ("bce", "mse")
NO_HIDDEN_STEPS = 4  # the baseline without hidden neurons trains this many times as long

PARAMS = {
    "m": Param(20, "input features", low=2, high=200),
    "d": Param((4, 6, 8, 12, 20), "hidden neurons", kind="list[int]", low=1, high=100_000),
    "active": Param(2, "input features on per sample", low=1),
    "d0": Param(0, "input width (0: inputs on the basis)", low=0, high=100_000),
    "p_grid": Param((0.2, 0.35, 0.5), "connection probabilities tried for the hand-built U-AND",
                    kind="list[float]", low=0.01, high=1.0),
    "loss": Param("bce", "training loss", kind="str", choices=LOSSES),
    "steps": Param(3000, "training steps", low=1),
    "batch": Param(1024, "samples per step", low=1),
    "lr": Param(0.01, "Adam learning rate (cosine schedule to 0)", kind="float", above=0.0, high=10.0),
    "samples": Param(20000, "samples to measure each network", low=100),
}


def check(p: Values) -> None:
    require(p.active <= p.m, f"active: must be <= m={p.m}, got {p.active}")
    pairs = p.m * (p.m - 1) // 2
    d = max(p.d)
    need = FLOAT * (8 * d * (pairs + p.m + p.d0) + 8 * p.batch * (pairs + d) + 6 * 4096 * pairs)
    require_memory(need, f"m={p.m} ({pairs} ANDs), d={d}: the networks and one batch")


def _pairs(circuit: Circuit) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([g.inputs for g in circuit.layers[0]]).T


def train(p: Values, d: int, circuit: Circuit, phi: torch.Tensor | None, ctx: Context) -> tuple[torch.Tensor, ...]:
    """W (d, width), b (d), U (pairs, d), c (pairs) of the trained layer."""
    pairs, width = circuit.widths[1], p.m if phi is None else phi.shape[1]
    gen = ctx.generator(f"init:{d}")
    w = torch.nn.Parameter(torch.randn(d, width, generator=gen) / math.sqrt(width))
    b = torch.nn.Parameter(torch.zeros(d))
    u = torch.nn.Parameter(torch.randn(pairs, d, generator=gen) / math.sqrt(d))
    c = torch.nn.Parameter(torch.zeros(pairs))
    _fit(p, circuit, phi, [w, b, u, c], lambda a: torch.relu(a @ w.T + b) @ u.T + c, p.steps,
         ctx.seed_for(f"train:{d}"))
    return w.detach(), b.detach(), u.detach(), c.detach()


def train_no_hidden(p: Values, circuit: Circuit, phi: torch.Tensor | None,
                    ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The baseline without hidden neurons: one logit per AND straight from the inputs,
    y = V a + c, trained with the same loss and learning rate for 4 times the steps (a threshold
    needs large weights, and this model has few to grow them with: at the layer's own step count
    it is still short of them). With the inputs on the basis every AND is the threshold
    x_i + x_j > 3/2 of its two inputs, so this model can read every one."""
    pairs, width = circuit.widths[1], p.m if phi is None else phi.shape[1]
    gen = ctx.generator("init:no-hidden")
    v = torch.nn.Parameter(torch.randn(pairs, width, generator=gen) / math.sqrt(width))
    c = torch.nn.Parameter(torch.zeros(pairs))
    _fit(p, circuit, phi, [v, c], lambda a: a @ v.T + c, NO_HIDDEN_STEPS * p.steps, ctx.seed_for("train:no-hidden"))
    return v.detach(), c.detach()


def _fit(p: Values, circuit: Circuit, phi: torch.Tensor | None, params: list[torch.nn.Parameter],
         logits: Callable[[torch.Tensor], torch.Tensor], steps: int, seed: int) -> None:
    """Adam with a cosine schedule on the ANDs of fresh inputs; ``logits`` maps the inputs as the
    model sees them (on the basis, or along phi) to one value per AND."""
    opt = torch.optim.Adam(params, lr=p.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    sampler = ExactlyActive(p.m, p.active, seed)
    ii, jj = _pairs(circuit)
    with sized_threads(p.batch * max(p.m, len(ii))):
        for _ in range(steps):
            x = sampler.sample(p.batch)
            y = logits(x if phi is None else x @ phi)
            target = x[:, ii] * x[:, jj]
            if p.loss == "bce":
                loss = torch.nn.functional.binary_cross_entropy_with_logits(y, target)
            else:
                loss = ((y - target) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


@torch.no_grad()
def no_hidden_reads(p: Values, circuit: Circuit, phi: torch.Tensor | None, v: torch.Tensor, c: torch.Tensor,
                    seed: int) -> tuple[float, float]:
    """ANDs on the wrong side of the decision per input (a logit of 0 with bce, 1/2 with mse) and
    the MSE per AND (of the probability with bce, of the output with mse), on the same inputs the
    networks are measured on."""
    ii, jj = _pairs(circuit)
    sampler = ExactlyActive(p.m, p.active, seed)
    wrong, sq, done, bce = 0, 0.0, 0, p.loss == "bce"
    while done < p.samples:
        x = sampler.sample(min(4096, p.samples - done))
        y = (x if phi is None else x @ phi) @ v.T + c
        target = x[:, ii] * x[:, jj]
        wrong += int(((y > (0.0 if bce else 0.5)) != (target > 0.5)).sum())
        sq += float((((torch.sigmoid(y) if bce else y) - target) ** 2).double().sum())
        done += len(x)
    return wrong / p.samples, sq / (p.samples * len(ii))


def as_compiled(circuit: Circuit, phi: torch.Tensor | None, w: torch.Tensor, b: torch.Tensor, u: torch.Tensor,
                c: torch.Tensor, bce: bool) -> CompiledNetwork:
    """The trained layer as a compiled network of the all-pairs circuit, read so that its
    decision sits at 1/2 like every other network's (a logit of 0 reads 1/2)."""
    m = circuit.n_inputs
    embed = Identity(m) if phi is None else Dense(phi.T.contiguous())
    net = Network(embed, [ReLUBlock(Dense(w.clone()), b.clone(), Dense(u.clone()))])
    shift = 0.5 if bce else 0.0
    readouts = [Identity(m) if phi is None else Dense(phi.clone()), Identity(u.shape[0])]
    return CompiledNetwork(f"trained(d={w.shape[0]})", circuit, net, readouts, readout_bias=[None, c + shift])


def copying_neurons(m: int, d0: int) -> int:
    """Neurons a layer needs to copy its input: one per feature on the basis (0/1 inputs pass a
    ReLU unchanged), two per dimension of a signed stream in superposition (its positive and
    negative parts)."""
    return m if d0 == 0 else 2 * d0


def as_copying(circuit: Circuit, phi: torch.Tensor | None, v: torch.Tensor, c: torch.Tensor, d: int,
               bce: bool) -> CompiledNetwork:
    """The input-copying solution at d neurons: they copy as many input coordinates as they can
    (the first ones; every coordinate is alike), and each AND reads the copies through the
    no-hidden baseline's weights on those coordinates, not refitted. From ``copying_neurons``
    neurons on it is that baseline exactly: copying spends neurons and computes nothing."""
    m, width = circuit.n_inputs, v.shape[1]
    k = min(d, width) if phi is None else min(d // 2, width)
    eye = torch.eye(width)[:k]
    w = eye if phi is None else torch.cat([eye, -eye])
    u = v[:, :k] if phi is None else torch.cat([v[:, :k], -v[:, :k]], dim=1)
    spare = d - w.shape[0]  # neurons left over read nothing and are read by nothing
    w, u = torch.cat([w, torch.zeros(spare, width)]), torch.cat([u, torch.zeros(len(u), spare)], dim=1)
    embed = Identity(m) if phi is None else Dense(phi.T.contiguous())
    net = Network(embed, [ReLUBlock(Dense(w), torch.zeros(d), Dense(u.contiguous()))])
    readouts = [Identity(m) if phi is None else Dense(phi.clone()), Identity(len(u))]
    return CompiledNetwork(f"copying(d={d})", circuit, net, readouts,
                           readout_bias=[None, c + (0.5 if bce else 0.0)])


@torch.no_grad()
def mse(circuit: Circuit, read: Callable[[torch.Tensor], list[torch.Tensor]], samples: int, m: int, active: int,
        seed: int, probability: bool) -> float:
    """MSE per AND of a reader against the exact values; ``probability``: reads are logits + 1/2."""
    ii, jj = _pairs(circuit)
    sampler = ExactlyActive(m, active, seed)
    sq = 0.0
    done = 0
    while done < samples:
        x = sampler.sample(min(4096, samples - done))
        target = x[:, ii] * x[:, jj]
        y = read(x)[1]
        sq += float((((torch.sigmoid(y - 0.5) if probability else y) - target) ** 2).double().sum())
        done += len(x)
    return sq / (samples * target.shape[1])


def binarity(w: torch.Tensor) -> float:
    """Mean over neurons of the variance of its input weights that the best two-level fit (split
    at the largest gap of the sorted weights) explains."""
    scores = []
    for row in w:
        v = row.sort().values
        split = int(torch.diff(v).argmax()) + 1
        lo, hi = v[:split], v[split:]
        total = float(((v - v.mean()) ** 2).sum())
        within = float(((lo - lo.mean()) ** 2).sum() + ((hi - hi.mean()) ** 2).sum())
        scores.append(1 - within / total if total > 0 else 1.0)
    return sum(scores) / len(scores)


def classes(circuit: Circuit, w: torch.Tensor, u: torch.Tensor) -> dict[str, float]:
    """Per AND (a, b): neurons with both, one or none of a, b among their high inputs (above the
    midpoint of the neuron's weights), and the share of the output weights' variance explained
    by those three classes."""
    high = w > (w.amax(dim=1, keepdim=True) + w.amin(dim=1, keepdim=True)) / 2  # (d, m)
    ii, jj = _pairs(circuit)
    count = high[:, ii].int() + high[:, jj].int()  # (d, pairs): 2 = A, 1 = B, 0 = C
    counts = {k: float((count == n).float().sum(0).mean()) for k, n in (("class_a", 2), ("class_b", 1),
                                                                        ("class_c", 0))}
    u_t = u.T  # (d, pairs)
    fitted = torch.zeros_like(u_t)
    for n in (0, 1, 2):
        mask = (count == n).float()
        mean = (u_t * mask).sum(0) / mask.sum(0).clamp_min(1)
        fitted += mask * mean
    total = float(((u_t - u_t.mean(0)) ** 2).sum())
    counts["class_r2"] = 1 - float(((u_t - fitted) ** 2).sum()) / total if total > 0 else 1.0
    return counts


def density(readout: torch.Tensor) -> float:
    """Share of output weights above a tenth of the largest one."""
    return float((readout.abs() > 0.1 * readout.abs().max()).float().mean())


def body(p: Values, ctx: Context) -> Outcome:
    m = p.m
    circuit = all_pairs_and(m)
    phi = make_embedding("random", m, p.d0, ctx.generator("embedding")) if p.d0 else None
    seed = ctx.seed_for("eval")
    # the baseline every row must beat: no hidden neurons at all (with basis inputs it needs none)
    v, c_none = train_no_hidden(p, circuit, phi, ctx)
    wrong_none, error_none = no_hidden_reads(p, circuit, phi, v, c_none, seed)
    # the best linear read in closed form, where it has one (squared error, inputs on the basis)
    linear = linear_and_mse(m, p.active) if p.loss == "mse" and phi is None else None
    rows = []
    for d in tqdm(p.d, desc="neurons", disable=not ctx.progress, leave=False):
        w, b, u, c = train(p, d, circuit, phi, ctx)
        trained = ctx.place(as_compiled(circuit, phi, w, b, u, c, p.loss == "bce"))
        err = mse(circuit, trained.read_features, p.samples, m, p.active, seed, p.loss == "bce")
        # the tracer reads both networks as it reads every compiled network (decisions at 1/2)
        readers = {"t": trained.read_features}
        # a partial copy of a signed stream has no read-out short of refitting one: copying is
        # the linear read from 2 d0 neurons on, and absent below
        if phi is None or d >= copying_neurons(m, p.d0):
            readers["c"] = ctx.place(as_copying(circuit, phi, v, c_none, d, p.loss == "bce")).read_features
        noise = trace_noise(circuit, readers, ExactlyActive(m, p.active, seed), p.samples, progress=False)
        wrong = noise["t"][1].wrong_features
        wrong_copying = noise["c"][1].wrong_features if "c" in noise else None
        best = None  # the hand-built network with the fewest wrong ANDs over p_grid
        for prob in p.p_grid:
            hand = ctx.place(compile_uand(circuit, d, prob, p.d0, ctx.generator(f"uand:{d}:{prob}")))
            noise = trace_noise(circuit, {"h": hand.read_features}, ExactlyActive(m, p.active, seed), p.samples,
                                progress=False)["h"][1]
            if best is None or noise.wrong_features < best[1]:
                best = (prob, noise.wrong_features, hand)
        prob, wrong_h, hand = best
        err_h = mse(circuit, hand.read_features, p.samples, m, p.active, seed, False)
        shares = {name: FeatureGraph.build(net).intended_share_by_layer()[0] for name, net in
                  (("trained", trained), ("handbuilt", hand))}
        per_feature = w if phi is None else w @ phi.T  # what each neuron reads of each input feature
        rows.append({"d": d, "error_trained": err, "error_handbuilt": err_h, "wrong_features_trained": wrong,
                     "wrong_features_handbuilt": wrong_h, "p_handbuilt": prob, "density": density(u),
                     "density_handbuilt": density(hand.directions(1) if hand.readouts[1] is not None else u),
                     "binarity": binarity(per_feature), **classes(circuit, per_feature, u),
                     "intended_share_trained": shares["trained"], "intended_share_handbuilt": shares["handbuilt"],
                     "wrong_features_no_hidden": wrong_none, "error_no_hidden": error_none,
                     "wrong_features_copying": wrong_copying,
                     "predicted_error_dedicated": None if phi is not None else dedicated_and_mse(m, p.active, d)})
    exact = [r["d"] for r in rows if r["wrong_features_trained"] == 0]
    summary = {"pairs": circuit.widths[1], "dedicated_neurons": circuit.widths[1],
               "smallest_exact_d": min(exact) if exact else None, "wrong_features_no_hidden": wrong_none,
               "error_no_hidden": error_none, "predicted_error_no_hidden": linear,
               "copying_neurons": copying_neurons(m, p.d0)}
    return Outcome(rows, summary)


def wrong_by_d_figure(result: Result) -> Figure:
    rows, p = result.rows, result.p
    m, pairs = p.m, result.summary["pairs"]
    fig, ax = plots.figure(f"all {pairs} ANDs of m={m}, {p.active} active", "d (neurons)",
                           "ANDs wrong per input")
    ax.set_yscale("symlog", linthresh=1e-2)
    plots.line(ax, [r["d"] for r in rows], [r["wrong_features_trained"] for r in rows], "trained", plots.MEASURED)
    plots.line(ax, [r["d"] for r in rows], [r["wrong_features_handbuilt"] for r in rows], "hand-built U-AND",
               "tab:red", "--s")
    copied = [r for r in rows if r.get("wrong_features_copying") is not None]
    if copied:
        plots.line(ax, [r["d"] for r in copied], [r["wrong_features_copying"] for r in copied],
                   f"copying the input (linear read from d={result.summary['copying_neurons']})", "tab:gray", ":^")
    none = result.summary.get("wrong_features_no_hidden")
    if none is not None:  # a baseline that needs no neurons: a row that does not beat it computes nothing
        ax.axhline(none, color="black", lw=1, ls=":", label=f"no hidden neurons: {none:.3g}")
    plots.finish(ax)
    return fig


def error_by_d_figure(result: Result) -> Figure:
    """Squared error per AND against the neuron count, beside the no-hidden baseline and (inputs on
    the basis) the dedicated solution's closed form: where the trained line follows the dedicated
    one, its neurons compute one AND each."""
    rows, p = result.rows, result.p
    fig, ax = plots.figure(f"squared error per AND ({p.loss} training), m={p.m}, {p.active} active",
                           "d (neurons)", "MSE per AND")
    ax.set_yscale("symlog", linthresh=1e-7)  # an exact layer (float rounding) sits at 0
    ds = [r["d"] for r in rows]
    plots.line(ax, ds, [r["error_trained"] for r in rows], "trained", plots.MEASURED)
    plots.line(ax, ds, [r["error_handbuilt"] for r in rows], "hand-built U-AND", "tab:red", "--s")
    dedicated = [r for r in rows if r.get("predicted_error_dedicated") is not None]
    if dedicated:
        plots.line(ax, [r["d"] for r in dedicated], [r["predicted_error_dedicated"] for r in dedicated],
                   "dedicated: a neuron per AND, the rest at their mean (closed form)", plots.PREDICTED)
    none = result.summary.get("error_no_hidden")
    if none:
        ax.axhline(none, color="black", lw=1, ls=":", label=f"no hidden neurons: {none:.3g}")
    plots.finish(ax)
    return fig


def exports(p: Values, ctx: Context) -> dict:
    """At the first neuron count of ``d``: the trained layer (mechanism unknown) and the
    hand-built U-AND at the first probability of ``p_grid``."""
    circuit = all_pairs_and(p.m)
    d = p.d[0]

    def embedding() -> torch.Tensor | None:
        return make_embedding("random", p.m, p.d0, ctx.generator("embedding")) if p.d0 else None

    def trained() -> CompiledNetwork:
        phi = embedding()
        return as_compiled(circuit, phi, *train(p, d, circuit, phi, ctx), p.loss == "bce")

    return {"trained": trained,
            "handbuilt": lambda: compile_uand(circuit, d, p.p_grid[0], p.d0, ctx.generator(f"uand:{d}:{p.p_grid[0]}"))}


scenario = Scenario(
    name="trained-u-and",
    description="a layer trained on all pairwise ANDs against the hand-built Universal-AND: error, density, "
                "classes",
    params=PARAMS,
    body=body,
    figures={"wrong_by_d": wrong_by_d_figure, "error_by_d": error_by_d_figure},
    check=check,
    exports=exports,
    devices=("cpu",),
    cost="minutes",
)
