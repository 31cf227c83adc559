"""Closed-form predictions of docs/theory.md, kept beside the simulation that measures them."""

from __future__ import annotations

import math

import torch


def q_tail(z: float) -> float:
    """Standard normal upper tail Q(z) = P(N(0, 1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def interference_std(active: int, n: int) -> float:
    """Std of the read-out of an inactive feature with ``active`` random unit directions on."""
    return math.sqrt(active / n)


def jl_bound(m: int, n: int, active: int) -> float:
    """The post's worst-case noise: JL distortion sqrt(8 ln m / n) times sqrt(active)."""
    return math.sqrt(8.0 * math.log(m) / n) * math.sqrt(active)


def post_threshold(m: int, n: int) -> float:
    """The post's largest affordable number of active features, n / (8 ln m)."""
    return n / (8.0 * math.log(m))


def false_positives(m: int, active: int, n: int) -> float:
    """Expected off-features read above 1/2 per sample: (m - l) Q(0.5 sqrt(n / l))."""
    if active == 0:
        return 0.0
    return (m - active) * q_tail(0.5 * math.sqrt(n / active))


def rms_overlap(n: int) -> float:
    """Rms overlap of random unit vectors in R^n."""
    return 1.0 / math.sqrt(n)


def max_overlap(m: int, n: int) -> float:
    """Typical largest overlap among m random unit vectors: about 0.9 * 2 sqrt(ln m / n)."""
    return 0.9 * 2.0 * math.sqrt(math.log(m) / n)


def relay_mse(m: int, n: int, active: int, layers: int) -> list[float]:
    """Linear relay without clean-up: sigma2_{t+1} = (1 + m/n) sigma2_t + l/n, sigma2_0 = l/n."""
    out = [active / n]
    for _ in range(layers):
        out.append((1.0 + m / n) * out[-1] + active / n)
    return out


def cleanup_mse(m: int, n: int, active: int) -> float:
    """Relay with a clean-up after every layer: the read-out MSE stays near (l/n)(1 - l/m)."""
    return (active / n) * (1.0 - active / m)


def wrong_features_gaussian(m: int, sigma2: float) -> float:
    """Features per sample read on the wrong side of 1/2 when every read-out has Gaussian error
    of variance sigma2 (off-features cross upwards, on-features downwards, at the same rate)."""
    if sigma2 <= 0:
        return 0.0
    return m * q_tail(0.5 / math.sqrt(sigma2))


def cleanup_mse_gaussian(mean: float, var: float, target: float, points: int = 2001) -> float:
    """E[(h(Z) - target)^2] for Z ~ N(mean, var), h the two-ReLU clean-up (numerical quadrature)."""
    if var <= 0:
        return (cleanup(torch.tensor(mean)).item() - target) ** 2
    sd = math.sqrt(var)
    z = torch.linspace(-8.0, 8.0, points, dtype=torch.float64)
    weights = torch.exp(-0.5 * z * z)
    weights = weights / weights.sum()
    values = cleanup(mean + sd * z)
    return float((weights * (values - target) ** 2).sum())


def cleanup(x: torch.Tensor) -> torch.Tensor:
    """h(x) = ReLU(2x - 0.5) - ReLU(2x - 1.5): 0 below 0.25, 1 above 0.75."""
    return torch.relu(2 * x - 0.5) - torch.relu(2 * x - 1.5)


def uand_mean(others: int, p: float) -> float:
    """U-AND pair read-out error mean with ``others`` other active features: s' p."""
    return others * p


def uand_std(others: int, p: float, d: int) -> float:
    """U-AND pair read-out error std: sqrt(s' (1 - p) / (p d))."""
    return math.sqrt(others * (1.0 - p) / (p * d))


