"""The counter-based generator and the draws made with it: the published Philox test vectors, values
that do not depend on the order or the chunks they are made in, the laws of each derived draw,
and counter draws through a scenario and the command line."""

import itertools
import json
import math

import pytest
import torch

import layers.philox as philox_module
import scenarios
from circuits.compile import compile_superposed
from circuits.gates import GATES, fan_in_of
from circuits.generators import relay
from circuits.sampling import Bernoulli, ExactlyActive
from layers.embeddings import Directions
from layers.philox import MASK32, CounterStream, philox
from scenarios.cli.main import main


def words(*values: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor([v], dtype=torch.int64) for v in values)


# Philox4x32-10 known-answer vectors of the Random123 distribution (counter, key, output)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32, MASK32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_matches_the_published_vectors(counter, key, expected):
    assert tuple(int(w) for w in philox(words(*counter), key)) == expected


def test_bits_are_the_block_counters_words():
    stream = CounterStream(5, "a purpose")
    rows = torch.tensor([0, 7, 2**40 + 3])
    got = stream.bits(rows, 10, stream=9)
    for i, row in enumerate(rows.tolist()):
        for block in range(3):
            block_words = philox(words(block, row & MASK32, row >> 32, 9), stream.key)
            for w in range(4):
                if 4 * block + w < 10:
                    assert int(got[i, 4 * block + w]) == int(block_words[w])


