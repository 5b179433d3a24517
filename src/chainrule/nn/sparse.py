"""``Embedding``: a lookup table of learned vectors, indexed by integers."""
from __future__ import annotations

from .. import backend, ops
from ..core.dispatch import no_grad
from ..core.tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter


class Embedding(Module):
    """Rows of ``weight`` (num_embeddings, embedding_dim), initialized N(0, 1), picked by
    integer indices: input (*) -> (*, embedding_dim).

    ``padding_idx``: that row starts at zero and never receives a gradient.
    ``max_norm``: rows looked up with a larger ``norm_type``-norm are rescaled in place.
    ``sparse``: the gradient of ``weight`` is a ``RowSparseGrad`` with only the rows looked
    up (optimizers that take it: ``SGD`` without momentum or weight decay, ``Adagrad``
    without weight decay, ``SparseAdam``).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, sparse: bool = False,
                 _weight: Tensor | None = None, _freeze: bool = False, dtype=None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"[-{num_embeddings}, {num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.sparse = sparse
        if _weight is None:
            dt = backend.get_default_dtype() if dtype is None else dtype
            self.weight = Parameter(ops.empty(num_embeddings, embedding_dim, dtype=dt),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, "
                                 f"expected ({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """N(0, 1) entries; the padding row zero."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, input) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.sparse:
            s += ", sparse=True"
        return s

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True,
                        padding_idx: int | None = None, max_norm: float | None = None,
                        norm_type: float = 2.0, sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is ``embeddings`` (2-D, shared, not copied), frozen
        unless ``freeze=False``."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, sparse, _weight=embeddings,
                   _freeze=freeze)