def mean_field_cleanup_relay(
    m: int, n: int, active: int, layers: int, grid: int = 801, nodes: int = 161
) -> tuple[list[float], list[float]]:
    """Relay with a clean-up h after every layer, by density evolution (a mean-field model).

    Tracks the distribution of the value written for an off-feature and for an on-feature on a
    grid over [0, 1]. At each read-out every feature sees its own written value plus Gaussian
    interference of variance (sum of all squared written values) / n, fresh at each layer
    because each layer has its own directions; the next written value is h of that read-out.
    Unlike the zeroth-order (l/n)(1 - l/m), this counts what h lets through: off-features read
    in (0.25, 0.75) leak part of a value, and every leak and false positive adds interference
    downstream. Returns the per-feature read-out MSE and the wrong features per sample, for the
    read-outs t = 0..layers.
    """
    w = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)
    z = torch.linspace(-7.0, 7.0, nodes, dtype=torch.float64)
    zw = torch.exp(-0.5 * z * z)
    zw = zw / zw.sum()
    p_off = torch.zeros(grid, dtype=torch.float64)
    p_on = torch.zeros(grid, dtype=torch.float64)
    p_off[0], p_on[-1] = 1.0, 1.0
    off = m - active
    mse, wrong = [], []
    for t in range(layers + 1):
        var = (active * (p_on * w * w).sum() + off * (p_off * w * w).sum()) / n
        sd = math.sqrt(float(var))
        mse.append(float((active * (p_on * (w - 1) ** 2).sum() + off * (p_off * w * w).sum()) / m + var))
        upper = 0.5 * torch.erfc((0.5 - w) / (sd * math.sqrt(2.0)))  # P(read > 1/2 | written w)
        wrong.append(float(off * (p_off * upper).sum() + active * (p_on * (1 - upper)).sum()))
        if t == layers:
            break
        # push each grid value through read-out noise and h, spreading mass onto the grid
        new = cleanup(w[:, None] + sd * z[None, :]).clamp(0.0, 1.0) * (grid - 1)
        lo = new.floor().long().clamp(max=grid - 2)
        frac = new - lo
        p_off, p_on = (
            _spread(p, lo, frac, zw, grid) for p in (p_off, p_on)
        )
    return mse, wrong


def _spread(p: torch.Tensor, lo: torch.Tensor, frac: torch.Tensor, zw: torch.Tensor, grid: int) -> torch.Tensor:
    mass = p[:, None] * zw[None, :]
    out = torch.zeros(grid, dtype=torch.float64)
    out.scatter_add_(0, lo.reshape(-1), (mass * (1 - frac)).reshape(-1))
    out.scatter_add_(0, (lo + 1).reshape(-1), (mass * frac).reshape(-1))
    return out


def _relu_moments(mu: torch.Tensor, var: float) -> tuple[torch.Tensor, torch.Tensor]:
    """E[(mu + Z)_+] and E[(mu + Z)_+^2] for Z ~ N(0, var), elementwise in mu."""
    if var <= 0:
        pos = mu.clamp(min=0)
        return pos, pos * pos
    sd = math.sqrt(var)
    r = mu / sd
    cdf = 0.5 * torch.erfc(-r / math.sqrt(2.0))
    pdf = torch.exp(-0.5 * r * r) / math.sqrt(2 * math.pi)
    return mu * cdf + sd * pdf, (mu * mu + var) * cdf + mu * sd * pdf


def uand_case(on: int, k: int, active: int, p: float, d: int, m: int = 0, d0: int = 0,
              correlated: bool = True) -> tuple[float, float]:
    """Mean and std of the U-AND read-out error of a k-input AND with ``on`` of its inputs active
    and ``active`` features active in all.

    Each shared neuron outputs (on - (k - 1) + N + Z + S)_+ with N ~ Binomial(s', p) its other
    active inputs (s' = active - on), the read-out averages about p^k d such neurons. With inputs
    in superposition (d0 > 0), Z is the interference of its ~p m other reads (variance p m l / d0,
    docs/theory.md 3.2, independent across neurons) and S that of the gate's own k reads (variance
    k l / d0, the same in every shared neuron, so averaging does not remove it). For d0 = 0 and
    on >= k - 1 this is docs/theory.md's mean s' p and std sqrt(s' (1 - p) / (p d)) (for k = 2).
    """
    others = active - on
    n = torch.arange(others + 1, dtype=torch.float64)
    pmf = torch.exp(torch.lgamma(torch.tensor(others + 1.0)) - torch.lgamma(n + 1) - torch.lgamma(others - n + 1)
                    + n * math.log(p) + (others - n) * math.log1p(-p)) if p < 1 else (n == others).double()
    if d0 <= 0:
        v_ind = v_sh = 0.0
    elif correlated:
        v_ind = p * (1 - p) * (m - k) * active / d0
        v_sh = (k + p * p * (m - k)) * active / d0
    else:
        v_ind, v_sh = p * m * active / d0, 0.0
    z = torch.linspace(-6, 6, 121, dtype=torch.float64) if v_sh > 0 else torch.zeros(1, dtype=torch.float64)
    zw = torch.exp(-0.5 * z * z)
    zw = zw / zw.sum()
    base = on - (k - 1) + n[None, :] + math.sqrt(v_sh) * z[:, None]  # (shared draws, N)
    m1, m2 = _relu_moments(base, v_ind)
    mean_s = (m1 * pmf).sum(1)  # neuron mean given S
    var_s = (m2 * pmf).sum(1) - mean_s**2
    mean = float((zw * mean_s).sum())
    between = float((zw * (mean_s - mean) ** 2).sum())
    within = float((zw * var_s).sum())
    target = 1.0 if on == k else 0.0
    return mean - target, math.sqrt(between + within * mean_inverse_count(d, p**k))


