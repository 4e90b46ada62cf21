"""Run by test_distributed.py under ``torchrun --nproc_per_node=2``: two fine-tuning steps (gloo, CPU).

Writes ``<out>/rank<r>.pt`` = {"params": generator + discriminator parameters, "losses": [...]}.
"""

import sys
from pathlib import Path

import torch

from redestyle.imaging import to_uint8_batch
from redestyle.train import (
    FinetuneConfig,
    PairedSet,
    RealBatches,
    Trainer,
    build_train_models,
    dist,
)


def main(out: Path) -> None:
    device = dist.init_from_env("cpu")
    rank = dist.rank()
    models = build_train_models("tiny", seed=0, with_id=False)
    # different starting weights per rank: the trainer must broadcast rank 0's
    if rank:
        with torch.no_grad():
            for p in models.generator.res.parameters():
                p.add_(1.0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        codes = models.generator.generator.mapping(torch.randn(40, 64, generator=g)).reshape(4, 10, 64)
    images = to_uint8_batch(torch.rand(4, 3, 64, 64, generator=g) * 2 - 1)
    pairs = PairedSet(list("abcd"), images, codes, codes.flip(0), "W+")
    config = FinetuneConfig(batch=2, iter=2, loss_size=64)
    real = RealBatches(images, 2, rank=rank, world_size=dist.world_size())
    trainer = Trainer(models, config, real=real, paired=pairs, device=device)
    losses = [trainer.finetune_step() for _ in range(2)]
    params = {f"g.{k}": v.detach() for k, v in trainer.g.named_parameters()}
    params.update({f"d.{k}": v.detach() for k, v in trainer.d.named_parameters()})
    params.update({f"ema.{k}": v.detach() for k, v in trainer.g_ema.named_parameters()})
    torch.save({"params": params, "losses": losses, "world": dist.world_size()}, out / f"rank{rank}.pt")
    dist.shutdown()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
