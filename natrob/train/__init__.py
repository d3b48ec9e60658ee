"""Training: standard and adversarial (PGD-AT, TRADES, YOPO), resumable, with a model store."""
from .checkpoint import load_checkpoint, load_into, save_checkpoint
from .config import TrainConfig, he_et_al, table_a1
from .loop import accuracy, default_device, train
from .store import get_model, load_model, store_key

__all__ = ["TrainConfig", "table_a1", "he_et_al", "train", "accuracy", "default_device", "get_model", "load_model",
           "store_key", "save_checkpoint", "load_checkpoint", "load_into"]
