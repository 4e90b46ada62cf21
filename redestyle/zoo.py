"""Model bundles per profile: the official networks from a weights folder, or the tiny ones.

``build_models("tiny")`` constructs every network with seeded random weights (same classes as
the official models, small widths; see ``config.PROFILES``). ``build_models("mini")`` loads the
same small networks trained on the miniature world (``redestyle/miniature/weights``, shipped in
the repo). ``build_models("ffhq1024",
weights_dir=...)`` loads the official files through ``redestyle.checkpoints`` (strict loads,
errors that name the missing file and where to get it). Only the methods asked for are built.
"""

from __future__ import annotations

import copy
import functools
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoints as ck
from .config import METHODS, Profile, get_profile
from .imaging import pool
from .miniature.models import (
    ID_NETWORK_LABEL,
    PERCEPTUAL_LABEL,
    WEIGHTS_DIR,
    build_encoder,
    load_generator_file,
    load_id_features,
    load_into,
    load_lpips,
    weights_file,
)
from .nets import encoders as enc
from .nets.hyperstyle import SHARED_LAYERS, HyperNetwork, WEncoder, layer_shapes_of
from .nets.irse import IRSE_WIDTHS, Backbone, IDFeatures
from .nets.lpips_vgg import LPIPS
from .nets.stylegan2 import Generator

#: Fig. 1 methods -> official checkpoint file(s).
ENCODER_FILES = {
    "psp": "psp_ffhq_encode.pt",
    "e4e": "e4e_ffhq_encode.pt",
    "restyle_psp": "restyle_psp_ffhq_encode.pt",
    "restyle_e4e": "restyle_e4e_ffhq_encode.pt",
    "hyperstyle": "hyperstyle_ffhq.pt",
    "dsg_zplus": "encoder.pt",
}
GENERATOR_FILE = "stylegan2-ffhq-config-f.pt"
ID_FILE = "model_ir_se50.pth"
VGG16_FILE = "vgg16-397923af.pth"
W_ENCODER_FILE = "faces_w_encoder.pt"
#: g' of the destylization baseline: StyleGAN2 fine-tuned on a style set (DualStyleGAN finetune_stylegan.py).
G_PRIME_FILE = "{style}/finetune-000600.pt"
#: Relative size of the tiny profile's seeded "fine-tuning" perturbation of the generator weights.
TINY_G_PRIME_PERTURBATION = 0.05


