"""The Optimizer base class: parameter groups, per-parameter state, ``zero_grad``,
``step`` and state dicts in PyTorch's layout."""
from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import Any, Callable, Iterable, Sequence

from ..autodiff.anomaly import is_anomaly_enabled
from ..compile.codegen import NUMBA_MIN_SIZE, target_for
from ..compile.jit import jit
from ..core import dispatch
from ..core.dispatch import enable_grad, no_grad, user_site
from ..core.sparse import RowSparseGrad
from ..core.tensor import Tensor
from ..backend import float64
from ..ops import cast, clone, tensor, zeros_like
from ..ops.inplace import _bump, adopt, held_by_list_alone, held_by_tensor_alone

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]
_UNORDERED = ("parameters must be in an ordered collection (a set's order changes between "
              "runs, and with it the state dict's parameter indices); use a list")


class Optimizer:
    """Base class of all optimizers.

    ``params`` is an iterable of tensors, or of dicts that define parameter groups: each
    dict holds ``"params"`` and any option that overrides the optimizer's defaults for
    that group, e.g. ``[{"params": body}, {"params": head, "lr": 1e-2}]``.

    Subclasses implement ``_update(group, params)``: it calls a pure update rule from
    ``chainrule.optim.functional`` and stores the results with ``_write`` (parameters, in
    place) and in ``self.state`` (per-parameter state: tensors and Python numbers; a
    ``defaultdict(dict)`` keyed by parameter, as in PyTorch).

    ``fused`` (a group option): whether ``step`` runs ``_update`` compiled by ``jit``,
    one fused kernel per parameter, computed in the parameter's own buffer where no one
    else sees it. ``None`` (the default) compiles when the group holds at least
    ``NUMBA_MIN_SIZE`` elements and numba is installed, where the kernels beat NumPy's
    passes; ``False`` never does. The numbers are the eager ones, bit for bit. A compiled
    update is kept while the group's options, parameters with gradients and state
    tensors stay the same (a learning rate changed every step runs eagerly), and is
    built at the second step with them, as ``jit`` does.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = {**defaults, "fused": defaults.get("fused")}
        self._compiled: dict[int, tuple] = {}  # id(group) -> (key, jitted update)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{self._name}: params should be an iterable of Tensors or dicts, "
                            f"but got a Tensor of shape {tuple(params.shape)}, at {user_site()}")
        if isinstance(params, set):
            raise TypeError(f"{self._name}: {_UNORDERED}, at {user_site()}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list, at {user_site()}")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def __getstate__(self) -> dict:
        # a compiled update holds kernels and the tensors it was traced on: a copy or a
        # pickle compiles its own at its next steps
        return {**self.__dict__, "_compiled": {}}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters; options it does not set take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}: a parameter group must be a dict, got "
                            f"{type(param_group).__name__}, at {user_site()}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{self._name}: {_UNORDERED}, at {user_site()}")
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{self._name}: can only optimize Tensors, but parameter {i} "
                                f"of the group is a {type(p).__name__}, at {user_site()}")
            if not p.is_leaf:
                raise ValueError(f"{self._name}: can't optimize a non-leaf tensor (parameter "
                                 f"{i}, shape {tuple(p.shape)}); pass leaf tensors, e.g. "
                                 f"x.detach().requires_grad_(), at {user_site()}")
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError(f"{self._name}: a parameter group holds the same tensor more "
                             f"than once, at {user_site()}")
        if any(id(p) in ids for g in self.param_groups for p in g["params"]):
            raise ValueError(f"{self._name}: some parameters appear in more than one "
                             f"parameter group, at {user_site()}")
        group = {**self.defaults, **param_group, "params": params}
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: set them to None (the default) or fill them with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    dispatch.note_grad_reset(p)
                    p.grad = None
                else:
                    with no_grad():
                        p.grad.detach_().zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient. ``closure``, if given, re-evaluates
        the model and returns the loss (it runs first, with gradient recording on)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    dispatch.note_grad_read(p)
                params = [p for p in group["params"] if p.grad is not None
                          and p.grad.__class__ is not RowSparseGrad]
                if params:
                    self._apply(group, params)
                for p in group["params"]:
                    if p.grad.__class__ is RowSparseGrad:
                        self._update_rows(group, p)
        return loss

    def _apply(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """``_update(group, params)``, compiled when the group is ``fused`` (see above)."""
        fused = group.get("fused")
        if fused is False or dispatch._interpreters or is_anomaly_enabled():
            self._update(group, params)
            return
        key = (tuple(map(id, params)),
               tuple(id(v) for p in params for v in self.state.get(p, {}).values()),
               tuple((k, id(v) if isinstance(v, Tensor) else v)
                     for k, v in group.items() if k != "params"))
        held = self._compiled.get(id(group))
        if held is None or held[0] != key:
            compiled = None
            if fused or target_for(sum(p.data.size for p in params)) == "numba":
                # every kernel on numba, the small ones too (they share one source)
                compiled = jit(partial(self._update, group, params),
                               passes={"fuse": {"target": target_for(NUMBA_MIN_SIZE)}})
            held = self._compiled[id(group)] = (key, compiled)
        if held[1] is None:
            self._update(group, params)
        else:
            held[1]()

    def _sparse_error(self, group: dict[str, Any]) -> str | None:
        """Why this optimizer (with these options) cannot take a row-sparse gradient;
        None if it can: then it updates only the touched rows, lazily."""
        return "it has no row-sparse update; use SGD, Adagrad or SparseAdam"

    def _update_rows(self, group: dict[str, Any], p: Tensor) -> None:
        """The dense rule applied to the rows a ``RowSparseGrad`` touches: the rows of the
        parameter and of its full-size state are gathered, updated by ``_update``, and
        written back. Rows the gradient does not touch keep their values and state."""
        why = self._sparse_error(group)
        if why is not None:
            raise RuntimeError(f"{self._name}: a parameter of shape {tuple(p.shape)} has a "
                               f"row-sparse gradient (Embedding(sparse=True)), but {why}, "
                               f"at {user_site()}")
        g = p.grad.coalesce()
        rows = g.indices
        sub = Tensor(p.data[rows])
        sub.grad = g.values.detach()
        full = self.state[p]
        self.state[sub] = {k: Tensor(v.data[rows]) if _full_size(v, p) else v
                           for k, v in full.items()}
        try:
            self._update(group, [sub])
            new = self.state.pop(sub)
        finally:
            self.state.pop(sub, None)
        p[rows] = sub
        for k, v in new.items():
            if isinstance(v, Tensor) and v.shape == sub.shape:
                if k not in full:
                    full[k] = zeros_like(p)
                full[k][rows] = v
            else:
                full[k] = v

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        raise NotImplementedError(f"{self._name} does not implement _update or step")

    @staticmethod
    def _store(state: dict, **values) -> None:
        """Put new state values in place: into the existing tensor's buffer when there is
        one of the same shape and dtype (so a jitted step, which reads the state by
        reference, sees the update), else as a new entry."""
        for key, value in values.items():
            cur = state.get(key)
            if (isinstance(cur, Tensor) and isinstance(value, Tensor) and cur is not value
                    and cur.shape == value.shape and cur.dtype == value.dtype):
                cur[...] = value
            else:
                state[key] = value

    @staticmethod
    def _write(params: Sequence[Tensor], new_params: Sequence[Tensor]) -> None:
        """Put new values into the parameters: identity, views and the version counter
        (autograd's in-place check) stay intact. A new value that is a temporary no one
        else holds gives the parameter its buffer (and takes the old one) instead of
        being copied, when no one else can see the parameter's buffer either."""
        if len(params) != len(new_params):
            raise ValueError(f"{len(params)} parameters but {len(new_params)} new values")
        for i, p in enumerate(params):
            if not (dispatch._interpreters or dispatch._mode.grad) and _swapped(p, new_params, i):
                continue
            p[...] = new_params[i]

    # ------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as PyTorch lays it out: ``{"state": {index: {name:
        value}}, "param_groups": [{option: value, "params": [index, ...]}]}``, with
        parameters numbered in group order. Values are tensors and Python numbers."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: clone(v) if isinstance(v, Tensor) else v
                                for k, v in values.items()}
                 for p, values in self.state.items()}  # a snapshot: steps update in place
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict`` (into an optimizer over parameters of
        the same shapes, in the same groups). Tensors are copied, in each parameter's
        dtype; parameter indices may be ints or their strings."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"{self._name}.load_state_dict: the state dict has {len(saved)} "
                             f"parameter groups, the optimizer {len(self.param_groups)}, at "
                             f"{user_site()}")
        by_index = {}
        for i, (group, sgroup) in enumerate(zip(self.param_groups, saved)):
            if len(group["params"]) != len(sgroup["params"]):
                raise ValueError(f"{self._name}.load_state_dict: parameter group {i} has "
                                 f"{len(sgroup['params'])} parameters in the state dict but "
                                 f"{len(group['params'])} in the optimizer, at {user_site()}")
            by_index.update((int(k), p) for k, p in zip(sgroup["params"], group["params"]))
        state = {}
        for key, values in state_dict["state"].items():
            p = by_index.get(int(key))
            if p is None:
                raise ValueError(f"{self._name}.load_state_dict: state for parameter {key}, "
                                 f"which no parameter group lists, at {user_site()}")
            state[p] = {name: _restore(p, name, v) for name, v in values.items()}
        self.state = defaultdict(dict, state)
        self._compiled.clear()
        self.param_groups = [{**{k: v for k, v in sgroup.items() if k != "params"},
                              "params": group["params"]}
                             for group, sgroup in zip(self.param_groups, saved)]

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])


