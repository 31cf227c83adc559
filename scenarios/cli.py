"""The ``superposim`` command: list and run scenarios."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from scenarios.params import UsageError
from scenarios.registry import VERSION, describe, run

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(message)


def _split_sets(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def _scenario_arguments(p: argparse.ArgumentParser, name_help: str, set_help: str, optional: bool = False) -> None:
    """The arguments every scenario-driven command takes: the scenario, its parameters, the seed."""
    p.add_argument("name", nargs="?" if optional else None, help=name_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="superposim", description="Computation in superposition, measured.")
    parser.add_argument("--version", action="version", version=f"superposim {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="every scenario with a one-line description")
    p_run = sub.add_parser("run", help="run a scenario: print its table, write result.json and figures")
    _scenario_arguments(p_run, "a scenario name (see 'superposim list') or a path to a script",
                        "set a parameter (lists are comma-separated: --set active=4,16)")
    p_run.add_argument("--out", default=None, help="output folder (default runs/NAME)")
    p_run.add_argument("--device", default="cpu", help="cpu or cuda")
    p_run.add_argument("--quiet", action="store_true", help="no progress bar")

    p_train = sub.add_parser("train", help="train a network on a scenario's circuit; checkpoints, --resume")
    _scenario_arguments(p_train, "a scenario that builds a circuit (circuit, compounding-noise, or a script)",
                        "scenario parameters and training ones (hidden, steps, batch, lr, loss, ...)")
    p_train.add_argument("--out", required=True, help="folder for checkpoint.* and model.*")
    p_train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    p_train.add_argument("--quiet", action="store_true", help="no progress bar")

    p_graph = sub.add_parser("graph", help="the feature graph of a scenario's network: draw, export, query paths")
    _scenario_arguments(p_graph, "a scenario that builds networks, or a script (or use --load)",
                        "set a parameter of the scenario", optional=True)
    p_graph.add_argument("--device", default="cpu")
    p_graph.add_argument("--network", default="superposed", help="superposed or dedicated")
    p_graph.add_argument("--input", default=None, metavar="I,J,...",
                         help="active input features: gate edges by this input's activations (attribution)")
    p_graph.add_argument("--prune", type=float, default=3.0,
                         help="0 keeps all; <1: |weight| threshold; k>=1: k strongest crosstalk edges per node")
    p_graph.add_argument("--neurons", action="store_true", help="add neuron nodes")
    p_graph.add_argument("--format", choices=("png", "html", "graphml", "gexf", "json"), default=None)
    p_graph.add_argument("--out", default=None, help="output file (default runs/NAME/graph.FORMAT)")
    p_graph.add_argument("--from", dest="source", default=None, metavar="FEATURE", help="L<t>:<i> or a label")
    p_graph.add_argument("--to", dest="target", default=None, metavar="FEATURE")
    p_graph.add_argument("--paths", type=int, default=5, help="how many top paths to print")
    p_graph.add_argument("--load", default=None, metavar="FILE", help="re-draw a saved graph (json/graphml/gexf)")
    p_graph.add_argument("--all", action="store_true",
                         help="draw every node even when there are more than can be read")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "list":
            rows = describe()
            width = max(len(name) for name, _ in rows)
            for name, text in rows:
                print(f"{name.ljust(width)}  {text}")
            return 0
        if args.command == "train":
            from scenarios.train_cli import train_command

            return train_command(args, _split_sets(args.set))
        if args.command == "graph":
            from scenarios.graph_cli import graph_command

            return graph_command(args, _split_sets(args.set))
        return _run(args)
    except UsageError as err:
        print(f"superposim: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("superposim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    result = run(args.name, seed=args.seed, device=args.device,
                 progress=not args.quiet, **_split_sets(args.set))
    print(f"# {result.scenario}  seed={result.seed}  ({time.perf_counter() - start:.1f} s)")
    print(result.table())
    out = args.out or f"runs/{result.scenario}"
    for path in result.save(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