def mean_inverse_count(d: int, q: float) -> float:
    """E[1/c | c > 0] for c ~ Binomial(d, q): the read-out averages c shared neurons, and 1/c
    averaged over pairs exceeds 1/(q d) (Jensen); about 12% more at q d = 10."""
    c = torch.arange(1, d + 1, dtype=torch.float64)
    logpmf = (math.lgamma(d + 1) - torch.lgamma(c + 1) - torch.lgamma(d - c + 1)
              + c * math.log(q) + (d - c) * math.log1p(-q)) if q < 1 else torch.where(c == d, 0.0, -math.inf)
    pmf = torch.exp(logpmf)
    return float((pmf / c).sum() / pmf.sum())


# ---- circuits in superposition, 2025 construction ("Rotations in Superposition", section 6) -----

def cis_overlap(T: int, D: int, d: int, S: int) -> float:
    """E over circuits u != t of ((1/S) <e_t|e_u>)^2, approximated as d/D - 1/(S T) (eq. 6.3)."""
    return d / D - 1.0 / (S * T)


def cis_mse_active(layer: int, z: int, T: int, D: int, d: int, S: int,
                   cross: float, mean: float, own: float) -> float:
    """Eq. 6.41: expected |delta a|^2 of an active circuit at ``layer``, valid while no neuron
    that should be off switches on. ``cross`` = E_(u != v) |dw_u a_v|^2, ``mean`` = E |wbar a_v|^2,
    ``own`` = E |w_v a_v|^2 (restricted to the read-out's coordinates). The (layer - 1) term is
    the propagation of the previous layer's error through the T circuits' weights; the ``layer``
    term the overlap with the z - 1 other active circuits, added at every layer."""
    if layer == 0:
        return 0.0
    eps = cis_overlap(T, D, d, S)
    return (layer - 1) * T * eps**2 * (z * cross + (z - 1) * mean) + layer * eps * (z - 1) * own


def cis_mse_inactive(layer: int, z: int, T: int, D: int, d: int, S: int, size: float = 1.0) -> float:
    """Eq. 6.4 / 6.57: an inactive circuit reads only the overlap with the z active circuits,
    z (d/D - 1/(S T)) E|a_v|^2 at every layer >= 1 (``size`` = E|a_v|^2 on the read coordinates)."""
    return 0.0 if layer == 0 else z * cis_overlap(T, D, d, S) * size


def rotation_mse_active(layer: int, z: int, T: int, D: int, S: int) -> float:
    """Eq. 6.55: eq. 6.41 for the conditional rotations (d = 4): |dw_u a_v|^2 = |r_u x_v|^2 = 1,
    |wbar a_v|^2 = 2^2 + 2^2 = 8 and E|w_v a_v|^2 = 9 on the rotating coordinates."""
    return cis_mse_active(layer, z, T, D, 4, S, cross=1.0, mean=8.0, own=9.0)


def rotation_mse_inactive(layer: int, z: int, T: int, D: int, S: int) -> float:
    """Eq. 6.57: z (d/D - 1/(S T)) for the rotating vector (|x| = 1) of an inactive circuit."""
    return cis_mse_inactive(layer, z, T, D, 4, S)


