"""Exports with their true mechanism, and scores against it: oracles are the weights themselves
(components sum to them), a hand-computed circuit (which components an input needs), the
closed-form chance of a random method, and a fresh interpreter without superposim (the model
reproduces the network)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import gen

from circuits.compile import compile_superposed
from circuits.exportable import ExportView, view_of
from circuits.mechanism import check_sums, mechanism, weights_of
from circuits.scoring import chance_best_cosine, greedy_matching, random_components, svd_components
from circuits.spec import Circuit, Gate
from layers.factors import Factors
from scenarios.cli.main import main
from scenarios.engine.export import ExportFileError, export, load_export
from scenarios.engine.registry import export_builders
from scenarios.engine.score import save_components, save_dictionary, score, true_components, true_needed

# every scenario that exports, at a small size, and its networks
SMALL = {
    "circuit": {},
    "compounding-noise": {"m": 64, "n": 32, "layers": 3},
    "u-and": {"m": 40, "d": 60},
    "u-and-depth": {"k": 40, "d": 160, "layers": 3},
    "circuits-in-superposition": {"T": 12, "D": 400},
    "circuits-in-superposition/2024": {"T": 12, "D": 1000, "construction": "2024"},
    "rotations-in-superposition": {"T": 20, "D": 200, "L": 3},
    "block-superposition": {"D": 20, "L": 3},
    "break-even": {"m": 200},
    "emulation-capacity": {},
    "trained-vs-handbuilt": {},
    "trained-u-and": {"m": 8, "d": "4", "steps": 20},
}


def _builders(key: str):
    name = key.split("/")[0]
    return export_builders(name, seed=1, **{k: str(v) for k, v in SMALL[key].items()})[3]


@pytest.mark.parametrize("key", list(SMALL))
def test_true_components_sum_to_every_weight(key):
    """Dense check: the components of each matrix, applied to the identity, give the matrix
    (plus its shared terms); identities are the only matrices left out."""
    for net_name, build in _builders(key).items():
        net = build()
        view = net if isinstance(net, ExportView) else view_of(net, 2)
        mech = view.mechanism
        if mech is None:
            continue
        weights = weights_of(view.network, view.readout_weights)
        covered = {m.key for m in mech.matrices} | set(mech.wiring)
        assert covered == set(weights), (key, net_name, set(weights) ^ covered)
        for m in mech.matrices:
            eye = torch.eye(m.shape[1])
            got = sum(f.factors.apply(eye) for f in m.families) + sum(s.apply(eye) for s in m.shared)
            want = weights[m.key].dense().T
            assert torch.allclose(got, want, atol=1e-5 * float(want.abs().max())), (key, net_name, m.key)
        assert check_sums(mech, weights, gen(0)) < 1e-5


def test_components_are_low_rank_and_small_where_the_construction_is():
    """A 2025 circuit's piece of a layer is rank d on d S rows and columns; a gate's read of a
    superposed stream is rank <= its neurons; nothing is stored on the full D x D shape."""
    nets = _builders("circuits-in-superposition")
    net = nets["superposed"]()
    mech = mechanism(net)
    d, S = net.cis.small.d, net.cis.S
    later = mech.matrix("blocks.2.read").families[0].factors
    assert later.rank == d and later.rows.shape[1] == d * S and later.cols.shape[1] == d * S
    gates = mechanism(_builders("circuit")["superposed"]()).matrix("blocks.0.read").families[0].factors
    assert gates.rank <= 2 and gates.rows.shape[1] <= 2


def test_needed_components_on_a_hand_computed_circuit():
    """AND(0, 1), OR(1, 2), NOT(0) on x = (1, 0, 0): every gate is 0. The AND and the OR are 0
    with their inputs removed too, so only NOT's reads are needed; feature 0 is needed (zeroing
    it turns NOT on), features 1 and 2 are 0 and not needed; only non-zero values need writes."""
    circuit = Circuit(3, [[Gate("AND", (0, 1)), Gate("OR", (1, 2)), Gate("NOT", (0,))]])
    view = view_of(compile_superposed(circuit, 8, generator=gen(0)), 1)
    x = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    needed = view.needed(view.exact(x))
    assert needed["blocks.0.read/gates"].tolist() == [[False, False, True], [True, True, True]]
    assert needed["blocks.0.write/gates"].tolist() == [[False, False, False], [True, True, False]]
    # second input (1, 1, 0): zeroing 0 changes AND and NOT, zeroing 1 changes AND and OR
    assert needed["embed/features"].tolist() == [[True, False, False], [True, True, False]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "circuit"
    export("circuit", out, samples=120, seed=2)
    return out


def test_export_files_carry_schema_and_data_matches_the_network(exported):
    truth = json.loads((exported / "truth.json").read_text())
    config = json.loads((exported / "config.json").read_text())
    assert (truth["schema"], truth["version"], config["schema"], config["version"]) == (
        "superposim-truth", 1, "superposim-model", 1)
    assert truth["components"]["sum_check"] < 1e-5
    e = load_export(exported)
    chunk = e.data()[0]
    _, values, _, builders = export_builders("circuit", seed=2)
    net = builders["superposed"]()
    streams = net.network.streams(chunk["inputs"])
    for s, stream in enumerate(streams):
        assert torch.allclose(chunk[f"streams.{s}"], stream, atol=1e-6)
    assert sum(c["inputs"].shape[0] for c in e.data()) == 120


PORTABLE = {  # every stored weight form: sparse and dense (circuit), sparse plus low rank
    # (the capped 2025 weights), dense with read-out intercepts (a trained layer)
    "circuit": ("superposed", {}),
    "circuits-in-superposition": ("superposed", {"T": 150, "D": 4000}),
    "trained-u-and": ("trained", {"m": 8, "d": [4], "steps": 20}),
}


@pytest.mark.parametrize("name", list(PORTABLE))
def test_portable_model_reproduces_the_network_without_superposim(name, tmp_path):
    """model.py in a fresh interpreter with torch on the path and superposim not: its streams
    equal the exported data, and its read-outs superposim's, to float rounding."""
    network, params = PORTABLE[name]
    folder = tmp_path / "export"
    export(name, folder, network=network, samples=64, seed=1, **params)
    forms = {json.dumps(b["read"]["form"]) for b in json.loads((folder / "config.json").read_text())["blocks"]}
    _, _, _, builders = export_builders(name, seed=1, **params)
    net = builders[network]()
    x = load_export(folder).data()[0]["inputs"]
    from safetensors.torch import save_file

    save_file({f"read.{t}": f.detach().contiguous() for t, f in enumerate(net.read_features(x))},
              tmp_path / "reads.safetensors")  # the reference the fresh interpreter compares with
    site = str(Path(torch.__file__).parent.parent)
    code = (
        "import sys, importlib.util\n"
        "assert importlib.util.find_spec('layers') is None and importlib.util.find_spec('scenarios') is None\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "from model import load\n"
        "from safetensors.torch import load_file\n"
        f"m = load({str(folder)!r})\n"
        f"d = load_file({str(folder / 'data-00000.safetensors')!r})\n"
        "s = m.streams(d['inputs'])\n"
        "err = max(float((a - d[f'streams.{i}']).abs().max()) for i, a in enumerate(s))\n"
        f"ref = load_file({str(tmp_path / 'reads.safetensors')!r})\n"
        "want = [ref[f'read.{t}'] for t in range(len(ref))]\n"
        "got = m.features(d['inputs'])\n"
        "read = max(float((a - b).abs().max()) for a, b in zip(got, want))\n"
        "print(err, read, len(got))\n"
    )
    env = {"PYTHONPATH": site, "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    err, read, layers = done.stdout.split()
    assert float(err) < 1e-5 and float(read) < 1e-5 and int(layers) == len(net.readouts), (name, forms)
    if name == "circuits-in-superposition":
        assert '"low-rank-plus"' in forms


def test_true_decomposition_scores_one_and_random_scores_chance(exported, tmp_path):
    e = load_export(exported)
    truth = true_components(e)
    save_components(tmp_path / "true.safetensors", truth, active=true_needed(e))
    s = score(e, components=tmp_path / "true.safetensors").summary()
    assert s["components_recovered"] == 1 and s["components_mean_best_true"] > 1 - 1e-5
    assert s["active_precision"] == 1 and s["active_recall"] == 1
    g = gen(3)
    save_components(tmp_path / "random.safetensors", {k: random_components(f, f.count, g) for k, f in truth.items()})
    scores = score(e, components=tmp_path / "random.safetensors")
    for row in scores.rows():
        assert abs(row["mean_best_true"] - row["chance_mean_best"]) < 0.1 * row["chance_mean_best"], row
        assert row["recovered"] == 0
    directions = e.directions(0)
    save_dictionary(tmp_path / "dict.safetensors", {0: torch.randn(300, directions.shape[1], generator=g)})
    row = score(e, features=tmp_path / "dict.safetensors").rows()[0]
    assert abs(row["mean_best_true"] - row["chance_mean_best"]) < 0.1 * row["chance_mean_best"]


def test_svd_of_a_superposed_weight_misses_its_gates(exported):
    """The SVD's rank-one terms of a read that mixes every gate's superposed directions are not
    the gates' components; in the dedicated twin it finds the writes but not the reads."""
    e = load_export(exported)
    truth = true_components(e)["blocks.1.read"]
    _, _, _, builders = export_builders("circuit", seed=2)
    weight = builders["superposed"]().network.relu_blocks()[1].read.dense()
    found = svd_components(weight, truth.count)
    from circuits.scoring import score_matrix
    assert score_matrix("blocks.1.read", truth, found).recovered(0.9) < 0.2
    # without superposition: every write (disjoint, one per gate) is found, the reads are not
    dedicated = view_of(export_builders("circuit", seed=0)[3]["dedicated"](), 3)
    weights = weights_of(dedicated.network, dedicated.readout_weights)
    for m in dedicated.mechanism.matrices[:4]:
        true = m.families[0].factors
        s = score_matrix(m.key, true, svd_components(weights[m.key].dense(), true.count)).recovered(0.9)
        assert s == 1 if m.key.endswith("write") else s < 0.1, (m.key, s)


def test_chance_matches_sampling_and_matching_is_one_to_one():
    g = gen(5)
    u = torch.randn(50, generator=g)
    v = torch.randn(4000, 20, 50, generator=g)
    mc = float((v / v.norm(dim=-1, keepdim=True) @ (u / u.norm())).max(dim=1).values.mean())
    assert abs(chance_best_cosine(20, 50) - mc) < 0.01
    cos = torch.tensor([[0.9, 0.8], [0.95, 0.1]])
    assert greedy_matching(cos).tolist() == [1, 0]


@pytest.mark.parametrize("damage", ["foreign", "truncated", "newer", "missing"])
def test_loading_refuses_a_bad_file_in_one_line(exported, tmp_path, damage, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    if damage == "foreign":
        (bad / "truth.json").write_text(json.dumps({"schema": "something-else", "version": 1}))
    elif damage == "truncated":
        data = (bad / "truth.safetensors").read_bytes()
        (bad / "truth.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "newer":
        truth = json.loads((bad / "truth.json").read_text())
        (bad / "truth.json").write_text(json.dumps(truth | {"version": 99}))
    else:
        (bad / "config.json").unlink()
    with pytest.raises(ExportFileError):
        load_export(bad)
    save_dictionary(tmp_path / "d.safetensors", {0: torch.randn(4, 64)})
    assert main(["score", str(bad), "--features", str(tmp_path / "d.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("superposim: error:")


def test_export_never_overwrites_what_a_user_wrote(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    assert main(["export", "circuit", "--out", str(folder), "--samples", "5", "--quiet"]) == 2
    assert (folder / "notes.txt").read_text() == "keep" and len(list(folder.iterdir())) == 1
    out = tmp_path / "exp"
    assert main(["export", "circuit", "--out", str(out), "--samples", "5", "--quiet"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["export", "circuit", "--out", str(out), "--samples", "5", "--quiet", "--seed", "4"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "truth.json").read_text())["seed"] == 4
    capsys.readouterr()
    assert main(["export", "toy-models", "--out", str(tmp_path / "t")]) == 2
    assert "builds no network to export" in capsys.readouterr().err


def test_a_trained_network_exports_without_components(tmp_path):
    export("trained-vs-handbuilt", tmp_path / "t", network="trained", samples=10, steps=20, probe_samples=200)
    e = load_export(tmp_path / "t")
    assert e.truth["components"] is None and "trained" in e.truth["unknown"]
    with pytest.raises(Exception, match="trained"):
        e.families()


def test_components_file_with_a_repeated_row_is_refused(exported, tmp_path):
    e = load_export(exported)
    f = true_components(e)["embed"]
    rows = f.rows.clone()
    left = f.left.clone()
    rows = torch.cat([rows, rows[:, :1]], dim=1)
    left = torch.cat([left, left[:, :1]], dim=1)
    save_components(tmp_path / "c.safetensors", {"embed": Factors(rows, left, f.right, f.cols, f.shape)})
    from scenarios.engine.params import UsageError
    with pytest.raises(UsageError, match="twice"):
        score(e, components=tmp_path / "c.safetensors")


def _peak_of(command: list[str], tmp_path: Path) -> tuple[int, dict]:
    script = ("import resource, sys\nfrom scenarios.cli.main import main\nrc = main(sys.argv[1:])\n"
              "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc)\n")
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, timeout=900,
                          cwd=Path(__file__).parent.parent)
    peak, rc = done.stdout.split("PEAK")[1].split()
    assert rc == "0", done.stderr[-2000:]
    return int(peak) * 1024, json.loads((Path(command[command.index("--out") + 1]) / "truth.json").read_text())


@pytest.mark.slow
def test_large_exports_run_in_bounded_memory(tmp_path):
    """CiS at D = 8000 (T = 1000) and a corrected relay of m = 100,000 features: peak memory of
    the whole export stays within 2.5 GiB, and the truth file holds factors (d S x d per
    circuit), never a dense D x D matrix per circuit."""
    peak, truth = _peak_of(["export", "circuits-in-superposition", "--set", "D=8000", "--set", "T=1000",
                            "--samples", "50", "--quiet", "--out", str(tmp_path / "cis")], tmp_path)
    assert peak < 2.5 * 2**30
    assert (tmp_path / "cis" / "truth.safetensors").stat().st_size < 400 * 2**20  # 1000 D^2 floats: 256 GB
    peak, truth = _peak_of(["export", "break-even", "--set", "m=100000", "--set", "forms=step", "--set", "layers=4",
                            "--samples", "50", "--quiet", "--out", str(tmp_path / "relay")], tmp_path)
    assert peak < 2.5 * 2**30
    assert sum(f["count"] for m in truth["components"]["matrices"] for f in m["families"]) == 100_000 * 10


def test_an_saelens_sae_is_scored_or_the_install_is_named(exported, monkeypatch, tmp_path, capsys):
    """Without sae-lens: one line naming the install command. With a module that loads an SAE
    as SAELens does (``SAE.load_from_disk(path, device=...)`` with ``W_dec`` (latents, n)), its
    decoder is scored; the real sae-lens is checked too where it is installed."""
    import types

    monkeypatch.setitem(sys.modules, "sae_lens", None)  # import fails as if not installed
    assert main(["score", str(exported), "--sae", str(tmp_path), "--layer", "0"]) == 2
    assert "pip install 'superposim[saelens]'" in capsys.readouterr().err
    directions = load_export(exported).directions(0)

    class FakeSAE:
        @staticmethod
        def load_from_disk(path, device="cpu"):
            return types.SimpleNamespace(W_dec=directions.clone())

    monkeypatch.setitem(sys.modules, "sae_lens", types.SimpleNamespace(SAE=FakeSAE))
    row = score(exported, sae=tmp_path, sae_layer=0).rows()[0]
    assert row["recovered"] == 1 and row["mean_best_true"] > 1 - 1e-6


def test_a_real_saelens_sae_round_trip(exported, tmp_path):
    sae_lens = pytest.importorskip("sae_lens")  # the optional saelens extra
    directions = load_export(exported).directions(0)
    sae = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=directions.shape[1], d_sae=directions.shape[0]))
    with torch.no_grad():
        sae.W_dec.copy_(directions)
    sae.save_model(str(tmp_path / "sae"))
    assert score(exported, sae=tmp_path / "sae", sae_layer=0).rows()[0]["recovered"] == 1
