"""Scores of an interpretability method against a network's true mechanism.

- Features: a dictionary (latents x n, e.g. an SAE's decoder) against the true feature
  directions of one layer: the mean of each true feature's best cosine with a latent and of
  each latent's best cosine with a true feature, the share of true features found above a
  threshold, dead latents (zero, or never active when activations are given) and duplicates.
- Components: a decomposition into low-rank factors (``layers.factors``) against the true
  components of each matrix: cosines of the flattened matrices (computed from the factors),
  best matches both ways, a greedy one-to-one matching and the share matched above a threshold,
  and per input the precision and recall of the components the method marks active.

Chance: a random unit vector of R^N has, with a fixed unit vector, a cosine x of density
proportional to (1 - x^2)^((N - 3) / 2); the best of C independent ones has mean
``chance_best_cosine(C, N)`` (numerical integration, exact to the grid). Random Gaussian latents
of R^n, or random Gaussian matrices on a matrix's full shape, score that on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from layers.factors import Factors

CANDIDATES = 16  # a true component is matched among its best few found ones (the greedy matching)


def chance_best_cosine(count: int, dim: int, grid: int = 400_001) -> float:
    """E[max of ``count`` cosines between a fixed unit vector and independent uniform unit
    vectors of R^dim]."""
    if count < 1 or dim < 2:
        raise ValueError(f"need count >= 1 and dim >= 2, got {count}, {dim}")
    width = min(1.0, 12.0 / math.sqrt(dim) + 12.0 * math.sqrt(math.log(count + 1) / dim))
    x = torch.linspace(-width, width, grid, dtype=torch.float64)
    log_pdf = 0.5 * (dim - 3) * torch.log1p(-(x * x).clamp(max=1 - 1e-15))
    pdf = torch.exp(log_pdf - log_pdf.max())
    cdf = torch.cumsum(pdf, 0)
    cdf = cdf / cdf[-1]
    step = float(x[1] - x[0])
    # E[M] = width - integral of P(M <= x) over [-width, width] (M lies in it but for tails ~ 1e-30)
    return float(width - torch.sum(cdf.pow(count)) * step)


def _unit(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norms = rows.norm(dim=1)
    return rows / norms.clamp_min(1e-30)[:, None], norms


@dataclass
class FeatureScore:
    layer: int
    features: int
    latents: int
    mean_best_true: float  # mean over true features of the best cosine with a latent
    mean_best_latent: float  # mean over live latents of the best cosine with a true feature
    recovered: float  # share of true features with a latent above the threshold
    dead: int
    duplicates: int
    best: torch.Tensor = field(repr=False)  # (features,) best cosine of each true feature


def score_features(true: torch.Tensor, dictionary: torch.Tensor, layer: int = 0, threshold: float = 0.9,
                   duplicate: float = 0.99, alive: torch.Tensor | None = None) -> FeatureScore:
    """True directions (m, n) against a dictionary (k, n); ``alive`` (k,) marks latents that ever
    fired (without it, only zero latents are dead)."""
    if true.shape[1] != dictionary.shape[1]:
        raise ValueError(f"layer {layer}: the dictionary's latents are {dictionary.shape[1]} wide, "
                         f"the layer's stream {true.shape[1]}")
    t, _ = _unit(true.float())
    latents, norms = _unit(dictionary.float())
    live = norms > 0 if alive is None else (norms > 0) & alive.bool()
    cos = t @ latents.T  # (m, k)
    cos[:, ~live] = -1.0
    best = cos.max(dim=1).values if live.any() else torch.full((t.shape[0],), -1.0)
    best_latent = cos[:, live].max(dim=0).values if live.any() else torch.zeros(0)
    kept = latents[live]
    self_cos = kept @ kept.T
    self_cos = torch.triu(self_cos, diagonal=1)
    duplicates = int((self_cos > duplicate).any(dim=0).sum())
    return FeatureScore(layer, t.shape[0], latents.shape[0], float(best.mean()),
                        float(best_latent.mean()) if best_latent.numel() else 0.0,
                        float((best >= threshold).float().mean()), int((~live).sum()), duplicates, best)


def cosines(true: Factors, found: Factors) -> torch.Tensor:
    """(C, C') cosines of the flattened components."""
    inner = true.inner(found)
    return inner / (true.norms()[:, None] * found.norms()[None, :]).clamp_min(1e-30)


def greedy_matching(cos: torch.Tensor) -> torch.Tensor:
    """(C,) the found component matched to each true one (-1: none), one-to-one, taking pairs in
    order of falling cosine among each true component's best ``CANDIDATES``."""
    C, F = cos.shape
    match = torch.full((C,), -1, dtype=torch.int64)
    if not C or not F:
        return match
    k = min(CANDIDATES, F)
    values, index = cos.topk(k, dim=1)
    true_of = torch.arange(C)[:, None].expand(C, k).reshape(-1)
    order = torch.argsort(values.reshape(-1), descending=True, stable=True)
    taken = torch.zeros(F, dtype=torch.bool)
    for pair in order.tolist():
        i, j = int(true_of[pair]), int(index.reshape(-1)[pair])
        if match[i] < 0 and not taken[j]:
            match[i], taken[j] = j, True
    return match


@dataclass
class MatrixScore:
    key: str
    true: int
    found: int
    mean_best_true: float
    mean_best_found: float
    matched: torch.Tensor = field(repr=False)  # (true,) cosine with the one-to-one match (0: none)
    match: torch.Tensor = field(repr=False)  # (true,) index of the matched found component

    def recovered(self, threshold: float) -> float:
        return float((self.matched >= threshold).float().mean()) if self.true else 0.0


def score_matrix(key: str, true: Factors, found: Factors) -> MatrixScore:
    cos = cosines(true, found)
    match = greedy_matching(cos)
    matched = torch.where(match >= 0, cos.gather(1, match.clamp_min(0)[:, None])[:, 0], torch.zeros(()))
    best_true = cos.max(dim=1).values if found.count else torch.zeros(true.count)
    best_found = cos.max(dim=0).values if true.count else torch.zeros(found.count)
    return MatrixScore(key, true.count, found.count, float(best_true.mean()) if true.count else 0.0,
                       float(best_found.mean()) if found.count else 0.0, matched, match)


def activity_scores(scores: list[MatrixScore], true_needed: dict[str, torch.Tensor],
                    found_active: dict[str, torch.Tensor], threshold: float) -> tuple[float, float, int]:
    """Mean over inputs of the precision and recall of the components marked active, through the
    one-to-one matching (a found component matched below ``threshold`` matches nothing).
    Returns (precision, recall, inputs)."""
    hits: torch.Tensor | None = None
    predicted = actual = torch.zeros(0)
    for s in scores:
        if s.key not in found_active or s.key not in true_needed:
            continue
        needed = true_needed[s.key].bool()  # (B, true)
        active = found_active[s.key].bool()  # (B, found)
        if active.shape[0] != needed.shape[0]:
            raise ValueError(f"{s.key}: activity of {active.shape[0]} inputs, the export holds {needed.shape[0]}")
        ok = (s.match >= 0) & (s.matched >= threshold)
        through = torch.zeros(needed.shape, dtype=torch.bool)
        through[:, ok] = active[:, s.match[ok]]
        h, p, a = (through & needed).sum(1), active.sum(1), needed.sum(1)
        hits, predicted, actual = (h, p, a) if hits is None else (hits + h, predicted + p, actual + a)
    if hits is None:
        return math.nan, math.nan, 0
    precision = (hits[predicted > 0] / predicted[predicted > 0]).float().mean()
    recall = (hits[actual > 0] / actual[actual > 0]).float().mean()
    return float(precision), float(recall), int(hits.numel())


def random_components(like: Factors, count: int, generator: torch.Generator) -> Factors:
    """``count`` random Gaussian matrices on the full (out, in) shape, in factor form (left the
    matrix, right the identity): each flattened is a uniform random direction of R^(out in)."""
    out, inp = like.shape
    left = torch.randn(count, out, inp, generator=generator)
    right = torch.eye(inp).expand(count, inp, inp).contiguous()
    return Factors(torch.arange(out).expand(count, out).contiguous(), left, right,
                   torch.arange(inp).expand(count, inp).contiguous(), like.shape)


def svd_components(weight: torch.Tensor, count: int, rank: int | None = 1) -> Factors:
    """The leading singular terms s u v^T of a dense weight, ``rank`` consecutive ones to a
    component (by falling singular value; None: the weight's rank shared evenly among ``count``),
    ``count`` components at most."""
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    live = int((s > s[0] * 1e-6).sum()) if s.numel() else 0
    rank = max(1, live // max(1, count)) if rank is None else rank
    count = min(count, live // rank)
    out, inp = weight.shape
    k = count * rank
    left = (u[:, :k] * s[:k]).T.reshape(count, rank, out).transpose(1, 2).float()
    right = vh[:k].reshape(count, rank, inp).float()
    return Factors(torch.arange(out).expand(count, out).contiguous(), left.contiguous(), right.contiguous(),
                   torch.arange(inp).expand(count, inp).contiguous(), (out, inp))
