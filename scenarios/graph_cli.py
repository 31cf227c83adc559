"""``superposim graph``: build, prune, query, draw and export a feature graph."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.graph import FeatureGraph, top_paths_nx
from circuits.graph_io import GraphFileError, load_graph, save_graph
from scenarios.graph_draw import draw_png, write_html
from scenarios.params import UsageError
from scenarios.registry import networks


def _parse_input(text: str) -> list[int]:
    try:
        items = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--input: expected comma-separated feature indices, got {text!r}") from None
    if not items:
        raise UsageError("--input: give at least one feature index")
    return items


def graph_command(args: argparse.Namespace, sets: dict[str, str]) -> int:
    if args.prune < 0:
        raise UsageError(f"--prune: must be >= 0, got {args.prune:g}")
    if args.paths < 1:
        raise UsageError(f"--paths: must be >= 1, got {args.paths}")
    if (args.source is None) != (args.target is None):
        raise UsageError("--from and --to go together")
    if args.load:
        try:
            g = load_graph(args.load)
        except GraphFileError as err:
            raise UsageError(str(err)) from None
        fg, stem = None, Path(args.load).stem
    else:
        if not args.name:
            raise UsageError("graph: name a scenario (see 'superposim list') or give --load FILE")
        nets = networks(args.name, seed=args.seed, device=args.device, **sets)
        if args.network not in nets:
            raise UsageError(f"--network: {args.network!r} is not one of {', '.join(nets)}")
        active = _parse_input(args.input) if args.input else None
        try:
            fg = FeatureGraph.build(nets[args.network], active)
        except ValueError as err:
            raise UsageError(f"--input: {err}") from None
        g = fg.to_networkx(prune=args.prune, neurons=args.neurons)
        stem = args.name if not args.name.endswith(".py") else Path(args.name).stem
        shares = fg.intended_share_by_layer()
        print("intended share of incoming weight by layer: "
              + ", ".join("-" if s is None else f"{s:.3f}" for s in shares))
    print(f"{g.number_of_nodes()} nodes, {g.number_of_edges()} edges")
    if args.source is not None:
        _print_paths(g, fg, args.source, args.target, args.paths)
        if args.out is None and args.format is None:
            return 0
    fmt = args.format or (Path(args.out).suffix.lstrip(".").lower() if args.out else "png")
    if fmt not in ("png", "html", "graphml", "gexf", "json"):
        raise UsageError(f"--format: {fmt!r} is not one of png, html, graphml, gexf, json")
    out = Path(args.out) if args.out else Path("runs") / stem / f"graph.{fmt}"
    title = f"{stem}: {g.graph.get('network', '')} network" + (f", input {args.input}" if args.input else "")
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



