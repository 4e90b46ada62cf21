"""IR / IR-SE ResNets (ArcFace `model_ir_se50.pth` layout), the trunk of every FFHQ encoder.

One network family serves three roles:

* ``Backbone``: the face-recognition network of ``model_ir_se50.pth`` (TreB1eN's InsightFace
  port), a bare state dict loaded strictly by the pSp/e4e/ReStyle ID losses;
* ``make_input_layer`` + ``make_body``: the trunk that pSp, e4e and ReStyle encoders build on and
  initialise from that file (``init_from_irse``; ReStyle widens the input layer to 6 channels with
  ``widen_input_layer``);
* ``IDFeatures``: the ID-loss / identity-metric preprocessing (crop, pool to 112, embed).

Key names follow ``models/encoders/model_irse.py`` and ``helpers.py`` (identical in pSp, e4e,
ReStyle, HyperStyle and DualStyleGAN): ``input_layer.{0,1,2}``, ``body.N.res_layer.{0..5}``
(``.5.fc1``/``.5.fc2`` in the SE variant), ``body.N.shortcut_layer.{0,1}``, ``output_layer.{0,3,4}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

#: Channel widths of the four stages (helpers.py ``get_blocks``).
IRSE_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)

#: Units per stage for each supported depth (helpers.py ``get_blocks``).
STAGE_UNITS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}

MODES = ("ir", "ir_se")

#: ID-loss crop of a 256x256 aligned face, rows 35:223 and columns 32:220 (pSp
#: ``criteria/id_loss.py``: ``x[:, :, 35:223, 32:220]``), then pooled to 112.
ID_CROP_256 = (35, 223, 32, 220)


def _check_arch(num_layers: int, mode: str, widths: Sequence[int] | None) -> tuple[int, ...]:
    if num_layers not in STAGE_UNITS:
        raise ValueError(f"num_layers must be one of {sorted(STAGE_UNITS)}, got {num_layers}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    widths = tuple(IRSE_WIDTHS if widths is None else widths)
    if len(widths) != 4 or min(widths) < 1:
        raise ValueError(f"widths must be four positive stage widths, got {widths}")
    return widths


def stage_ends(num_layers: int) -> tuple[int, int, int, int]:
    """Index in ``body`` of the last unit of each stage: (2, 6, 20, 23) for IR-50.

    pSp/e4e tap the body after stages 2, 3 and 4 (``body.6``, ``body.20``, ``body.23`` for IR-50).
    """
    ends, total = [], 0
    for units in STAGE_UNITS[num_layers]:
        total += units
        ends.append(total - 1)
    return tuple(ends)


class SEModule(nn.Module):
    """Squeeze-and-excitation gate: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``.

    ``fc1``/``fc2`` are bias-free 1x1 convolutions with ``channels // reduction`` hidden units
    (at least one, so that the narrow ``tiny`` widths still work).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))
        return x * gate


class BottleneckIR(nn.Module):
    """Improved-residual unit: ``res_layer(x) + shortcut_layer(x)``, no activation after the sum.

    ``res_layer`` = [BN(in), conv3x3(in->depth), PReLU, conv3x3(depth->depth, stride), BN,
    (SE)]; the stride sits on the second conv. The shortcut is a parameter-free stride-``stride``
    subsampling when the width is unchanged, else a strided 1x1 conv + BN.
    """

    def __init__(self, in_channels: int, depth: int, stride: int, *, se: bool) -> None:
        super().__init__()
        if in_channels == depth:
            # MaxPool2d with a 1x1 window is plain subsampling (helpers.py bottleneck_IR*).
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def make_input_layer(input_nc: int = 3, width: int = 64) -> nn.Sequential:
    """``input_layer``: conv3x3(input_nc -> width, no bias), BN, PReLU; keeps the resolution."""
    return nn.Sequential(
        nn.Conv2d(input_nc, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width)
    )


def make_body(
    num_layers: int = 50, mode: str = "ir_se", widths: Sequence[int] | None = None
) -> nn.Sequential:
    """``body``: the four stages of bottleneck units, flattened (``body.0`` .. ``body.23`` for IR-50).

    The first unit of every stage halves the resolution, so the body maps [B, w0, H, W] to
    [B, w3, H/16, W/16]. ``widths`` defaults to (64, 128, 256, 512); the input width is ``widths[0]``.
    """
    widths = _check_arch(num_layers, mode, widths)
    units, in_channels = [], widths[0]
    for depth, count in zip(widths, STAGE_UNITS[num_layers]):
        for i in range(count):
            units.append(BottleneckIR(in_channels, depth, 2 if i == 0 else 1, se=mode == "ir_se"))
            in_channels = depth
    return nn.Sequential(*units)


