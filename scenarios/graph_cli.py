"""``superposim graph``: build, prune, query, draw and export a feature graph."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from circuits.graph import FeatureGraph, top_paths_nx
from circuits.graph_io import GraphFileError, load_graph, save_graph
from scenarios.graph_draw import draw_png, strongest_paths, write_html
from scenarios.memory import FLOAT, require_memory
from scenarios.outputs import check_out_file, default_folder
from scenarios.params import UsageError
from scenarios.registry import networks

FORMATS = ("png", "html", "graphml", "gexf", "json")
# Beyond this many nodes a drawing is a hairball: PNG and HTML show the strongest paths instead.
READABLE_NODES = 400
DRAWN_NODES = 150


def _parse_input(text: str) -> list[int]:
    try:
        items = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--input: expected comma-separated feature indices, got {text!r}") from None
    if not items:
        raise UsageError("--input: give at least one feature index")
    return items


def _format_and_out(args: argparse.Namespace, stem: str) -> tuple[str, Path]:
    """The format and file to write, agreeing with each other; checked before any work."""
    suffix = Path(args.out).suffix.lstrip(".").lower() if args.out else ""
    if args.out is not None and not str(args.out).strip():
        raise UsageError("--out: expected a file name, got an empty path")
    if args.format and suffix and suffix != args.format:
        raise UsageError(f"--out {args.out!r} ends in .{suffix} but --format is {args.format}; "
                         f"make them agree (or drop one)")
    fmt = args.format or suffix or "png"
    if fmt not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(args.out) if args.out else default_folder(stem) / f"graph.{fmt}"
    check_out_file(out, "--out")
    return fmt, out


def graph_command(args: argparse.Namespace, sets: dict[str, str]) -> int:
    if not math.isfinite(args.prune) or args.prune < 0:
        raise UsageError(f"--prune: must be a finite number >= 0, got {args.prune:g}")
    if args.paths < 1:
        raise UsageError(f"--paths: must be >= 1, got {args.paths}")
    if (args.source is None) != (args.target is None):
        raise UsageError("--from and --to go together")
    stem = Path(args.load).stem if args.load else (Path(args.name).stem if args.name else "graph")
    writes = args.source is None or args.out is not None or args.format is not None
    fmt, out = _format_and_out(args, stem) if writes else (None, None)
    if args.load:
        try:
            g = load_graph(args.load)
        except GraphFileError as err:
            raise UsageError(str(err)) from None
        fg = None
    else:
        if not args.name:
            raise UsageError("graph: name a scenario (see 'superposim list') or give --load FILE")
        nets = networks(args.name, seed=args.seed, device=args.device, **sets)
        if args.network not in nets:
            raise UsageError(f"--network: {args.network!r} is not one of {', '.join(nets)}")
        widths = nets[args.network].circuit.widths
        need = FLOAT * 4 * sum(a * b for a, b in zip(widths, widths[1:]))
        require_memory(need, f"a feature graph of {max(widths)} features per layer "
                             f"(one dense {widths[1]} x {widths[0]} tensor per layer)")
        active = _parse_input(args.input) if args.input else None
        try:
            fg = FeatureGraph.build(nets[args.network], active)
        except ValueError as err:
            raise UsageError(f"--input: {err}") from None
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
    if fmt in ("png", "html") and g.number_of_nodes() > READABLE_NODES and not args.all:
        g = strongest_paths(g, DRAWN_NODES)
        print(f"too many nodes to read in a drawing: drawing the strongest paths into the strongest outputs "
              f"({g.number_of_nodes()} nodes, {g.number_of_edges()} edges); --all draws everything, "
              "--prune, --from/--to or a graph file (graphml, gexf, json) keep it whole")
        title += " (strongest paths)"
    if fmt == "png":
        draw_png(g, out, title)
    elif fmt == "html":
        write_html(g, out, title)
    else:
        save_graph(g, out, fmt)
    print(f"wrote {out}")
    return 0


def _print_paths(g, fg: FeatureGraph | None, source: str, target: str, k: int) -> None:
    try:
        if fg is not None:
            src, dst = fg.resolve(source), fg.resolve(target)
            paths = fg.top_paths(src, dst, k)
        else:
            labels = {d.get("label"): n for n, d in g.nodes(data=True)}
            src_id = source if source in g else labels.get(source, source)
            dst_id = target if target in g else labels.get(target, target)
            paths = top_paths_nx(g, src_id, dst_id, k)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not paths:
        print(f"no path from {source} to {target}")
        return
    print(f"{'rank':>4}  {'product':>11}  {'intended':>8}  path")
    for rank, p in enumerate(paths, 1):
        print(f"{rank:>4}  {p['product']:>11.4g}  {str(p['intended']):>8}  {' -> '.join(p['labels'])}")