def new_step(count: float = 0.0) -> Tensor:
    """A step counter: a 0-d float64 tensor (as PyTorch keeps it), updated in place, so a
    jitted step reads the current count instead of a number frozen at trace time."""
    return tensor(count, dtype=float64)


def _full_size(v: Any, p: Tensor) -> bool:
    return isinstance(v, Tensor) and v.shape == p.shape


def _restore(p: Tensor, name: str, value: Any) -> Any:
    """A saved state value, made the optimizer's own: steps as ints (PyTorch saves them
    as tensors), tensors copied and, when floating point, cast to the parameter's dtype."""
    if name == "step":
        return new_step(float(value.item() if isinstance(value, Tensor) else value))
    if not isinstance(value, Tensor):
        return value
    with no_grad():
        value = value.detach()
        if value.dtype.kind == "f" and p.dtype.kind == "f":
            value = cast(value, p.dtype)
        return clone(value)


def _swapped(p: Tensor, values: Sequence[Tensor], i: int) -> bool:
    """Give ``p`` the buffer of ``values[i]`` (a result no one else holds) and the value
    ``p``'s old buffer, when no one else sees either (``inplace.adopt``): it saves a copy."""
    if values[i] is p or not held_by_list_alone(values, i) or \
            not held_by_tensor_alone(values[i]):
        return False
    old = adopt(p, values[i].data)
    if old is None:
        return False
    values[i].data = old
    _bump(p, "optimizer step")
    return True