def average_image(decoder, latent_avg: torch.Tensor, *, pool_size: int) -> torch.Tensor:
    """ReStyle's average image: decode ``latent_avg`` [n_latent, D] (registered noise), pool.

    Returns [3, pool_size, pool_size] (restyle ``utils/inference_utils.get_average_image``).
    """
    image = decoder.decode(latent_avg.unsqueeze(0), randomize_noise=False)
    return pool(image, pool_size)[0].detach()


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Models:
    """The networks one notebook or command needs, on one device, in eval mode."""

    profile: Profile
    generator: torch.nn.Module
    latent_avg: torch.Tensor  # [n_latent, D] of ReStyle-pSp (the destylizer)
    encoders: dict = field(default_factory=dict)  # method -> module (hyperstyle: (hypernet, w_encoder))
    latent_avgs: dict = field(default_factory=dict)  # method -> [n_latent, D]
    lpips: torch.nn.Module | None = None
    id_features: torch.nn.Module | None = None  # IR-SE50 ArcFace (None when its weights are absent)
    pretrained: bool = False  # trained weights: official, or mini's (False: tiny seeded random weights)
    g_prime: torch.nn.Module | None = None  # the baseline's fine-tuned generator (build_models(g_prime_style=...))
    zplus_from_avg: bool = False  # encoder.pt opts.start_from_latent_avg: add latent_avg to its z+ codes
    loss_nets: dict = field(default_factory=dict)  # loss network -> what it runs on (file, or random / none)
    decoders: dict = field(default_factory=dict)  # method -> its checkpoint's own decoder, where it differs
    _avg_images: dict = field(default_factory=dict)  # method -> [3, P, P] (decoded once)

    def encoder(self, method: str):
        try:
            return self.encoders[method]
        except KeyError:
            raise KeyError(f"method {method!r} was not built; built: {sorted(self.encoders)}") from None

    def latent_avg_for(self, method: str) -> torch.Tensor:
        return self.latent_avgs.get(method, self.latent_avg)

    def decoder_for(self, method: str) -> torch.nn.Module:
        """The StyleGAN2 a method decodes with: its checkpoint's ``decoder.*`` (what the official
        pSp / e4e / ReStyle / HyperStyle code loads) where that differs from ``generator``."""
        return self.decoders.get(method, self.generator)

    def avg_image_for(self, method: str) -> torch.Tensor:
        """ReStyle's average image [3, P, P] of a method: its decoder at its latent_avg (cached)."""
        if method not in self._avg_images:
            self._avg_images[method] = average_image(self.decoder_for(method), self.latent_avg_for(method),
                                                     pool_size=self.profile.pool_size)
        return self._avg_images[method]

    @property
    def avg_image(self) -> torch.Tensor:
        """ReStyle-pSp's average image [3, P, P] (the destylizer's; decoded once, cached)."""
        return self.avg_image_for("restyle_psp")

    @property
    def label(self) -> str:
        return self.profile.label

    def encode_zplus(self, images: torch.Tensor) -> torch.Tensor:
        """DualStyleGAN's z+ pSp (``encoder.pt``, method "dsg_zplus"): images -> z+ codes.

        images: [B, 3, P, P] in [-1, 1] at the encoder resolution. Returns [B, n_latent, D] z+
        codes, to be mapped per layer (``Generator(..., z_plus_latent=True)``). ``latent_avg`` is
        added only when the checkpoint's opts say ``start_from_latent_avg`` (DualStyleGAN
        model/encoder/psp.py adds it before the mapping; encoders.md §6: the flag of the
        published file is unknown, so it is read from the file, never assumed).
        """
        codes = self.encoder("dsg_zplus")(images)
        if self.zplus_from_avg:
            codes = codes + self.latent_avgs["dsg_zplus"].unsqueeze(0)
        return codes

    def to(self, device: str | torch.device) -> Models:
        """Move every network and tensor to ``device`` (in place); returns self."""
        device = torch.device(device)
        modules = [self.generator, self.g_prime, self.lpips, self.id_features, *self.decoders.values()]
        for value in self.encoders.values():
            modules += list(value) if isinstance(value, tuple) else [value]
        for m in modules:
            if m is not None:
                m.to(device)
        self.latent_avg = self.latent_avg.to(device)
        self.latent_avgs = {k: v.to(device) for k, v in self.latent_avgs.items()}
        self._avg_images = {k: v.to(device) for k, v in self._avg_images.items()}
        return self


def _encoder_classes() -> dict:
    """Fig. 1 method -> encoder class (DualStyleGAN's z+ encoder is a pSp GradualStyleEncoder)."""
    return {
        "psp": enc.GradualStyleEncoder,
        "e4e": enc.Encoder4Editing,
        "restyle_psp": enc.BackboneEncoder,
        "restyle_e4e": enc.ProgressiveBackboneEncoder,
        "dsg_zplus": enc.GradualStyleEncoder,
    }


def seeded(name: str, seed: int, build):
    """``build()`` under a private RNG seeded by (name, seed): order-independent init.

    The global RNG state is restored afterwards; every random network of the package is built
    through this (train/models.py too), so a network's weights depend only on its name and seed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((zlib.crc32(name.encode()) ^ (seed * 0x9E3779B1)) % 2**31)
        return build()


def _damp_heads(encoder: torch.nn.Module, factor: float = 0.1) -> torch.nn.Module:
    """Scale the map2style output layers of a random encoder by ``factor``.

    With unit-scale random heads the ReStyle loop's residuals grow several-fold per iteration (the
    parity fixtures met the same effect); 0.1 keeps the tiny profile's loops bounded.
    """
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.startswith("styles.") and ".linear." in name:
                p.mul_(factor)
    return encoder


def _random_models(profile: Profile, methods, seed: int) -> Models:
    """Every network of ``methods`` at the profile's configuration, with seeded random weights."""
    gc, ec = profile.generator, profile.encoder
    generator = seeded("generator", seed, lambda: Generator(**gc.kwargs()))
    with torch.no_grad():
        mean = generator.mean_latent(4096, generator=torch.Generator().manual_seed(seed))
    latent_avg = mean.reshape(1, -1).expand(gc.n_latent, -1).clone()
    common = dict(n_styles=gc.n_latent, style_dim=gc.style_dim, input_size=ec.input_size, widths=ec.widths)
    classes = _encoder_classes()
    encoders = {}
    for method in methods:
        if method in classes:
            encoders[method] = seeded(method, seed, lambda c=classes[method]: _damp_heads(
                c(ec.num_layers, ec.mode, **common)))
        elif method == "hyperstyle":
            shapes = layer_shapes_of(generator)
            # The shared hypernet serves one weight shape: keep the official shared layers of the
            # first (4x4-conv) shape; narrower tiny layers get their own heads.
            shared = [i for i in SHARED_LAYERS if i < len(shapes) and shapes[i] == shapes[0]]
            # Narrow profiles get narrow heads; the official widths keep the official inner widths.
            inner = {} if ec.widths is None else {"hyper_inner": 16, "refine_inner": 32}
            hyper = seeded("hyperstyle", seed, functools.partial(
                HyperNetwork, shapes, shared_layers=shared, input_size=ec.input_size,
                widths=ec.widths or IRSE_WIDTHS, code_dim=gc.style_dim, **inner))
            w_enc = seeded("w_encoder", seed, functools.partial(
                WEncoder, ec.num_layers, ec.mode, n_latent=gc.n_latent, style_dim=gc.style_dim,
                widths=ec.widths))
            _damp_outputs(hyper)
            encoders[method] = (hyper.eval(), w_enc.eval())
    for module in encoders.values():
        for m in module if isinstance(module, tuple) else (module,):
            m.eval()
    return Models(profile, generator.eval(), latent_avg, encoders)