# ---- compressed storage (a comment of Linsefors on "Some costs of superposition") -------------------

def storage_mse_random(T: int, D: int, p: float) -> float:
    """T Bernoulli(p) features along random unit vectors in D dimensions, each read as alpha <e_i, a>
    with the best scalar alpha = D / (D + T): the interference has variance T p / D and the
    MSE per feature is T p / (T + D)."""
    return T * p / (T + D)


def storage_mse_dedicated(T: int, D: int, p: float) -> float:
    """D of the T features stored exactly, the other T - D guessed as their mean p: MSE per
    feature p (1 - p) (T - D) / T."""
    return p * (1 - p) * max(T - D, 0) / T


# ---- trained toys (scenarios/library/toys, docs/theory.md 5) ----------------------------------

def two_in_one_losses(density: float, importance: float) -> dict[str, float]:
    """Expected loss per sample of the three solutions of two features (importance 1 and
    ``importance``, each on with probability ``density`` and then uniform in [0, 1]) in one
    dimension, x' = ReLU(w (w . x) + b):

    - ``dedicated_to_1``: w = (1, 0), feature 2 dropped to its best constant density/2: it pays
      its variance, importance (density/3 - density^2/4);
    - ``dedicated_to_2``: the same with the features' roles swapped: density/3 - density^2/4;
    - ``antipodal``: w = (1, -1), b = 0: exact unless both are on (density^2), when each output
      loses min(x1, x2), of mean square 1/6: (1 + importance) density^2 / 6.
    """
    variance = density / 3 - density**2 / 4
    return {"dedicated_to_1": importance * variance, "dedicated_to_2": variance,
            "antipodal": (1 + importance) * density**2 / 6}


def two_in_one_boundary(density: float) -> tuple[float, float] | None:
    """The relative importances between which the antipodal pair beats the better dedicated
    solution, where their losses cross: r = 2 p / (4 - 5 p) and its inverse; None from p = 4/7
    on, where the antipodal pair never wins."""
    if density >= 4 / 7:
        return None
    low = 2 * density / (4 - 5 * density)
    return low, 1 / low


def linear_and_mse(m: int, active: int) -> float:
    """Squared error per AND of the best linear read of the 0/1 inputs on the basis (exactly
    ``active`` of m on, each pair's AND t = x_i x_j): by symmetry the best read is affine in
    s = x_i + x_j (the other inputs sum to active - s), so it leaves Var t - Cov(s, t)^2 / Var s,
    with s hypergeometric: P(s = 2) = a(a-1) / (m(m-1)), P(s = 1) = 2a(m-a) / (m(m-1))."""
    both = active * (active - 1) / (m * (m - 1))
    one = 2 * active * (m - active) / (m * (m - 1))
    mean_s, mean_s2 = one + 2 * both, one + 4 * both
    var_s = mean_s2 - mean_s**2
    cov = 2 * both - mean_s * both
    return both * (1 - both) - (cov**2 / var_s if var_s > 0 else 0.0)


def dedicated_and_mse(m: int, active: int, d: int) -> float:
    """Squared error per AND of the dedicated solution with d neurons on 0/1 basis inputs
    (exactly ``active`` on): min(d, P) of the P = m(m-1)/2 ANDs computed exactly, one neuron
    ReLU(x_i + x_j - 1) each, the others read as their mean q = a(a-1) / (m(m-1)), of variance
    q(1 - q): (1 - min(d, P) / P) q (1 - q)."""
    pairs = m * (m - 1) // 2
    q = active * (active - 1) / (m * (m - 1))
    return (1 - min(d, pairs) / pairs) * q * (1 - q)


# ---- error correction in superposition (circuits.correction, docs/theory.md 7) ------------------

def _poisson(mu: float, top: int) -> torch.Tensor:
    k = torch.arange(top + 1, dtype=torch.float64)
    if mu <= 0:
        return (k == 0).double()
    return torch.exp(k * math.log(mu) - mu - torch.lgamma(k + 1))


