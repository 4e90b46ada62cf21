"""Weight files: the registry of official files, finding them, loading them safely, our own format.

This is the only module that opens weight files. Everything it loads goes through
``torch.load(..., map_location="cpu", weights_only=True)``; the single pickled class the
official containers need (rosinality's argparse ``Namespace`` under ``"args"``) is
allow-listed instead of turning ``weights_only`` off.

Layers of the API, from files to modules::

    resolve(name, weights_dir)       -> Path      (MissingWeightsError names file, need, source, folder)
    load_container(path)             -> dict      (CorruptCheckpointError for truncated/foreign files)
    strip_prefix(sd, "decoder.")     -> dict      (the one prefix helper)
    load_strict(module, sd, ...)     -> module    (CheckpointMismatchError lists missing/unexpected/shape)
    load_stylegan2 / load_discriminator / load_psp_container   (official containers)
    save_atomic / save_checkpoint / load_checkpoint            (our own files, format 1)

Facts about the official files come from ../shared/reference (encoders.md §7, dualstylegan.md §2,
stylegan2.md §5, losses.md §2); file names are the ones the official notebooks and scripts use.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import logging
import math
import os
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .fileio import atomic_write, save_atomic
from .nets.stylegan2 import Discriminator, Generator

log = logging.getLogger(__name__)

ENV_WEIGHTS = "REDESTYLE_WEIGHTS"
STYLE = "<style>"  # placeholder for a DualStyleGAN style folder (cartoon, caricature, anime, ...)
FORMAT_VERSION = 1  # our own checkpoint format, see save_checkpoint

_DRIVE = "https://drive.google.com/file/d/{}/view"
_DSG_FOLDER = "https://drive.google.com/drive/folders/1GZQ6Gs5AzJq9lUL-ldIQexi0JYPKNy8b"

# --------------------------------------------------------------------------------------------
# Errors


class CheckpointError(RuntimeError):
    """A weight file exists but cannot be used (base class of the errors below)."""


class MissingWeightsError(FileNotFoundError):
    """A weight file is not where it was looked for; the message says what needs it and where to get it."""


class CorruptCheckpointError(CheckpointError):
    """A file is truncated, not a torch file, of an unexpected layout, or pickles a forbidden object."""


class CheckpointMismatchError(CheckpointError):
    """A state dict does not fit a module (missing / unexpected keys, shape mismatches)."""


# --------------------------------------------------------------------------------------------
# Registry of the official files


@dataclass(frozen=True)
class WeightFile:
    """One official weight file, as the official projects publish it.

    ``name`` is the path inside the weights folder; ``<style>/`` names stand for any
    DualStyleGAN style folder (``cartoon/generator.pt``).
    """

    name: str  # file name the official scripts/notebooks use (relative to the weights folder)
    used_by: str  # what in redestyle needs it
    layout: str  # container layout: top-level keys and what they hold
    source: str  # where the official project publishes it
    project: str  # official repository that produced it
    prefixes: tuple[str, ...] = ()  # state-dict key prefixes of the sub-networks, if any
    sha256: str | None = None  # only where the digest is documented
    bundled: tuple[str, str] | None = None  # (pip package, path inside it) shipping a copy


def _psp_layout(encoder_prefix: str = "encoder.", latent_avg: str = "[18,512]") -> str:
    return (
        f"dict: state_dict ({encoder_prefix}* encoder, decoder.* StyleGAN2 1024 generator), "
        f"latent_avg {latent_avg}, opts (plain dict)"
    )


REGISTRY: tuple[WeightFile, ...] = (
    WeightFile(
        name="stylegan2-ffhq-config-f.pt",
        used_by="StyleGAN2 FFHQ 1024 generator g (the decoder of every encoder, the destylization "
        "baseline, DualStyleGAN pretraining, which also reads its discriminator d)",
        layout="dict: g_ema, latent_avg [512], g, d (rosinality state dicts; convert_weight.py --gen --disc)",
        source=_DRIVE.format("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT")
        + " (linked from the pSp, e4e, ReStyle, HyperStyle and DualStyleGAN READMEs)",
        project="rosinality/stylegan2-pytorch (converted NVlabs config-f)",
    ),
    WeightFile(
        name="psp_ffhq_encode.pt",
        used_by="pSp FFHQ encoder (encoder comparison, Fig. 1)",
        layout=_psp_layout(),
        source=_DRIVE.format("1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0")
        + ' (pSp README, "StyleGAN Inversion")',
        project="eladrich/pixel2style2pixel",
        prefixes=("encoder.", "decoder."),
    ),
    WeightFile(
        name="e4e_ffhq_encode.pt",
        used_by="e4e FFHQ encoder (encoder comparison, Fig. 1)",
        layout=_psp_layout(),
        source=_DRIVE.format("1cUv_reLE6k3604or78EranS7XzuVMWeO")
        + ' (e4e README, "FFHQ Inversion")',
        project="omertov/encoder4editing",
        prefixes=("encoder.", "decoder."),
    ),
    WeightFile(
        name="restyle_psp_ffhq_encode.pt",
        used_by="ReStyle-pSp FFHQ encoder (Re-Destyle itself, Figs. 1-6)",
        layout=_psp_layout(),
        source=_DRIVE.format("1sw6I2lRIB0MpuJkpc8F5BJiSZrc0hjfE") + " (ReStyle README)",
        project="yuval-alaluf/restyle-encoder",
        prefixes=("encoder.", "decoder."),
    ),
    WeightFile(
        name="restyle_e4e_ffhq_encode.pt",
        used_by="ReStyle-e4e FFHQ encoder (encoder comparison, Fig. 1)",
        layout=_psp_layout(),
        source=_DRIVE.format("1e2oXVeBPXMQoUoC_4TNwAWpOPpSEhE_e") + " (ReStyle README)",
        project="yuval-alaluf/restyle-encoder",
        prefixes=("encoder.", "decoder."),
    ),
    WeightFile(
        name="hyperstyle_ffhq.pt",
        used_by="HyperStyle FFHQ hypernetwork (encoder comparison, Fig. 1; also needs faces_w_encoder.pt)",
        layout=_psp_layout("hypernet."),
        source=_DRIVE.format("1C3dEIIH1y8w1-zQMCyx7rDF0ndswSXh4") + " (HyperStyle README)",
        project="yuval-alaluf/hyperstyle",
        prefixes=("hypernet.", "decoder."),
    ),
    WeightFile(
        name="faces_w_encoder.pt",
        used_by="HyperStyle's W encoder (initial inversion for hyperstyle_ffhq.pt)",
        layout=_psp_layout(),
        source=_DRIVE.format("1M-hsL3W_cJKs77xM1mwq2e9-J0_m7rHP") + " (HyperStyle README)",
        project="yuval-alaluf/hyperstyle",
        prefixes=("encoder.", "decoder."),
    ),
    WeightFile(
        name="model_ir_se50.pth",
        used_by="IR-SE50 ArcFace: ID loss of the destylization baseline and DualStyleGAN training, "
        "identity metric",
        layout="bare state dict of Backbone(112, 50, 'ir_se')",
        source=_DRIVE.format("1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn")
        + " (pSp / ReStyle READMEs; TreB1eN/InsightFace_Pytorch)",
        project="TreB1eN/InsightFace_Pytorch",
    ),
    WeightFile(
        name="encoder.pt",
        used_by="DualStyleGAN's z+ pSp encoder (destylization baseline, DualStyleGAN training)",
        layout=_psp_layout(),
        source=_DRIVE.format("1NgI4mPkboYvYw3MWcdUaQhkr0OWgs9ej")
        + f" (DualStyleGAN README, checkpoint/encoder.pt; folder {_DSG_FOLDER})",
        project="williamyang1991/DualStyleGAN",
        prefixes=("encoder.", "decoder."),
    ),
    WeightFile(
        name="encoder_wplus.pt",
        used_by="DualStyleGAN's W+ pSp encoder (style_transfer --wplus; encoder comparison)",
        layout=_psp_layout(),
        source=_DRIVE.format("1IVMWKfF8Yp41tsoLLZ8edwjVg_tkjmqQ")
        + f" (DualStyleGAN README, checkpoint/encoder_wplus.pt; folder {_DSG_FOLDER})",
        project="williamyang1991/DualStyleGAN",
        prefixes=("encoder.", "decoder."),
    ),
    WeightFile(
        name="generator-pretrain.pt",
        used_by="DualStyleGAN pretrained on FFHQ (start of fine-tuning on Re-Destyle codes, Fig. 6)",
        layout="dict: g, d, g_ema (DualStyleGAN / Discriminator state dicts), g_optim, d_optim, "
        "args (argparse Namespace), ada_aug_p",
        source=_DRIVE.format("1j8sIvQZYW5rZ0v1SDMn2VEJFqfRjMW3f")
        + f" (DualStyleGAN README, checkpoint/generator-pretrain.pt; folder {_DSG_FOLDER})",
        project="williamyang1991/DualStyleGAN",
    ),
    WeightFile(
        name=f"{STYLE}/generator.pt",
        used_by="fine-tuned DualStyleGAN of one style (style transfer)",
        layout="dict: g_ema (DualStyleGAN state dict)",
        source=f"DualStyleGAN Drive folder {_DSG_FOLDER}, one subfolder per style (Cartoon: "
        "1xPo8PcbMXzcUyvwe5liJrfbA5yx4OF1j); mirror "
        "https://huggingface.co/public-data/DualStyleGAN/tree/main/models",
        project="williamyang1991/DualStyleGAN",
    ),
    WeightFile(
        name=f"{STYLE}/finetune-000600.pt",
        used_by="g', StyleGAN2 fine-tuned on the style images (destylization baseline, Table 1)",
        layout="dict: g_ema (rosinality generator state dict)",
        source="not published: made by DualStyleGAN finetune_stylegan.py (600 iterations from "
        "stylegan2-ffhq-config-f.pt on the style dataset)",
        project="williamyang1991/DualStyleGAN",
    ),
    WeightFile(
        name=f"{STYLE}/exstyle_code.npy",
        used_by="extrinsic style codes z_e of the official style set (DualStyleGAN training / transfer)",
        layout="np.save of a dict {image file name: float32 (1,18,512)} (z+); see load_codes",
        source=f"DualStyleGAN Drive folder {_DSG_FOLDER}, per style; made by destylize.py",
        project="williamyang1991/DualStyleGAN",
    ),
    WeightFile(
        name=f"{STYLE}/refined_exstyle_code.npy",
        used_by="refined extrinsic style codes (style_transfer.py prefers them when present)",
        layout="np.save of a dict {image file name: float32 (1,18,512)} (z+); see load_codes",
        source=f"DualStyleGAN Drive folder {_DSG_FOLDER}, per style; made by refine_exstyle.py",
        project="williamyang1991/DualStyleGAN",
    ),
    WeightFile(
        name=f"{STYLE}/instyle_code.npy",
        used_by="intrinsic style codes z_i (DualStyleGAN fine-tuning)",
        layout="np.save of a dict {image file name: float32 (1,18,512)} (z+); see load_codes",
        source="made by DualStyleGAN destylize.py, or by `redestyle destylize`",
        project="williamyang1991/DualStyleGAN",
    ),
    WeightFile(
        name="vgg.pth",
        used_by="LPIPS v0.1 VGG linear heads (destylization baseline loss)",
        layout="legacy torch pickle: lin0.model.1.weight ... lin4.model.1.weight",
        source="shipped with the pip package lpips (lpips/weights/v0.1/vgg.pth) and in DualStyleGAN "
        "model/stylegan/lpips/weights/v0.1/vgg.pth",
        project="richzhang/PerceptualSimilarity",
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",  # losses.md §2
        bundled=("lpips", "weights/v0.1/vgg.pth"),
    ),
    WeightFile(
        name="vgg16-397923af.pth",
        used_by="LPIPS VGG16 backbone (destylization baseline loss)",
        layout="torchvision VGG16 state dict",
        source="https://download.pytorch.org/models/vgg16-397923af.pth (torchvision ImageNet weights; "
        "torchvision also looks in $TORCH_HOME/hub/checkpoints)",
        project="pytorch/vision",
    ),
    WeightFile(
        name="vgg19-dcbb9e9d.pth",
        used_by="VGG19 feature-matching / perceptual losses of DualStyleGAN training",
        layout="torchvision VGG19 state dict",
        source="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth (torchvision ImageNet weights)",
        project="pytorch/vision",
    ),
    WeightFile(
        name="shape_predictor_68_face_landmarks.dat",
        used_by="dlib 68-landmark FFHQ alignment, expression metrics",
        layout="dlib shape predictor",
        source="http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2 "
        "(also shipped with the pip package face-recognition-models)",
        project="davisking/dlib",
        bundled=("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"),
    ),
)

_BY_NAME = {entry.name: entry for entry in REGISTRY}


def registry_entry(name: str) -> WeightFile | None:
    """The registry entry for ``name`` (``cartoon/generator.pt`` matches ``<style>/generator.pt``)."""
    name = Path(name).as_posix()
    if name in _BY_NAME:
        return _BY_NAME[name]
    parts = name.split("/")
    if len(parts) == 2:
        return _BY_NAME.get(f"{STYLE}/{parts[1]}")
    return None


def weights_dir_from(weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The weights folder: the argument, else ``$REDESTYLE_WEIGHTS``, else None."""
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get(ENV_WEIGHTS)
    return Path(env).expanduser() if env else None


