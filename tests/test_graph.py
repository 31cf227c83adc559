"""The feature graph against hand-computed weights, overlaps, an independent path search, files."""

import json
import math
import os
import shutil

import pytest
import torch
from conftest import gen

from circuits.compile import compile_dedicated, compile_superposed, compile_with_embeddings
from circuits.generators import random_circuit, relay
from circuits.graph import FeatureGraph, top_paths_nx
from circuits.graph_io import GraphFileError, load_graph, save_graph
from circuits.spec import Circuit, Gate
from scenarios.cli import main

# 4 features per layer, 2 layers, every gate kind
CIRCUIT = Circuit(4, [
    [Gate("AND", (0, 1)), Gate("OR", (2, 3)), Gate("BUF", (0,)), Gate("NOT", (3,))],
    [Gate("OR", (0, 1)), Gate("AND", (2, 3)), Gate("BUF", (1,)), Gate("NOT", (0,))],
])
# By hand, linearised at each gate's decision boundary: AND and OR pass 1 per input (OR's second
# neuron is off at s = 1/2), BUF passes 1, NOT passes -1; the clean-up's ramp has slope 2.
HAND = [
    torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, -1]]),
    torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1], [0, 1, 0, 0], [-1, 0, 0, 0]]),
]


def _edges(g):
    return {(u, v): (round(d["weight"], 6), d["kind"]) for u, v, d in g.edges(data=True)}


def test_dedicated_graph_equals_the_hand_computed_one():
    fg = FeatureGraph.build(compile_dedicated(CIRCUIT))
    for block, hand in zip(fg.blocks, HAND):
        assert torch.equal(block.weight, hand)
    g = fg.to_networkx(prune=0)
    expected = {}
    for t, hand in enumerate(HAND):
        for j, i in hand.nonzero().tolist():
            expected[(f"L{t}:{i}", f"L{t + 1}:{j}")] = (float(hand[j, i]), "intended")
    assert _edges(g) == expected  # and so no crosstalk edge at all
    clean = FeatureGraph.build(compile_with_embeddings(CIRCUIT, [None] * 3, "threshold", "d"))
    for block, hand in zip(clean.blocks, HAND):
        assert torch.equal(block.weight, 2 * hand)


def test_superposed_weights_are_the_overlaps_around_the_dedicated_ones():
    # hand-picked directions in R^3: E_t = Gram_{t+1} @ E_dedicated @ Gram_t exactly
    s = 1 / math.sqrt(2)
    phi = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [s, s, 0]])
    net = compile_with_embeddings(CIRCUIT, [phi, phi, phi], "none", "superposed")
    fg = FeatureGraph.build(net)
    gram = phi @ phi.T
    for block, hand in zip(fg.blocks, HAND):
        assert torch.allclose(block.weight, gram @ hand @ gram, atol=1e-6)
    g = fg.to_networkx(prune=0)
    # e.g. x3 -> AND1.0: x3 overlaps x0 and x1 by s each, AND1.0 reads both, so 2s,
    # plus AND1.0 overlaps NOT1.3 by s, which reads x3 with weight -1: total 2s - s = s
    assert g.edges["L0:3", "L1:0"]["weight"] == pytest.approx(s)
    assert g.edges["L0:3", "L1:0"]["kind"] == "crosstalk"


def test_crosstalk_of_random_embeddings_follows_their_overlaps():
    m, n = 200, 100
    c = relay(m, 1, gen(0))
    fg = FeatureGraph.build(compile_superposed(c, n, "random", "none", gen(1)))
    b = fg.blocks[0]
    cross = b.weight[~b.intended]
    # E = Gram_1 P Gram_0: two single-overlap terms (~1/n each) and m - 2 products of two
    predicted = math.sqrt(2 / n + (m - 2) / n**2)
    assert cross.pow(2).mean().sqrt().item() == pytest.approx(predicted, rel=0.1)
    assert b.weight[b.intended].mean().item() == pytest.approx(1.0, abs=0.1)
    assert fg.intended_share_by_layer()[0] < 0.1
    assert FeatureGraph.build(compile_dedicated(c)).intended_share_by_layer() == [1.0]


