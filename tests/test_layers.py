"""Embeddings, coherence, weight storage, the network stack and its hooks."""

import math

import pytest
import torch
from conftest import gen

from layers import Network, ReLUBlock, capture, coherence, compact, hook_names, hooks, make_embedding
from layers.embeddings import welch_bound
from layers.matrices import times_transpose


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
    assert compact(torch.eye(6)) is None
    perm = torch.eye(100)[torch.randperm(100, generator=gen(0))]
    sparse = compact(perm)
    assert sparse.layout == torch.sparse_csr
    x = torch.randn(7, 100, generator=gen(1))
    assert torch.allclose(times_transpose(x, sparse), x @ perm.T)
    dense = compact(torch.randn(4, 5, generator=gen(2)))
    assert dense.layout == torch.strided


def _net():
    g = gen(3)
    blocks = [
        ReLUBlock(torch.randn(5, 4, generator=g), torch.randn(5, generator=g), torch.randn(3, 5, generator=g)),
        ReLUBlock(torch.randn(2, 3, generator=g), torch.zeros(2), torch.randn(3, 2, generator=g),
                  relu_mask=torch.tensor([True, False])),
    ]
    return Network(torch.randn(4, 6, generator=g), blocks, 6)


def test_network_streams_by_hand():
    net = _net()
    x = torch.randn(8, 6, generator=gen(4))
    s0 = x @ net.embed.T
    b0, b1 = net.blocks
    s1 = torch.relu(s0 @ b0.read.T + b0.bias) @ b0.write.T
    pre = s1 @ b1.read.T
    s2 = torch.stack([torch.relu(pre[:, 0]), pre[:, 1]], dim=1) @ b1.write.T
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
        Network(None, [ReLUBlock(torch.zeros(2, 3), torch.zeros(2), torch.zeros(3, 2))], 5)