def _bundled_path(entry: WeightFile) -> Path | None:
    """Where a pip package ships a copy of ``entry``, without importing the package."""
    if entry.bundled is None:
        return None
    package, inner = entry.bundled
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / inner
        if candidate.is_file():
            return candidate
    return None


def missing_message(name: str, searched: Path | None, *, from_folder: bool = True) -> str:
    """The text of a MissingWeightsError: file, what needs it, where it is published, where we looked.

    ``searched`` is the path looked at (None: no weights folder was given); ``from_folder`` says
    it came from --weights / $REDESTYLE_WEIGHTS rather than from an explicit path.
    """
    entry = registry_entry(name)
    lines = [f"missing weights file {name!r}"]
    if entry is not None:
        lines += [
            f"  needed by:    {entry.used_by}",
            f"  published at: {entry.source}",
            f"  container:    {entry.layout}",
        ]
    else:
        lines.append("  (not a file the registry knows; check the name)")
    if searched is None:
        lines.append(
            f"  searched:     no weights folder given (pass --weights DIR or set ${ENV_WEIGHTS})"
        )
    elif from_folder:
        lines.append(f"  searched:     {searched} (folder from --weights / ${ENV_WEIGHTS})")
    else:
        lines.append(f"  searched:     {searched}")
    return "\n".join(lines)


