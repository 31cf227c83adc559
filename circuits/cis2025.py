"""Circuits in superposition, the 2025 construction (Linsefors & Bushnaq, "Circuits in
Superposition 2" and "Rotations in Superposition"), as built here.

T small circuits (``circuits.small``: width d, depth L, one shared bias vector per layer) run
inside one network of D = d n neurons per layer (n = D/d), at most z of them active at once:

- the D neurons form d groups of n; small neuron i of every circuit lives in group i;
- circuit t is an S-hot pattern e_t over n neurons, the same in every group, two circuits
  sharing at most one neuron (``circuits.designs``); each layer permutes the patterns over the
  circuits, so circuits that collide in one layer do not collide in the next;
- read-out (un-embedding): a^l_t ~ (1/S) <e^l_t| A^l, group by group;
- layer 1 is written directly: A^1 = ReLU(sum_t e^1_t (w^1_t a^0_t) + B^1);
- bias: B^l = b^l written once on every neuron of its group (not summed over the circuits that
  share the neuron), so (1/S) <e_t| B^l = b^l for every t;
- weights, layer l >= 2, one of two forms:
  ``plain``:  W^l = (1/S) sum_t w^l_t |e^l_t><e^(l-1)_t|;
  ``capped``: W^l = wbar^l Wcal^l + (1/S) sum_t (w^l_t - wbar^l) |e^l_t><e^(l-1)_t|, with wbar the
  mean of the circuits' weights and Wcal the n x n matrix that is 1/S where some circuit connects
  the two neurons and -chi elsewhere, chi chosen so that E_(t != u) <e_t| Wcal |e_u> = 0.
  The mean part then reaches every circuit through one capped entry instead of once per circuit
  that shares the pair, and its cross-circuit leak averages to zero.

The network is a plain ``layers.Network``: its input is a^0 of every circuit side by side
(T d values, zero for inactive circuits), stream l is A^l.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange, reduce
from torch import nn

from circuits.cis import cis_circuit
from circuits.compile import CompiledNetwork
from circuits.designs import chosen_family, design_capacity, make_design
from circuits.small import STEP_ON, SmallCircuits, boolean_circuits, check_assumptions
from circuits.spec import Circuit, CircuitError
from layers.network import Network, ReLUBlock
from layers.pattern_blocks import PatternBlocks
from layers.weights import Dense, Identity, LowRankPlus, Weight, plan, sparse_weight, stores_sparse

WEIGHT_FORMS = ("capped", "plain")


class CiS2025(nn.Module):
    """The large network of the 2025 construction and how its circuits are placed:
    ``patterns`` (L, T, S), patterns[l] embeds a^(l+1), drawn from the design family ``design``
    (``circuits.designs.chosen_family``); ``chi`` per weight layer l >= 2 (capped form; 0 for plain)."""

    patterns: torch.Tensor
    network: Network

    def __init__(self, small: SmallCircuits, D: int, S: int, form: str, patterns: torch.Tensor,
                 network: Network, chi: list[float], design: str) -> None:
        super().__init__()
        self.small, self.D, self.S, self.form, self.chi, self.design = small, D, S, form, chi, design
        self.register_buffer("patterns", patterns)
        self.network = network

    @property
    def n(self) -> int:
        return self.D // self.small.d

    def inputs(self, which: torch.Tensor, a0: torch.Tensor) -> torch.Tensor:
        """The network's input (batch, T d) for active circuits ``which`` (batch, z) holding a0
        (batch, z, d); every other circuit's input is 0."""
        batch, z, d = a0.shape
        x = torch.zeros(batch, self.small.T, d, device=a0.device, dtype=a0.dtype)
        x.scatter_(1, which[:, :, None].expand(batch, z, d), a0)
        return x.reshape(batch, -1)

    def unembed(self, stream: torch.Tensor, layer: int) -> torch.Tensor:
        """(batch, T, d) read-out (1/S) <e^l_t| A^l of every circuit at layer >= 1."""
        groups = rearrange(stream, "b (g n) -> b g n", g=self.small.d)
        return reduce(groups[:, :, self.patterns[layer - 1]], "b g t s -> b t g", "mean")

    def embed_all(self, a: torch.Tensor, layer: int) -> torch.Tensor:
        """The ideal A^l = sum_t e^l_t (x) a_t for states a (batch, T, d) of every circuit."""
        batch, T, d = a.shape
        pattern = self.patterns[layer - 1].reshape(-1)  # (T S,)
        values = rearrange(a.repeat_interleave(self.S, dim=1), "b ts g -> b g ts")
        groups = torch.zeros(batch, d, self.n, device=a.device, dtype=a.dtype).index_add_(2, pattern, values)
        return rearrange(groups, "b g n -> b (g n)")

    def readout(self, layer: int) -> Weight:
        """The un-embedding of layer >= 1 as a stored (T d, D) weight (for compiled views)."""
        T, d, S, n = self.small.T, self.small.d, self.S, self.n
        pat = self.patterns[layer - 1].cpu()
        t, i, s = torch.meshgrid(torch.arange(T), torch.arange(d), torch.arange(S), indexing="ij")
        rows = (t * d + i).reshape(-1)
        cols = (i * n + pat[t, s]).reshape(-1)
        return sparse_weight(rows, cols, torch.full((rows.numel(),), 1.0 / S), (T * d, self.D))


