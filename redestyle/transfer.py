"""Exemplar-based style transfer with a (fine-tuned) DualStyleGAN, and the ``redestyle transfer`` verb.

Semantics of DualStyleGAN's ``style_transfer.py`` (reference/dualstylegan.md §7): the content face's
intrinsic code and the exemplar's extrinsic code drive the generator, ``interp_weights`` (18 at 1024)
= ``structure_weight`` for the ModRes layers (indices 0..6) and ``color_weight`` for the T_c layers
(7..17), truncation 0.75 toward w = 0 on the intrinsic code. The official script assumes z+ codes;
Re-Destyle codes are W+ (destylization.md C4), so the space of each code is explicit here:
W+ codes are never mapped again (the official ``--wplus`` path for the content code, and exstyle
codes used as stored). With every weight 0 the output is the plain StyleGAN2 image of the content
code: the intrinsic-only face.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import checkpoints as ck
from . import zoo
from .config import DEFAULT_PROFILE, get_profile
from .imaging import load_image, pool, to_uint8
from .inversion import restyle
from .miniature import models as mini_models
from .nets.dualstylegan import DualStyleGAN, style_transfer
from .train.data import check_codes_profile, read_space
from .train.models import load_dualstylegan

log = logging.getLogger(__name__)

SPACES = ("W+", "z+")


def _check_space(space: str, what: str) -> None:
    if space not in SPACES:
        raise ValueError(f"{what} must be 'W+' or 'z+', got {space!r}")


def stylize(
    generator: DualStyleGAN,
    instyle: Tensor,
    exstyle: Tensor,
    *,
    instyle_space: str = "W+",
    exstyle_space: str = "W+",
    structure_weight: float = 0.75,
    color_weight: float = 1.0,
    interp_weights: Sequence[float] | None = None,
    preserve_color: bool = False,
    truncation: float = 0.75,
    randomize_noise: bool = False,
) -> Tensor:
    """Stylise content codes with exemplar codes -> images [B, 3, size, size] in [-1, 1].

    instyle: content codes [B, n_latent, D] in ``instyle_space`` (W+: Re-Destyle / ReStyle; z+:
    DualStyleGAN's encoder). exstyle: exemplar codes [B or 1, n_latent, D] in ``exstyle_space``
    (``codes_meta.json``). interp_weights (n_latent floats) override the two scalar weights.
    Noise: the generator's fixed buffers unless ``randomize_noise`` (the script draws fresh noise).
    """
    _check_space(instyle_space, "instyle_space")
    _check_space(exstyle_space, "exstyle_space")
    return style_transfer(
        generator, instyle, exstyle,
        structure_weight=structure_weight, color_weight=color_weight, interp_weights=interp_weights,
        wplus=instyle_space == "W+", exstyle_wplus=exstyle_space == "W+", preserve_color=preserve_color,
        truncation=truncation, randomize_noise=randomize_noise, clamp=True,
    )


@torch.no_grad()
def transfer_grid(
    generator: DualStyleGAN,
    instyles: Tensor,
    exstyles: Tensor,
    **kwargs,
) -> Tensor:
    """Every content x every exemplar -> images [C, S, 3, size, size] (kwargs as :func:`stylize`)."""
    rows = []
    for c in range(instyles.shape[0]):
        content = instyles[c : c + 1].expand(exstyles.shape[0], -1, -1)
        rows.append(stylize(generator, content, exstyles, **kwargs))
    return torch.stack(rows)


# ------------------------------------------------------------------ command line


def encode_content(models, image: Tensor, *, space: str) -> Tensor:
    """Content image [1, 3, R, R] in [-1, 1] -> intrinsic code [1, n_latent, D] in ``space``.

    W+: ReStyle-pSp, 5 iterations (the first round of Re-Destyle); z+: DualStyleGAN's ``encoder.pt``
    (``Models.encode_zplus``: latent_avg added only when the file's opts say start_from_latent_avg).
    """
    x = pool(image, models.profile.pool_size)
    if space == "W+":
        steps = restyle(models.encoder("restyle_psp"), models.decoder_for("restyle_psp"), x, n_iters=5,
                        latent_avg=models.latent_avg, avg_image=models.avg_image)
        return steps[-1].latent
    return models.encode_zplus(x)  # + latent_avg when encoder.pt's opts say start_from_latent_avg


def transfer_inputs(content: str | None, codes: str | None, ckpt: str | None,
                    profile: str | None) -> tuple[Path, Path, Path, str, bool]:
    """Resolve ``redestyle transfer``'s inputs -> (content image, codes folder, generator file, profile
    name, whether a shipped default was used).

    The profile: ``profile``, else the codes' ``codes_meta.json``, else the default (mini). On
    ``mini`` each missing input is the shipped one (``miniature.models.dualstylegan_files``: the
    DualStyleGAN fine-tuned on Re-Destyle codes, its style set's codes, a sample content photo);
    other profiles ship none, so a missing one is a ValueError naming the option.
    """
    meta_path = Path(codes) / "codes_meta.json" if codes is not None else None
    made_with = json.loads(meta_path.read_text()).get("profile") if meta_path and meta_path.is_file() else None
    name = get_profile(profile or made_with or DEFAULT_PROFILE).name
    missing = [flag for flag, v in (("CONTENT", content), ("--codes", codes), ("--ckpt", ckpt)) if v is None]
    if missing and name != "mini":
        need = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        raise ValueError(f"profile {name} needs {need} (only the mini profile ships a "
                         f"DualStyleGAN, its codes and a sample content)")
    if missing:
        gen, shipped = mini_models.dualstylegan_files()
        content = content if content is not None else str(shipped / mini_models.SAMPLE_CONTENT)
        codes, ckpt = codes if codes is not None else str(shipped), ckpt if ckpt is not None else str(gen)
    return Path(content), Path(codes), Path(ckpt), name, bool(missing)


def cli_transfer(args: argparse.Namespace) -> int:
    """Body of ``redestyle transfer``: writes ``<out>/<name>_<index>_<content>.png`` and an overview
    (content | intrinsic-only reconstruction | stylised), and prints where they went."""
    content_path, codes_dir, ckpt, profile_name, shipped = transfer_inputs(args.content, args.codes, args.ckpt,
                                                                           args.profile)
    profile = get_profile(profile_name)
    check_codes_profile(codes_dir, profile.name)
    if not ckpt.is_file():
        raise FileNotFoundError(2, "no such DualStyleGAN generator file (--ckpt; README: Style transfer)",
                                str(ckpt))
    device = zoo.resolve_device(args.device)
    name = args.exstyle_name or ("refined_exstyle_code.npy" if (codes_dir / "refined_exstyle_code.npy").exists()
                                 else "exstyle_code.npy")
    codes = ck.load_codes(codes_dir / name)
    keys = list(codes)
    if not 0 <= args.style_index < len(keys):
        raise SystemExit(f"--style-index {args.style_index} out of range: {codes_dir / name} holds {len(keys)} codes")
    ex_space = read_space(codes_dir)
    in_space = "W+" if args.wplus else ex_space
    try:
        generator = load_dualstylegan(ckpt, profile).to(device)
    except ck.CheckpointMismatchError as err:
        first, *rest = str(err).splitlines()
        raise ck.CheckpointMismatchError("\n".join([f"{first} (does --ckpt belong to another profile? this "
                                                     f"run uses {profile.name}: --profile)", *rest])) from err
    method = "restyle_psp" if in_space == "W+" else "dsg_zplus"
    models = zoo.build_models(profile, methods=[method], weights_dir=args.weights, seed=args.seed, device=device)
    if not models.pretrained:
        print(f"redestyle transfer: warning: {profile.label}: the content encoder has random weights",
              file=sys.stderr)
    size = models.profile.image_size
    content = load_image(content_path, size=size).to(device)
    with torch.no_grad():
        instyle = encode_content(models, content, space=in_space)
        exstyle = torch.as_tensor(codes[keys[args.style_index]]).float().to(device)
        image = stylize(generator, instyle, exstyle, instyle_space=in_space, exstyle_space=ex_space,
                        structure_weight=args.structure_weight, color_weight=args.color_weight,
                        interp_weights=args.weight, preserve_color=args.preserve_color,
                        truncation=args.truncation)
        reconstruction = stylize(generator, instyle, exstyle, instyle_space=in_space, exstyle_space=ex_space,
                                 interp_weights=[0.0] * generator.n_latent, truncation=1.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.name}_{args.style_index}_{content_path.stem}"
    Image.fromarray(to_uint8(image[0])).save(out / f"{stem}.png")
    overview = np.concatenate([to_uint8(t[0]) for t in (content.clamp(-1, 1), reconstruction, image)], axis=1)
    Image.fromarray(overview).save(out / f"{stem}_overview.png")
    print(f"exemplar {keys[args.style_index]} ({ex_space} codes), content code {in_space}, profile "
          f"{profile.name} ({'trained' if models.pretrained else 'random'} encoder"
          f"{'; shipped DualStyleGAN ' + ckpt.name if shipped else ''}) -> {out / f'{stem}.png'} "
          f"and {out / f'{stem}_overview.png'}")
    return 0
