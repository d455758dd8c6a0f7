"""Datasets: the IDX reader, MNIST / Fashion-MNIST loaders, the embedded sample, preprocessing."""

from .idx import IdxError, read_idx, read_idx_pair, write_idx
from .load import NAMES, Dataset, load_dataset
from .mnist import DataNotFoundError, Split, load_idx_folder, load_mnist, load_split, search_places
from .preprocess import class_counts, hold_out, one_hot, prepare, select_classes, split_per_class, to_inputs
from .registry import DATASETS, DatasetInfo, IdxFile
from .sample import load_sample

__all__ = [
    "IdxError", "read_idx", "read_idx_pair", "write_idx", "load_sample",
    "NAMES", "Dataset", "load_dataset", "DataNotFoundError", "Split", "load_mnist", "load_split", "load_idx_folder",
    "search_places", "class_counts", "hold_out", "one_hot", "prepare", "select_classes", "split_per_class", "to_inputs",
    "DATASETS", "DatasetInfo", "IdxFile",
]
