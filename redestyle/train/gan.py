"""Adversarial losses, lazy regularisers and EMA of rosinality's StyleGAN2 training (DualStyleGAN ``util.py``).

Math as in reference/dualstylegan.md §3; all functions are pure over tensors and modules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def d_logistic_loss(real_pred: Tensor, fake_pred: Tensor) -> Tensor:
    """mean softplus(-D(real)) + mean softplus(D(fake)); predictions [B, 1] -> scalar."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred: Tensor) -> Tensor:
    """mean softplus(-D(fake)); [B, 1] -> scalar."""
    return F.softplus(-fake_pred).mean()


def d_r1_loss(real_pred: Tensor, real_img: Tensor) -> Tensor:
    """R1: batch mean of ||d sum D(real) / d real||^2; ``real_img`` must require grad."""
    (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def g_path_regularize(
    fake_img: Tensor, latents: Tensor, mean_path_length: Tensor, *, decay: float = 0.01,
    noise: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Path-length penalty -> (penalty, new running mean (detached), mean path length (detached)).

    fake_img: [B, 3, H, W] made from ``latents`` [B, n_latent, D] (which require grad).
    y ~ N(0, 1) / sqrt(H W); J = d sum(fake * y) / d latents; length = sqrt(mean_layers sum_D J^2);
    running mean a <- a + decay (mean length - a); penalty = mean (length - a)^2.
    noise: an N(0, 1) tensor shaped like fake_img (drawn here when None); it is scaled here.
    """
    noise = torch.randn_like(fake_img) if noise is None else noise
    noise = noise / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
    (grad,) = torch.autograd.grad((fake_img * noise).sum(), latents, create_graph=True)
    lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
    path_mean = mean_path_length + decay * (lengths.mean() - mean_path_length)
    penalty = (lengths - path_mean).pow(2).mean()
    return penalty, path_mean.detach(), lengths.mean().detach()


@torch.no_grad()
def accumulate(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema_param <- decay * ema_param + (1 - decay) * param for the named parameters (not buffers)."""
    params = dict(model.named_parameters())
    for name, p in ema.named_parameters():
        p.mul_(decay).add_(params[name].detach(), alpha=1 - decay)


def requires_grad(module: nn.Module | Iterable[nn.Parameter], flag: bool) -> None:
    """Switch requires_grad of a module's (or an iterable's) parameters."""
    params = module.parameters() if isinstance(module, nn.Module) else module
    for p in params:
        p.requires_grad_(flag)


def mixing_noise(
    batch: int, dim: int, prob: float, *, device: torch.device, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Random intrinsic z: with probability ``prob`` two [B, dim] codes (style mixing), else one."""
    n = 2 if prob > 0 and torch.rand((), generator=generator).item() < prob else 1
    return [torch.randn(batch, dim, generator=generator).to(device) for _ in range(n)]
