"""The single dispatch point ``bind``, grad mode, the interpreter stack and the tape.

Every tensor operation ends in ``bind(prim, *tensors, **params)``. ``bind`` asks
the innermost active interpreter to compute the result (with no interpreter
active, the eager path runs ``prim.impl`` on arrays), then records a tape node
when grad mode is on and an input requires grad. Tape recording happens here,
once, for every interpreter.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading

from ..backend import xp
from .primitive import Primitive
from .tensor import Tensor

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# ---------------------------------------------------------------- grad mode

class _Mode(threading.local):
    grad = True  # per thread, as in PyTorch: a new thread starts with recording on


_mode = _Mode()


def is_grad_enabled() -> bool:
    return _mode.grad


class set_grad_enabled:
    """Turn gradient recording on or off: at once when called, or as a context manager
    (restored on exit), or as a decorator (for each call of the function)."""

    def __init__(self, mode: bool):
        self.prev = _mode.grad
        self.mode = bool(mode)
        _mode.grad = self.mode

    def __call__(self, fn):
        _mode.grad = self.prev  # decorating switches nothing
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper

    def __enter__(self):
        return self  # already switched by __init__

    def __exit__(self, *exc):
        _mode.grad = self.prev
        return False


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator: ops inside record no graph."""

    def __enter__(self):
        self.prev = _mode.grad
        _mode.grad = False
        return self

    def __exit__(self, *exc):
        _mode.grad = self.prev
        return False


class enable_grad(no_grad):
    """Context manager and decorator: turn recording back on inside ``no_grad``."""

    def __enter__(self):
        self.prev = _mode.grad
        _mode.grad = True
        return self


# ---------------------------------------------------------- interpreter stack

class Interpreter:
    """Base of the interpreters that ``bind`` can defer to (tracing, forward mode).

    ``process(prim, args, params)`` receives Tensors and returns a Tensor. Push
    one with ``with interpreter(obj): ...``; the innermost one sees every op.
    """

    def process(self, prim: Primitive, args: tuple, params: dict) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def inplace(self, x: Tensor, new: Tensor) -> None:
        """``x`` now holds the value of ``new`` (an in-place op wrote it): interpreters that
        keep per-tensor state (tangents) move it over."""


def lower(interp: Interpreter, prim: Primitive, args: tuple, params: dict) -> Tensor:
    """``bind`` one level down: with ``interp`` (the innermost interpreter) popped, so the
    op goes to the next interpreter or runs eagerly."""
    _interpreters.pop()
    try:
        return bind(prim, *args, **params)
    finally:
        _interpreters.append(interp)


_interpreters: list[Interpreter] = []
_regions: list = []  # active checkpoint regions (autodiff/memory.py), innermost last
_traces: list = []   # active jit traces (compile/trace.py), innermost last


@contextlib.contextmanager
def interpreter(interp: Interpreter):
    _interpreters.append(interp)
    try:
        yield interp
    finally:
        _interpreters.pop()


# ------------------------------------------------------------------- errors

def user_frame() -> tuple:
    """(file, line) of the innermost stack frame outside the chainrule package."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    return ("<unknown>", 0) if f is None else (f.f_code.co_filename, f.f_lineno)


def user_site() -> str:
    """``file:line`` of the innermost stack frame outside the chainrule package."""
    return "%s:%d" % user_frame()


def describe(args) -> str:
    return ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in args)


def op_error(prim: Primitive, args, exc: Exception) -> Exception:
    """Rewrap a backend failure so it names the op, the inputs and the user's line."""
    return error_kind(exc)(f"{prim.name}: {exc} (inputs: {describe(args)}), at {user_site()}")


def error_kind(exc: Exception) -> type:
    """The builtin exception class to re-raise ``exc`` as (NumPy's subclasses take
    extra constructor arguments)."""
    for kind in (IndexError, TypeError, ValueError):
        if isinstance(exc, kind):
            return kind
    return RuntimeError


# --------------------------------------------------------------------- tape

class Node:
    """One recorded primitive application: the reverse-mode graph is made of these.

    ``parents[i]`` is the producer of input i: a Node, the leaf Tensor itself
    (gradients accumulate into its ``.grad``) or None when it needs no gradient.
    ``inputs`` holds the saved input Tensors (placeholders carrying only shape and
    dtype for inputs the rule does not read); both are dropped after backward.
    ``site`` is the user's (file, line) of the forward call, kept in anomaly mode;
    ``lazy`` the checkpoint region that recomputes the saved values, if any.
    """

    __slots__ = ("prim", "params", "inputs", "parents", "saved", "out", "hooks", "retain",
                 "site", "lazy", "__weakref__")

    def __init__(self, prim, params, inputs, parents):
        self.prim = prim
        self.params = params
        self.inputs = inputs
        self.parents = parents
        self.saved = []  # (version cell, version when saved, input index or -1 for output)
        self.out = None
        self.hooks = None
        self.retain = None
        self.site = None
        self.lazy = None

    def name(self) -> str:
        return "".join(p.capitalize() for p in self.prim.name.split("_")) + "Backward"

    @property
    def next_functions(self) -> tuple:
        return tuple((p, 0) for p in self.parents)

    def register_hook(self, fn):
        if self.hooks is None:
            self.hooks = []
        self.hooks.append(fn)
        return _Handle(self.hooks, fn)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class _Handle:
    __slots__ = ("hooks", "fn")

    def __init__(self, hooks, fn):
        self.hooks, self.fn = hooks, fn

    def remove(self):
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