def _damp_outputs(hypernet: torch.nn.Module, factor: float = 0.01) -> None:
    """Keep a random hypernetwork's weight deltas small (|delta| << 1), as trained ones are."""
    with torch.no_grad():
        for name, p in hypernet.named_parameters():
            if "output" in name or name.endswith(("w1", "w2")):
                p.mul_(factor)


def _official_models(profile: Profile, methods, weights_dir) -> Models:
    def path(name):
        return ck.resolve(name, weights_dir)

    generator, g_avg = ck.load_stylegan2(path(GENERATOR_FILE))
    n_latent = profile.generator.n_latent
    encoders, avgs, decoders = {}, {}, {}
    zplus_from_avg = False
    classes = _encoder_classes()
    for method in methods:
        if method in classes:
            file = path(ENCODER_FILES[method])
            parts = ck.load_psp_container(file)
            module = classes[method](50, "ir_se")
            ck.load_strict(module, parts["encoder_sd"], path=file, what="encoder")
            encoders[method] = module.eval()
            if parts["latent_avg"] is not None:
                avgs[method] = parts["latent_avg"]
            if method != "dsg_zplus":  # destylize.py renders with stylegan2-ffhq-config-f.pt, not E's decoder
                _own_decoder(decoders, method, parts["decoder_sd"], generator, file)
            if method == "dsg_zplus":
                zplus_from_avg = bool(parts["opts"].get("start_from_latent_avg", False))  # pSp default
                if zplus_from_avg and parts["latent_avg"] is None:
                    raise ck.CheckpointMismatchError(
                        f"{file}: opts.start_from_latent_avg is set but the file has no latent_avg")
        elif method == "hyperstyle":
            file = path(ENCODER_FILES[method])
            parts = ck.load_psp_container(file, encoder_prefix="hypernet.")
            hyper = HyperNetwork()
            ck.load_strict(hyper, parts["encoder_sd"], path=file, what="hypernet")
            w_file = path(W_ENCODER_FILE)
            w_parts = ck.load_psp_container(w_file)
            w_enc = WEncoder(50, "ir_se")
            ck.load_strict(w_enc, w_parts["encoder_sd"], path=w_file, what="w encoder")
            encoders[method] = (hyper.eval(), w_enc.eval())
            if parts["latent_avg"] is not None:
                avgs[method] = parts["latent_avg"]
            _own_decoder(decoders, method, parts["decoder_sd"], generator, file)
    if g_avg is not None:
        default_avg = ck.normalize_latent_avg(g_avg, n_latent=n_latent)
    else:
        with torch.no_grad():
            default_avg = generator.mean_latent(10000).reshape(1, -1).expand(n_latent, -1).clone()
    latent_avg = avgs.get("restyle_psp", default_avg)
    return Models(profile, generator, latent_avg, encoders, avgs, pretrained=True,
                  zplus_from_avg=zplus_from_avg, decoders=decoders)


def _own_decoder(decoders: dict, method: str, state_dict, generator, file) -> None:
    """Record a checkpoint's ``decoder.*`` StyleGAN2 when it differs from ``generator``'s weights.

    The official pSp / e4e / ReStyle / HyperStyle inference decodes with the decoder stored in its
    own checkpoint (and its latent_avg). The released files hold the FFHQ generator unchanged, so
    usually nothing is built (the shared generator serves); a file whose decoder differs gets its
    own, strictly loaded. A file without decoder keys uses the generator.
    """
    if not state_dict:
        return
    own = generator.state_dict()
    if own.keys() == state_dict.keys() and all(torch.equal(own[k], state_dict[k]) for k in own):
        return
    decoder = Generator(**ck.infer_generator_config(state_dict))
    ck.load_strict(decoder, ck.with_default_kernels(decoder, state_dict, path=file), path=file, what="decoder")
    decoders[method] = decoder.eval()


