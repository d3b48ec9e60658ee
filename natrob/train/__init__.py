"""Training: standard and adversarial (PGD-AT, TRADES, YOPO), resumable, with a model store and the Table 2
trainers."""
from .checkpoint import load_checkpoint, load_into, save_checkpoint
from .config import TrainConfig, he_et_al, table_a1
from .loop import accuracy, default_device, train
from .store import entry_folder, entry_key, get_model, load_model, store_key, store_root
from .table2 import table2_configs

__all__ = ["TrainConfig", "table_a1", "he_et_al", "train", "accuracy", "default_device", "get_model", "load_model",
           "store_key", "store_root", "entry_folder", "entry_key", "save_checkpoint", "load_checkpoint", "load_into",
           "table2_configs"]
