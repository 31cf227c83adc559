"""The ``superposim`` command: list, run, train, graph, sweep and export scenarios; score.

Only the standard library and the scenario catalogue load at start, so ``list`` and ``--help``
answer at once; torch comes in with the first command that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scenarios.engine.outputs import Written

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from layers.errors import SuperposimError
from scenarios.engine.catalog import BUILTIN, VERSION, catalog_entry, check_name
from scenarios.engine.experiment import Experiment, in_file, load_experiment
from scenarios.engine.params import UsageError, resolve, split_pairs

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(message)


def _split_sets(pairs: Sequence[str], flag: str = "--set") -> dict[str, str]:
    return split_pairs(pairs, flag)


def _scenario_command(sub: Any, command: str, text: str, name_help: str, set_help: str,
                      seed_help: str = "the run's seed (default 0)") -> argparse.ArgumentParser:
    """A command driven by a scenario: its own --help (which adds the scenario's parameters), the
    scenario, its parameters and the seed (None when not given, so that a command can tell a seed
    it ignores from the default)."""
    p = sub.add_parser(command, add_help=False, help=text)
    p.add_argument("-h", "--help", action="store_true", help="this help, and the scenario's parameters")
    p.add_argument("name", nargs="?", help=name_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--seed", type=int, default=None, help=seed_help)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="superposim", description="Computation in superposition, measured.")
    parser.add_argument("--version", action="version", version=f"superposim {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p_list = sub.add_parser("list", help="every scenario with a one-line description")
    p_list.add_argument("--verbose", "-v", action="store_true", help="also every parameter of every scenario")
    p_run = _scenario_command(sub, "run", "run a scenario: print its table, write result.json and figures",
                              "a scenario name (see 'superposim list') or a path to a script",
                              "set a parameter (lists are comma-separated: --set active=4,16)")
    p_run.add_argument("--out", default=None, help="output folder (default runs/NAME)")
    p_run.add_argument("--config", default=None, metavar="FILE.toml",
                       help="an experiment file: scenario, seed, [params] (flags override it)")
    p_run.add_argument("--device", default="cpu", help="cpu or cuda")
    p_run.add_argument("--draws", default=None,
                       help="torch (the default: seeded generators on the CPU) or counter (a counter-based "
                            "generator, drawn on the device; same values on every device and in any chunk order)")
    p_run.add_argument("--quiet", action="store_true", help="no progress bar")
    p_run.add_argument("--log", default=None, metavar="wandb",
                       help="also send the run to Weights & Biases (the wandb extra; WANDB_MODE=offline works)")

    p_train = _scenario_command(sub, "train", "train a network on a scenario's circuit; checkpoints, --resume",
                                "a scenario that builds a circuit (circuit, compounding-noise, trained-vs-handbuilt, "
                                "or a script with trainable=True)",
                                "scenario parameters and training ones (hidden, steps, batch, lr, loss, ...)")
    p_train.add_argument("--out", default=None, help="folder for checkpoint.* and model.* (required)")
    p_train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    p_train.add_argument("--quiet", action="store_true", help="no progress bar")

    p_graph = _scenario_command(sub, "graph", "the feature graph of a scenario's network: draw, export, query paths",
                                "a scenario that builds networks, or a script (or use --load)",
                                "set a parameter of the scenario")
    p_graph.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p_graph.add_argument("--network", default=None, help="superposed or dedicated (default superposed)")
    p_graph.add_argument("--input", default=None, metavar="I,J,...",
                         help="active input features: gate edges by this input's activations (attribution)")
    p_graph.add_argument("--prune", type=float, default=None,
                         help="0 keeps all; <1: |weight| threshold; k>=1: k strongest crosstalk edges per node "
                              "(default 3)")
    p_graph.add_argument("--neurons", action="store_true", help="add neuron nodes")
    p_graph.add_argument("--format", default=None,
                         help="png, html, graphml, gexf, json or circuit-tracer; default: the --out file's "
                              "ending, else png; circuit-tracer writes the graph JSON of "
                              "circuit-tracer / Neuronpedia (a .json file)")
    p_graph.add_argument("--out", default=None, help="output file (default runs/NAME-graph.FORMAT)")
    p_graph.add_argument("--from", dest="source", default=None, metavar="FEATURE", help="L<t>:<i> or a label")
    p_graph.add_argument("--to", dest="target", default=None, metavar="FEATURE")
    p_graph.add_argument("--paths", type=int, default=None, help="how many top paths to print (default 5)")
    p_graph.add_argument("--load", default=None, metavar="FILE", help="re-draw a saved graph (json/graphml/gexf)")
    p_sweep = _scenario_command(sub, "sweep", "run a scenario over a grid of parameters and seeds into a resumable "
                                "store", "a scenario name or a script path", "fix a parameter for every cell",
                                seed_help="not taken: a sweep runs every cell for each of --seeds")
    p_sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                         help="a swept parameter (the grid is the product; a list parameter's items join with +)")
    p_sweep.add_argument("--seeds", default=None, help="seeds for every cell: a range 0-9 or a list 0,3,7 (default 0)")
    p_sweep.add_argument("--store", default=None, help="the SQLite store (resumable; required)")
    p_sweep.add_argument("--backend", default=None, help="local (a process pool, the default) or ray")
    p_sweep.add_argument("--jobs", type=int, default=None,
                         help="parallel cells (default: the number of cores; a joined Ray cluster decides itself)")
    p_sweep.add_argument("--address", default=None, help="a running Ray cluster to join (default: start one)")
    p_sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    p_sweep.add_argument("--log", default=None, metavar="wandb",
                         help="also send the finished sweep's rows to Weights & Biases (the wandb extra)")
    p_sweep.add_argument("--config", default=None, metavar="FILE.toml",
                         help="an experiment file: scenario, seeds, store, backend, jobs, [params], [grid] "
                              "(flags override it)")
    p_report = sub.add_parser("report", help="a sweep store as a table, line plots or a phase diagram")
    p_report.add_argument("store", help="the store a sweep wrote")
    p_report.add_argument("--x", default=None, help="grid key (or row key, e.g. layer) along x")
    p_report.add_argument("--y", default=None, help="a second grid key: draws a phase diagram")
    p_report.add_argument("--metric", default=None, help="a row or summary value (default: one with a prediction)")
    p_report.add_argument("--predicted", default=None, help="the prediction to draw (default: predicted_METRIC)")
    p_report.add_argument("--level", type=float, default=None, help="contour level of a phase diagram (default 1)")
    p_report.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", help="keep matching rows")
    p_report.add_argument("--out", default=None, help="folder for the figure (default: beside the store)")
    p_report.add_argument("--csv", default=None, help="export every result row as CSV")
    p_report.add_argument("--parquet", default=None, help="export every result row as Parquet")
    p_redraw = sub.add_parser("redraw", help="draw a stored run's figures again from its result.json, nothing "
                              "recomputed")
    p_redraw.add_argument("run_dir", metavar="RUN_DIR", help="a folder a run wrote (holding result.json)")
    p_redraw.add_argument("--scenario", default=None, metavar="PATH.py",
                          help="the script of a run of a script (a built-in is found by the name the result holds)")
    p_export = _scenario_command(sub, "export", "write a network with its true mechanism and sampled data, for "
                                 "testing interpretability methods", "a scenario that builds networks",
                                 "set a parameter of the scenario")
    p_export.add_argument("--out", default=None, help="the export folder (required)")
    p_export.add_argument("--network", default=None, help="which of the scenario's networks (default superposed)")
    p_export.add_argument("--samples", type=int, default=1000, help="sampled inputs written with every exact "
                          "value (default 1000)")
    p_export.add_argument("--active", type=int, default=None,
                          help="active inputs (or small circuits) per sample (default: the scenario's own)")
    p_export.add_argument("--quiet", action="store_true", help="no progress bar")
    p_score = sub.add_parser("score", help="score a dictionary or a decomposition against an export's truth")
    p_score.add_argument("export_dir", metavar="DIR", help="a folder superposim export wrote")
    p_score.add_argument("--features", default=None, metavar="FILE",
                         help="a dictionary (layers.T tensors, latents x width) to score against the true directions")
    p_score.add_argument("--sae", default=None, metavar="FOLDER", help="an SAE saved by SAELens (the saelens extra)")
    p_score.add_argument("--layer", type=int, default=None, help="the layer the --sae SAE reads")
    p_score.add_argument("--components", default=None, metavar="FILE",
                         help="a decomposition (KEY.rows/left/right/cols factors per matrix, KEY.active)")
    p_score.add_argument("--threshold", type=float, default=0.9, help="cosine counted as recovered (default 0.9)")
    p_score.add_argument("--out", default=None, help="folder for score.json and score.png (default: none)")
    parser.commands = {"export": p_export, "score": p_score, "list": p_list, "run": p_run, "train": p_train,
                       "graph": p_graph, "sweep": p_sweep,
                       "report": p_report, "redraw": p_redraw}
    p_graph.add_argument("--all", action="store_true",
                         help="draw every node even when there are more than can be read")
    return parser


def parameter_table(name: str, train: bool = False) -> str:
    """Every parameter of a scenario: name, type and bounds, default, help (and, for ``train``,
    the training parameters the scenario does not set itself). A built-in's table is read from
    the catalogue, without importing torch; a script is imported."""
    from scenarios.engine.catalog import TRAIN_KEY

    check_name(name)
    if name in BUILTIN:
        entry = catalog_entry(name)
        title, description, rows = name, entry["description"], entry["parameters"]
    else:
        from scenarios.engine.catalog import show_default
        from scenarios.engine.registry import load

        scenario = load(name)
        title, description = scenario.name, scenario.description
        rows = [[key, p.describe(), show_default(p.default), p.help] for key, p in scenario.params.items()]
    if train:
        rows = rows + [r for r in catalog_entry(TRAIN_KEY)["parameters"] if r[0] not in {own[0] for own in rows}]
    widths = [max(len(r[i]) for r in rows + [["parameter", "type", "default", ""]]) for i in range(3)]
    lines = [f"{title}: {description}", "",
             "  ".join(h.ljust(w) for h, w in zip(("parameter", "type", "default"), widths)) + "  help"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    return "\n".join(lines)


def _help(parser: argparse.ArgumentParser, command: str, name: str | None) -> int:
    print(parser.commands[command].format_help())
    if name:
        print(parameter_table(name, train=command == "train"))
    else:
        print("name a scenario to see its parameters: superposim " + command + " NAME --help")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command == "list":
            width = max(len(name) for name in BUILTIN)
            for name in BUILTIN:
                print(f"{name.ljust(width)}  {catalog_entry(name)['description']}")
                if args.verbose:
                    print("\n".join("    " + line for line in parameter_table(name).splitlines()[2:]) + "\n")
            return 0
        if getattr(args, "name", None):  # a mistyped name is answered before torch loads
            check_name(args.name)
        if getattr(args, "help", False):
            return _help(parser, args.command, args.name)
        if args.command == "train":
            from scenarios.cli.train import train_command

            if not args.name or args.out is None:
                raise UsageError("train: give a scenario and --out FOLDER (see superposim train --help)")
            return train_command(args, _split_sets(args.set))
        if args.command == "graph":
            from scenarios.cli.graph import graph_command

            return graph_command(args, _split_sets(args.set))
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "report":
            return _report(args)
        if args.command == "redraw":
            return _redraw(args)
        if args.command == "export":
            return _export(args)
        if args.command == "score":
            return _score(args)
        return _run(args)
    except SuperposimError as err:  # bad input, a foreign file, a setting that cannot be built
        print(f"superposim: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("superposim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # the machine refused (a full disk, a vanished folder): what and where, in one line
        print(f"superposim: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_USAGE


def _os_error(err: OSError) -> str:
    """An OSError as one line naming the file (a temporary file by the place it was written for)."""
    reason = err.strerror or str(err)
    name = err.filename
    if name is None:
        return reason
    path = Path(name)
    if path.name.startswith(".") and ".tmp" in path.name:  # the atomic writer's temporary file
        return f"{reason} (while writing into {str(path.parent)!r}); nothing was half-written"
    return f"{reason}: {str(path)!r}"


def _sweep(args: argparse.Namespace) -> int:
    from scenarios.engine.sweeps import describe_store, grid_from_cli, sweep
    from scenarios.engine.tracking import check_logger, log_sweep

    if args.seed is not None:
        raise UsageError(f"sweep: --seed is not taken; a sweep runs each cell for every seed of --seeds "
                         f"(for this one seed: --seeds {args.seed})")
    exp = load_experiment(args.config, "sweep") if args.config else None
    name = args.name or (exp.scenario if exp else None)
    store = args.store or (exp.store if exp else None)
    if not name or not store:
        raise UsageError("sweep: give a scenario, --grid KEY=V1,V2,... and --store FILE, or --config FILE "
                         "(see superposim sweep --help)")
    if not str(store).strip():
        raise UsageError("--store: expected a file name, got an empty path")
    backend = args.backend or (exp.backend if exp else None) or "local"
    jobs = args.jobs if args.jobs is not None else (exp.jobs if exp else None)
    seeds = args.seeds or (exp.seeds if exp else None) or "0"
    if args.address is not None and backend != "ray":
        raise UsageError(f"--address joins a Ray cluster; it needs --backend ray (the backend is {backend!r})")
    if args.address is not None and jobs is not None:
        raise UsageError("--jobs sets the workers of a Ray cluster started here; a joined one (--address) "
                         "has its own: drop --jobs")
    grid, fixed = grid_from_cli(args.grid), _split_sets(args.set)
    if exp is not None:
        from scenarios.engine.registry import load
        from scenarios.engine.sweeps import parse_grid

        spec = load(name).params
        _check_in_file(exp, "params", lambda: resolve(spec, exp.params))
        _check_in_file(exp, "grid", lambda: parse_grid(spec, exp.grid) if exp.grid else None)
        grid = exp.grid | grid
        fixed = {k: v for k, v in exp.params.items() if k not in grid} | fixed
    check_logger(args.log)
    start = time.perf_counter()
    sweep(name, grid, seeds, store, backend=backend, jobs=jobs, address=args.address, progress=not args.quiet,
          **fixed)
    print(f"{describe_store(store)} ({time.perf_counter() - start:.1f} s)")
    print(f"store: {store}; see it with: superposim report {store}")
    if args.log:
        print(f"logged to {args.log}: {log_sweep(store, name, {'grid': grid, 'seeds': seeds, 'fixed': fixed})}")
    return 0


def _check_in_file(exp: Experiment, section: str, check: Callable[[], object]) -> None:
    """Run a check of what the file gives, its error naming the file and the section."""
    try:
        check()
    except UsageError as err:
        raise in_file(exp, section, err) from None


def _report(args: argparse.Namespace) -> int:
    import math

    from layers.files import write_atomic
    from scenarios.engine import report
    from scenarios.engine.outputs import check_distinct, check_out_file

    where = _split_sets(args.where, "--where")
    if args.out is not None and not str(args.out).strip():
        raise UsageError("--out: expected a folder, got an empty path")
    if args.level is not None and not math.isfinite(args.level):
        raise UsageError(f"--level: expected a finite number, got {args.level}")
    if args.level is not None and args.y is None:
        raise UsageError("--level is the contour of a phase diagram; give --y as well")
    inputs = {"sweep store": args.store, "store's journal": f"{args.store}-wal", "store's index": f"{args.store}-shm"}
    check_distinct({"--csv": args.csv, "--parquet": args.parquet}, inputs)
    plot = not (args.csv or args.parquet) or any(
        v is not None for v in (args.x, args.y, args.metric, args.predicted, args.out, args.level)) or where
    if plot:
        rep = report.build(args.store, args.x, args.y, args.metric, args.predicted, where)
        name = f"{rep['metric']}_by_{rep['x']}" + (f"_and_{rep['y']}" if rep["y"] else "")
        out = Path(args.out) if args.out else Path(args.store).with_suffix("")
        png = check_out_file(out / f"{name}.png", "--out")
        check_distinct({"the figure": png, "--csv": args.csv, "--parquet": args.parquet}, inputs)
    exported = report.export(args.store, args.csv, args.parquet)  # checks every file before writing any
    if plot:
        print(report.text(rep))
        level = (1.0 if args.level is None else args.level) if rep["y"] else None
        fig = report.figure(rep, level)
        write_atomic(png, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
        note = report.contour_note(rep, level)
        if note:
            print(f"note: {note}")
        print(f"wrote {png}")
    for path in exported:
        print(f"wrote {path}")
    return 0


def _redraw(args: argparse.Namespace) -> int:
    from scenarios.engine.outputs import check_out_dir
    from scenarios.engine.registry import redraw

    out = check_out_dir(args.run_dir)
    result = redraw(out, args.scenario)
    print(f"redrew the figures of {result.scenario} (seed {result.seed}) from {out / 'result.json'}")
    _report_written(result.save_run(out), out, redrawn=True)
    return 0


def _report_written(written: Written, out: Path, redrawn: bool = False) -> None:
    if written.replaced and not redrawn:
        print(f"replaced the earlier run in {out}")
    if written.kept:
        print(f"kept what no run wrote there: {', '.join(written.kept)}")
    for path in written.paths:
        print(f"wrote {path}")


def _export(args: argparse.Namespace) -> int:
    from scenarios.engine.export import export

    if not args.name or args.out is None:
        raise UsageError("export: give a scenario and --out FOLDER (see superposim export --help)")
    start = time.perf_counter()
    done = export(args.name, args.out, network=args.network, samples=args.samples, active=args.active,
                  seed=args.seed or 0, progress=not args.quiet, **_split_sets(args.set))
    parts = "the mechanism is not known (trained)" if done.components is None else (
        f"{done.components} true components (sum to the weights within {done.sum_check:.1e})")
    print(f"exported {done.network} of {args.name} into {args.out} ({time.perf_counter() - start:.1f} s): "
          f"model.safetensors, config.json, model.py; truth.json, truth.safetensors ({parts}); "
          f"{done.samples} samples in {done.chunks} data chunk(s)")
    return 0


def _score(args: argparse.Namespace) -> int:
    from scenarios.engine.outputs import check_out_dir
    from scenarios.engine.score import score

    if args.out is not None:
        check_out_dir(args.out)
    scores = score(args.export_dir, features=args.features, sae=args.sae, sae_layer=args.layer,
                   components=args.components, threshold=args.threshold)
    print(scores.result().table())
    if args.out is not None:
        written = scores.save(args.out)
        print("wrote " + ", ".join(str(p) for p in written.paths))
    return 0


def _run(args: argparse.Namespace) -> int:
    from scenarios.engine.outputs import check_out_dir, default_folder
    from scenarios.engine.registry import load, run
    from scenarios.engine.tracking import check_logger, log_run

    exp = load_experiment(args.config, "run") if args.config else None
    name = args.name or (exp.scenario if exp else None)
    if not name:
        raise UsageError("run: name a scenario (see 'superposim list') or a script path, or give --config FILE")
    check_name(name)
    params = _split_sets(args.set)
    if exp is not None:
        spec = load(name).params
        _check_in_file(exp, "params", lambda: resolve(spec, exp.params))
        params = exp.params | params  # the command line overrides the file
    seed = args.seed if args.seed is not None else (exp.seed if exp and exp.seed is not None else 0)
    draws = args.draws or (exp.draws if exp and exp.draws else "torch")
    if args.out is not None:
        out = check_out_dir(args.out)
    else:
        out = check_out_dir(default_folder(load(name).name))
    check_logger(args.log)
    start = time.perf_counter()
    result = run(name, seed=seed, device=args.device, progress=not args.quiet, draws=draws, **params)
    shown = "" if draws == "torch" else f"  draws={draws}"
    print(f"# {result.scenario}  seed={result.seed}{shown}  ({time.perf_counter() - start:.1f} s)")
    print(result.table())
    written = result.save_run(out)
    if result.nonfinite:
        print(f"note: {len(result.nonfinite)} values are not finite (overflow or undefined); result.json holds "
              "them as null and lists each under 'nonfinite'")
    _report_written(written, out)
    if args.log:
        print(f"logged to {args.log}: {log_run(result, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
