"""A plain sparse autoencoder (L1 penalty), the baseline dictionary method.

    f = ReLU((x - b_dec) W_enc^T + b_enc),   x_hat = f W_dec^T + b_dec,
    loss = mean |x - x_hat|^2 + l1 * mean sum_i f_i |W_dec[:, i]|

with the decoder's columns the dictionary. Adam; data from a function that draws batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm


@dataclass
class SAE:
    enc: torch.Tensor  # (latents, n)
    enc_bias: torch.Tensor  # (latents,)
    dec: torch.Tensor  # (n, latents)
    dec_bias: torch.Tensor  # (n,)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.dec_bias) @ self.enc.T + self.enc_bias)

    @property
    def dictionary(self) -> torch.Tensor:
        """(latents, n) decoder directions."""
        return self.dec.T


def train_sae(draw: Callable[[int], torch.Tensor], n: int, latents: int, steps: int, batch: int,
              l1: float, lr: float, generator: torch.Generator, progress: bool = False) -> tuple[SAE, float]:
    """Train on batches ``draw(batch)`` of (batch, n) activations; returns the SAE and its last
    reconstruction MSE (per sample, summed over the n coordinates)."""
    dec = torch.randn(n, latents, generator=generator)
    dec = dec / dec.norm(dim=0, keepdim=True)
    params = [(0.1 * dec.T).clone().requires_grad_(), torch.zeros(latents, requires_grad=True),
              dec.clone().requires_grad_(), torch.zeros(n, requires_grad=True)]
    enc, enc_bias, dec_w, dec_bias = params
    opt = torch.optim.Adam(params, lr=lr)
    mse = float("nan")
    for _ in tqdm(range(steps), desc="sae", disable=not progress, leave=False):
        x = draw(batch)
        f = torch.relu((x - dec_bias) @ enc.T + enc_bias)
        x_hat = f @ dec_w.T + dec_bias
        recon = ((x_hat - x) ** 2).sum(dim=1).mean()
        loss = recon + l1 * (f * dec_w.norm(dim=0)).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mse = float(recon.detach())
    with torch.no_grad():
        return SAE(enc.detach().clone(), enc_bias.detach().clone(), dec_w.detach().clone(),
                   dec_bias.detach().clone()), mse
