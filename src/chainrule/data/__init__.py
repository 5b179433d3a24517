"""Data loading, as in ``torch.utils.data``: datasets, samplers, ``DataLoader`` and
bundled datasets that need no download (``chainrule.data.datasets``)."""
from .dataloader import (BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler,
                         default_collate)
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from . import datasets

__all__ = ["BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "RandomSampler", "Sampler",
           "SequentialSampler", "Subset", "TensorDataset", "datasets", "default_collate",
           "random_split"]
