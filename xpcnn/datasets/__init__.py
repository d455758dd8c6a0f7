"""Datasets: the IDX reader and the embedded real-MNIST sample."""

from .idx import IdxError, read_idx, read_idx_pair, write_idx
from .sample import load_sample

__all__ = ["IdxError", "read_idx", "read_idx_pair", "write_idx", "load_sample"]