class InputMeta:
    """Stands in for an input whose value a vjp rule does not read."""

    __slots__ = ("shape", "dtype", "requires_grad")

    def __init__(self, t: Tensor):
        self.shape = t.data.shape
        self.dtype = t.data.dtype
        self.requires_grad = t.requires_grad

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _record(prim: Primitive, args: tuple, params: dict, out: Tensor) -> None:
    saves = prim.saves
    parents = []
    inputs = []
    for i, a in enumerate(args):
        if a._base is not None and a._version[2] != a._view_epoch:
            refresh_view(a)
        parents.append(a._node if a._node is not None else (a if a.requires_grad else None))
        inputs.append(a if i in saves else InputMeta(a))
    node = Node(prim, params, tuple(inputs), tuple(parents))
    out._node = node
    out.requires_grad = True
    if _regions:  # inside checkpoint(): keep no values, they are recomputed in backward
        _regions[-1].adopt(node)
        return
    if saves:
        node.saved = [(a._version, a._version[0], i) for i, a in enumerate(args) if i in saves]
    if prim.save_out:
        node.out = out.data
        node.saved.append((out._version, out._version[0], -1))


def note_grad_reset(t: Tensor) -> None:
    """``zero_grad`` is about to reset ``t.grad``: a jit trace keeps the state it had."""
    if _traces:
        _traces[-1].grad_reset(t)


def note_grad_read(t: Tensor) -> None:
    """Code is about to read ``t.grad`` (an optimizer, gradient clipping): a jit trace
    then knows whose gradient that tensor is, and reads it through ``t`` at every call,
    also when ``t`` itself is read later or never."""
    if _traces:
        _traces[-1].grad_read(t)


def note_backward() -> None:
    """``backward()`` runs: a jit trace then treats the function as a training step,
    whose outputs are not differentiated again by the caller."""
    if _traces:
        _traces[-1].backward_ran = True


def note_module_call(module) -> None:
    """A Module runs: a jit trace records its mode and parameters, so that a changed
    ``training`` flag or a replaced parameter retraces."""
    if _traces:
        _traces[-1].module_called(module)


def mark_view(prim: Primitive, params: dict, src: Tensor, out: Tensor) -> None:
    """``out`` is a view of ``src``: it shares the version counter and remembers the view
    ops that lead from the base to it."""
    out._version = src._version
    if src._base is None:
        out._base, out._view_steps = src, ((prim, params),)
    else:  # a view of a view: remember the whole path from the base
        out._base, out._view_steps = src._base, src._view_steps + ((prim, params),)
    out._view_epoch = src._version[2]


def refresh_view(v: Tensor) -> None:
    """Rebase a view whose base was changed in place while recording: its node is taken
    again from the base's current node (PyTorch regenerates a view's grad_fn the same way)."""
    node = v._base
    for prim, params in v._view_steps:
        node = bind(prim, node, **params)
    v._node, v.requires_grad = node._node, node.requires_grad
    v._view_epoch = v._version[2]


# --------------------------------------------------------------------- bind

def bind(prim: Primitive, *args: Tensor, **params) -> Tensor:
    """Apply ``prim`` to tensors: the one place every op goes through."""
    if _interpreters:
        out = _interpreters[-1].process(prim, args, params)
        if out._node is not None:  # recorded already, by a lower bind
            return out
    else:
        try:
            n = len(args)
            if n == 1:
                data = prim.impl(args[0].data, **params)
            elif n == 2:
                data = prim.impl(args[0].data, args[1].data, **params)
            else:
                data = prim.impl(*[a.data for a in args], **params)
        except Exception as exc:
            raise op_error(prim, args, exc) from None
        if data.__class__ is not _ndarray:
            data = xp.asarray(data)  # NumPy returns scalars from 0-d math
        out = _new(Tensor)
        out.data = data
        out.requires_grad = False
        out.grad = out._node = out._hooks = out._base = None
        out._version = [0, None, 0]
        if prim.view and data.base is not None and xp.may_share_memory(data, args[0].data):
            mark_view(prim, params, args[0], out)
    if _mode.grad and prim.vjp is not None:
        for a in args:
            if a.requires_grad:
                _record(prim, args, params, out)
                break
    return out


_new = object.__new__
_ndarray = xp.ndarray
