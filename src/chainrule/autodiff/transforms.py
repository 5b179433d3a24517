"""Function transforms with the signatures of ``torch.func`` and JAX: ``grad``,
``value_and_grad``, ``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian``, ``hvp``.

Reverse transforms run the function on fresh aliases of its inputs with recording on,
then call the tape engine with those aliases as the only targets; forward transforms
run it under a ``JVPInterpreter``. Each call is a new level: an alias is a new node, and
every level of forward mode has its own tangent table, so transforms nest to any depth
and mix with ``backward()``/``autograd.grad``. Inputs and outputs are pytrees.
"""
from __future__ import annotations

import functools

import numpy as np

from ..core import dispatch
from ..core.dispatch import enable_grad, user_site
from ..core.tensor import Tensor
from ..ops import creation, movement
from ..tree import tree_flatten, tree_unflatten
from . import backward as engine
from .forward import jvp_flat

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "hvp"]


# ------------------------------------------------------------------ helpers

def _argnums(argnums, nargs: int, op: str) -> tuple:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(f"{op}: argnums {argnums} is out of range for a function "
                             f"called with {nargs} positional arguments, at {user_site()}")
    return tuple(a % nargs for a in nums)


def _level_inputs(args: tuple, nums: tuple, op: str):
    """Replace the differentiated arguments by aliases that require grad. Returns the new
    args, the flat aliases and, per differentiated argument, its treedef."""
    args = list(args)
    xs, defs = [], []
    for a in nums:
        leaves, td = tree_flatten(args[a])
        new = []
        for leaf in leaves:
            if not isinstance(leaf, Tensor) or leaf.dtype.kind != "f":
                what = (f"a {leaf.dtype} tensor" if isinstance(leaf, Tensor)
                        else f"a {type(leaf).__name__}")
                raise TypeError(f"{op}: argument {a} holds {what}; only floating point tensors "
                                f"can be differentiated (mark other arguments static by "
                                f"leaving them out of argnums), at {user_site()}")
            x = movement.alias(leaf)
            if not x.requires_grad:
                x.requires_grad = True  # a leaf of this level
            new.append(x)
        xs.extend(new)
        defs.append(td)
        args[a] = tree_unflatten(td, new)
    return tuple(args), xs, defs


def _split_aux(out, has_aux: bool, op: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{op}(has_aux=True): the function must return a pair (output, aux), "
                        f"got {type(out).__name__}, at {user_site()}")
    return out


def _grads(outs: list, cts: list, xs: list, create: bool, retain: bool) -> list:
    """d outs / d xs contracted with ``cts``, with zeros for inputs the outputs don't reach."""
    pairs = [(o, c) for o, c in zip(outs, cts)
             if isinstance(o, Tensor) and o.requires_grad and c is not None]
    res = [None] * len(xs)
    if pairs:
        res = list(engine.grad([o for o, _ in pairs], xs, [c for _, c in pairs],
                               retain_graph=retain, create_graph=create, allow_unused=True))
    return [g if g is not None else creation.zeros(x.shape, dtype=x.dtype)
            for g, x in zip(res, xs)]


def _unflatten_grads(grads: list, defs: list, single: bool):
    out, i = [], 0
    for td in defs:
        out.append(tree_unflatten(td, grads[i:i + td.num_leaves]))
        i += td.num_leaves
    return out[0] if single else tuple(out)


def _detached(tree, keep: bool):
    if keep:
        return tree
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, [x.detach() if isinstance(x, Tensor) and x._node is not None
                               else x for x in leaves])


# ------------------------------------------------------------------ reverse