#: The miniature world has one style, its renderer's portrait domain (g' = ``g_prime.pt``).
MINI_STYLE = get_profile("mini").baseline_style


def default_style(profile: str | Profile) -> str:
    """The baseline's default g' style of a profile (``Profile.baseline_style``: DualStyleGAN's
    ``cartoon`` on ffhq1024, ``portrait`` on mini)."""
    return get_profile(profile).baseline_style


def mini_methods() -> tuple[str, ...]:
    """Fig. 1 methods the ``mini`` profile can run: those with a shipped encoder, plus optimization."""
    shipped = tuple(m for m in ENCODER_FILES if m != "dsg_zplus" and (WEIGHTS_DIR / f"{m}.pt").exists())
    return (*shipped, "optimization")


def methods_for(profile: str | Profile) -> tuple[str, ...]:
    """The Fig. 1 methods a profile can run: every one of ``config.METHODS``, except on shipped
    weights (mini): the methods with a shipped encoder, plus optimization (:func:`mini_methods`)."""
    return mini_methods() if get_profile(profile).weights == "shipped" else METHODS


def _mini_models(profile: Profile, methods, g_prime_style: str | None) -> Models:
    """The tiny architectures with the weights trained on the miniature world (float32, eval)."""
    generator, latent_avg = load_generator_file(weights_file("generator"))
    encoders = {}
    for method in methods:
        path = weights_file(method)  # raises for a method never trained (e.g. hyperstyle)
        module = build_encoder(method)
        load_into(module, path, what=f"mini {method} encoder")
        encoders[method] = module.eval()
    models = Models(profile, generator, latent_avg, encoders, pretrained=True)
    if g_prime_style is not None:
        if g_prime_style != MINI_STYLE:
            raise ValueError(f"the mini profile has one style, {MINI_STYLE!r} (its g' is g_prime.pt); "
                             f"got g_prime_style={g_prime_style!r}")
        models.g_prime, _ = load_generator_file(weights_file("g_prime"))
    return models


def _g_prime_file(style: str) -> str:
    """``cartoon`` -> ``cartoon/finetune-000600.pt``; a name ending in .pt is taken as the file."""
    return style if style.endswith(".pt") else G_PRIME_FILE.format(style=style)


def load_g_prime(style: str, weights_dir: str | Path | None = None) -> torch.nn.Module:
    """The official g' of the baseline: ``<style>/finetune-000600.pt`` (its ``g_ema``), strictly loaded.

    style: a DualStyleGAN style folder name (``cartoon``) or a file name ending in ``.pt``
    (relative to the weights folder, or absolute).
    """
    generator, _ = ck.load_stylegan2(ck.resolve(_g_prime_file(style), weights_dir))
    return generator.eval()


def tiny_g_prime(generator: torch.nn.Module, *, style: str, seed: int,
                 relative: float = TINY_G_PRIME_PERTURBATION) -> torch.nn.Module:
    """A stand-in g' for the tiny profile: a copy of ``generator`` with seeded small weight offsets.

    There is no style data to fine-tune on offline, so "fine-tuning" is simulated: every
    synthesis parameter p gets ``relative * rms(p) * N(0, 1)`` added (seeded by ``style`` and
    ``seed``); the mapping network is kept, as its lr_mul of 0.01 barely moves it in 600 real
    fine-tuning iterations. It exercises the baseline's code path, nothing more.
    """
    def build():
        g_prime = copy.deepcopy(generator)
        with torch.no_grad():
            for name, p in g_prime.named_parameters():
                if name.startswith("style."):
                    continue
                rms = p.pow(2).mean().sqrt()
                p.add_(relative * rms * torch.randn(p.shape).to(p))
        return g_prime.eval()

    return seeded(f"g_prime/{style}", seed, build)


