"""Facial destylization: Re-Destyle N-schedules and DualStyleGAN's optimization baseline.

Re-Destyle (Yoo), as this repository defines it (``shared/reference/destylization.md`` §4):

* **C1 chaining.** Round k runs a fresh ReStyle-pSp loop (average image and ``latent_avg`` start)
  with N_k iterations on the previous round's output image; round 1 runs on the portrait. Only this
  reading makes a smaller N "add average-face features", and it equals running the official
  ``inference_iterative.py`` once per round on the previous run's outputs.
* **C2 hand-off.** The image handed to the next round (and fed back between ReStyle iterations) is
  the full-resolution output average-pooled to the encoder resolution, in memory, as ReStyle does.
  ``handoff="early"`` instead stops the generator at the encoder resolution for the iterations
  inside a round whose image is only fed back (each round's last iteration stays full size):
  faster at 1024 (3 instead of 9 full syntheses for 5-3-1), *approximate*; its deviation is
  measured by ``tests/test_destylize.py`` and printed by ``benchmarks/table1_destylization.py``.
  (When the generator's output already has the encoder resolution, as in the tiny profile, the
  two modes are identical.)
* **C3 codes.** z_e* = round 1's final latent (the portrait's own code); z_i* = the last round's
  final latent (the realistic face).
* **C4 space.** Both codes are W+ (ReStyle's output space); ``codes_meta.json`` says so, and the
  DualStyleGAN tools of this repo read W+ codes without mapping them again.
* **C5 colour.** ``preserve_color`` copies z_e* entries 8.. into z_i* (DualStyleGAN's colour
  layers); off by default: the paper's pipeline is encoder-only.
* **C6 truncation.** Off by default; ``truncation=psi`` pulls z_i* toward ``latent_avg``
  (``truncation_center="mean"``) or toward 0 as DualStyleGAN does (``"zero"``). It is applied
  before the colour copy, so copied colour entries stay exactly z_e*'s.
* **C7 schedule.** "5-3-1" = rounds of N = 5, 3, 1; any sequence of positive integers; a single
  number is plain ReStyle. Every round's latents and images are returned.
* **C8 noise.** The registered noise buffers everywhere: deterministic for a given input, and a
  batch gives the same codes as its images one by one.

The baseline is DualStyleGAN's ``destylize.py`` optimization, step for step (§2 of the reference;
see :func:`baseline`).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .config import BASELINE, BaselineWeights, Schedule
from .imaging import pool
from .inversion import LastStep, Step, restyle
from .losses import id_loss, latent_std_loss, lr_ramp, noise_normalize_, noise_regularize
from .ops import use_backend

#: DualStyleGAN copies z_e[:, 8:18] into z_i: the layers from the second 64 px conv on (colour/texture).
COLOR_FROM = 8


METHODS = ("redestyle", "baseline")
HANDOFFS = ("pool", "early")
TRUNCATION_CENTERS = ("mean", "zero")
#: ``DestyleOptions.autocast`` -> torch dtype (None: float32 throughout, the official numerics)
AUTOCAST = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}

@dataclass
class Round(LastStep):
    """One Re-Destyle round: the image it encoded and every ReStyle iteration."""

    n_iters: int
    input: torch.Tensor  # [B, 3, P, P] the image this round encoded
    steps: list[Step]  # latent / image: the round's last iteration (W+, full-resolution output)


@dataclass
class Destylized:
    """Codes and images of a destylization (Re-Destyle or baseline)."""

    z_e: torch.Tensor  # [B, n_latent, D] the portrait's own code (extrinsic style code)
    z_i: torch.Tensor  # [B, n_latent, D] the realistic face's code (intrinsic style code)
    reconstruction: torch.Tensor  # [B, 3, S, S] decode of z_e
    image: torch.Tensor  # [B, 3, S, S] decode of z_i: the destylized face
    space: str  # "W+" (Re-Destyle) or "z+" (baseline, DualStyleGAN's encoder)
    rounds: list[Round] = field(default_factory=list)  # Re-Destyle only
    losses: list[float] = field(default_factory=list)  # baseline only: loss per step
    rendered: torch.Tensor | None = None  # baseline only: [B, 3, S, S] the image z_i was encoded from
    optimized: torch.Tensor | None = None  # baseline only: [B, n_latent, D] the optimised z+ after the colour copy


def _check_portraits(portraits: torch.Tensor, size: int | None = None) -> None:
    if portraits.ndim != 4 or portraits.shape[1] != 3 or portraits.shape[2] != portraits.shape[3]:
        raise ValueError(f"portraits must be [B, 3, P, P], got {tuple(portraits.shape)}")
    if size is not None and portraits.shape[-1] != size:
        raise ValueError(f"portraits are {portraits.shape[-1]} px but the encoder expects {size} px "
                         f"(the average image's size); resize them first")


def copy_color(z_i: torch.Tensor, z_e: torch.Tensor) -> torch.Tensor:
    """DualStyleGAN's colour preservation: z_i with entries 8.. replaced by z_e's ([B, n_latent, D])."""
    return torch.cat([z_i[:, :COLOR_FROM], z_e[:, COLOR_FROM:]], dim=1)


def truncate(latent: torch.Tensor, *, psi: float, center: torch.Tensor | float) -> torch.Tensor:
    """``center + psi * (latent - center)``: psi = 1 is the identity, psi = 0 gives the centre."""
    return center + psi * (latent - center)


def redestyle(
    encoder,
    decoder,
    portraits: torch.Tensor,
    *,
    schedule: str | int | Sequence[int] | Schedule = "5-3-1",
    latent_avg: torch.Tensor,
    avg_image: torch.Tensor,
    preserve_color: bool = False,
    truncation: float | None = None,
    truncation_center: str = "mean",
    handoff: str = "pool",
) -> Destylized:
    """Re-Destyle: ReStyle-pSp in rounds of decreasing N (module docstring: choices C1-C8).

    encoder: ReStyle ``BackboneEncoder`` (6-channel input); decoder: StyleGAN2 ``Generator``.
    portraits: [B, 3, P, P] in [-1, 1] at the encoder resolution (256 for FFHQ 1024);
    latent_avg: [n_latent, D]; avg_image: [3, P, P] (``zoo.average_image``).
    Returns z_e (round 1), z_i (last round, after the optional truncation / colour copy), their
    images [B, 3, S, S] and every round. Runs without autograd (inference only).
    """
    schedule = Schedule.parse(schedule)
    if handoff not in HANDOFFS:
        raise ValueError(f"handoff must be 'pool' (exact) or 'early' (approximate), got {handoff!r}")
    if truncation_center not in TRUNCATION_CENTERS:
        raise ValueError(f"truncation_center must be 'mean' or 'zero', got {truncation_center!r}")
    size = avg_image.shape[-1]
    _check_portraits(portraits, size)
    with torch.no_grad():
        rounds: list[Round] = []
        current = portraits
        for n_iters in schedule.rounds:
            steps = restyle(encoder, decoder, current, n_iters=n_iters, latent_avg=latent_avg,
                            avg_image=avg_image, early_feedback=handoff == "early")
            rounds.append(Round(n_iters, current, steps))
            current = pool(steps[-1].image, size)  # C2: what the next round encodes
        z_e, z_i = rounds[0].latent, rounds[-1].latent
        changed = False
        if truncation is not None and truncation != 1:
            center = latent_avg.unsqueeze(0) if truncation_center == "mean" else 0.0
            z_i, changed = truncate(z_i, psi=truncation, center=center), True
        if preserve_color:
            z_i, changed = copy_color(z_i, z_e), True
        image = decoder.decode(z_i, randomize_noise=False) if changed else rounds[-1].image
    return Destylized(z_e, z_i, rounds[0].image, image, "W+", rounds)


def _decode_zplus(g, z_plus: torch.Tensor, *, noise=None, truncation: float = 1.0) -> torch.Tensor:
    """g(z+): each entry mapped separately; registered noise unless ``noise``; truncation toward w = 0."""
    image, _ = g([z_plus], z_plus_latent=True, noise=noise, randomize_noise=False,
                 truncation=truncation, truncation_latent=0)
    return image


def image_seed(image: torch.Tensor, seed: int) -> int:
    """A 63-bit seed from ``seed`` and the exact float32 bits of one image [3, P, P].

    The baseline draws each image's noise maps from it, so the draws depend on the image itself,
    never on its position in a batch, on its batch companions or on what ran before (a resumed
    run gives the same codes).
    """
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return (zlib.crc32(data) * 0x9E3779B1 + seed * 1_000_003) % 2**63


def fresh_noise(g, images: torch.Tensor, *, seed: int) -> list[torch.Tensor]:
    """N(0, 1) maps [B, 1, r, r] of g's noise shapes (destylize.py: ``.normal_()``), per image.

    Image b's maps come from a CPU generator seeded by :func:`image_seed` (then moved to g's
    device), so they are the same on any device and in any batch.
    """
    ref = g.input.input
    shapes = [n.shape[1:] for n in g.registered_noise()]
    per_image = []
    for image in images:
        gen = torch.Generator().manual_seed(image_seed(image, seed))
        per_image.append([torch.randn(1, *shape, generator=gen) for shape in shapes])
    return [torch.cat(maps).to(ref) for maps in zip(*per_image)]


@dataclass
class BaselineStep:
    """One Adam iteration of the baseline, as passed to ``baseline(on_step=...)`` after the update."""

    index: int  # iteration i (0-based) of the n_steps schedule
    lr: float  # the learning rate the step used (lr_ramp(i / n_steps))
    terms: dict[str, torch.Tensor]  # "Lperc", "LID" (when there is an ID net), "Lreg", "Lnoise", "loss": [B], detached
    image: torch.Tensor  # [B, 3, P, P] g'(latent) pooled to P, before the update (detached)
    latent: torch.Tensor  # [B, n_latent, D] the optimised z+ after the update (its .grad: d loss / d latent)
    noises: list[torch.Tensor]  # the optimised noise maps after the update and renormalisation


def baseline_terms(g_prime, latent: torch.Tensor, noises: Sequence[torch.Tensor], portraits: torch.Tensor, *,
                   lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   id_embed: Callable[[torch.Tensor], torch.Tensor] | None,
                   weights: BaselineWeights) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The baseline's loss terms per image (destylize.py lines 158-180), differentiable.

    latent: [B, n_latent, D] z+; noises: [B, 1, r, r] maps; portraits: [B, 3, P, P] in [-1, 1].
    Returns ({"Lperc", "LID" (only with ``id_embed``), "Lreg", "Lnoise", "loss"} each [B], the
    image g'(latent) pooled to P). An image's terms depend only on its own latent and noise (the
    official means over the batch are taken per image; for B = 1 they are the official values);
    ``loss`` = Lperc + w_id LID + w_reg Lreg + w_noise Lnoise.
    """
    image = pool(_decode_zplus(g_prime, latent, noise=list(noises)), portraits.shape[-1])
    terms = {"Lperc": lpips(image, portraits)}
    if id_embed is not None:
        terms["LID"] = id_loss(id_embed, image, portraits, per_image=True)
    terms["Lreg"] = latent_std_loss(latent, per_image=True)
    terms["Lnoise"] = noise_regularize(noises, per_image=True)
    loss = terms["Lperc"] + weights.reg * terms["Lreg"] + weights.noise * terms["Lnoise"]
    if "LID" in terms:
        loss = loss + weights.id * terms["LID"]
    terms["loss"] = loss
    return terms, image


