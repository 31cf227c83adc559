"""``superposim graph``: build, prune, query, draw and export a feature graph."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import networkx as nx

from circuits.graph import FeatureGraph, top_paths_nx
from circuits.graph_circuit_tracer import write_circuit_tracer
from circuits.graph_io import load_graph, save_graph
from scenarios.engine.memory import FLOAT, require_memory
from scenarios.engine.outputs import check_distinct, check_out_file, default_folder
from scenarios.engine.params import UsageError, resolve
from scenarios.engine.registry import load, networks
from scenarios.plots.graph_draw import draw_png, strongest_paths, write_html

FORMATS = ("png", "html", "graphml", "gexf", "json", "circuit-tracer")
# the file name ending each format takes (circuit-tracer's graph JSON is JSON)
SUFFIX = {"circuit-tracer": "json"}
# Beyond this many nodes a PNG is a hairball, and beyond the second the WebGL page stops panning
# smoothly: they show the strongest paths instead (of about DRAWN_NODES nodes).
READABLE_NODES = {"png": 400, "html": 20_000}
DRAWN_NODES = {"png": 150, "html": 5_000}


def _parse_input(text: str) -> list[int]:
    try:
        items = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--input: expected comma-separated feature indices, got {text!r}") from None
    if not items:
        raise UsageError("--input: give at least one feature index")
    twice = [i for k, i in enumerate(items) if i in items[:k]]
    if twice:
        raise UsageError(f"--input: feature {twice[0]} is given twice")
    return items


def _format_and_out(args: argparse.Namespace, stem: str) -> tuple[str, Path]:
    """The format and file to write, agreeing with each other; checked before any work."""
    suffix = Path(args.out).suffix.lstrip(".").lower() if args.out else ""
    if args.out is not None and not str(args.out).strip():
        raise UsageError("--out: expected a file name, got an empty path")
    if args.format and suffix and suffix != SUFFIX.get(args.format, args.format):
        raise UsageError(f"--out {args.out!r} ends in .{suffix} but --format is {args.format}; "
                         f"make them agree (or drop one)")
    fmt = args.format or suffix or "png"
    if fmt not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    # beside the run folders, never inside one: runs/NAME-graph.FORMAT
    ending = "circuit-tracer.json" if fmt == "circuit-tracer" else fmt
    out = Path(args.out) if args.out else default_folder(stem).with_name(f"{default_folder(stem).name}-graph.{ending}")
    check_out_file(out, "--out")
    return fmt, out


# What the graph command does when an option is not given.
DEFAULTS = {"prune": 3.0, "paths": 5, "device": "cpu", "seed": 0}
# Beyond this many a list of top paths is no longer read, and the search only costs memory.
MAX_PATHS = 10_000


def _refuse_unused(args: argparse.Namespace, sets: dict[str, str]) -> None:
    """An option that would have no effect is refused, naming why, rather than ignored."""
    if args.load:
        built = {"--set": bool(sets), "--seed": args.seed is not None, "--network": args.network is not None,
                 "--input": args.input is not None, "--prune": args.prune is not None, "--neurons": args.neurons,
                 "--device": args.device is not None, "a scenario name": bool(args.name)}
        given = [flag for flag, on in built.items() if on]
        if given:
            raise UsageError(f"{given[0]} has no effect with --load, which redraws a saved graph as it is")
    if args.paths is not None and args.source is None:
        raise UsageError("--paths counts the top paths of --from/--to; give those too")
    if args.source is not None and args.out is None and args.format is None:  # paths only: nothing is drawn
        shaping = [flag for flag, on in (("--all", args.all), ("--neurons", args.neurons),
                                         ("--prune", args.prune is not None)) if on]
        if shaping:
            raise UsageError(f"{shaping[0]} shapes the graph that is drawn or saved; the top paths are searched in "
                             "the whole graph: give --out or --format as well, or drop it")


def graph_command(args: argparse.Namespace, sets: dict[str, str]) -> int:
    _refuse_unused(args, sets)
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not math.isfinite(args.prune) or args.prune < 0:
        raise UsageError(f"--prune: must be a finite number >= 0, got {args.prune:g}")
    if not 1 <= args.paths <= MAX_PATHS:
        raise UsageError(f"--paths: must be between 1 and {MAX_PATHS:,}, got {args.paths}")
    if (args.source is None) != (args.target is None):
        raise UsageError("--from and --to go together")
    stem = Path(args.load).stem if args.load else (Path(args.name).stem if args.name else "graph")
    writes = args.source is None or args.out is not None or args.format is not None
    fmt, out = _format_and_out(args, stem) if writes else (None, None)
    if args.all and fmt not in ("png", "html"):
        raise UsageError(f"--all draws every node of a png or html picture; a {fmt} file always holds them all")
    if args.load:
        if out is not None:
            check_distinct({"--out": out}, {"--load file": args.load})
        g = load_graph(args.load)
        fg = None
    else:
        if not args.name:
            raise UsageError("graph: name a scenario (see 'superposim list') or give --load FILE")
        active = _parse_input(args.input) if args.input is not None else None
        nets = networks(args.name, seed=args.seed, device=args.device, **sets)
        if args.network is None:  # superposed, or the first network that is not the dedicated twin
            args.network = "superposed" if "superposed" in nets else next(k for k in nets if k != "dedicated")
        if args.network not in nets:
            raise UsageError(f"--network: {args.network!r} is not one of {', '.join(nets)}")
        widths = nets[args.network].circuit.widths
        need = FLOAT * 4 * sum(a * b for a, b in zip(widths, widths[1:]))
        require_memory(need, f"a feature graph of {max(widths)} features per layer "
                             f"(one dense {widths[1]} x {widths[0]} tensor per layer)")
        if args.source is not None:
            require_memory(_paths_bytes(widths, args.paths), f"--paths {args.paths}: the search for the top paths "
                                                             f"through layers of up to {max(widths)} features")
        fg = FeatureGraph.build(nets[args.network], active)
        g = fg.to_networkx(prune=args.prune, neurons=args.neurons)
        shares = fg.intended_share_by_layer()
        print("intended share of incoming weight by layer: "
              + ", ".join("-" if s is None else f"{s:.3f}" for s in shares))
    print(f"{g.number_of_nodes()} nodes, {g.number_of_edges()} edges")
    if args.source is not None:
        _print_paths(g, fg, args.source, args.target, args.paths)
        if not writes:
            return 0
    title = f"{stem}: {g.graph.get('network', '')} network" + (f", input {args.input}" if args.input else "")
    if fmt in READABLE_NODES and g.number_of_nodes() > READABLE_NODES[fmt] and not args.all:
        g = strongest_paths(g, DRAWN_NODES[fmt])
        print(f"too many nodes to read in a drawing: drawing the strongest paths into the strongest outputs "
              f"({g.number_of_nodes()} nodes, {g.number_of_edges()} edges); --all draws everything, "
              "--prune, --from/--to or a graph file (graphml, gexf, json) keep it whole")
        title += " (strongest paths)"
    elif fmt == "png" and g.number_of_nodes() > READABLE_NODES["png"]:
        print(f"note: a picture of {g.number_of_nodes()} nodes cannot be read; the HTML page (--format html) "
              "highlights a feature's paths on a click, and a graph file (graphml, gexf) opens in a graph viewer")
    if fmt == "png":
        draw_png(g, out, title)
    elif fmt == "html":
        write_html(g, out, title)
    elif fmt == "circuit-tracer":
        run = {} if args.load else {"scenario": args.name, "seed": args.seed,
                                    "params": resolve(load(args.name).params, sets).to_dict()}
        write_circuit_tracer(g, out, slug=stem, run=run)
    else:
        save_graph(g, out, fmt)
    print(f"wrote {out}")
    return 0


def _paths_bytes(widths: list[int], k: int) -> int:
    """The top-paths search holds, per layer, k candidate scores for every pair of features
    (float64) and its top-k (values and indices): about 3 x 8 bytes x k x the largest pair count."""
    return 24 * k * max(a * b for a, b in zip(widths, widths[1:]))


def _print_paths(g: nx.DiGraph, fg: FeatureGraph | None, source: str, target: str, k: int) -> None:
    if fg is not None:
        src, dst = fg.resolve(source), fg.resolve(target)
        paths = fg.top_paths(src, dst, k)
    else:
        labels = {d.get("label"): n for n, d in g.nodes(data=True)}
        src_id = source if source in g else labels.get(source, source)
        dst_id = target if target in g else labels.get(target, target)
        paths = top_paths_nx(g, src_id, dst_id, k)
    if not paths:
        print(f"no path from {source} to {target}")
        return
    print(f"{'rank':>4}  {'product':>11}  {'intended':>8}  path")
    for rank, p in enumerate(paths, 1):
        print(f"{rank:>4}  {p['product']:>11.4g}  {str(p['intended']):>8}  {' -> '.join(p['labels'])}")



