"""The Tensor: an array, a grad flag and a link to the node that made it.

No math lives here: every operator and method forwards to ``chainrule.ops``,
which ends in ``bind``.
"""
from __future__ import annotations

import numpy as np

from .. import backend

_ops = None  # chainrule.ops, bound once the package has loaded (see chainrule/__init__.py)


TENSOR_TYPES: set = set()  # Tensor and its subclasses, for exact-type checks on hot paths


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    ``Tensor(data, dtype=None, requires_grad=False)`` copies nothing it does not
    have to; prefer ``chainrule.tensor``/``as_tensor``/``from_numpy`` in user code.
    """

    # _version is [count, last in-place op, graph epoch], shared by a tensor and its views;
    # a view also keeps _view_steps, the view ops (prim, params) that lead from _base to
    # it, and _view_epoch, the epoch it was taken at (see ops/inplace.py).
    __slots__ = ("data", "requires_grad", "grad", "_node", "_version", "_hooks", "_base",
                 "_view_steps", "_view_epoch", "__weakref__")
    __array_priority__ = 1000  # NumPy defers to our reflected operators

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        TENSOR_TYPES.add(cls)  # subclasses (nn.Parameter) take the ops' fast paths too

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        self.data = backend.asarray(data, dtype)
        self.grad = None
        self._node = None
        self._version = [0, None, 0]
        self._hooks = None
        self._base = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------ metadata
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    @property
    def grad_fn(self):
        return self._node

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def T(self) -> "Tensor":
        return _ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> "Tensor":
        return _ops.transpose(self, -2, -1)

    @property
    def _version_count(self) -> int:
        return self._version[0]

    # ------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self._node is not None and not requires_grad:
            raise RuntimeError("requires_grad_: you can only change requires_grad of leaf "
                               "tensors; use .detach() to get a tensor without history")
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only floating point tensors can require "
                               f"gradients, got dtype {self.data.dtype} (shape "
                               f"{tuple(self.data.shape)}); convert with .float() or .double()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> "Tensor":
        """A new tensor sharing data, cut from the graph."""
        t = _make(self.data)
        t._version = self._version
        return t

    def detach_(self) -> "Tensor":
        self._node = None
        self.requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad."""
        from ..autodiff.backward import backward
        backward(self, gradient, retain_graph, create_graph, inputs)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new one."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that "
                               "does not require grad")
        if self._node is not None:
            return self._node.register_hook(hook)
        if self._hooks is None:
            self._hooks = []
        from .dispatch import _Handle
        self._hooks.append(hook)
        return _Handle(self._hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor after backward."""
        if self._node is not None:
            import weakref
            self._node.retain = weakref.ref(self)

    # ---------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("numpy(): can't call numpy() on a tensor that requires grad; "
                               "use tensor.detach().numpy()")
        if self.data.__class__ is not np.ndarray:  # traced by jit: no values yet
            np.asarray(self.data)  # raises TracerError, naming the user's line
        return self.data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only one element tensors can be converted to Python "
                             f"scalars, got shape {tuple(self.data.shape)}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"bool(): the truth value of a tensor with {self.data.size} "
                               "elements is ambiguous")
        return bool(self.data)

    def __index__(self):
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.data)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        if self.data.__class__ is not np.ndarray:  # traced by jit: no values yet
            return f"Tracer(shape={tuple(self.data.shape)}, dtype={self.data.dtype})"
        body = np.array2string(self.data, separator=", ", prefix="tensor(",
                               precision=4, floatmode="maxprec_equal")
        extra = ""
        if self.data.dtype not in (backend.get_default_dtype(), backend.int64, backend.bool_):
            extra += f", dtype={self.data.dtype}"
        if self._node is not None:
            extra += f", grad_fn={self._node!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def to(self, dtype) -> "Tensor":
        return _ops.cast(self, backend.to_dtype(dtype))

    def float(self) -> "Tensor":
        return _ops.cast(self, backend.float32)

    def double(self) -> "Tensor":
        return _ops.cast(self, backend.float64)

    def long(self) -> "Tensor":
        return _ops.cast(self, backend.int64)

    def int(self) -> "Tensor":
        return _ops.cast(self, backend.int32)

    def bool(self) -> "Tensor":
        return _ops.cast(self, backend.bool_)

    def clone(self) -> "Tensor":
        return _ops.clone(self)

    def contiguous(self) -> "Tensor":
        return self

    # ------------------------------------------------------------ operators
    def __add__(self, o): return _ops.add(self, o)
    def __radd__(self, o): return _ops.add(o, self)
    def __sub__(self, o): return _ops.sub(self, o)
    def __rsub__(self, o): return _ops.sub(o, self)
    def __mul__(self, o): return _ops.mul(self, o)
    def __rmul__(self, o): return _ops.mul(o, self)
    def __truediv__(self, o): return _ops.div(self, o)
    def __rtruediv__(self, o): return _ops.div(o, self)
    def __pow__(self, o): return _ops.pow(self, o)
    def __rpow__(self, o): return _ops.pow(o, self)
    def __matmul__(self, o): return _ops.matmul(self, o)
    def __rmatmul__(self, o): return _ops.matmul(o, self)
    def __neg__(self): return _ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops.abs(self)
    def __eq__(self, o): return _ops.eq(self, o)
    def __ne__(self, o): return _ops.ne(self, o)
    def __lt__(self, o): return _ops.lt(self, o)
    def __le__(self, o): return _ops.le(self, o)
    def __gt__(self, o): return _ops.gt(self, o)
    def __ge__(self, o): return _ops.ge(self, o)
    def __invert__(self): return _ops.logical_not(self)
    def __and__(self, o): return _ops.logical_and(self, o)
    def __or__(self, o): return _ops.logical_or(self, o)
    def __getitem__(self, index): return _ops.getitem(self, index)
    def __setitem__(self, index, value): _ops.setitem_(self, index, value)

    # in-place operators (Python falls back to these for -=, *=, ...)
    def __iadd__(self, o): return self.add_(o)
    def __isub__(self, o): return self.sub_(o)
    def __imul__(self, o): return self.mul_(o)
    def __itruediv__(self, o): return self.div_(o)

    def add_(self, o, alpha=None):
        return _ops.inplace(self, _ops.add, o if alpha is None else _ops.mul(o, alpha), "add_")
    def sub_(self, o, alpha=None):
        return _ops.inplace(self, _ops.sub, o if alpha is None else _ops.mul(o, alpha), "sub_")
    def mul_(self, o): return _ops.inplace(self, _ops.mul, o, "mul_")
    def div_(self, o): return _ops.inplace(self, _ops.div, o, "div_")
    def pow_(self, o): return _ops.inplace(self, _ops.pow, o, "pow_")
    def clamp_(self, min=None, max=None):
        return _ops.inplace(self, lambda a, _: _ops.clamp(a, min, max), None, "clamp_")
    def where(self, condition, other):
        """``self`` where ``condition`` holds, else ``other`` (as ``torch.Tensor.where``)."""
        return _ops.where(condition, self, other)

    def zero_(self): return _ops.fill_(self, 0)
    def fill_(self, value): return _ops.fill_(self, value)
    def copy_(self, src): return _ops.inplace(self, lambda a, b: _ops.expand_as(b, a), src, "copy_")


TENSOR_TYPES.add(Tensor)

# Names forwarded as methods: tensor.exp() == chainrule.exp(tensor).
_METHOD_NAMES = """
abs sign exp log log1p expm1 sqrt rsqrt sin cos tanh sigmoid relu gelu silu softplus erf
square reciprocal maximum minimum clamp clip sum mean max min amax amin prod var std
norm argmax argmin reshape view flatten squeeze unsqueeze permute transpose expand
expand_as broadcast_to split chunk softmax log_softmax logsumexp cumsum gather matmul
isnan isinf isfinite logical_not view_as reshape_as flip repeat masked_fill pow add sub mul div
neg eq ne lt le gt ge logical_and logical_or swapaxes take_along_dim
""".split()


def bind_methods(ops_module) -> None:
    """Called once by ``chainrule/__init__``: connect the dunders and methods to the ops."""
    global _ops
    _ops = ops_module
    for name in _METHOD_NAMES:
        setattr(Tensor, name, getattr(ops_module, name))


def _make(data, node=None) -> Tensor:
    """Wrap an array without checks (the hot path)."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.requires_grad = node is not None
    t.grad = None
    t._node = node
    t._version = [0, None, 0]
    t._hooks = None
    t._base = None
    return t