def baseline(
    encode_zplus: Callable[[torch.Tensor], torch.Tensor],
    g_prime,
    g,
    portraits: torch.Tensor,
    *,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    id_embed: Callable[[torch.Tensor], torch.Tensor] | None,
    n_steps: int = BASELINE.steps,
    lr: float = BASELINE.lr,
    weights: BaselineWeights = BASELINE.weights,
    truncation: float = BASELINE.truncation,
    preserve_color: bool = True,
    seed: int = 0,
    noise: Sequence[torch.Tensor] | None = None,
    stop_after: int | None = None,
    on_step: Callable[[BaselineStep], None] | None = None,
) -> Destylized:
    """DualStyleGAN's optimization destylization (``destylize.py``), step for step, per image.

    1. z_e = E(S): z+ codes of DualStyleGAN's pSp (``encoder.pt``; ``Models.encode_zplus``);
       the reconstruction is g(z_e) with the registered noise.
    2. Optimise a copy of z_e and fresh N(0, 1) noise maps [B, 1, r, r] (:func:`fresh_noise`,
       seeded per image by ``seed`` and the image; or ``noise``) with one Adam (lr 0.1 ramped by
       ``lr_ramp``: up over 5 %, cosine down over the last 25 %, 0 at step 0) for ``n_steps`` (300)
       steps through g' (z+ mapped per layer, no truncation), its output average-pooled to P:
       loss = LPIPS + 0.1 ID + 1 latent std + 1e5 noise regularisation (:func:`baseline_terms`),
       noise renormalised after each step.
    3. Colour preservation: latent[:, 8:] = z_e[:, 8:] -> ``optimized``.
    4. Render with the FFHQ g at truncation 0.7 toward w = **0** (``truncation_latent=0``, as the
       official script does) with the optimised noise -> ``rendered``, pooled to P.
    5. z_i = E(rendered), colour copy again; ``image`` = g(z_i) rendered the same way (the
       official visualisation "img_refine").

    The official script optimises one image at a time. A batch here optimises its images
    independently: every term is taken per image and the batch loss is their sum, noise is
    renormalised per image and Adam works elementwise, so each image gets its one-at-a-time
    optimisation (up to the rounding of batched kernels, which Adam amplifies where a gradient is
    tiny); for B = 1 it is the official loss. ``make_destylizer`` runs one image at a time.

    encode_zplus: images [B, 3, P, P] -> z+ codes [B, n_latent, D]; g_prime, g: Generators;
    portraits: [B, 3, P, P] in [-1, 1]; lpips: (x, y) -> per-pair distance [B];
    id_embed: ``irse.IDFeatures`` or None (no ID term). ``stop_after``: run only the first K
    iterations of the ``n_steps`` schedule, then post-process (inspection, parity tests).
    ``on_step``: called after every iteration with a :class:`BaselineStep`.
    """
    _check_portraits(portraits)
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    with _frozen(g_prime, lpips, id_embed):
        return _baseline(encode_zplus, g_prime, g, portraits, lpips=lpips, id_embed=id_embed, n_steps=n_steps,
                         lr=lr, weights=weights, truncation=truncation, preserve_color=preserve_color,
                         seed=seed, noise=noise, stop_after=stop_after, on_step=on_step)


