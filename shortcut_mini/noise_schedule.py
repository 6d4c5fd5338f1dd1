"""The diffusion baseline's noise schedule, in this book's time convention (t = 0 noise, t = 1 data).

A variance-preserving path ``x_t = alpha(t) x1 + sigma(t) x0`` with ``alpha^2 + sigma^2 = 1``
and the linear ``beta`` of DDPM (Ho et al., 2020) in its continuous form (Song et al., 2021,
VP-SDE): with ``tau = 1 - t`` the usual diffusion time (0 data, 1 noise),

    alpha(t)^2 = exp(-(beta_min tau + (beta_max - beta_min) tau^2 / 2)),

``beta_min = 0.1``, ``beta_max = 20``: the 1000-step DDPM schedule (beta from 1e-4 to 0.02). At
``t = 0`` the signal is small but not zero (``alpha^2 ~ 4e-5``), so an epsilon-prediction model
can still be turned into a data estimate there (DDIM's first step).
"""

from __future__ import annotations

import torch

__all__ = ["BETA_MIN", "BETA_MAX", "vp_alpha_sigma"]

BETA_MIN, BETA_MAX = 0.1, 20.0


def vp_alpha_sigma(
    t: torch.Tensor, beta_min: float = BETA_MIN, beta_max: float = BETA_MAX
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha(t), sigma(t))`` of the schedule above, in float32, the shape of ``t``."""
    tau = 1 - t.float()
    log_alpha2 = -(beta_min * tau + 0.5 * (beta_max - beta_min) * tau**2)
    alpha2 = torch.exp(log_alpha2)
    return alpha2.sqrt(), (-torch.expm1(log_alpha2)).clamp(min=0).sqrt()
