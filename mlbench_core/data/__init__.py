"""Data sets of the reference tasks: download, safe extraction, loaders, sharding, augmentation.

Modules are imported on demand (``from mlbench_core.data import cifar10``) so that a task pays
only for the libraries its own data set needs (the BPE tokenizer, scikit-learn's svmlight
reader, ...).
"""

from mlbench_core.data.errors import ChecksumMismatch, DataFormatError, DatasetUnavailable

__all__ = ["ChecksumMismatch", "DataFormatError", "DatasetUnavailable"]