def capped_chi(rows: torch.Tensor, cols: torch.Tensor, n: int, linked: torch.Tensor) -> float:
    """chi of the capped form: E_(t != u) <e_t| Wcal |e_u> = 0, the leak through linked entries
    balancing chi times the rest; sums over t != u come from the degrees without a T x T loop."""
    T, S = rows.shape
    deg_rows = torch.bincount(rows.reshape(-1), minlength=n).double()
    deg_cols = torch.bincount(cols.reshape(-1), minlength=n).double()
    leak = float((deg_rows[linked // n] * deg_cols[linked % n]).sum()) - T * S * S
    rest = T * (T - 1) * S * S - leak
    return leak / (S * rest) if rest > 0 else 0.0


def weight_layer(w: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, n: int,
                 form: str, structured: bool = False) -> tuple[Weight, float]:
    """W^l (d n, d n) for small weights w (T, d, d) from patterns ``cols`` (layer l - 1) to ``rows``
    (layer l), each (T, S). ``structured``: applied block by block (``PatternBlocks``), never
    stored. Otherwise built from the k neuron pairs some circuit links: every (i, j) block has
    the same k non-zeros (besides the capped form's -chi everywhere), so the weight is d^2 k values
    placed once, never a T-long list of entries per pair. Stored sparse with the rank-d part apart
    when k / n^2 is small, dense (the rank-d part added in) otherwise. Returns (W, chi)."""
    T, d, _ = w.shape
    S = rows.shape[1]
    if form not in WEIGHT_FORMS:
        raise CircuitError(f"unknown weight form {form!r}; valid: {', '.join(WEIGHT_FORMS)}")
    pairs = (rows[:, :, None] * n + cols[:, None, :]).reshape(-1)  # (T S^2,) neuron pairs in a group
    if structured:
        if form == "plain":
            return PatternBlocks(w, rows, cols, n, S), 0.0
        mean = w.mean(dim=0)
        chi = capped_chi(rows, cols, n, torch.unique(pairs))
        return PatternBlocks(w - mean, rows, cols, n, S, mean, chi), chi
    linked, which = torch.unique(pairs, return_inverse=True)
    k = linked.numel()
    mean = w.mean(dim=0) if form == "capped" else torch.zeros(d, d)
    # values[i, j, c] = (1/S) sum over circuits linking pair c of (w_t - mean)[i, j], in circuit chunks
    values = torch.zeros(d, d, k)
    step = max(1, 2**24 // (d * d * S * S))
    for a in range(0, T, step):
        part = rearrange(w[a : a + step] - mean, "t i j -> i j t").repeat_interleave(S * S, dim=2)
        values.index_add_(2, which[a * S * S : (a + step) * S * S], part / S)
    chi = 0.0
    if form == "capped":
        chi = capped_chi(rows, cols, n, linked)
        values += (mean * (1.0 / S + chi))[:, :, None]  # Wcal = 1/S + chi on linked pairs, -chi elsewhere
    row_of, col_of = linked // n, linked % n
    if stores_sparse((n, n), k):
        i, j, c = (t.reshape(-1) for t in torch.meshgrid(torch.arange(d), torch.arange(d), torch.arange(k),
                                                          indexing="ij"))
        sparse = sparse_weight(i * n + row_of[c], j * n + col_of[c], values.reshape(-1), (d * n, d * n))
        if not chi:
            return sparse, chi
        left = torch.zeros(d * n, d)
        left[torch.arange(d * n), torch.arange(d * n) // n] = 1.0
        return LowRankPlus(sparse, left, (-chi * mean).repeat_interleave(n, dim=1)), chi
    dense = (-chi * mean)[:, None, :, None].repeat(1, n, 1, n)  # (i, r, j, c)
    for row in range(d):  # one block row at a time: index tensors of d k entries, not d^2 k
        dense[row].index_put_((row_of[None, :].expand(d, k), torch.arange(d)[:, None].expand(d, k),
                               col_of[None, :].expand(d, k)), values[row], accumulate=True)
    return Dense(dense.reshape(d * n, d * n)), chi


# Above this many bytes per stored weight layer (64 MiB, a dense D = 4096), layers are applied block by block
# instead (``PatternBlocks``): same numbers to float rounding, memory linear in T, and faster there.
STRUCTURED_ABOVE = 2**26


def stored_bytes(T: int, D: int, d: int, S: int) -> int:
    """Bytes of one W^l stored (sparse with the rank-d part apart, or dense)."""
    n = D // d
    return plan((D, D), d * d * min(T * S * S, n * n), rank=d).nbytes if n else 0


def is_structured(T: int, D: int, d: int, S: int) -> bool:
    """Whether ``build_cis2025`` applies the layers block by block: the one rule."""
    return stored_bytes(T, D, d, S) > STRUCTURED_ABOVE


def weight_bytes(T: int, D: int, d: int, S: int) -> tuple[int, int]:
    """(bytes stored, bytes while building) of one W^l, as ``build_cis2025`` keeps it: block by
    block (T d^2 values, the patterns and the linked pairs' CSR) above ``STRUCTURED_ABOVE``; else
    at most T S^2 linked pairs per (n, n) block, the rank-d part beside a sparse weight."""
    n = D // d
    if n == 0:
        return 0, 0
    k = min(T * S * S, n * n)
    if is_structured(T, D, d, S):
        stored_form = 4 * T * d * d + 2 * 8 * T * S + 12 * k + 8 * n
        return stored_form, 3 * 8 * T * S * S  # the pairs, sorted and unique
    stored = plan((D, D), d * d * k, rank=d)
    if stored.form == "sparse":  # the values (d, d, k), their COO indices and the CSR made from them
        return stored.nbytes, (4 + 2 * 8 + 12) * d * d * k
    return stored.nbytes, 4 * d * d * k + 3 * 8 * d * k


def memory_bytes(T: int, D: int, d: int, S: int, L: int) -> int:
    """About the most memory building the 2025 network takes: L - 1 weight layers stored, one
    being built, the first layer and read-outs (T d^2 S and T d S L entries)."""
    stored, building = weight_bytes(T, D, d, S)
    return (L - 1) * stored + building + 12 * T * d * S * (d + 2 * L) + 4 * 2**24


def first_layer(w: torch.Tensor, pattern: torch.Tensor, n: int, structured: bool = False) -> Weight:
    """(D, T d) weight of A^1's pre-activation: sum_t e^1_t (x) w^1_t a^0_t, stored sparse, or
    (``structured``) applied block by block."""
    if structured:
        return PatternBlocks(w, pattern, None, n, 1)
    T, d, _ = w.shape
    S = pattern.shape[1]
    t, i, j, s = torch.meshgrid(torch.arange(T), torch.arange(d), torch.arange(d), torch.arange(S), indexing="ij")
    vals = w[t, i, j]
    keep = vals != 0
    rows = (i * n + pattern[t, s])[keep]
    cols = (t * d + j)[keep]
    return sparse_weight(rows, cols, vals[keep], (d * n, T * d))


def build_cis2025(small: SmallCircuits, D: int, S: int, form: str, generator: torch.Generator,
                  design: str = "best", structured: bool | None = None) -> CiS2025:
    """The large network carrying ``small`` in D neurons per layer, S neurons per small neuron;
    its layers stored, or applied block by block (``structured``; by default when
    ``is_structured``: the stored form would pass ``STRUCTURED_ABOVE`` bytes)."""
    T, d, L = small.T, small.d, small.L
    if form not in WEIGHT_FORMS:
        raise CircuitError(f"unknown weight form {form!r}; valid: {', '.join(WEIGHT_FORMS)}")
    if D % d:
        raise CircuitError(f"D={D} must be a multiple of the small circuits' width d={d} (d groups of D/d neurons)")
    n = D // d
    if S > n:
        raise CircuitError(f"S={S} exceeds D/d={n}: a small neuron cannot spread over more neurons than its group has")
    base = make_design(n, S, T, design)
    patterns = torch.stack([base] + [base[torch.randperm(T, generator=generator)] for _ in range(L - 1)])
    bias = [small.bias[layer].repeat_interleave(n) for layer in range(L)]
    structured = is_structured(T, D, d, S) if structured is None else structured
    blocks = [ReLUBlock(first_layer(small.weights[0], patterns[0], n, structured), bias[0], Identity(D))]
    chis = []
    for layer in range(1, L):
        W, chi = weight_layer(small.weights[layer], patterns[layer], patterns[layer - 1], n, form, structured)
        chis.append(chi)
        blocks.append(ReLUBlock(W, bias[layer], Identity(D)))
    return CiS2025(small, D, S, form, patterns, Network(Identity(T * d), blocks), chis, chosen_family(n, S, T, design))


def capacity(D: int, d: int, S: int) -> int | None:
    """Most circuits of width d the placement holds at D and S (None: unbounded)."""
    return design_capacity(D // d, S) if D >= d else 0


def dedicated_network(small: SmallCircuits) -> Network:
    """The baseline without superposition: every circuit on d neurons of its own (block-diagonal
    weights, T d neurons per layer), exact by construction."""
    T, d, L = small.T, small.d, small.L
    t, i, j = torch.meshgrid(torch.arange(T), torch.arange(d), torch.arange(d), indexing="ij")
    blocks = []
    for layer in range(L):
        vals = small.weights[layer][t, i, j]
        keep = vals != 0
        read = sparse_weight((t * d + i)[keep], (t * d + j)[keep], vals[keep], (T * d, T * d))
        blocks.append(ReLUBlock(read, small.bias[layer].repeat(T), Identity(T * d)))
    return Network(Identity(T * d), blocks)


# ---- boolean small circuits as a compiled network (tracer, graph and dedicated twin) -----------

def compile_boolean_cis2025(smalls: list[Circuit], D: int, S: int, form: str, generator: torch.Generator,
                            design: str = "best", margin: float = 0.05) -> CiS2025Network:
    """Boolean small circuits (g gates per layer) in the 2025 construction, as a CompiledNetwork
    of ``cis_circuit(smalls)``: features per circuit are its g gates then its on-indicator, input
    bits are written as step pairs (1.5 v, 0.5 v), and value v is read as the difference of its
    pair's two read-outs; the network holds the construction as ``net.cis``."""
    small = boolean_circuits(smalls)
    check_assumptions(small, margin)
    cis = build_cis2025(small, D, S, form, generator, design)
    big = cis_circuit(smalls)
    g, T, d, n = smalls[0].n_inputs, len(smalls), small.d, D // small.d
    # feature k of a circuit (gates 0..g-1, then on) is held by pair 1 + k, the on-indicator by pair 0
    pair = torch.tensor([1 + k for k in range(g)] + [0])
    t, k = torch.meshgrid(torch.arange(T), torch.arange(g + 1), indexing="ij")
    feature = (t * (g + 1) + k).reshape(-1)
    first = (t * d + 2 * pair[k]).reshape(-1)  # neuron a_2p of the circuit's input a^0
    step_values = torch.tensor([STEP_ON[0]] * len(feature) + [STEP_ON[1]] * len(feature))
    embed = sparse_weight(torch.cat([first, first + 1]), torch.cat([feature, feature]), step_values,
                          (T * d, T * (g + 1)))
    readouts = [sparse_weight(torch.cat([feature, feature]), torch.cat([first, first + 1]),
                              torch.tensor([1.0] * len(feature) + [-1.0] * len(feature)), (T * (g + 1), T * d))]
    # a unit change of a value moves its input pair by (1.5, 0.5), and at a gate's decision point
    # (z = 1/2, where graphs linearise: h' = 2, the first neuron on, the second off) its step pair
    # by (1, 0) on each of its S neurons; the read-outs take the pair's difference
    carriers = [sparse_weight(torch.cat([feature, feature]), torch.cat([first, first + 1]), step_values,
                              (T * (g + 1), T * d))]
    for layer in range(1, small.L + 1):
        pat = cis.patterns[layer - 1]
        circuit_of, pair_of = t.reshape(-1)[:, None], pair[k].reshape(-1)[:, None]
        first_neurons = (2 * pair_of) * n + pat[circuit_of.expand(-1, S), torch.arange(S)]
        rows = feature[:, None].expand(-1, S).reshape(-1)
        readouts.append(sparse_weight(torch.cat([rows, rows]),
                                      torch.cat([first_neurons.reshape(-1), (first_neurons + n).reshape(-1)]),
                                      torch.tensor([1.0 / S] * rows.numel() + [-1.0 / S] * rows.numel()),
                                      (T * (g + 1), D)))
        carriers.append(sparse_weight(rows, first_neurons.reshape(-1), torch.ones(rows.numel()), (T * (g + 1), D)))
    # at a gate's decision point (z = 1/2) the first neuron of its step pair is on, the second off
    boundary = [(torch.arange(D) // n % 2 == 0).float() for _ in range(small.L)]
    network = Network(embed, cis.network.relu_blocks())
    return CiS2025Network(f"cis2025(T={T}, D={D}, g={g}, S={S}, {form})", big, network, readouts, cis,
                          boundary=boundary, carriers=carriers)


class CiS2025Network(CompiledNetwork):
    """Boolean small circuits in the 2025 construction, with the construction (``cis``) it
    carries for the per-circuit read-outs."""

    def __init__(self, name: str, circuit: Circuit, network: Network, readouts: Sequence[Weight], cis: CiS2025,
                 boundary: Sequence[torch.Tensor | None], carriers: Sequence[Weight]) -> None:
        super().__init__(name, circuit, network, readouts, boundary=boundary, carriers=carriers)
        self.cis = cis