class Backbone(nn.Module):
    """The ArcFace IR/IR-SE network of ``model_ir_se50.pth`` (``Backbone(112, 50, 'ir_se')``).

    Args:
        input_size: side of the (square) input; the official files use 112 (or 224). Must be a
            multiple of 16; it fixes the width of the final linear layer.
        num_layers: 50, 100 or 152.
        mode: ``"ir_se"`` (with squeeze-excitation) or ``"ir"``.
        drop_ratio: dropout before the linear layer (training only).
        affine: affine BatchNorm1d on the embedding (True in ``model_ir_se50.pth``).
        widths: stage widths, default (64, 128, 256, 512); the embedding has ``widths[-1]`` dims.

    ``forward`` maps [B, 3, input_size, input_size] faces in [-1, 1] to l2-normalised embeddings
    [B, widths[-1]]; ``embed`` returns the embedding before normalisation. Use ``eval()``.
    """

    def __init__(
        self,
        input_size: int = 112,
        num_layers: int = 50,
        mode: str = "ir_se",
        drop_ratio: float = 0.6,
        affine: bool = True,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        widths = _check_arch(num_layers, mode, widths)
        if input_size % 16 or input_size < 16:
            raise ValueError(f"input_size must be a positive multiple of 16, got {input_size}")
        self.input_size = input_size
        self.input_layer = make_input_layer(3, widths[0])
        self.body = make_body(num_layers, mode, widths)
        final = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(widths[-1] * final * final, widths[-1]),
            nn.BatchNorm1d(widths[-1], affine=affine),
        )

    def embed(self, x: Tensor) -> Tensor:
        """[B, 3, S, S] -> embedding before l2 normalisation [B, widths[-1]]."""
        return self.output_layer(self.body(self.input_layer(x)))

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, S, S] in [-1, 1] -> unit-norm embedding [B, widths[-1]]."""
        feat = self.embed(x)
        # model_irse.l2_norm divides by the plain 2-norm (no epsilon).
        return feat / feat.norm(p=2, dim=1, keepdim=True)


class IDFeatures(nn.Module):
    """ID-loss / identity-metric features of aligned faces (pSp ``IDLoss.extract_feats``).

    Crops rows 35:223, columns 32:220 of a 256x256 face, average-pools the crop to
    ``backbone.input_size`` (112) and embeds it. Larger images are first pooled to 256 (the
    official losses see ``face_pool``-ed 256 outputs); smaller ones (the ``tiny`` profile) are
    cropped at the same fractions.
    ``forward``: [B, 3, S, S] in [-1, 1] -> unit-norm [B, D]. The backbone is kept in eval mode:
    ``train()`` does not switch its BatchNorm/Dropout (the official loss calls ``eval()`` once).
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone.eval()

    def train(self, mode: bool = True) -> IDFeatures:
        super().train(mode)
        self.backbone.eval()
        return self

    @staticmethod
    def crop(x: Tensor) -> Tensor:
        """The face crop of [B, C, S, S]: exactly ``[35:223, 32:220]`` for S = 256."""
        size = x.shape[-1]
        if x.shape[-2] != size:
            raise ValueError(f"IDFeatures expects square images, got {tuple(x.shape[-2:])}")
        top, bottom, left, right = (round(v * size / 256) for v in ID_CROP_256)
        return x[:, :, top:bottom, left:right]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] > 256:
            x = F.adaptive_avg_pool2d(x, 256)
        crop = F.adaptive_avg_pool2d(self.crop(x), self.backbone.input_size)
        return self.backbone(crop)


def widen_input_layer(
    state_dict: Mapping[str, Tensor],
    input_nc: int = 6,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """ReStyle's input surgery on IR-SE weights: ``input_layer.0.weight`` [64, 3, 3, 3] -> [64, input_nc, 3, 3].

    The first three input channels keep the RGB filters; the extra ones are drawn from N(0, 1)
    (ReStyle ``models/psp.py`` ``__get_encoder_checkpoint``). Returns a new dict (the input is not
    modified); every other entry is passed through. ``input_nc == 3`` returns a shallow copy.
    """
    key = "input_layer.0.weight"
    if key not in state_dict:
        raise KeyError(f"{key!r} missing: not an IR-SE state dict")
    weight = state_dict[key]
    if input_nc < weight.shape[1]:
        raise ValueError(f"cannot narrow {key} from {weight.shape[1]} to {input_nc} input channels")
    out = dict(state_dict)
    if input_nc == weight.shape[1]:
        return out
    extra = torch.randn(
        weight.shape[0],
        input_nc - weight.shape[1],
        *weight.shape[2:],
        generator=generator,
        dtype=weight.dtype,
    ).to(weight.device)
    out[key] = torch.cat([weight, extra], dim=1)
    return out


def init_from_irse(
    module: nn.Module, state_dict: Mapping[str, Tensor], *, generator: torch.Generator | None = None
) -> None:
    """Initialise an encoder's ``input_layer`` and ``body`` from a ``model_ir_se50.pth`` state dict.

    What pSp/e4e/ReStyle do before training (they load the file with ``strict=False``), but
    strict about what matters: every ``input_layer.*``/``body.*`` tensor of ``module`` must be
    provided with the right shape. The input conv is widened (``widen_input_layer``) when the
    module takes more than 3 channels. The other entries of the file (``output_layer``) are ignored.
    """
    own = module.state_dict()
    width = own["input_layer.0.weight"].shape[1]
    trunk = {k: v for k, v in state_dict.items() if k.startswith(("input_layer.", "body."))}
    trunk = widen_input_layer(trunk, width, generator=generator)
    wanted = {k for k in own if k.startswith(("input_layer.", "body."))}
    missing, unexpected = sorted(wanted - trunk.keys()), sorted(trunk.keys() - wanted)
    if missing or unexpected:
        raise KeyError(f"IR-SE trunk mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    module.load_state_dict(trunk, strict=False)
    log.info(
        "initialised %d trunk tensors of %s from IR-SE weights", len(trunk), type(module).__name__
    )
