"""DualStyleGAN training: pretraining and fine-tuning loops (torchrun data-parallel), on W+ or z+ codes.

Layout: ``config`` (official defaults), ``data`` (paired set, real batches), ``gan`` (adversarial
losses, R1, path length, EMA), ``models`` (networks per profile, generator files), ``trainer``
(one iteration at a time, checkpoints, the loop), ``dist`` (torchrun helpers), ``cli``
(``redestyle train``). Importing this package builds nothing and touches no device.
"""

from . import dist
from .config import FinetuneConfig, PretrainConfig, paper_finetune_config
from .data import PairedSet, RealBatches, load_image_set, load_paired_set, paired_batch, read_space
from .models import TrainModels, build_train_models, load_dualstylegan, save_generator
from .trainer import Trainer, run

__all__ = [
    "FinetuneConfig",
    "PairedSet",
    "PretrainConfig",
    "RealBatches",
    "TrainModels",
    "Trainer",
    "build_train_models",
    "dist",
    "load_dualstylegan",
    "load_image_set",
    "load_paired_set",
    "paired_batch",
    "paper_finetune_config",
    "read_space",
    "run",
    "save_generator",
]