def test_values_do_not_depend_on_order_chunks_or_width(monkeypatch):
    stream = CounterStream(1, "order")
    rows = torch.arange(3000)
    whole = stream.bits(rows, 37)
    shuffled = torch.randperm(3000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(stream.bits(rows[shuffled], 37), whole[shuffled])
    assert torch.equal(stream.bits(rows, 13), whole[:, :13])  # a narrower draw is a prefix
    monkeypatch.setattr(philox_module, "_CPU_CHUNK", 97)  # chunks that split rows
    assert torch.equal(stream.bits(rows, 37), whole)
    assert torch.equal(stream.normal(rows[:50], 37), CounterStream(1, "order").normal(rows[:50], 37))


def test_keys_and_streams_are_apart():
    rows = torch.arange(64)
    a = CounterStream(0, "inputs").bits(rows, 8)
    assert not torch.equal(a, CounterStream(1, "inputs").bits(rows, 8))
    assert not torch.equal(a, CounterStream(0, "directions").bits(rows, 8))
    assert not torch.equal(a, CounterStream(0, "inputs").bits(rows, 8, stream=1))


def test_uniform_and_normal_are_their_formulas_of_the_words():
    stream = CounterStream(2, "formulas")
    rows = torch.tensor([3, 11])
    w = stream.bits(rows, 6).tolist()
    u = stream.uniform(rows, 6)
    z = stream.normal(rows, 5)
    for i in range(2):
        for c in range(6):
            assert float(u[i, c]) == (w[i][c] >> 8) / 2**24
        for c in range(5):
            pair = w[i][2 * (c // 2)], w[i][2 * (c // 2) + 1]
            radius = math.sqrt(-2 * math.log((pair[0] + 1) / 2**32))
            angle = 2 * math.pi * pair[1] / 2**32
            want = radius * (math.cos(angle) if c % 2 == 0 else math.sin(angle))
            assert float(z[i, c]) == pytest.approx(want, rel=1e-6, abs=1e-6)


def chi_square(counts: torch.Tensor) -> float:
    expected = counts.sum() / counts.numel()
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_limit(cells: int) -> float:
    """Far in the tail (about 6 standard deviations) of the chi-square law with cells - 1 degrees."""
    df = cells - 1
    return df + 6 * math.sqrt(2 * df)


def test_normal_moments():
    z = CounterStream(3, "moments").normal(torch.arange(2000), 501).reshape(-1).double()
    n = z.numel()
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert float(z.var()) == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert float((z**4).mean()) == pytest.approx(3.0, abs=5 * math.sqrt(96 / n))
    assert float((z.abs() < 1).double().mean()) == pytest.approx(math.erf(1 / math.sqrt(2)), abs=5 * 0.5 / math.sqrt(n))


def test_below_is_uniform():
    values = CounterStream(4, "below").below(torch.arange(20000), 7, 7).reshape(-1)
    assert int(values.min()) == 0 and int(values.max()) == 6
    assert chi_square(torch.bincount(values, minlength=7).double()) < chi_square_limit(7)


@pytest.mark.parametrize("m,size", [(10, 3), (6, 3), (5, 5), (7, 0)])
def test_subsets_are_uniform_over_every_subset(m, size):
    """(10, 3) by Floyd's algorithm, (6, 3) and (5, 5) by keys: every size-subset as often."""
    picks = CounterStream(5, "subsets").subsets(torch.arange(60000), m, size)
    assert picks.shape == (60000, size)
    if size == 0:
        return
    assert bool((picks[:, 1:] > picks[:, :-1]).all())  # sorted, hence distinct
    index = {s: k for k, s in enumerate(itertools.combinations(range(m), size))}
    codes = torch.tensor([index[tuple(r)] for r in picks.tolist()])
    counts = torch.bincount(codes, minlength=len(index)).double()
    assert bool((counts > 0).all())
    assert chi_square(counts) <= chi_square_limit(len(index))


def test_permutations_are_uniform():
    perms = CounterStream(6, "perms").permutations(torch.arange(48000), 4)
    index = {p: k for k, p in enumerate(itertools.permutations(range(4)))}
    counts = torch.bincount(torch.tensor([index[tuple(p)] for p in perms.tolist()]), minlength=24).double()
    assert chi_square(counts) < chi_square_limit(24)


@pytest.mark.parametrize("kind", ["random", "sign", "identity"])
def test_counter_directions_any_rows_any_order(kind):
    n = 40 if kind != "identity" else 300
    d = Directions(kind, 300, n, seed=17, draws="counter")
    dense = d.dense()
    index = torch.tensor([299, 5, 5, 0, 123])
    assert torch.allclose(d.rows(index), dense[index], rtol=0, atol=1e-7)
    assert torch.equal(torch.cat([rows for _, rows in d.chunks(77)]), dense)
    assert torch.allclose(dense.norm(dim=1), torch.ones(300), atol=1e-6)
    if kind == "sign":
        assert torch.equal(dense.abs(), torch.full_like(dense, 1 / math.sqrt(n)))
    if kind == "identity":
        assert torch.equal(dense, torch.eye(n)[:300])
    else:  # a Directions' rows are its seed range's rows: an offset range shifts them
        assert torch.allclose(Directions(kind, 200, n, seed=117, draws="counter").dense(), dense[100:])
        assert not torch.allclose(Directions(kind, 300, n, seed=17).dense(), dense)  # not the torch draws


def test_counter_inputs_do_not_depend_on_the_batch_sizes():
    a = ExactlyActive(500, 6, seed=3, draws="counter")
    b = ExactlyActive(500, 6, seed=3, draws="counter")
    whole = a.sample_active(250)
    assert torch.equal(torch.cat([b.sample_active(100), b.sample_active(1), b.sample_active(149)]), whole)
    assert bool((whole[:, 1:] > whole[:, :-1]).all())
    pairs = ExactlyActive(500, 6, seed=3, draws="counter").draw(250).pairs()
    assert torch.equal(pairs[1].reshape(250, 6), whole)
    big = ExactlyActive(40, 30, seed=3, draws="counter")  # the keyed path (30^2 > 40)
    assert torch.equal(torch.cat([big.sample_active(3), big.sample_active(4)]),
                       ExactlyActive(40, 30, seed=3, draws="counter").sample_active(7))
    c, e = Bernoulli(300, 0.1, 4, draws="counter"), Bernoulli(300, 0.1, 4, draws="counter")
    x = c.sample(400)
    assert torch.equal(torch.cat([e.sample(150), e.sample(250)]), x)
    assert float(x.mean()) == pytest.approx(0.1, abs=5 * math.sqrt(0.09 / x.numel()))


def test_streamed_counter_network_gives_the_stored_numbers():
    from circuits.streamed import StreamedSuperposed
    from circuits.trace import trace_noise

    circuit = relay(230, 3, torch.Generator().manual_seed(0))
    stored = compile_superposed(circuit, 48, "random", "none", torch.Generator().manual_seed(1), "counter")
    streamed = StreamedSuperposed(circuit, 48, "random", "none", torch.Generator().manual_seed(1), chunk=61,
                                  draws="counter")
    want = trace_noise(circuit, {"s": stored.read_features}, ExactlyActive(230, 4, 5, draws="counter"), 700,
                       batch_size=256, progress=False)
    got = trace_noise(circuit, {"s": streamed}, ExactlyActive(230, 4, 5, draws="counter"), 700,
                      batch_size=100, progress=False)
    for a, b in zip(want["s"], got["s"]):
        assert b.mse == pytest.approx(a.mse, rel=1e-5)
        assert b.signal_mean == pytest.approx(a.signal_mean, rel=1e-5)


def test_a_run_with_counter_draws_repeats_and_follows_theory(tmp_path):
    small = dict(m=512, n=128, active=2, layers=3, samples=6000)
    r = scenarios.run("compounding-noise", draws="counter", **small)
    assert r.to_dict()["draws"] == "counter"
    assert r.rows == scenarios.run("compounding-noise", draws="counter", **small).rows
    assert r.rows != scenarios.run("compounding-noise", **small).rows
    for row in r.rows:  # the closed forms hold under either generator
        if row["cleanup"] == "none":
            assert row["mse_superposed"] == pytest.approx(row["predicted_mse"], rel=0.10)
        else:
            assert row["mse_superposed"] == pytest.approx(row["predicted_mse_mean_field"], rel=0.08)
    assert "draws" not in scenarios.run("compounding-noise", **small).to_dict()


def test_the_command_line_takes_draws_and_the_experiment_file_repeats_them(tmp_path, capsys):
    sets = ["--set", "m=256", "--set", "n=64", "--set", "samples=300", "--set", "active=1,4",
            "--set", "capacity_n=32"]
    assert main(["run", "sparsity", "--draws", "counter", "--quiet", "--out", str(tmp_path / "a"), *sets]) == 0
    first = json.loads((tmp_path / "a" / "result.json").read_text())
    assert first["draws"] == "counter"
    assert 'draws = "counter"' in (tmp_path / "a" / "experiment.toml").read_text()
    assert main(["run", "--config", str(tmp_path / "a" / "experiment.toml"), "--quiet", "--out",
                 str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "result.json").read_text())["rows"] == first["rows"]
    capsys.readouterr()
    assert main(["run", "sparsity", "--draws", "dice", "--out", str(tmp_path / "c")]) == 2
    assert "draws: 'dice' is not a kind of draws; valid: torch, counter" in capsys.readouterr().err
    assert main(["run", "u-and", "--draws", "counter", "--out", str(tmp_path / "d")]) == 2
    assert "u-and makes its random draws with torch only" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_counter_wirings_are_valid_and_each_gate_its_own_row():
    from circuits.generators import random_circuit

    gates = ("AND", "OR", "ANDNOT", "BUF")
    wide = random_circuit(50, 2, 400, 3, gates, torch.Generator().manual_seed(2), "counter")
    narrow = random_circuit(50, 1, 100, 3, gates, torch.Generator().manual_seed(2), "counter")
    first, narrow_first = wide.layers[0], narrow.layers[0]
    assert torch.equal(first.kinds[:100], narrow_first.kinds) and torch.equal(first.inputs[:100], narrow_first.inputs)
    for t, layer in enumerate(wide.layers):
        prev = 50 if t == 0 else 400
        for code, inputs in zip(layer.kinds.tolist(), layer.inputs.tolist()):
            used = [i for i in inputs if i >= 0]
            assert len(used) == fan_in_of(GATES[code], 3)
            assert len(set(used)) == len(used) and all(0 <= i < prev for i in used)
    kinds = torch.bincount(torch.cat([layer.kinds for layer in wide.layers]))
    assert int((kinds > 0).sum()) == 4  # every kind drawn
    andnot = [row for layer in wide.layers for code, row in zip(layer.kinds.tolist(), layer.inputs.tolist())
              if code == GATES.index("ANDNOT")]
    ascending = sum(a < b for a, b, *_ in andnot)
    assert 0.3 < ascending / len(andnot) < 0.7  # ANDNOT reads its pair in either order
    r = relay(300, 3, torch.Generator().manual_seed(4), "counter")
    assert r.layers[1].inputs[:, 0].sort().values.tolist() == list(range(300))
    assert torch.equal(relay(300, 3, torch.Generator().manual_seed(4), "counter").layers[2].inputs, r.layers[2].inputs)


def test_counter_draws_are_the_pinned_values():
    """The key derivation and counter layout fixed: a change here moves every counter-drawn number."""
    assert CounterStream(0, "directions").bits(torch.tensor([0, 2**33 + 5]), 6).tolist() == [
        [1993556465, 1118490064, 82336014, 3845775736, 3573643829, 1677118944],
        [3714219611, 2638080358, 3821374339, 910850239, 2796172808, 105655010]]
    signs = Directions("sign", 3, 8, seed=100, draws="counter").dense() * math.sqrt(8)
    assert signs.round().int().tolist() == [[-1, 1, -1, 1, -1, -1, -1, -1], [1, 1, -1, 1, 1, -1, 1, 1],
                                            [1, -1, -1, 1, -1, -1, -1, -1]]
    assert ExactlyActive(1000, 4, 7, draws="counter").sample_active(3).tolist() == [
        [155, 431, 787, 801], [1, 436, 472, 980], [177, 213, 342, 630]]
    assert ExactlyActive(10, 6, 7, draws="counter").sample_active(2).tolist() == [[1, 2, 4, 5, 6, 7],
                                                                                  [1, 4, 5, 6, 8, 9]]