def vjp(fn, *primals, has_aux: bool = False):
    """``(out, vjp_fn)`` (and ``aux`` with ``has_aux``): ``vjp_fn(cotangents)`` returns one
    cotangent per primal, each shaped like its primal (pytrees allowed)."""
    outer = dispatch.is_grad_enabled()
    nums = tuple(range(len(primals)))
    with enable_grad():
        args, xs, defs = _level_inputs(primals, nums, "vjp")
        out, aux = _split_aux(fn(*args), has_aux, "vjp")
    out_leaves, out_def = tree_flatten(out)
    create = outer and engine.reaches_outside(out_leaves, xs)

    def vjp_fn(cotangents):
        ct_leaves, ct_def = tree_flatten(cotangents)
        if ct_def != out_def:
            raise ValueError(f"vjp_fn: cotangents have structure {ct_def} but the outputs "
                             f"have {out_def}, at {user_site()}")
        cts = []
        for i, (o, c) in enumerate(zip(out_leaves, ct_leaves)):
            if not isinstance(o, Tensor) or o.dtype.kind != "f":
                cts.append(None)
                continue
            c = c if isinstance(c, Tensor) else creation.as_tensor(c, dtype=o.dtype)
            if c.shape != o.shape:
                raise ValueError(f"vjp_fn: cotangent {i} has shape {tuple(c.shape)} but the "
                                 f"output has shape {tuple(o.shape)}, at {user_site()}")
            cts.append(c)
        grads = _grads(out_leaves, cts, xs, create, retain=True)
        return tuple(_unflatten_grads(grads, defs, single=False))

    out = _detached(out, create)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def value_and_grad(fn, argnums=0, has_aux: bool = False):
    """``f -> (x -> (f(x), grad f(x)))``; with ``has_aux``, ``((value, aux), grads)``.
    ``fn`` must return a one-element floating point tensor."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        outer = dispatch.is_grad_enabled()
        nums = _argnums(argnums, len(args), "grad")
        with enable_grad():
            new_args, xs, defs = _level_inputs(args, nums, "grad")
            value, aux = _split_aux(fn(*new_args, **kwargs), has_aux, "grad")
        if not isinstance(value, Tensor) or value.numel() != 1 or value.dtype.kind != "f":
            what = (f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
                    if isinstance(value, Tensor) else f"a {type(value).__name__}")
            raise TypeError(f"grad: the function must return a one-element floating point "
                            f"tensor (a scalar loss), got {what}; use jacrev or vjp for "
                            f"other outputs, at {user_site()}")
        create = outer and engine.reaches_outside([value], xs)
        one = creation.ones(value.shape, dtype=value.dtype)
        grads = _grads([value], [one], xs, create, retain=create)
        grads = _unflatten_grads(grads, defs, isinstance(argnums, int))
        value = value if create else value.detach()
        if has_aux:
            return (value, _detached(aux, create)), grads
        return value, grads
    return wrapper


def grad(fn, argnums=0, has_aux: bool = False):
    """``f -> grad f``: the gradient of a scalar function with respect to argument(s)
    ``argnums``, shaped like them; with ``has_aux``, ``(grads, aux)``."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        value, grads = vg(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads
    return wrapper


# ------------------------------------------------------------------ forward

