"""Multi-process training entry point: ``torchrun --nproc_per_node=N -m natrob.train.ddp --model ... --dataset ...``.

Uses NCCL on GPUs and gloo on CPU. Each rank trains on its shard of every epoch's permutation with
DistributedDataParallel averaging gradients; rank 0 writes the checkpoint and the model store entry.
"""
from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist

from ..data import load_dataset
from ..models import build_model
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .loop import accuracy, train


def main(argv=None):
    """Train one model on one dataset with every process of a ``torchrun`` launch (arguments: ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="cnn")
    p.add_argument("--model-kwargs", default="{}", help="JSON dict of model constructor arguments")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for checkpoints (rank 0) and per-rank weights")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    data = load_dataset(args.dataset)
    torch.manual_seed(args.seed)  # identical initial weights on every rank
    model = build_model(args.model, data, **json.loads(args.model_kwargs))
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, batch_size=args.batch_size)
    train(model, data, cfg, checkpoint_dir=args.out, seed=args.seed, device=device, progress=rank == 0)
    os.makedirs(args.out, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, os.path.join(args.out, f"rank{rank}.pt"))
    if rank == 0:
        save_checkpoint(os.path.join(args.out, "final.pt"), model)
        print(f"test_acc={accuracy(model, data.test_x, data.test_y, device=device):.4f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