def correction_step_reads(m: int, active: int, n: int, S: int, layers: int, grid: int = 240) -> list[torch.Tensor]:
    """Density evolution of an off feature's read in the step form (n neurons per group, S copies,
    lambda = m S / n features per neuron): the distribution of r_t at layers 0..L on a grid of
    ``grid`` + 1 points over [0, 1].

    At each layer a copy of t sits on a neuron held by an on feature with probability pi per on
    feature (pi = S (lambda - 1) / (m - 1)), and then holds 1; K such copies. Every other copy holds
    h(r + (A - mu) / S): its own feature's read r (the copy reads its feature's previous copies,
    like every copy), plus the on neurons among the (lambda - 1) S others it reads, A ~ Poisson(mu),
    mu = (lambda - 1) S^2 l_on / n, centred by the capped weights. So
    r' = (K + sum over S - K copies of h(r + (A_j - mu) / S)) / S, fresh at every layer, and the
    features read above 3/4 join the on ones (l_on = l + seized)."""
    lam = m * S / n
    pi = min(1.0, S * (lam - 1) / max(m - 1, 1))
    r = torch.linspace(0.0, 1.0, grid + 1, dtype=torch.float64)
    dist = torch.zeros(grid + 1, dtype=torch.float64)
    dist[0] = 1.0
    out = [dist.clone()]
    seized = 0.0
    for layer in range(1, layers + 1):
        on = active + seized
        mu = 0.0 if layer == 1 else (lam - 1) * S * S * on / n  # layer 1 reads the inputs directly
        top = int(mu + 12 * math.sqrt(mu + 1) + 4)
        pa = _poisson(mu, top)
        shift = (torch.arange(top + 1, dtype=torch.float64) - mu) / S
        # one copy's value given r: h(r + shift), on the grid, weighted by P(A)
        value = torch.clamp(2 * (r[:, None] + shift[None, :]) - 0.5, 0.0, 1.0) if layer > 1 else \
            torch.zeros(grid + 1, 1, dtype=torch.float64)
        pa_used = pa if layer > 1 else torch.ones(1, dtype=torch.float64)
        copy = torch.zeros(grid + 1, grid + 1, dtype=torch.float64)  # (r, copy value)
        copy.scatter_add_(1, torch.round(value * grid).long(), pa_used[None, :].expand_as(value).contiguous())
        kmax = min(S, math.ceil(on) + 3)
        pk = torch.tensor([_binomial(on, pi, k) for k in range(kmax + 1)], dtype=torch.float64)
        new = torch.zeros(grid + 1, dtype=torch.float64)
        sums = torch.zeros(grid + 1, S * grid + 1, dtype=torch.float64)
        sums[:, 0] = 1.0
        powers = [sums.clone()]
        for _ in range(S):
            sums = _convolve_rows(sums, copy)
            powers.append(sums)
        for k in range(kmax + 1):
            # K copies hold 1 (k grid units each), the other S - k copies their h values
            total = powers[S - k]  # (r, sum of S - k copy values in grid units)
            index = torch.clamp(torch.round((torch.arange(total.shape[1], dtype=torch.float64) + k * grid) / S)
                                .long(), max=grid)
            new += pk[k] * torch.zeros(grid + 1, dtype=torch.float64).index_add_(0, index, dist @ total)
        dist = new / new.sum()
        seized = (m - active) * float(dist[r > 0.75].sum())
        out.append(dist.clone())
    return out


def _binomial(trials: float, p: float, k: int) -> float:
    """P(Binomial(round(trials), p) = k), trials rounded to the nearest count."""
    t = int(round(trials))
    return math.comb(t, k) * p**k * (1 - p) ** (t - k) if 0 <= k <= t else 0.0


def _convolve_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise convolution of a (R, N) with b (R, M): (R, N + M - 1)."""
    length = a.shape[1] + b.shape[1] - 1
    fa = torch.fft.rfft(a, n=length)
    fb = torch.fft.rfft(b, n=length)
    return torch.clamp(torch.fft.irfft(fa * fb, n=length), min=0.0)


def correction_step_wrong(m: int, active: int, n: int, S: int, layers: int) -> list[float]:
    """Wrong features per sample at layers 0..L of the step form: the off features whose read
    passes 1/2 (``correction_step_reads``); the on ones saturate and are never lost here."""
    grid = 240
    r = torch.linspace(0.0, 1.0, grid + 1, dtype=torch.float64)
    return [(m - active) * float(d[r > 0.5].sum()) for d in correction_step_reads(m, active, n, S, layers, grid)]