def resolve(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Path of the official file ``name`` in the weights folder.

    The folder is ``weights_dir``, else ``$REDESTYLE_WEIGHTS``; an absolute ``name`` is used as is.
    Files that a pip package ships (LPIPS heads, dlib landmarks) fall back to that copy.
    Raises MissingWeightsError naming the file, what needs it, where it is published and the
    folder searched.
    """
    folder = weights_dir_from(weights_dir)
    if Path(name).is_absolute():
        path = Path(name)
        if path.is_file():
            return path
        raise MissingWeightsError(missing_message(path.name, path, from_folder=False))
    if folder is not None:
        path = folder / name
        if path.is_file():
            return path
    entry = registry_entry(name)
    bundled = _bundled_path(entry) if entry is not None else None
    if bundled is not None:
        return bundled
    raise MissingWeightsError(missing_message(name, None if folder is None else folder / name))


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (streamed; ~1 s per GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, *, name: str | None = None) -> bool | None:
    """Check ``path`` against the registry digest of ``name`` (default: its file name).

    Returns None when no digest is known, True when it matches; raises CorruptCheckpointError
    when it does not.
    """
    entry = registry_entry(name or Path(path).name)
    if entry is None or entry.sha256 is None:
        return None
    got = file_sha256(path)
    if got != entry.sha256:
        raise CorruptCheckpointError(
            f"{path}: sha256 {got} differs from the published {entry.sha256} of {entry.name} "
            f"(re-download it from {entry.source})"
        )
    return True


# --------------------------------------------------------------------------------------------
# Safe loading


# Classes that official containers pickle besides tensors and plain containers:
# rosinality train.py (and DualStyleGAN's pretrain script) save their argparse Namespace as "args".
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


def load_container(path: str | os.PathLike) -> Any:
    """Load a torch file on the CPU with ``weights_only=True`` (argparse.Namespace allow-listed).

    Returns whatever the file holds (usually a dict). A missing file raises MissingWeightsError;
    a truncated, corrupt or non-torch file, or one pickling any other object, raises
    CorruptCheckpointError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(missing_message(path.name, path, from_folder=False))
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        cause = _unpickler_cause(err)
        if "Unsupported global" in cause:
            # Readable, but it pickles a class we will not execute.
            raise CorruptCheckpointError(
                f"{path}: pickles an object that weights_only loading does not allow ({cause}); "
                "redestyle never unpickles arbitrary code"
            ) from err
        raise CorruptCheckpointError(
            f"{path}: not a readable torch file, possibly truncated or not a checkpoint "
            f"({path.stat().st_size} bytes; {cause})"
        ) from err
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError) as err:
        size = path.stat().st_size
        raise CorruptCheckpointError(
            f"{path}: not a readable torch file, possibly truncated or not a checkpoint "
            f"({size} bytes; {type(err).__name__}: {_one_line(err)})"
        ) from err