def jvp(fn, primals, tangents, has_aux: bool = False):
    """``(fn(*primals), J tangents)`` (and ``aux``) by forward mode: one pass of ``fn``
    with tangents carried beside the values."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(f"jvp: primals and tangents must be tuples (one entry per argument), "
                        f"at {user_site()}")
    p_leaves, p_def = tree_flatten(tuple(primals))
    t_leaves, t_def = tree_flatten(tuple(tangents))
    if p_def != t_def:
        raise ValueError(f"jvp: tangents have structure {t_def} but primals have {p_def}, "
                         f"at {user_site()}")

    return _jvp_leaves(fn, p_def, p_leaves, t_leaves, has_aux)


def _jvp_leaves(fn, p_def, p_leaves, t_leaves, has_aux):
    """jvp on flat leaves (a ``None`` tangent is a zero tangent)."""
    def flat_fn(*xs):
        return fn(*tree_unflatten(p_def, xs))

    res, interp = jvp_flat(flat_fn, p_leaves, t_leaves)
    out, aux = _split_aux(res, has_aux, "jvp")
    o_leaves, o_def = tree_flatten(out)
    tans = []
    for o in o_leaves:
        t = interp.tangent(o) if isinstance(o, Tensor) else None
        if t is None and isinstance(o, Tensor):
            t = creation.zeros(o.shape, dtype=o.dtype)
        tans.append(t)
    result = (out, tree_unflatten(o_def, tans))
    return result + (aux,) if has_aux else result


# ---------------------------------------------------------------- jacobians

def _one_hot(shape, dtype, k: int) -> Tensor:
    e = np.zeros(int(np.prod(shape)), dtype)
    e[k] = 1
    return creation.tensor(e.reshape(shape))


def jacrev(fn, argnums=0, has_aux: bool = False):
    """The Jacobian by reverse mode, one vjp per output element: for an output of shape
    S and an input of shape T, a tensor of shape S + T."""
    @functools.wraps(fn)
    def wrapper(*args):
        nums = _argnums(argnums, len(args), "jacrev")

        def partial(*diff):
            full = list(args)
            for a, d in zip(nums, diff):
                full[a] = d
            return fn(*full)

        res = vjp(partial, *[args[a] for a in nums], has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        o_leaves, o_def = tree_flatten(out)
        per_out = []
        for j, o in enumerate(o_leaves):
            rows = []
            for k in range(o.numel()):
                cts = [creation.zeros(x.shape, dtype=x.dtype) for x in o_leaves]
                cts[j] = _one_hot(o.shape, o.dtype, k)
                rows.append(tree_flatten(vjp_fn(tree_unflatten(o_def, cts)))[0])
            per_out.append(_stack_rows(rows, o.shape, [
                a for n in nums for a in tree_flatten(args[n])[0]]))
        jac = tree_unflatten(o_def, [_structure(cols, args, nums, argnums) for cols in per_out])
        return (jac, res[2]) if has_aux else jac
    return wrapper


def _stack_rows(rows, out_shape, in_leaves) -> list:
    """rows[k][i]: the cotangent of input leaf i for output element k -> per input leaf a
    tensor of shape out_shape + in_shape."""
    from ..ops import movement as mv
    cols = []
    for i, x in enumerate(in_leaves):
        if rows:
            col = mv.stack([r[i] for r in rows])
        else:
            col = creation.zeros((0,) + tuple(x.shape), dtype=x.dtype)
        cols.append(mv.reshape(col, tuple(out_shape) + tuple(x.shape)))
    return cols


def _structure(cols, args, nums, argnums):
    out, i = [], 0
    for n in nums:
        leaves, td = tree_flatten(args[n])
        out.append(tree_unflatten(td, cols[i:i + len(leaves)]))
        i += len(leaves)
    return out[0] if isinstance(argnums, int) else tuple(out)


def jacfwd(fn, argnums=0, has_aux: bool = False):
    """The Jacobian by forward mode, one jvp per input element: shape S + T as in jacrev."""
    @functools.wraps(fn)
    def wrapper(*args):
        nums = _argnums(argnums, len(args), "jacfwd")
        diff = [args[a] for a in nums]
        leaves, td = tree_flatten(tuple(diff))

        def partial(*d):
            full = list(args)
            for a, v in zip(nums, d):
                full[a] = v
            return fn(*full)

        for leaf in leaves:
            if not isinstance(leaf, Tensor) or leaf.dtype.kind != "f":
                raise TypeError(f"jacfwd: differentiated arguments must hold floating point "
                                f"tensors, got {type(leaf).__name__}, at {user_site()}")
        per_leaf, out_def, aux = [], None, None
        for i, x in enumerate(leaves):
            cols = []
            for k in range(x.numel()):
                tans = [None] * len(leaves)
                tans[i] = _one_hot(x.shape, x.dtype, k)
                res = _jvp_leaves(partial, td, leaves, tans, has_aux)
                o_leaves, out_def = tree_flatten(res[1])
                aux = res[2] if has_aux else None
                cols.append(o_leaves)
            if not cols:  # a size-0 input: evaluate once for the output shapes
                res = _jvp_leaves(partial, td, leaves, [None] * len(leaves), has_aux)
                o_leaves, out_def = tree_flatten(res[1])
                aux = res[2] if has_aux else None
                cols = [[creation.zeros((0,) + tuple(o.shape), dtype=o.dtype)
                         for o in o_leaves]]
                per_leaf.append([movement.reshape(c, tuple(o.shape) + tuple(x.shape))
                                 for c, o in zip(cols[0], o_leaves)])
                continue
            per_leaf.append([_columns([c[j] for c in cols], x.shape)
                             for j in range(len(cols[0]))])
        # per_leaf[i][j]: d out_j / d in_i; arrange as out structure over in structure
        if out_def is None:
            raise ValueError(f"jacfwd: no differentiated inputs, at {user_site()}")
        per_out = [[per_leaf[i][j] for i in range(len(leaves))]
                   for j in range(out_def.num_leaves)]
        jac = tree_unflatten(out_def, [_structure(c, args, nums, argnums) for c in per_out])
        return (jac, aux) if has_aux else jac
    return wrapper


def _columns(cols, in_shape) -> Tensor:
    """cols[k]: the output tangent for input element k -> shape out_shape + in_shape."""
    from ..ops import movement as mv
    out_shape = tuple(cols[0].shape)
    m = mv.stack(cols, dim=-1)  # out_shape + (n,)
    return mv.reshape(m, out_shape + tuple(in_shape))


def hessian(fn, argnums=0):
    """The Hessian, ``jacfwd(jacrev(fn))`` (forward over reverse, as in JAX)."""
    return jacfwd(jacrev(fn, argnums), argnums)


def hvp(fn, primals, tangents):
    """``(fn(*primals), H v)``: the Hessian-vector product, as the gradient of the
    directional derivative (reverse over forward). It does about twice a gradient's
    work; forward over reverse would also compute the gradient itself, which it drops.
    ``tangents`` has one entry per primal."""
    primals, tangents = tuple(primals), tuple(tangents)

    def directional(*ps):  # <grad f, v>, with f's value along as aux
        value, tangent = jvp(fn, ps, tangents)
        return tangent, value

    hv, value = grad(directional, tuple(range(len(primals))), has_aux=True)(*primals)
    return value, hv
