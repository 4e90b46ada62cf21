"""DualStyleGAN training: pretraining and fine-tuning loops (torchrun data-parallel), on W+ or z+ codes.

Layout: ``config`` (official defaults), ``data`` (paired set, real batches), ``gan`` (adversarial
losses, R1, path length, EMA), ``models`` (networks per profile, generator files), ``trainer``
(one iteration at a time, checkpoints), ``loop`` (the one training loop and resume protocol, shared
with the miniature stages), ``dist`` (torchrun helpers), ``cli``
(``redestyle train``). Importing this package builds nothing and touches no device.
"""

import importlib

# name -> submodule. Loaded on first use (PEP 562), so that ``redestyle.train.config`` and the
# ``redestyle train`` parser (train/cli.py) import no torch: ``redestyle --help`` stays fast.
_LAZY = {
    "dist": None,
    "FinetuneConfig": "config", "PretrainConfig": "config", "paper_finetune_config": "config",
    "PairedSet": "data", "RealBatches": "data", "load_image_set": "data", "load_paired_set": "data",
    "paired_batch": "data", "read_space": "data",
    "TrainModels": "models", "build_train_models": "models", "load_dualstylegan": "models",
    "save_generator": "models",
    "Trainer": "trainer", "run": "trainer",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name] or name}")
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