def _unpickler_cause(err: pickle.UnpicklingError) -> str:
    """The informative part of torch's weights_only error (the text after "WeightsUnpickler error:")."""
    text = " ".join(str(err).split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].split(" Check the documentation")[0].strip()
    return _one_line(text)


def _one_line(err: BaseException | str, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def take(container: Any, key: str, *, path: str | os.PathLike) -> Any:
    """``container[key]``, or CorruptCheckpointError listing the keys the file does have."""
    if not isinstance(container, Mapping):
        raise CorruptCheckpointError(
            f"{path}: expected a dict with {key!r}, found {type(container).__name__}"
        )
    if key not in container:
        raise CorruptCheckpointError(
            f"{path}: no {key!r} entry (top-level keys: {', '.join(map(str, container)) or 'none'})"
        )
    return container[key]


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries whose key starts with ``prefix``, with the prefix removed (others are dropped).

    ``strip_prefix(ckpt["state_dict"], "decoder.")`` gives the generator of a pSp container
    (the official ``get_keys(d, "decoder")``). An empty prefix copies the dict.
    """
    n = len(prefix)
    return {key[n:]: value for key, value in state_dict.items() if key.startswith(prefix)}


def mismatch_report(module: torch.nn.Module, state_dict: Mapping[str, Any]) -> dict[str, list]:
    """Compare ``state_dict`` with ``module.state_dict()``.

    Returns {"missing": [keys], "unexpected": [keys], "shape": [(key, file shape, module shape)]}.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shape = []
    for key in sorted(set(own) & set(state_dict)):
        theirs = state_dict[key]
        if isinstance(theirs, torch.Tensor) and tuple(theirs.shape) != tuple(own[key].shape):
            shape.append((key, tuple(theirs.shape), tuple(own[key].shape)))
    return {"missing": missing, "unexpected": unexpected, "shape": shape}


def _format_keys(keys: list, limit: int = 20) -> str:
    shown = [str(k) for k in keys[:limit]]
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(shown) + more


def load_strict(
    module: torch.nn.Module,
    state_dict: Mapping[str, Any],
    *,
    path: str | os.PathLike | None = None,
    what: str = "",
) -> torch.nn.Module:
    """``module.load_state_dict(state_dict, strict=True)`` with a readable error.

    A mismatch raises CheckpointMismatchError naming the file (``path``), the part (``what``,
    e.g. "g_ema" or "encoder"), and listing missing keys, unexpected keys and shape mismatches.
    Returns the module.
    """
    report = mismatch_report(module, state_dict)
    if any(report.values()):
        where = f"{path}" if path is not None else "state dict"
        part = f" ({what} -> {type(module).__name__})" if what else f" ({type(module).__name__})"
        lines = [f"{where}{part} does not fit the module:"]
        if report["missing"]:
            lines.append(
                f"  missing keys ({len(report['missing'])}): {_format_keys(report['missing'])}"
            )
        if report["unexpected"]:
            lines.append(
                f"  unexpected keys ({len(report['unexpected'])}): {_format_keys(report['unexpected'])}"
            )
        if report["shape"]:
            items = [f"{k}: file {list(a)} vs module {list(b)}" for k, a, b in report["shape"]]
            lines.append(f"  shape mismatches ({len(items)}): {_format_keys(items)}")
        raise CheckpointMismatchError("\n".join(lines))
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # e.g. a dtype the parameter cannot take
        where = path if path is not None else "state dict"
        raise CheckpointMismatchError(f"{where} ({what}): {_one_line(err, 500)}") from err
    return module


# --------------------------------------------------------------------------------------------
# StyleGAN2 (rosinality layout; stylegan2.md §3-5)


# rosinality's channel table with channel_multiplier m: 512 up to 32 px, then 256m, 128m, ... (stylegan2.md §1)
def _rosinality_channels(size: int, channel_multiplier: int) -> dict[int, int]:
    table = {4: 512, 8: 512, 16: 512, 32: 512}
    width = 256
    res = 64
    while res <= max(size, 64):
        table[res] = width * channel_multiplier
        width //= 2
        res *= 2
    return {r: c for r, c in table.items() if r <= size}


def _channel_config(channels: dict[int, int], size: int) -> dict[str, Any]:
    """``channel_multiplier=m`` when the widths are rosinality's table for some m, else ``channels``."""
    for multiplier in (1, 2, 4):
        if _rosinality_channels(size, multiplier) == channels:
            return {"channel_multiplier": multiplier}
    return {"channels": channels}


def infer_generator_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments of a rosinality Generator read off its state dict.

    Returns {"size", "style_dim", "n_mlp", and "channel_multiplier" or "channels"}: size from
    the number of ``to_rgbs.*`` blocks (size = 2**(n + 2)), widths from the ``conv1`` / up-conv
    weights ([1, out, in, k, k]), n_mlp from the ``style.<i>.weight`` keys.
    Raises CorruptCheckpointError when the keys are not a rosinality generator's.
    """
    try:
        n_mlp = sum(1 for k in state_dict if k.startswith("style.") and k.endswith(".weight"))
        style_dim = int(state_dict["conv1.conv.modulation.weight"].shape[1])
        n_blocks = len({k.split(".")[1] for k in state_dict if k.startswith("to_rgbs.")})
        size = 2 ** (n_blocks + 2)
        channels = {4: int(state_dict["conv1.conv.weight"].shape[1])}
        for block in range(n_blocks):
            # convs.2k is the up-sampling conv into resolution 2**(k+3)
            channels[2 ** (block + 3)] = int(state_dict[f"convs.{2 * block}.conv.weight"].shape[1])
    except KeyError as err:
        raise CorruptCheckpointError(
            f"not a rosinality StyleGAN2 generator state dict (no key {err})"
        ) from None
    return {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, **_channel_config(channels, size)}


def infer_discriminator_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments of a rosinality Discriminator read off its state dict.

    Returns {"size", and "channel_multiplier" or "channels"}: ``convs.0`` is the 1x1 from-RGB conv
    (out = channels[size]); each ResBlock ``convs.i`` halves the resolution (its ``conv2`` weight
    gives channels[size / 2**i]), down to 4 px.
    """
    try:
        n_res = len({k.split(".")[1] for k in state_dict if k.startswith("convs.")}) - 1
        size = 2 ** (n_res + 2)
        channels = {size: int(state_dict["convs.0.0.weight"].shape[0])}
        for i in range(1, n_res + 1):
            channels[size >> i] = int(state_dict[f"convs.{i}.conv2.1.weight"].shape[0])
    except KeyError as err:
        raise CorruptCheckpointError(
            f"not a rosinality StyleGAN2 discriminator state dict (no key {err})"
        ) from None
    return {"size": size, **_channel_config(channels, size)}


def with_default_kernels(
    module: torch.nn.Module, state_dict: Mapping[str, Any], *, path: str | os.PathLike | None = None
) -> dict[str, Any]:
    """``state_dict`` plus the module's own FIR ``*.kernel`` buffers where the file lacks them.

    The official files hold these deterministic buffers (Blur / Upsample / Downsample kernels) and
    they are loaded as stored; some older converted StyleGAN2 checkpoints lack them
    (stylegan2.md §3), and only those are filled in. Nothing else is ever filled.
    """
    buffers = {name for name, _ in module.named_buffers()}
    own = module.state_dict()
    absent = [k for k in own if k not in state_dict and k in buffers and k.endswith(".kernel")]
    if not absent:
        return dict(state_dict)
    log.info("%s: %d FIR kernel buffers absent, using the module's own", path, len(absent))
    return {**state_dict, **{k: own[k] for k in absent}}


def _with_path(err: CorruptCheckpointError, path: Path, which: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(f"{path} [{which}]: {err}")


def load_stylegan2(
    path: str | os.PathLike, *, which: str = "g_ema", **generator_kwargs: Any
) -> tuple[torch.nn.Module, torch.Tensor | None]:
    """Build ``redestyle.nets.stylegan2.Generator`` from a rosinality container and load it strictly.

    ``which`` picks the entry ("g_ema", "g"); a bare state dict is accepted too. Constructor
    arguments not given in ``generator_kwargs`` are inferred from the weight shapes
    (infer_generator_config); FIR kernel buffers absent from older conversions are filled in
    (with_default_kernels). Returns (generator in eval mode on the CPU, latent_avg float32
    [style_dim] as stored in the official file, or None when the file has none).
    """
    path = Path(path)
    container = load_container(path)
    state_dict = _entry_or_bare(container, which, path, probe="conv1.conv.weight")
    try:
        config = infer_generator_config(state_dict)
    except CorruptCheckpointError as err:
        raise _with_path(err, path, which) from None
    if "channels" in generator_kwargs or "channel_multiplier" in generator_kwargs:
        config.pop("channels", None)
        config.pop("channel_multiplier", None)
    config.update(generator_kwargs)
    generator = Generator(**config)
    state_dict = with_default_kernels(generator, state_dict, path=path)
    load_strict(generator, state_dict, path=path, what=which)
    latent_avg = container.get("latent_avg") if isinstance(container, Mapping) else None
    if latent_avg is not None:
        # rosinality's convert_weight stores TF's dlatent_avg as [style_dim]; keep other shapes
        latent_avg = latent_avg.float()
        if latent_avg.dim() == 2 and latent_avg.shape[0] == 1:
            latent_avg = latent_avg[0]
    return generator.eval(), latent_avg


def load_discriminator(
    path: str | os.PathLike, *, which: str = "d", **kwargs: Any
) -> torch.nn.Module:
    """Build ``redestyle.nets.stylegan2.Discriminator`` from a rosinality container (entry ``which``).

    Constructor arguments not in ``kwargs`` are inferred from the weight shapes. Returns the
    discriminator (eval mode, CPU), strictly loaded.
    """
    path = Path(path)
    container = load_container(path)
    state_dict = _entry_or_bare(container, which, path, probe="convs.0.0.weight")
    try:
        config = infer_discriminator_config(state_dict)
    except CorruptCheckpointError as err:
        raise _with_path(err, path, which) from None
    if "channels" in kwargs or "channel_multiplier" in kwargs:
        config.pop("channels", None)
        config.pop("channel_multiplier", None)
    config.update(kwargs)
    discriminator = Discriminator(**config)
    state_dict = with_default_kernels(discriminator, state_dict, path=path)
    load_strict(discriminator, state_dict, path=path, what=which)
    return discriminator.eval()


def _entry_or_bare(container: Any, which: str, path: Path, *, probe: str) -> Mapping[str, Any]:
    """``container[which]``; a bare state dict (``probe`` key at top level) is returned whole."""
    if isinstance(container, Mapping) and probe in container:
        return container
    return take(container, which, path=path)


# --------------------------------------------------------------------------------------------
# pSp-family containers (pSp, e4e, ReStyle, HyperStyle, DualStyleGAN's encoders; encoders.md §2-7)


def n_latent_for(size: int) -> int:
    """Number of W+ entries of a rosinality generator of ``size`` px (18 for 1024)."""
    return 2 * int(math.log2(size)) - 2


def normalize_latent_avg(
    latent_avg: torch.Tensor, *, n_latent: int, path: str | os.PathLike | None = None
) -> torch.Tensor:
    """latent_avg as a float32 [n_latent, style_dim] tensor.

    Accepts the shapes found in official files: [style_dim] (rosinality convert_weight),
    [1, style_dim], [n_latent, style_dim] (pSp, ReStyle), [1, n_latent, style_dim]. A single
    vector is repeated, as the official wrappers broadcast it.
    """
    t = torch.as_tensor(latent_avg).float()
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 1:
        t = t[None]
    if t.dim() == 2 and t.shape[0] == 1:
        return t.expand(n_latent, -1).clone()
    if t.dim() == 2 and t.shape[0] == n_latent:
        return t.clone()
    raise CheckpointMismatchError(
        f"{path or 'latent_avg'}: latent_avg has shape {list(latent_avg.shape)}; expected [512], "
        f"[1, 512] or [{n_latent}, 512]"
    )


def load_psp_container(
    path: str | os.PathLike, *, encoder_prefix: str | None = None
) -> dict[str, Any]:
    """Split a pSp-style container into its parts.

    Returns {"encoder_sd", "decoder_sd" (prefixes stripped), "latent_avg" (float32
    [n_latent, 512] or None), "opts" (plain dict; a Namespace is converted), "n_latent",
    "encoder_prefix", "extra_keys" (state-dict keys under neither prefix)}.
    The encoder prefix is "encoder." (pSp, e4e, ReStyle, W encoder) or "hypernet." (HyperStyle),
    detected unless given. n_latent comes from opts["output_size"] (else the decoder's size,
    else 18).
    """
    path = Path(path)
    container = load_container(path)
    state_dict = take(container, "state_dict", path=path)
    if encoder_prefix is None:
        found = [p for p in ("encoder.", "hypernet.") if any(k.startswith(p) for k in state_dict)]
        if len(found) != 1:
            raise CorruptCheckpointError(
                f"{path}: expected keys under exactly one of 'encoder.' / 'hypernet.', found "
                f"{found or 'neither'}"
            )
        encoder_prefix = found[0]
    encoder_sd = strip_prefix(state_dict, encoder_prefix)
    decoder_sd = strip_prefix(state_dict, "decoder.")
    extra = sorted(k for k in state_dict if not k.startswith((encoder_prefix, "decoder.")))
    opts = container.get("opts") or {}
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    opts = dict(opts)
    if opts.get("output_size"):
        n_latent = n_latent_for(int(opts["output_size"]))
    elif "conv1.conv.weight" in decoder_sd:
        n_latent = n_latent_for(infer_generator_config(decoder_sd)["size"])
    else:
        n_latent = 18  # pSp's default output_size 1024 (older checkpoints lack the option)
    latent_avg = container.get("latent_avg")
    if latent_avg is not None:
        latent_avg = normalize_latent_avg(latent_avg, n_latent=n_latent, path=path)
    return {
        "encoder_sd": encoder_sd,
        "decoder_sd": decoder_sd,
        "latent_avg": latent_avg,
        "opts": opts,
        "n_latent": n_latent,
        "encoder_prefix": encoder_prefix,
        "extra_keys": extra,
    }


# --------------------------------------------------------------------------------------------
# Code files (*_code.npy: np.save of a dict {file: float32 (1,18,512)}; dualstylegan.md §2)


class _CodesUnpickler(pickle.Unpickler):
    """Unpickles only what np.save writes for a dict of float arrays (no other code runs)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "dict"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            if module.startswith("numpy.core.") and importlib.util.find_spec("numpy._core"):
                # files written by numpy 1.x (the official ones); numpy 2 renamed the module
                module = "numpy._core." + module.removeprefix("numpy.core.")
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def save_codes(path: str | os.PathLike, codes: Mapping[str, np.ndarray]) -> None:
    """np.save a dict name -> float32 array atomically (DualStyleGAN's ``*_code.npy`` format, what
    :func:`load_codes` reads back)."""
    with atomic_write(path) as f:
        np.save(f, dict(codes), allow_pickle=True)


def load_codes(path: str | os.PathLike) -> dict[str, Any]:
    """Read a DualStyleGAN ``*_code.npy`` dict {file name: float32 array (1, 18, 512)}.

    Equivalent to ``np.load(path, allow_pickle=True).item()`` but the embedded pickle may only
    rebuild numpy arrays and dicts. Raises CorruptCheckpointError otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(missing_message(path.name, path, from_folder=False))
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                _, _, dtype = np.lib.format.read_array_header_2_0(f)
            if not dtype.hasobject:  # a plain array, no pickle inside
                f.seek(0)
                return {"": np.load(f, allow_pickle=False)}
            value = _CodesUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, ValueError, EOFError, OSError) as err:
        raise CorruptCheckpointError(f"{path}: not a code file ({_one_line(err)})") from err
    if isinstance(value, np.ndarray) and value.dtype.hasobject and value.shape == ():
        value = value.item()
    if not isinstance(value, dict):
        raise CorruptCheckpointError(
            f"{path}: expected a dict of codes, found {type(value).__name__}"
        )
    return value


# --------------------------------------------------------------------------------------------
# Our own files: atomic writes, format 1


def _plain_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config must be a dataclass instance or a dict, got {type(config).__name__}")


def save_checkpoint(
    path: str | os.PathLike,
    *,
    state_dict: Mapping[str, Any],
    config: Any = None,
    step: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write our own checkpoint ``{"format": 1, "config", "state_dict", "step", **extra}`` atomically.

    ``config`` is a dataclass (stored as ``asdict``) or a dict of plain values; ``extra`` holds
    more plain entries (optimizer states, codes). The file loads with weights_only=True.
    """
    reserved = {"format", "config", "state_dict", "step"} & set(extra or {})
    if reserved:
        raise ValueError(f"extra may not override {sorted(reserved)}")
    payload = {
        "format": FORMAT_VERSION,
        "config": _plain_config(config),
        "state_dict": dict(state_dict),
        "step": int(step),
        **(extra or {}),
    }
    return save_atomic(payload, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by save_checkpoint: {"format": 1, "config", "state_dict", "step", ...}.

    Raises CorruptCheckpointError when the file is not in our format (e.g. an official container).
    """
    path = Path(path)
    payload = load_container(path)
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT_VERSION:
        found = payload.get("format") if isinstance(payload, Mapping) else type(payload).__name__
        raise CorruptCheckpointError(
            f"{path}: not a redestyle checkpoint (format {found!r}, expected {FORMAT_VERSION})"
        )
    for key in ("config", "state_dict", "step"):
        take(payload, key, path=path)
    return dict(payload)


# --------------------------------------------------------------------------------------------
# `redestyle weights list`


@dataclass(frozen=True)
class WeightsRow:
    """One line of ``redestyle weights list``."""

    name: str
    used_by: str
    present: bool
    path: Path | None  # where it was found, or where it was looked for
    source: str


def weights_table(weights_dir: str | os.PathLike | None = None) -> list[WeightsRow]:
    """What the registry knows and what is present in the weights folder.

    ``<style>/...`` entries get one row per style folder that holds the file, or one
    missing row with the placeholder name when none does.
    """
    folder = weights_dir_from(weights_dir)
    rows = []
    for entry in REGISTRY:
        if entry.name.startswith(f"{STYLE}/"):
            filename = entry.name.split("/", 1)[1]
            found = (
                sorted(folder.glob(f"*/{filename}"))
                if folder is not None and folder.is_dir()
                else []
            )
            for path in found:
                rows.append(
                    WeightsRow(
                        f"{path.parent.name}/{filename}", entry.used_by, True, path, entry.source
                    )
                )
            if not found:
                rows.append(
                    WeightsRow(
                        entry.name,
                        entry.used_by,
                        False,
                        folder / entry.name if folder else None,
                        entry.source,
                    )
                )
            continue
        try:
            path, present = resolve(entry.name, folder), True
        except MissingWeightsError:
            path, present = (folder / entry.name if folder else None), False
        rows.append(WeightsRow(entry.name, entry.used_by, present, path, entry.source))
    return rows


def format_weights_table(rows: list[WeightsRow], *, folder: Path | None = None) -> str:
    """Plain-text table of weights_table rows: file, status, what uses it, then its path or source."""
    name_w = max(len(r.name) for r in rows)
    where = folder if folder is not None else f"none (pass --weights DIR or set ${ENV_WEIGHTS})"
    lines = [f"weights folder: {where}", f"{'file':<{name_w}}  {'status':<7}  used by"]
    indent = " " * (name_w + 11)
    for r in rows:
        lines.append(f"{r.name:<{name_w}}  {'present' if r.present else 'missing':<7}  {r.used_by}")
        lines.append(f"{indent}{r.path}" if r.present else f"{indent}get it: {r.source}")
    lines.append(f"{sum(r.present for r in rows)} of {len(rows)} present")
    return "\n".join(lines)


def main_weights_list(args: argparse.Namespace, *, out: IO[str] | None = None) -> int:
    """CLI body of ``redestyle weights list``: print the table; exit status 0.

    Reads ``args.weights`` (the ``--weights DIR`` option; None falls back to $REDESTYLE_WEIGHTS).
    """
    folder = weights_dir_from(getattr(args, "weights", None))
    text = format_weights_table(weights_table(folder), folder=folder)
    (out or sys.stdout).write(text + "\n")
    return 0


__all__ = [
    "REGISTRY",
    "CheckpointError",
    "CheckpointMismatchError",
    "CorruptCheckpointError",
    "MissingWeightsError",
    "WeightFile",
    "WeightsRow",
    "atomic_write",
    "file_sha256",
    "format_weights_table",
    "infer_discriminator_config",
    "infer_generator_config",
    "load_checkpoint",
    "load_codes",
    "load_container",
    "load_discriminator",
    "load_psp_container",
    "load_strict",
    "load_stylegan2",
    "main_weights_list",
    "mismatch_report",
    "n_latent_for",
    "normalize_latent_avg",
    "registry_entry",
    "resolve",
    "save_atomic",
    "save_checkpoint",
    "strip_prefix",
    "take",
    "verify_sha256",
    "weights_table",
    "with_default_kernels",
]
