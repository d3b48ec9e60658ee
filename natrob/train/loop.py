"""The training loop: flat, resumable, with per-epoch history and checkpoints.

Determinism on resume: the data order of epoch e comes from a generator seeded with (seed, e), and the
global RNG state (used by random starts of adversarial training) is saved with every checkpoint, so a run
killed at any point and restarted ends with the same weights as an uninterrupted one (CPU, same seed).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, load_into, save_checkpoint
from .config import TrainConfig
from .methods import METHOD_STEPS
from .precision import resolve, training_precision


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def make_optimizer(model, cfg: TrainConfig):
    """SGD (with ``cfg.momentum``) or Adam over the trainable parameters, at ``cfg.lr`` and ``cfg.weight_decay``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based): ``cfg.lr`` halved every ``halve_every`` epochs and divided by
    10 at each milestone (a fraction of ``cfg.epochs``)."""
    lr = cfg.lr
    if cfg.halve_every:
        lr *= 0.5 ** (epoch // cfg.halve_every)
    for m in cfg.milestones:
        if epoch >= int(round(m * cfg.epochs)):
            lr *= 0.1
    return lr


@torch.no_grad()
def accuracy(model, x, y, batch_size=256, device=None) -> float:
    """Fraction of ``x`` classified as ``y``, in eval mode, in batches of ``batch_size`` (256) on ``device``
    (None: the model's). The model's training mode is restored."""
    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += (model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
    model.train(was)
    return correct / max(1, len(y))


def _epoch_order(n, seed, epoch, rank=0, world=1):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return order[rank::world]


def train(model, dataset, cfg: TrainConfig, checkpoint_dir=None, seed: int = 0, device=None, progress: bool = True,
          stop_after_batches: int | None = None, keep_epochs: bool = False, until_epoch: int | None = None):
    """Train ``model`` on ``dataset`` with ``cfg``; returns the history (list of per-epoch dicts).

    With ``checkpoint_dir`` every epoch ends with an atomic ``last.pt`` (weights, optimiser, RNG, history)
    and training resumes from it; ``keep_epochs`` also keeps each epoch's weights as ``epoch-<n>.pt`` (the
    training-length axis). ``cfg.precision`` 'bfloat16' trains on the fast path where the device has it
    (each epoch's record says which precision was used). ``until_epoch`` stops after that many epochs of
    ``cfg``'s schedule (a later call resumes). ``stop_after_batches`` simulates a kill (tests)."""
    device = torch.device(device) if device is not None else default_device()
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    model.to(device)
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = make_optimizer(model, cfg)
    step_fn = METHOD_STEPS[cfg.method]
    precision = resolve(cfg.precision, device)
    history, start_epoch = [], 0
    torch.manual_seed(seed)
    last = Path(checkpoint_dir) / "last.pt" if checkpoint_dir else None
    if last is not None and last.exists():
        history, start_epoch = _resume(last, model, opt)
    kill = _Kill(stop_after_batches)
    for epoch in range(start_epoch, min(cfg.epochs, until_epoch or cfg.epochs)):
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, epoch)
        net.train()
        order = _epoch_order(len(dataset.train_y), seed, epoch, rank, world)
        t0 = time.time()
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress or rank != 0, leave=False)
        loss, train_acc, nfe = _epoch(net, model, opt, cfg, dataset, order, bar, (step_fn, precision, device), kill)
        record = {"epoch": epoch + 1, "lr": lr_at(cfg, epoch), "loss": loss, "train_acc": train_acc,
                  "test_acc": accuracy(model, dataset.test_x, dataset.test_y, device=device),
                  "nfe_forward_mean": nfe, "wall_s": time.time() - t0, "precision_used": precision}
        history.append(record)
        if progress and rank == 0:
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {record['loss']:.4f} train {record['train_acc']:.3f} "
                       f"test {record['test_acc']:.3f} ({record['wall_s']:.1f}s)")
        if last is not None and rank == 0:
            _save_epoch(last, model, opt, epoch, history, keep_epochs)
    return history


class _Kill:
    """A simulated kill (tests): KeyboardInterrupt once ``after`` batches have run, counted across epochs."""

    def __init__(self, after: int | None):
        self.after, self.done = after, 0

    def tick(self):
        self.done += 1
        if self.after is not None and self.done >= self.after:
            raise KeyboardInterrupt(f"stopped after {self.done} batches (simulated kill)")


def _epoch(net, model, opt, cfg: TrainConfig, dataset, order, bar, how: tuple, kill: _Kill) -> tuple:
    """One pass over the batches of ``order`` (``how``: the method's step, the precision and the device): the
    epoch's mean loss, training accuracy and mean forward NFE (None for a model that does not count it)."""
    step_fn, precision, device = how
    loss_sum, correct, seen, nfe = 0.0, 0, 0, []
    for i in bar:
        idx = order[i:i + cfg.batch_size]
        x, y = dataset.train_x[idx].to(device), dataset.train_y[idx].to(device)
        with training_precision(model, precision, device):
            loss, logits = step_fn(net, model, opt, x, y, cfg.method_params)
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        if hasattr(model, "nfe_forward"):
            nfe.append(model.nfe_forward)
        bar.set_postfix(loss=f"{loss:.3f}")
        kill.tick()
    return loss_sum / max(1, seen), correct / max(1, seen), (sum(nfe) / len(nfe)) if nfe else None


def _resume(last: Path, model, opt) -> tuple:
    """Weights, optimiser and RNG state from ``last.pt``; returns (history so far, first epoch still to run)."""
    ckpt = load_checkpoint(last)
    load_into(model, ckpt, last)
    opt.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"])
    return list(ckpt["history"]), int(ckpt["epoch"]) + 1


def _save_epoch(last: Path, model, opt, epoch: int, history: list, keep_epochs: bool):
    """An epoch's end: the resumable ``last.pt`` and, with ``keep_epochs``, that epoch's weights alone."""
    if keep_epochs:
        save_checkpoint(last.with_name(f"epoch-{epoch + 1}.pt"), model, epoch=epoch, history=history)
    save_checkpoint(last, model, optimizer=opt.state_dict(), rng=torch.get_rng_state(), epoch=epoch, history=history)
