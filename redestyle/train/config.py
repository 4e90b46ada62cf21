"""Training configurations with the official defaults of DualStyleGAN's scripts.

Field values come from ``finetune_dualstylegan.py`` / ``pretrain_dualstylegan.py`` argparse defaults
(williamyang1991/DualStyleGAN b3f0cf8e; reference/dualstylegan.md §4-5). The README's Cartoon
command (the paper setting, also Re-Destyle's) changes ``iter=1500, batch=4 (x 8 GPUs),
l2_reg_loss=0.015, augment=True``: :func:`paper_finetune_config` returns it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: EMA decay of g_ema.res: 0.5 ** (32 / (10 * 1000)) (rosinality's accumulate with ema_kimg 10).
EMA_DECAY = 0.5 ** (32 / (10 * 1000))
SPACES = ("W+", "z+")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class GANConfig:
    """Settings shared by pretraining and fine-tuning (rosinality-derived, dualstylegan.md §3)."""

    iter: int = 1000  # noqa: A003 -- official flag name (--iter); iterations of this run
    batch: int = 16  # per process (per GPU), as upstream
    lr: float = 0.002
    r1: float = 10.0  # R1 weight gamma (applied as r1 / 2 * penalty * d_reg_every)
    path_regularize: float = 2.0
    path_batch_shrink: int = 2
    d_reg_every: int = 16
    g_reg_every: int = 4
    mixing: float = 0.9  # style-mixing probability of random intrinsic z
    ema_decay: float = EMA_DECAY
    augment: bool = False  # ADA (--augment): non-leaking augmentation of D's inputs (train/augment.py)
    augment_p: float = 0.0  # > 0: fixed augmentation probability; 0: adaptive p (official --augment_p)
    ada_target: float = 0.6  # target of r_t = E[sign(D(real))] (--ada_target)
    ada_length: int = 500_000  # images for p to move by 1 (--ada_length)
    ada_every: int = 8  # D steps between p updates (the official loop hard-codes 8; its --ada_every
    #                     flag, default 256, is parsed but unused)
    save_every: int = 100
    sample_every: int = 100  # image grids to TensorBoard
    log_every: int = 1  # scalars to TensorBoard
    n_sample: int = 9
    loss_size: int = 256  # images are pooled to this size for VGG / ID losses (official 256)
    seed: int = 0

    def __post_init__(self):
        for name in ("iter", "batch", "d_reg_every", "g_reg_every", "path_batch_shrink", "save_every",
                     "sample_every", "log_every", "n_sample", "loss_size"):
            _check(int(getattr(self, name)) >= 1, f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        _check(self.lr > 0, f"{type(self).__name__}.lr must be positive, got {self.lr}")
        _check(0 <= self.mixing <= 1, f"{type(self).__name__}.mixing must be in [0, 1], got {self.mixing}")
        _check(0 <= self.ema_decay <= 1, f"{type(self).__name__}.ema_decay must be in [0, 1], got {self.ema_decay}")
        _check(0 <= self.augment_p <= 1, f"{type(self).__name__}.augment_p must be in [0, 1], got {self.augment_p}")
        _check(0 <= self.ada_target <= 1, f"{type(self).__name__}.ada_target must be in [0, 1], got {self.ada_target}")
        for name in ("ada_length", "ada_every"):
            _check(int(getattr(self, name)) >= 1, f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def g_reg_ratio(self) -> float:
        """Lazy-regularisation ratio of G's Adam (lr and beta scaling), 4 / 5 by default."""
        return self.g_reg_every / (self.g_reg_every + 1)

    @property
    def d_reg_ratio(self) -> float:
        """Lazy-regularisation ratio of D's Adam, 16 / 17 by default."""
        return self.d_reg_every / (self.d_reg_every + 1)


@dataclass(frozen=True)
class FinetuneConfig(GANConfig):
    """``finetune_dualstylegan.py`` (stage 3 on the style set). Loss weights are the paper's lambdas."""

    style_loss: float = 0.25  # lambda_FM (--style_loss)
    cx_loss: float = 0.25  # lambda_CX (--CX_loss)
    perc_loss: float = 1.0  # lambda_perc (--perc_loss), paired iterations only
    id_loss: float = 1.0  # lambda_ID (--id_loss)
    l2_reg_loss: float = 0.01  # lambda_reg (--L2_reg_loss); the README Cartoon command uses 0.015
    subspace_freq: int = 2  # iteration i is paired when i % subspace_freq > 0
    save_begin: int = 1000  # checkpoints only from this iteration on (official)
    random_ind: int = 8  # instyle entries >= random_ind are re-drawn in paired iterations
    subspace_std: float = 0.1  # jitter of the extrinsic codes
    space: str = "W+"  # space of the intrinsic/extrinsic codes (codes_meta.json); C4

    def __post_init__(self):
        super().__post_init__()
        _check(self.space in SPACES, f"FinetuneConfig.space must be one of {SPACES}, got {self.space!r}")
        _check(self.subspace_freq >= 1, f"FinetuneConfig.subspace_freq must be >= 1, got {self.subspace_freq}")
        for name in ("style_loss", "cx_loss", "perc_loss", "id_loss", "l2_reg_loss", "subspace_std"):
            _check(getattr(self, name) >= 0, f"FinetuneConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class PretrainConfig(GANConfig):
    """``pretrain_dualstylegan.py`` (stages 1-2 on FFHQ): iter/10 iterations with inject_index 7, iter/10
    with 6, then ``iter`` with 5 (only the last stage saves)."""

    iter: int = 3000  # noqa: A003
    save_every: int = 3000
    sample_every: int = 300
    subspace_freq: int = 4  # iteration i uses z+ intrinsic and encoder W+ extrinsic when i % 4 == 0
    adv_weight: float = 0.1  # official: 0.1 * adversarial terms in both steps
    perc_weights: tuple[float, ...] = (0.5, 0.5, 0.5, 0.0, 0.0)  # relu1_1 ... relu5_1
    inject_indices: tuple[int, ...] = (7, 6, 5)  # stages; the last runs ``iter`` iterations


def paper_finetune_config(**overrides) -> FinetuneConfig:
    """The README Cartoon setting (dualstylegan.md §5): iter 1500, batch 4, L2 0.015, adaptive ADA.

    The official run used 8 GPUs x batch 4 and ``--augment``; the paper used the iteration-1400
    checkpoint. Re-Destyle trained on one GPU with these weights and counts.
    """
    return replace(FinetuneConfig(iter=1500, batch=4, l2_reg_loss=0.015, augment=True), **overrides)
