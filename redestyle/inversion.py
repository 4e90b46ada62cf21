"""StyleGAN inversion: single-pass encoders, ReStyle's iterative refinement, HyperStyle, projection.

Every function is pure over tensors and returns every iteration (or recorded step) so figures can
show the trajectory. Images are [B, 3, H, W] in [-1, 1]; latents are W+ [B, n_latent, style_dim].
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import METHODS
from .imaging import pool
from .losses import lr_ramp, noise_normalize_, noise_regularize
from .nets.hyperstyle import HyperNetwork, layer_shapes_of


class LastStep:
    """``latent`` and ``image`` of the last of ``self.steps`` (the answer of a run of steps)."""

    steps: list

    @property
    def latent(self) -> torch.Tensor:
        """[B, n_latent, D] W+ of the last step."""
        return self.steps[-1].latent

    @property
    def image(self) -> torch.Tensor:
        """[B, 3, S, S] output of the last step."""
        return self.steps[-1].image


@dataclass
class Step:
    """One iteration (or recorded optimization step) of an inversion."""

    latent: torch.Tensor  # [B, n_latent, style_dim] W+
    image: torch.Tensor  # [B, 3, S, S] generator output at full resolution
    deltas: list | None = None  # HyperStyle weight deltas of this iteration


@dataclass
class Inversion(LastStep):
    """Result of :func:`invert`: all steps, the last one is the answer."""

    method: str
    steps: list[Step]
    seconds: float  # wall time of the whole batch
    losses: list[float] = field(default_factory=list)  # optimization only


@torch.no_grad()
def encode_once(encoder, decoder, images: torch.Tensor, *, latent_avg: torch.Tensor) -> Step:
    """pSp / e4e: one encoder pass, codes + latent_avg, decoded with the registered noise.

    images: [B, 3, P, P] at the encoder resolution; latent_avg: [n_latent, D].
    """
    codes = encoder(images) + latent_avg.unsqueeze(0)
    return Step(codes, decoder.decode(codes, randomize_noise=False))


def restyle_step(encoder, decode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                 feedback: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One ReStyle iteration: latent' = encoder(cat(images, feedback)) + latent, image = decode(latent').

    images, feedback: [B, 3, P, P] (feedback: the average image, then the previous output pooled
    to P); latent: [B, n_latent, D]. The one iteration that inference (:func:`restyle`), the
    miniature world's encoder training and ``benchmarks/restyle_iteration.py`` run; gradients flow
    unless the caller stops them.
    """
    latent = encoder(torch.cat([images, feedback], dim=1)) + latent
    return latent, decode(latent)


def restyle(
    encoder,
    decoder,
    images: torch.Tensor,
    *,
    n_iters: int,
    latent_avg: torch.Tensor,
    avg_image: torch.Tensor,
    early_feedback: bool = False,
) -> list[Step]:
    """ReStyle's iterative residual refinement (restyle ``utils/inference_utils.run_on_batch``).

    Iteration 1 encodes ``cat(images, avg_image)`` and adds ``latent_avg``; iteration t > 1 encodes
    ``cat(images, pool(previous image))`` and adds the previous latent. Every iteration decodes
    with the registered noise buffers. The image fed back is the full-resolution output pooled to
    the encoder resolution, exactly as ReStyle does.

    images: [B, 3, P, P] in [-1, 1] (P = encoder resolution, 256 at FFHQ 1024);
    latent_avg: [n_latent, D]; avg_image: [3, P, P]. Returns ``n_iters`` steps.
    ``early_feedback=True`` (approximate, opt-in): iterations whose image is only fed back stop the
    generator at P (its P-level RGB, not the pooled full image); those steps hold P-sized images and
    only the last iteration is synthesised at full resolution.
    """
    if n_iters < 1:
        raise ValueError(f"n_iters must be >= 1, got {n_iters}")
    size = images.shape[-1]
    batch = images.shape[0]
    latent = latent_avg.unsqueeze(0).expand(batch, -1, -1)
    feedback = avg_image.unsqueeze(0).expand(batch, -1, -1, -1).to(images.dtype)
    steps = []
    for t in range(n_iters):
        stop_at = size if early_feedback and t < n_iters - 1 else None
        latent, image = restyle_step(encoder, functools.partial(decoder.decode, randomize_noise=False,
                                                                stop_at=stop_at), images, feedback, latent)
        steps.append(Step(latent, image))
        feedback = pool(image, size)
    return steps