def build_models(
    profile: str | Profile = "tiny",
    *,
    methods=("restyle_psp",),
    weights_dir: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    with_lpips: bool = False,
    with_id: bool = False,
    g_prime_style: str | None = None,
    random_weights: bool = False,
    allow_random_loss_nets: bool = False,
) -> Models:
    """Build the generator and the encoders of ``methods`` for a profile, on ``device``.

    tiny: seeded random weights (``seed``). mini: the shipped miniature-world weights (a method
    without a trained file raises FileNotFoundError; g' only for style ``"portrait"``).
    ffhq1024: official files from ``weights_dir`` (or $REDESTYLE_WEIGHTS). ``with_lpips``:
    LPIPS-VGG (the ImageNet VGG16 backbone from ``vgg16-397923af.pth`` when present in the weights
    folder, else random and labelled so); on ``mini`` the LPIPS distance on the shipped in-world
    trunk ``perceptual.pt`` (:func:`~redestyle.miniature.models.load_lpips`).
    ``with_id``: the ID-loss network: IR-SE50 when ``model_ir_se50.pth`` is present (else None);
    on ``mini`` the shipped in-world ``idnet.pt`` (:func:`~redestyle.miniature.models.load_id_features`).
    ``g_prime_style``: also build the baseline's g' (``models.g_prime``): ffhq1024 loads
    ``<style>/finetune-000600.pt`` (:func:`load_g_prime`); tiny makes :func:`tiny_g_prime`.
    ``random_weights``: seeded random weights for any profile (the full-size architectures without
    their checkpoints, e.g. for timing); the tiny profile always has them.
    With official weights a missing ``vgg16-397923af.pth`` (``with_lpips``) or ``model_ir_se50.pth``
    (``with_id``) is an error naming the file, unless ``allow_random_loss_nets`` (then LPIPS runs on a
    seeded random VGG16, and there is no ID network). ``models.loss_nets`` records what ran.
    """
    profile = get_profile(profile)
    methods = tuple(methods)
    official = profile.weights == "official" and not random_weights
    shipped = profile.weights == "shipped" and not random_weights
    if shipped:
        models = _mini_models(profile, methods, g_prime_style)
    elif official:
        models = _official_models(profile, methods, weights_dir)
    else:
        models = _random_models(profile, methods, seed)
    if g_prime_style is not None and models.g_prime is None:
        models.g_prime = (load_g_prime(g_prime_style, weights_dir) if official
                          else tiny_g_prime(models.generator, style=g_prime_style, seed=seed))
    if models.g_prime is not None:
        # g' is a fixed loss network of the baseline: the optimisation needs d loss / d latent and
        # d loss / d noise only, so its ~30M weight gradients would be wasted work every step.
        models.g_prime.requires_grad_(False)
    required = official and not allow_random_loss_nets
    if with_lpips and shipped:
        models.lpips = load_lpips()
        models.loss_nets["lpips_vgg16"] = PERCEPTUAL_LABEL
    elif with_lpips:
        vgg16 = loss_net_weights(VGG16_FILE, weights_dir, required=required)
        models.lpips = LPIPS(vgg16, seed=seed)
        models.loss_nets["lpips_vgg16"] = VGG16_FILE if vgg16 is not None else f"random VGG16 (seed {seed})"
    if with_id and shipped:
        models.id_features = load_id_features()
        models.loss_nets["id"] = ID_NETWORK_LABEL
    elif with_id:
        models.id_features = build_id_features(loss_net_weights(ID_FILE, weights_dir, required=required))
        models.loss_nets["id"] = ID_FILE if models.id_features is not None else "none (no ID term)"
    return models.to(device)


#: The option that lets an official-weights run go on without a loss network's file.
ALLOW_RANDOM_LOSS_NETS = "--allow-random-loss-nets"


def loss_net_weights(name: str, weights_dir, *, required: bool):
    """The container of a loss network's file (VGG16/VGG19 ImageNet, IR-SE50), or None when absent.

    ``required`` (official weights, no ``--allow-random-loss-nets``): a missing file raises
    ``MissingWeightsError`` naming it, what needs it and where it is published: a loss on a random
    network would silently make the results meaningless.
    """
    try:
        path = ck.resolve(name, weights_dir)
    except ck.MissingWeightsError as err:
        if required:
            raise ck.MissingWeightsError(
                f"{err}\n  or pass {ALLOW_RANDOM_LOSS_NETS} to run without it (a random network or no "
                "ID term: not the paper's losses; recorded in the outputs)") from None
        return None
    return ck.load_container(path)


def build_id_features(state_dict):
    """IR-SE50 ArcFace features (frozen) of a ``model_ir_se50.pth`` state dict; None for None."""
    if state_dict is None:
        return None
    backbone = Backbone(112, 50, "ir_se")
    ck.load_strict(backbone, state_dict, path=ID_FILE, what="IR-SE50")
    return IDFeatures(backbone.eval()).eval().requires_grad_(False)  # a loss network, like g'
