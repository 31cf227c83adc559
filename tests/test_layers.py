"""Embeddings, coherence, weight storage, the network stack and its hooks."""

import math

import pytest
import torch
from conftest import gen

from layers import Network, ReLUBlock, capture, coherence, compact, hook_names, hooks, make_embedding
from layers.embeddings import welch_bound
from layers.weights import Dense, Identity, LowRankPlus, Sparse, plan, sparse_weight


@pytest.mark.parametrize("kind", ["random", "sign", "identity"])
def test_embeddings_have_unit_rows(kind):
    phi = make_embedding(kind, 40, 64, gen(0))
    assert phi.shape == (40, 64)
    assert torch.allclose(phi.norm(dim=1), torch.ones(40), atol=1e-6)


def test_identity_is_orthonormal_and_needs_room():
    phi = make_embedding("identity", 5, 8)
    assert torch.equal(phi @ phi.T, torch.eye(5))
    with pytest.raises(ValueError, match="n >= m"):
        make_embedding("identity", 9, 8)


def test_random_overlaps_match_theory():
    n = 128
    coh = coherence(make_embedding("random", 2000, n, gen(1)))
    assert abs(coh.rms_overlap - 1 / math.sqrt(n)) < 0.02 / math.sqrt(n)
    assert coh.max_overlap >= coh.welch_bound
    assert 0.7 < coh.max_overlap / (0.9 * 2 * math.sqrt(math.log(2000) / n)) < 1.3


def test_welch_bound_is_met_by_the_mercedes_frame():
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    frame = torch.stack([angles.cos(), angles.sin()], dim=1)
    coh = coherence(frame)
    assert welch_bound(3, 2) == pytest.approx(0.5)
    assert coh.max_overlap == pytest.approx(0.5) and coh.rms_overlap == pytest.approx(0.5)
    assert welch_bound(10, 10) == 0.0


def test_compact_picks_the_cheapest_exact_form():
    assert isinstance(compact(torch.eye(6)), Identity) and compact(torch.eye(6)).shape == (6, 6)
    perm = torch.eye(100)[torch.randperm(100, generator=gen(0))]
    sparse = compact(perm)
    assert isinstance(sparse, Sparse) and sparse.shape == (100, 100)
    x = torch.randn(7, 100, generator=gen(1))
    assert torch.allclose(sparse(x), x @ perm.T)
    assert torch.equal(sparse.dense(), perm) and torch.equal(compact(perm.to_sparse()).dense(), perm)
    dense = compact(torch.randn(4, 5, generator=gen(2)))
    assert isinstance(dense, Dense) and dense.shape == (4, 5)


def _forms():
    """The same kind of (30, 80) matrix in every form, with its dense value."""
    g = gen(6)
    W = torch.randn(30, 80, generator=g) * (torch.rand(30, 80, generator=g) < 0.02)
    left, right = torch.randn(30, 2, generator=g), torch.randn(2, 80, generator=g)
    r, c = torch.nonzero(W, as_tuple=True)
    square = torch.randn(80, 80, generator=g)
    return [
        (Dense(W.clone()), W),
        (sparse_weight(r, c, W[r, c], (30, 80)), W),
        (Identity(80), torch.eye(80)),
        (LowRankPlus(sparse_weight(r, c, W[r, c], (30, 80)), left, right), W + left @ right),
        (LowRankPlus(Dense(square), torch.randn(80, 1, generator=g), torch.zeros(1, 80)), square),
    ]


@pytest.mark.parametrize("case", range(5))
def test_every_weight_form_is_the_matrix_it_stands_for(case):
    weight, W = _forms()[case]
    x = torch.randn(9, W.shape[1], generator=gen(7))
    assert weight.shape == tuple(W.shape)
    assert torch.allclose(weight(x), x @ W.T, atol=1e-5)
    assert torch.allclose(weight.apply_to_sparse(x), x @ W.T, atol=1e-5)
    assert torch.allclose(weight.dense(), W, atol=1e-6)
    # the low-rank part reaches its whole support (a zero right factor reaches nothing)
    assert weight.nonzeros() == int((W != 0).sum())
    moved = weight.to("meta")
    assert all(t.device.type == "meta" for t in [*moved.parameters(), *moved.buffers()])


def test_a_planned_weight_has_the_bytes_of_the_built_one():
    g = gen(8)
    for density in (0.01, 0.04, 0.2):
        W = torch.randn(200, 300, generator=g) * (torch.rand(200, 300, generator=g) < density)
        built, planned = compact(W), plan((200, 300), int((W != 0).sum()))
        assert planned.form == ("sparse" if isinstance(built, Sparse) else "dense")
        assert planned.nbytes == built.nbytes
    r, c = torch.nonzero(W[:, :10] != 0, as_tuple=True)
    low = LowRankPlus(sparse_weight(r, c, torch.ones(r.numel()), (200, 300)), torch.ones(200, 3), torch.ones(3, 300))
    assert plan((200, 300), r.numel(), rank=3).nbytes == low.nbytes


def test_gathering_sparse_inputs_is_the_dense_product():
    g = gen(9)
    weight = Dense(torch.randn(16, 200, generator=g))
    x = torch.zeros(40, 200)
    x[torch.arange(40), torch.randint(0, 200, (40,), generator=g)] = torch.rand(40, generator=g)
    assert torch.allclose(weight.apply_to_sparse(x), weight(x), atol=1e-6)


def _net():
    g = gen(3)
    blocks = [
        ReLUBlock(Dense(torch.randn(5, 4, generator=g)), torch.randn(5, generator=g),
                  Dense(torch.randn(3, 5, generator=g))),
        ReLUBlock(Dense(torch.randn(2, 3, generator=g)), torch.zeros(2), Dense(torch.randn(3, 2, generator=g)),
                  relu_mask=torch.tensor([True, False])),
    ]
    return Network(Dense(torch.randn(4, 6, generator=g)), blocks)


def test_network_streams_by_hand():
    net = _net()
    x = torch.randn(8, 6, generator=gen(4))
    s0 = x @ net.embed.matrix.T
    b0, b1 = net.blocks
    s1 = torch.relu(s0 @ b0.read.matrix.T + b0.bias) @ b0.write.matrix.T
    pre = s1 @ b1.read.matrix.T
    s2 = torch.stack([torch.relu(pre[:, 0]), pre[:, 1]], dim=1) @ b1.write.matrix.T
    streams = net.streams(x)
    for got, want in zip(streams, [s0, s1, s2]):
        assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        net.streams(torch.zeros(2, 5))


def test_hooks_are_scoped_and_can_edit():
    net = _net()
    x = torch.randn(4, 6, generator=gen(5))
    assert "blocks.0.hook_pre" in hook_names(net) and "hook_embed" in hook_names(net)
    with capture(net, ["blocks.0.hook_post"]) as seen:
        net(x)
    assert torch.all(seen["blocks.0.hook_post"] >= 0)
    clean = net(x)
    with hooks(net, {"blocks.1.hook_post": lambda v, name: torch.zeros_like(v)}):
        assert torch.equal(net(x), torch.zeros_like(clean))
    assert torch.equal(net(x), clean)  # removed on exit
    with pytest.raises(KeyError, match="unknown hook point"):
        with hooks(net, {"blocks.9.hook_pre": lambda v, n: v}):
            pass


def test_width_mismatch_is_refused():
    with pytest.raises(ValueError, match="width"):
        Network(Identity(5), [ReLUBlock(Dense(torch.zeros(2, 3)), torch.zeros(2), Dense(torch.zeros(3, 2)))])