def project(
    decoder,
    images: torch.Tensor,
    *,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_steps: int = 1000,
    lr: float = 0.1,
    noise_level: float = 0.05,
    noise_ramp: float = 0.75,
    noise_weight: float = 1e5,
    mse_weight: float = 0.0,
    n_mean_latent: int = 10000,
    w_plus: bool = True,
    record_every: int | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[list[Step], list[float]]:
    """Latent projection as in rosinality's ``projector.py`` (the sixth method of Fig. 1).

    Starts from the mean w (over ``n_mean_latent`` mapped samples) and optimizes the latent (W+ by
    default) together with the 17 noise maps with Adam: LPIPS(VGG) to the target + ``noise_weight``
    x the noise autocorrelation penalty (+ optional MSE), a learning rate ramped by
    :func:`redestyle.losses.lr_ramp`, a decaying latent perturbation (``noise_level`` x the latent
    std, ramped to zero over the first ``noise_ramp`` of the run), noise maps renormalised after
    each step.

    images: [B, 3, P, P] in [-1, 1]; the generator output is average-pooled to P for the losses.
    Returns (steps recorded every ``record_every`` steps and at the end, per-step losses).
    """
    device = images.device
    size = images.shape[-1]
    with torch.no_grad():
        z = torch.randn(n_mean_latent, decoder.style_dim, device=device, generator=generator)
        w_samples = decoder.mapping(z)
        w_mean = w_samples.mean(0, keepdim=True)
        w_std = ((w_samples - w_mean).pow(2).sum() / n_mean_latent).sqrt().item()
    batch = images.shape[0]
    start = w_mean.unsqueeze(1).repeat(batch, decoder.n_latent if w_plus else 1, 1)
    latent = start.detach().clone().requires_grad_(True)
    noises = [n.repeat(batch, 1, 1, 1).requires_grad_(True) for n in decoder.make_noise(generator=generator)]
    optimizer = torch.optim.Adam([latent, *noises], lr=lr)
    steps: list[Step] = []
    losses: list[float] = []
    for i in range(n_steps):
        t = i / n_steps
        for group in optimizer.param_groups:
            group["lr"] = lr_ramp(t, lr)
        strength = w_std * noise_level * max(0.0, 1.0 - t / noise_ramp) ** 2
        jitter = torch.randn(latent.shape, device=device, generator=generator) * strength
        w = latent + jitter
        w = w if w_plus else w.expand(-1, decoder.n_latent, -1)
        image = decoder.decode(w, noise=noises)
        small = pool(image, size)
        loss = lpips(small, images).sum() + noise_weight * noise_regularize(noises)
        if mse_weight:
            loss = loss + mse_weight * F.mse_loss(small, images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        noise_normalize_(noises)
        losses.append(loss.item())
        if progress is not None:
            progress(i, losses[-1])
        last = i == n_steps - 1
        if last or (record_every and (i + 1) % record_every == 0):
            with torch.no_grad():
                final = latent.detach() if w_plus else latent.detach().expand(-1, decoder.n_latent, -1)
                steps.append(Step(final.clone(), decoder.decode(final, noise=[n.detach() for n in noises])))
    return steps, losses


# --------------------------------------------------------------------------------------------
# HyperStyle's loop (hyperstyle utils/inference_utils.py run_inversion, without opts)


@dataclass(frozen=True)
class HyperStyleStep:
    """One HyperStyle iteration.

    latent: [B, n_latent, style_dim] W+ codes (the W-encoder inversion; the same every iteration).
    image: [B, 3, size, size] decoder output at full resolution.
    deltas: accumulated weight deltas fed to the decoder, one per generator layer in output order
        ([B, out, in, k, k], or None for untuned layers).
    """

    latent: Tensor
    image: Tensor
    deltas: tuple[Tensor | None, ...]


def w_inversion(
    w_encoder: nn.Module, decoder: nn.Module, images: Tensor, *, latent_avg: Tensor
) -> tuple[Tensor, Tensor]:
    """HyperStyle's initial inversion: codes = W-encoder(images) + latent_avg, image = G(codes).

    images: [B, 3, S, S] in [-1, 1]; latent_avg: [n_latent, style_dim] (or broadcastable, e.g.
    [style_dim]). Returns (codes [B, n_latent, style_dim], full-resolution image [B, 3, size, size]),
    decoded with the registered noise buffers. Runs without gradients, as in the official model.
    """
    with torch.no_grad():
        codes = w_encoder(images) + latent_avg.to(images.dtype)
        image = decoder.decode(codes, randomize_noise=False)
    return codes, image


def _check_deltas_fit(hypernet: HyperNetwork, decoder: nn.Module) -> None:
    expected = layer_shapes_of(decoder)
    if tuple(hypernet.layer_shapes) != expected:
        raise ValueError(
            f"hypernetwork layer shapes {[tuple(s) for s in hypernet.layer_shapes]} do not match the "
            f"decoder's {[tuple(s) for s in expected]}"
        )


def iterate_hyperstyle(
    hypernet: HyperNetwork,
    w_encoder: nn.Module | None,
    decoder: nn.Module,
    images: Tensor,
    *,
    n_iters: int = 5,
    latent_avg: Tensor | None = None,
    initial: tuple[Tensor, Tensor] | None = None,
) -> Iterator[HyperStyleStep]:
    """Yield the ``n_iters`` HyperStyle iterations one by one (streaming form of ``hyperstyle_invert``).

    images: [B, 3, S, S] in [-1, 1] (S = hypernet.input_size). ``initial`` = (codes, image) skips
    the W inversion (e.g. to reuse ``w_inversion``'s result); otherwise ``w_encoder`` and
    ``latent_avg`` are required. Iteration t: deltas_t = hypernet(cat[images, pool(image_{t-1})]),
    summed with the previous iteration's (None stays None), image_t = decoder(codes; deltas_t) with
    the registered noise. Gradients flow unless the caller disables them.
    """
    # Checked here, not inside the generator below, so that mistakes surface at the call.
    if n_iters < 1:
        raise ValueError(f"n_iters must be >= 1, got {n_iters}")
    _check_deltas_fit(hypernet, decoder)
    size = hypernet.input_size
    if images.ndim != 4 or images.shape[1:] != (3, size, size):
        raise ValueError(f"images must be [B, 3, {size}, {size}], got {tuple(images.shape)}")
    if initial is None and (w_encoder is None or latent_avg is None):
        raise ValueError("pass w_encoder and latent_avg, or initial=(codes, image)")
    return _iterations(hypernet, w_encoder, decoder, images, n_iters, latent_avg, initial)


def _iterations(
    hypernet: HyperNetwork,
    w_encoder: nn.Module | None,
    decoder: nn.Module,
    images: Tensor,
    n_iters: int,
    latent_avg: Tensor | None,
    initial: tuple[Tensor, Tensor] | None,
) -> Iterator[HyperStyleStep]:
    if initial is None:
        initial = w_inversion(w_encoder, decoder, images, latent_avg=latent_avg)
    codes, image = initial
    deltas: list[Tensor | None] | None = None
    for _ in range(n_iters):
        # HyperStyle's face_pool: the output pooled to the input size (a 4x4 block mean at 1024).
        step = hypernet(torch.cat([images, pool(image, images.shape[-1])], dim=1))
        if deltas is None:
            deltas = step
        else:
            deltas = [None if d is None else d + s for d, s in zip(deltas, step)]
        image = decoder.decode(codes, randomize_noise=False, weights_deltas=deltas)
        yield HyperStyleStep(latent=codes, image=image, deltas=tuple(deltas))


def hyperstyle_invert(
    hypernet: HyperNetwork,
    w_encoder: nn.Module | None,
    decoder: nn.Module,
    images: Tensor,
    *,
    n_iters: int = 5,
    latent_avg: Tensor | None = None,
    initial: tuple[Tensor, Tensor] | None = None,
) -> list[HyperStyleStep]:
    """HyperStyle inversion (``run_inversion`` with every intermediate result): one step per iteration.

    See ``iterate_hyperstyle`` for the arguments. Every step keeps its accumulated deltas
    (about 100 MB per image and step for the 1024 model); stream ``iterate_hyperstyle`` and keep
    what you need when memory matters.
    """
    return list(
        iterate_hyperstyle(
            hypernet,
            w_encoder,
            decoder,
            images,
            n_iters=n_iters,
            latent_avg=latent_avg,
            initial=initial,
        )
    )


def invert(method: str, images: torch.Tensor, models, *, n_iters: int = 5, n_steps: int = 1000,
           generator: torch.Generator | None = None, **project_kwargs) -> Inversion:
    """One interface for the six methods of Fig. 1.

    method: one of :data:`redestyle.config.METHODS`; images: [B, 3, P, P] in [-1, 1] at the encoders' resolution;
    models: a :class:`redestyle.zoo.Models` bundle (generator, latent_avg, encoders, LPIPS).
    ``n_iters`` applies to ReStyle and HyperStyle, ``n_steps`` to the optimization.
    """
    if method not in METHODS:
        raise ValueError(f"unknown inversion method {method!r}; choose from {', '.join(METHODS)}")
    g, avg = models.decoder_for(method), models.latent_avg_for(method)
    start = time.perf_counter()
    losses: list[float] = []
    if method in ("psp", "e4e"):
        with torch.no_grad():
            steps = [encode_once(models.encoder(method), g, images, latent_avg=avg)]
    elif method in ("restyle_psp", "restyle_e4e"):
        with torch.no_grad():
            steps = restyle(models.encoder(method), g, images, n_iters=n_iters, latent_avg=avg,
                            avg_image=models.avg_image_for(method))
    elif method == "hyperstyle":
        hypernet, w_encoder = models.encoder("hyperstyle")
        with torch.no_grad():
            steps = [Step(s.latent, s.image, list(s.deltas)) for s in hyperstyle_invert(
                hypernet, w_encoder, g, images, n_iters=n_iters, latent_avg=models.latent_avg_for(method))]
    else:
        steps, losses = project(g, images, lpips=models.lpips, n_steps=n_steps,
                                generator=generator, **project_kwargs)
    return Inversion(method, steps, time.perf_counter() - start, losses)