def test_attribution_for_one_input():
    fg = FeatureGraph.build(compile_dedicated(CIRCUIT), active=[0, 1])
    b = fg.blocks[0]
    # x0 = x1 = 1: AND1.0 fires, OR1.1 does not (its neurons are off), BUF1.2 passes x0
    assert b.attribution[0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert b.attribution[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert b.attribution[2].tolist() == [1.0, 0.0, 0.0, 0.0]
    g = fg.to_networkx(prune=0)
    assert g.nodes["L1:0"]["value"] == 1.0 and g.nodes["L2:3"]["value"] == 0.0
    with pytest.raises(ValueError, match="out of range"):
        FeatureGraph.build(compile_dedicated(CIRCUIT), active=[7])


def test_top_paths_agree_with_an_independent_search():
    c = random_circuit(8, 3, 6, 2, ("AND", "OR", "NOT"), gen(3))
    fg = FeatureGraph.build(compile_superposed(c, 6, "random", "threshold", gen(4)))
    g = fg.to_networkx(prune=0)
    ours = fg.top_paths((0, 2), (3, 4), k=6)
    theirs = top_paths_nx(g, "L0:2", "L3:4", k=6)
    assert [p["path"] for p in ours] == [p["path"] for p in theirs]
    for a, b in zip(ours, theirs):
        assert a["product"] == pytest.approx(b["product"], rel=1e-5)
    dedicated = FeatureGraph.build(compile_dedicated(CIRCUIT))
    assert dedicated.top_paths((0, 3), (2, 0), k=3) == [
        {"path": ["L0:3", "L1:1", "L2:0"], "labels": ["x3", "OR1.1", "OR2.0"], "product": 1.0, "intended": True}]
    # AND2.1 reads BUF1.2 (of x0) and NOT1.3 (of x3)
    assert dedicated.intended_paths((2, 1)) == [["L0:0", "L1:2", "L2:1"], ["L0:3", "L1:3", "L2:1"]]
    assert len(dedicated.intended_paths((2, 0))) == 4


def test_pruning_keeps_intended_and_folds_the_rest_into_interference():
    m = 1000
    c = relay(m, 2, gen(0))
    fg = FeatureGraph.build(compile_superposed(c, 256, "random", "none", gen(1)))
    g = fg.to_networkx(prune=3)
    kinds = [d["kind"] for *_, d in g.edges(data=True)]
    assert kinds.count("intended") == 2 * m and kinds.count("crosstalk") == 2 * 3 * m
    assert kinds.count("interference") == 2 * m
    b = fg.blocks[0]
    # the interference edge into feature 0 of layer 1 carries the rms mass of what was pruned
    row = b.weight[0].clone()
    row[b.intended[0]] = 0
    kept = row.abs().topk(3).values
    assert g.edges["L1:interference", "L1:0"]["weight"] == pytest.approx(
        math.sqrt(row.pow(2).sum().item() - kept.pow(2).sum().item()), rel=1e-4)
    # a threshold keeps exactly the crosstalk at or above it
    g2 = fg.to_networkx(prune=0.3)
    n_cross = sum(1 for *_, d in g2.edges(data=True) if d["kind"] == "crosstalk")
    assert n_cross == sum(int(((blk.weight.abs() >= 0.3) & ~blk.intended).sum()) for blk in fg.blocks)


@pytest.mark.parametrize("fmt", ["json", "graphml", "gexf"])
def test_files_round_trip(tmp_path, fmt):
    g = FeatureGraph.build(compile_superposed(CIRCUIT, 3, "random", "none", gen(0))).to_networkx(prune=2)
    path = save_graph(g, tmp_path / f"g.{fmt}", fmt)
    back = load_graph(path)
    assert set(back.nodes) == set(g.nodes)
    assert {(u, v): round(d["weight"], 5) for u, v, d in back.edges(data=True)} == {
        (u, v): round(d["weight"], 5) for u, v, d in g.edges(data=True)}
    assert back.nodes["L1:0"]["layer"] == 1 and back.nodes["L1:0"]["gate"] == "AND"


def test_corrupt_and_foreign_files_are_refused(tmp_path, capsys):
    cases = {
        "truncated.json": '{"superposim_graph": 1, "graph": {"nodes": [',
        "foreign.json": json.dumps({"nodes": [], "links": []}),
        "noise.graphml": "\x00\x01 not xml at all",
        "other.graphml": '<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
                         '<graph edgedefault="directed"><node id="a"/></graph></graphml>',
        "plain.txt": "hello",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(GraphFileError):
            load_graph(tmp_path / name)
        assert main(["graph", "--load", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("superposim: error:")


def test_graph_command_writes_every_format_and_prints_paths(tmp_path, capsys):
    base = ["graph", "circuit", "--set", "m=8", "--set", "width=5", "--set", "n=6", "--set", "layers=2"]
    for fmt in ("png", "html", "graphml", "gexf", "json"):
        assert main(base + ["--out", str(tmp_path / f"g.{fmt}")]) == 0
        assert (tmp_path / f"g.{fmt}").stat().st_size > 500
    assert main(base + ["--network", "dedicated", "--from", "x0", "--to", "L2:0"]) == 0
    out = capsys.readouterr().out
    assert "intended share of incoming weight by layer: 1.000, 1.000" in out
    assert main(base + ["--input", "0,99"]) == 2
    assert main(["graph", "sparsity"]) == 2
    assert main(base + ["--from", "x0"]) == 2


def _chromium():
    return shutil.which("chromium") and shutil.which("chromedriver")


def _browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,800", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def _click_node(driver, node_id):
    """Click where sigma draws a node (its WebGL canvas has no element per node)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    x, y = driver.execute_script(
        "const r = window.superposimGraph.renderer; const p = r.framedGraphToViewport("
        "r.getNodeDisplayData(arguments[0])); return [p.x, p.y];", node_id)
    box = driver.find_element(By.ID, "graph")
    size = box.size
    ActionChains(driver).move_to_element_with_offset(box, int(x - size["width"] / 2),
                                                     int(y - size["height"] / 2)).click().perform()


def _status(driver):
    return driver.find_element("id", "status").text


def _offline_page(html):
    """No script, style or image is fetched: every library is inline."""
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert "sourceMappingURL" not in html


@pytest.mark.skipif(not _chromium() and not os.environ.get("CI"), reason="chromium not installed (CI installs it)")
def test_html_page_renders_and_a_click_highlights_paths(tmp_path):
    from selenium.webdriver.common.by import By

    assert main(["graph", "circuit", "--set", "m=8", "--set", "width=6", "--set", "n=6", "--set", "layers=3",
                 "--out", str(tmp_path / "g.html")]) == 0
    html = (tmp_path / "g.html").read_text()
    _offline_page(html)
    assert "Permission is hereby granted" in html  # the vendored libraries' licences travel with them
    driver = _browser()
    try:
        driver.get((tmp_path / "g.html").as_uri())
        order = driver.execute_script("const g = window.superposimGraph.graph; return [g.order, g.size];")
        g = load_graph_from_cli(tmp_path)
        assert order == [g.number_of_nodes(), g.number_of_edges()]
        _click_node(driver, "L1:0")
        label = g.nodes["L1:0"]["label"]
        assert _status(driver).startswith(f"{label}: ") and "edges on its paths" in _status(driver)
        lit = driver.execute_script("return [...window.superposimGraph.graph.edges()].filter(e => "
                                    "!window.superposimGraph.renderer.getEdgeDisplayData(e).hidden).length")
        # every drawn edge is on a path through AND1.0: into it from layer 0, or out of it onwards
        assert 0 < lit < order[1]
        assert "in" in driver.find_element(By.ID, "panel").text
        # unticking crosstalk hides crosstalk edges from the highlighted paths
        driver.find_element(By.CSS_SELECTOR, "input.kind[value=crosstalk]").click()
        fewer = driver.execute_script("return [...window.superposimGraph.graph.edges()].filter(e => "
                                      "!window.superposimGraph.renderer.getEdgeDisplayData(e).hidden).length")
        assert fewer < lit
        # the |weight| slider hides the weaker edges
        driver.execute_script("window.superposimGraph.clear(); const s = document.getElementById('minw');"
                              "s.value = 500; s.dispatchEvent(new Event('input'));")
        strong = driver.execute_script(
            "const g = window.superposimGraph.graph, r = window.superposimGraph.renderer;"
            "return [[...g.edges()].filter(e => !r.getEdgeDisplayData(e).hidden).length,"
            " Math.min(...[...g.edges()].filter(e => !r.getEdgeDisplayData(e).hidden)"
            "  .map(e => Math.abs(g.getEdgeAttribute(e, 'weight'))))];")
        top = max(abs(d["weight"]) for *_, d in g.edges(data=True))
        kept = [d for *_, d in g.edges(data=True) if d["kind"] != "crosstalk" and abs(d["weight"]) >= top * 0.25]
        assert strong[0] == len(kept) and strong[1] >= top * 0.25 - 1e-9
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 5000
    finally:
        driver.quit()


def load_graph_from_cli(tmp_path):
    assert main(["graph", "circuit", "--set", "m=8", "--set", "width=6", "--set", "n=6", "--set", "layers=3",
                 "--out", str(tmp_path / "g.json")]) == 0
    return load_graph(tmp_path / "g.json")


@pytest.mark.skipif(not _chromium() and not os.environ.get("CI"), reason="chromium not installed (CI installs it)")
def test_a_page_of_ten_thousand_nodes_renders_in_seconds_and_answers_search_and_click(tmp_path):
    import random
    import time

    import networkx as nx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from scenarios.plots.graph_draw import write_html

    rng, layers, per = random.Random(0), 5, 2000
    g = nx.DiGraph(network="synthetic", input="")
    for t in range(layers):
        for i in range(per):
            g.add_node(f"L{t}:{i}", layer=t, index=i, kind="feature", gate="INPUT" if t == 0 else "AND",
                       label=f"f{t}.{i}")
    for t in range(1, layers):
        for i in range(per):
            g.add_edge(f"L{t - 1}:{i}", f"L{t}:{i}", weight=1.0, kind="intended")  # one chain per index
            while g.in_degree(f"L{t}:{i}") < 7:
                g.add_edge(f"L{t - 1}:{rng.randrange(per)}", f"L{t}:{i}", weight=rng.gauss(0, 0.1), kind="crosstalk")
    assert g.number_of_nodes() == 10_000 and g.number_of_edges() >= 50_000
    write_html(g, tmp_path / "big.html", "ten thousand")
    _offline_page((tmp_path / "big.html").read_text())
    driver = _browser()
    try:
        start = time.perf_counter()
        driver.get((tmp_path / "big.html").as_uri())  # returns once the page's scripts have run
        loaded = time.perf_counter() - start
        assert _status(driver) == f"10000 nodes, {g.number_of_edges()} edges"
        assert loaded < 20, f"the page took {loaded:.1f} s to load and draw"
        _click_node(driver, "L2:1000")  # before the search moves the camera
        assert _status(driver).startswith("f2.1000: ")
        driver.execute_script("window.superposimGraph.clear()")
        find = driver.find_element(By.ID, "find")
        find.send_keys("f3.17")
        assert _status(driver) == "111 features match"  # f3.17, f3.170-179, f3.1700-1799
        find.send_keys(Keys.ENTER)
        assert _status(driver).startswith("f3.17: ")
        # only intended edges: the chain through index 17 is 4 edges, so crosstalk is what adds more
        for kind in ("crosstalk", "interference"):
            driver.find_element(By.CSS_SELECTOR, f"input.kind[value={kind}]").click()
        assert _status(driver) == "f3.17: 4 edges on its paths"
    finally:
        driver.quit()


def test_circuit_tracer_file_passes_its_own_schema_and_keeps_every_edge(tmp_path, capsys):
    from circuit_tracer.frontend.graph_models import Model

    out = tmp_path / "ct.json"
    base = ["graph", "circuit", "--set", "m=8", "--set", "width=5", "--set", "n=6", "--set", "layers=2"]
    assert main(base + ["--input", "0,3", "--format", "circuit-tracer", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    model = Model.model_validate(data)
    assert model.metadata.schema_version == 1
    meta = data["metadata"]["superposim"]
    assert meta["format_version"] == 1 and meta["scenario"] == "circuit" and meta["params"]["m"] == 8
    ids = [n.node_id for n in model.nodes]
    assert len(set(ids)) == len(ids)
    assert all(link["source"] in ids and link["target"] in ids for link in model.links)
    # the same graph as superposim's own JSON: one node and one link per node and edge
    assert main(base + ["--input", "0,3", "--out", str(tmp_path / "own.json")]) == 0
    g = load_graph(tmp_path / "own.json")
    assert (len(ids), len(model.links)) == (g.number_of_nodes(), g.number_of_edges())
    kinds = {n.feature_type for n in model.nodes}
    assert kinds == {"embedding", "cross layer transcoder", "logit", "mlp reconstruction error"}
    by_id = {n["superposim_id"]: n for n in data["nodes"]}
    assert by_id["L0:0"]["activation"] == 1.0 and by_id["L0:1"]["activation"] == 0.0
    # a circuit-tracer file is not a graph --load reads: one line that says what it is
    capsys.readouterr()
    assert main(["graph", "--load", str(out)]) == 2
    assert "circuit-tracer graph" in capsys.readouterr().err
    # --format and --out must agree: circuit-tracer files end in .json
    assert main(base + ["--format", "circuit-tracer", "--out", str(tmp_path / "ct.gexf")]) == 2


def test_circuit_tracer_influence_is_the_path_mass_into_the_targets():
    import networkx as nx

    from circuits.graph_circuit_tracer import circuit_tracer_graph

    g = nx.DiGraph(input="")
    for name, layer in (("a", 0), ("b", 0), ("h", 1), ("y", 2), ("z", 2)):
        g.add_node(name, layer=layer, index=0 if name in "ahy" else 1, kind="feature", gate="", label=name)
    g.add_edge("a", "h", weight=2.0, kind="intended")
    g.add_edge("b", "h", weight=-0.5, kind="crosstalk")
    g.add_edge("h", "y", weight=1.0, kind="intended")
    g.add_edge("h", "z", weight=-3.0, kind="crosstalk")
    g.add_edge("b", "z", weight=1.0, kind="crosstalk")
    # mass: h = 1 + 3 = 4; a = 2 * 4 = 8; b = 0.5 * 4 + 1 = 3; scaled by the largest, 8
    got = {n["superposim_id"]: n["influence"] for n in circuit_tracer_graph(g, "t")["nodes"]}
    assert got == {"a": 1.0, "b": 3 / 8, "h": 4 / 8, "y": 1.0, "z": 1.0}