@contextlib.contextmanager
def _frozen(*modules):
    """Switch off ``requires_grad`` of the modules' parameters for the block, then restore it.

    The baseline needs d loss / d latent and d loss / d noise only: weight gradients of g', the
    LPIPS and ID networks would be wasted work every step (``zoo`` builds them frozen already).
    """
    params = [p for m in modules if isinstance(m, torch.nn.Module) for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _baseline(encode_zplus, g_prime, g, portraits, *, lpips, id_embed, n_steps, lr, weights, truncation,
              preserve_color, seed, noise, stop_after, on_step) -> Destylized:
    size = portraits.shape[-1]
    with torch.no_grad():
        z_e = encode_zplus(portraits)
        reconstruction = _decode_zplus(g, z_e)
    start = fresh_noise(g, portraits, seed=seed) if noise is None else noise
    noises = [n.detach().clone().requires_grad_(True) for n in start]
    latent = z_e.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent, *noises], lr=lr)
    losses: list[float] = []
    for i in range(n_steps if stop_after is None else min(stop_after, n_steps)):
        step_lr = lr_ramp(i / n_steps, lr)
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        terms, image = baseline_terms(g_prime, latent, noises, portraits, lpips=lpips, id_embed=id_embed,
                                      weights=weights)
        loss = terms["loss"].sum()  # independent images: the sum's gradient is each image's own
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        noise_normalize_(noises, per_image=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(BaselineStep(i, step_lr, {k: v.detach() for k, v in terms.items()}, image.detach(),
                                 latent, noises))
    with torch.no_grad():
        optimized = latent.detach().clone()
        if preserve_color:
            optimized = copy_color(optimized, z_e)
        noise_out = [n.detach() for n in noises]
        rendered = _decode_zplus(g, optimized, noise=noise_out, truncation=truncation)
        z_i = encode_zplus(pool(rendered, size))
        if preserve_color:
            z_i = copy_color(z_i, z_e)
        image = _decode_zplus(g, z_i, noise=noise_out, truncation=truncation)
    return Destylized(z_e, z_i, reconstruction, image, "z+", losses=losses, rendered=rendered,
                      optimized=optimized)


def handoff_deviation(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Max / mean absolute difference and MSE of two tensors (the 'early' hand-off's error)."""
    d = (a - b).abs()
    return {"max_abs": d.max().item(), "mean_abs": d.mean().item(), "mse": F.mse_loss(a, b).item()}


# ------------------------------------------------------------------------------------------------
# Bound to a model bundle: what the CLI, the benchmark and the notebook call


@dataclass(frozen=True)
class DestyleOptions:
    """Every option of a destylization run (what ``codes_meta.json`` records)."""

    method: str = "redestyle"  # "redestyle" or "baseline"
    schedule: Schedule | str = Schedule((5, 3, 1))  # Re-Destyle rounds (a str is parsed once, here)
    preserve_color: bool = False  # Re-Destyle: copy z_e[:, 8:] into z_i (the baseline always does)
    truncation: float | None = None  # Re-Destyle: psi for z_i (None: off); baseline: BASELINE.truncation if None
    truncation_center: str = "mean"  # Re-Destyle truncation centre: "mean" (latent_avg) or "zero"
    handoff: str = "pool"  # Re-Destyle: "pool" (exact) or "early" (approximate)
    steps: int = BASELINE.steps  # baseline: Adam steps
    style: str | None = None  # baseline: g' style folder (<style>/finetune-000600.pt)
    joint_batch: bool = False  # baseline: optimise a batch's images in one Adam run (speed option)
    autocast: str = "off"  # Re-Destyle: "off" (fp32, official numerics), "bf16" or "fp16" autocast
    compile: bool = False  # Re-Destyle: torch.compile the encoder and the generator's decode

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        object.__setattr__(self, "schedule", Schedule.parse(self.schedule))
        if self.handoff not in HANDOFFS:
            raise ValueError(f"handoff must be 'pool' or 'early', got {self.handoff!r}")
        if self.truncation_center not in TRUNCATION_CENTERS:
            raise ValueError(f"truncation_center must be 'mean' or 'zero', got {self.truncation_center!r}")
        if self.truncation is not None and not 0 <= self.truncation <= 1:
            raise ValueError(f"truncation must be in [0, 1], got {self.truncation}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {', '.join(AUTOCAST)}, got {self.autocast!r}")
        if self.method == "baseline" and (self.autocast != "off" or self.compile):
            raise ValueError("autocast and compile apply to the redestyle method only (the baseline "
                             "keeps the official fp32 optimisation)")

    @property
    def space(self) -> str:
        return "W+" if self.method == "redestyle" else "z+"

    @property
    def baseline_truncation(self) -> float:
        """The baseline's render psi (toward w = 0): ``truncation``, else DualStyleGAN's 0.7."""
        return BASELINE.truncation if self.truncation is None else self.truncation

    def meta(self) -> dict:
        """The fields that determine the codes (written to / compared with codes_meta.json)."""
        if self.method == "redestyle":
            return {"method": self.method, "space": self.space, "variant": "restyle_psp (C3: z_e = round 1, "
                    "z_i = last round)", "schedule": str(self.schedule), "preserve_color": self.preserve_color,
                    "truncation": self.truncation, "truncation_center": self.truncation_center,
                    "handoff": self.handoff,
                    # only when set: fp32 eager runs keep the keys (and resume) of earlier versions
                    **({"autocast": self.autocast} if self.autocast != "off" else {}),
                    **({"compile": True} if self.compile else {})}
        return {"method": self.method, "space": self.space, "variant": "DualStyleGAN destylize.py",
                "steps": self.steps, "truncation": self.baseline_truncation,
                "truncation_center": "zero", "preserve_color": True, "style": self.style,
                "optimisation": "per image" + (" (joint batches)" if self.joint_batch else "")}


def baseline_arguments(models, options: DestyleOptions, *, seed: int = 0) -> dict:
    """The keyword arguments :func:`baseline` gets from a model bundle and ``options``.

    What ``make_destylizer`` (hence ``redestyle destylize --method baseline``) runs with; the
    parity test calls :func:`baseline` with exactly these. Needs ``dsg_zplus``, ``models.g_prime``
    and ``models.lpips``; ``models.id_features`` is used when present.
    """
    models.encoder("dsg_zplus")  # fail early with the list of what was built
    if models.g_prime is None or models.lpips is None:
        raise ValueError("the baseline needs models.g_prime and models.lpips: build_models(..., "
                         "methods=['dsg_zplus'], g_prime_style=STYLE, with_lpips=True)")
    return {"encode_zplus": models.encode_zplus, "g_prime": models.g_prime, "g": models.generator,
            "lpips": models.lpips, "id_embed": models.id_features, "n_steps": options.steps,
            "truncation": options.baseline_truncation, "seed": seed}


def _concat(results: Sequence[Destylized]) -> Destylized:
    """One Destylized of per-image results (losses: the per-step sums over the images)."""
    def cat(name):
        return torch.cat([getattr(r, name) for r in results])

    losses = [sum(step) for step in zip(*(r.losses for r in results))]
    return Destylized(cat("z_e"), cat("z_i"), cat("reconstruction"), cat("image"), "z+", losses=losses,
                      rendered=cat("rendered"), optimized=cat("optimized"))


def make_destylizer(
    models,
    options: DestyleOptions,
    *,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> Callable[[torch.Tensor], Destylized]:
    """images [B, 3, P, P] in [-1, 1] -> :class:`Destylized`, with ``models`` (a ``zoo.Models``).

    redestyle needs ``restyle_psp``; the baseline: see :func:`baseline_arguments`. The baseline
    optimises each image on its own, as the official script does (``options.joint_batch``: one
    Adam run over the batch, with per-image terms: the same optimisation, faster on a GPU, but
    batched kernels round differently and Adam amplifies last bits where a gradient is tiny, so a
    few elements differ by up to ~lr); each image's noise is seeded by ``seed`` and the image itself (:func:`fresh_noise`), so
    a result does not depend on the batch or on what ran before. ``progress(i, loss)``: called
    after each baseline iteration i with its loss (summed over the images optimised together).
    """
    if options.method == "redestyle":
        encoder, avg = models.encoder("restyle_psp"), models.latent_avg_for("restyle_psp")
        generator = models.decoder_for("restyle_psp")
        if options.compile:
            encoder, generator = compile_networks(encoder, generator)
        dtype = AUTOCAST[options.autocast]

        def run(images: torch.Tensor) -> Destylized:
            amp = (torch.autocast(images.device.type, dtype=dtype) if dtype is not None
                   else contextlib.nullcontext())
            # compiled graphs trace the reference ops (the CUDA kernels' autograd Functions would
            # split them)
            ops = use_backend("reference") if options.compile else contextlib.nullcontext()
            with amp, ops:
                return redestyle(encoder, generator, images, schedule=options.schedule,
                                 latent_avg=avg, avg_image=models.avg_image,
                                 preserve_color=options.preserve_color, truncation=options.truncation,
                                 truncation_center=options.truncation_center, handoff=options.handoff)

        return run
    kwargs = baseline_arguments(models, options, seed=seed)
    if progress is not None:
        kwargs["on_step"] = lambda step: progress(step.index, step.terms["loss"].sum().item())

    def run_baseline(images: torch.Tensor) -> Destylized:
        if options.joint_batch or images.shape[0] == 1:
            return baseline(portraits=images, **kwargs)
        return _concat([baseline(portraits=images[b : b + 1], **kwargs) for b in range(images.shape[0])])

    return run_baseline


class CompiledDecoder:
    """A generator whose ``decode`` is ``torch.compile``-d (what ``restyle`` and ``redestyle`` call);
    every other attribute is the generator's."""

    def __init__(self, generator):
        self.generator = generator
        self.decode = torch.compile(generator.decode, dynamic=False)

    def __getattr__(self, name):
        return getattr(self.generator, name)


def compile_networks(encoder, generator):
    """(compiled encoder, :class:`CompiledDecoder`) for Re-Destyle; compilation happens on the first
    call of each input shape and dtype (minutes for the 1024 generator)."""
    return torch.compile(encoder, dynamic=False), CompiledDecoder(generator)


# ------------------------------------------------------------------------------------------------
# Figures 2-3 (notebooks/02_n_schedule_destylization.ipynb): the data; the figures are in experiments.py


def run_schedules(models, portraits: Mapping[str, torch.Tensor], schedules: Sequence[str], *,
                  handoff: str = "pool") -> dict[str, Destylized]:
    """Re-Destyle every portrait (name -> [1, 3, P, P]) with each schedule: schedule -> result."""
    x = torch.cat(list(portraits.values()))
    results = {}
    for spec in schedules:
        options = DestyleOptions(schedule=spec, handoff=handoff)
        results[str(options.schedule)] = make_destylizer(models, options)(x)
    return results


def latent_distance_rows(results: Mapping[str, Destylized], latent_avg: torch.Tensor) -> list[dict]:
    """Per schedule and round: mean over portraits and layers of ||w - latent_avg||_2.

    A smaller value = a code closer to the average face (what lowering N should show).
    latent_avg: [n_latent, D]. Rows: schedule, round, N, dist_to_avg.
    """
    rows = []
    for spec, result in results.items():
        for k, r in enumerate(result.rounds):
            dist = (r.latent - latent_avg.unsqueeze(0)).norm(dim=-1).mean().item()
            rows.append({"schedule": spec, "round": k + 1, "N": r.n_iters, "dist_to_avg": dist})
    return rows


def tradeoff_rows(results: Mapping[str, Destylized], portraits: Mapping[str, torch.Tensor],
                  latent_avg: torch.Tensor) -> list[dict]:
    """What the schedule trades, per schedule and round (means over portraits).

    dist_to_avg: mean over W+ layers of ||w - latent_avg||_2 (smaller = nearer the average face);
    mse_to_portrait: mean squared difference in [-1, 1] between the round's output (pooled to P)
    and the portrait (smaller = closer to the input). latent_avg: [n_latent, D].
    """
    x = torch.cat(list(portraits.values()))
    rows = []
    for spec, result in results.items():
        for k, r in enumerate(result.rounds):
            dist = (r.latent - latent_avg.unsqueeze(0)).norm(dim=-1).mean().item()
            mse = F.mse_loss(pool(r.image, x.shape[-1]), x.to(r.image)).item()
            rows.append({"schedule": spec, "round": k + 1, "N": r.n_iters, "dist_to_avg": dist,
                         "mse_to_portrait": mse})
    return rows
