"""my-relay: a superposed relay's read-out noise against sqrt(l/n), beside the dedicated twin.

Run it with:  superposim run examples/my_relay.py --set n=64
(and superposim graph / train take it too, through `networks`)
"""

from circuits import theory
from circuits.compile import compile_dedicated, compile_superposed
from circuits.generators import relay
from circuits.sampling import ExactlyActive
from circuits.trace import trace_noise
from scenarios import Context, Outcome, Param, Scenario, Values, require

PARAMS = {
    "m": Param(512, "features per layer", low=2),
    "n": Param(128, "stream width", low=1),
    "active": Param(4, "active features per input", low=1),
    "layers": Param(2, "relay layers", low=1, high=8),
    "samples": Param(2000, "sampled inputs", low=1),
}


def check(p: Values) -> None:
    require(p.active <= p.m, f"active: at most m={p.m}, got {p.active}")


def networks(p: Values, ctx: Context) -> dict:
    """The relay compiled both ways: what `superposim graph` draws and `superposim train` copies."""
    circuit = relay(p.m, p.layers, ctx.generator("circuit"))
    # ctx.place puts each network on the run's device (--device)
    return {"superposed": ctx.place(compile_superposed(circuit, p.n, generator=ctx.generator("embedding"))),
            "dedicated": ctx.place(compile_dedicated(circuit))}


def body(p: Values, ctx: Context) -> Outcome:
    nets = networks(p, ctx)
    circuit = nets["dedicated"].circuit
    sampler = ExactlyActive(p.m, p.active, ctx.seed_for("inputs"), ctx.device)
    trace = trace_noise(circuit, {name: net.read_features for name, net in nets.items()}, sampler,
                        p.samples, progress=ctx.progress, device=ctx.device)
    rows = [{"layer": t,
             "interference_std": s.interference_std,
             "predicted_std": theory.interference_std(p.active, p.n) if t == 0 else None,
             "interference_std_dedicated": d.interference_std}
            for t, (s, d) in enumerate(zip(trace["superposed"], trace["dedicated"]))]
    return Outcome(rows, {"features": p.m, "stream_width": p.n})


scenario = Scenario(
    name="my-relay",
    description="a superposed relay against sqrt(l/n) and the dedicated twin",
    params=PARAMS,
    body=body,
    check=check,
    networks=networks,
    trainable=True,
)
