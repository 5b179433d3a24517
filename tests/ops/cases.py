"""Sample inputs for every primitive in the table.

``CASES[name]`` is a list of ``Case``: input arrays (float64 where differentiable),
params, a NumPy reference for the forward value, and flags. A primitive without
cases fails ``test_every_primitive_has_cases``, so adding a row adds its tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

R = np.random.default_rng(1234)


@dataclass
class Case:
    args: list
    params: dict = field(default_factory=dict)
    ref: object = None  # callable(*arrays, **params) -> array; None: no reference
    order2: bool = True  # run the second-order check
    grad: tuple = None  # indices of args that are differentiated (default: all float)

    def __repr__(self):
        shapes = ",".join(str(a.shape) for a in self.args)
        return f"[{shapes}]{self.params or ''}"


def real(*shape):
    return R.uniform(-2, 2, shape)


def pos(*shape):
    return R.uniform(0.5, 2.0, shape)


SHAPES = [(), (3,), (2, 3), (0, 3)]
CASES: dict[str, list] = {}


def unary(name, ref, gen=real, order2=True):
    CASES[name] = [Case([gen(*s)], ref=ref, order2=order2) for s in SHAPES]


unary("neg", np.negative)
unary("exp", np.exp)
unary("log", np.log, pos)
unary("log1p", np.log1p, pos)
unary("expm1", np.expm1)
unary("sqrt", np.sqrt, pos)
unary("sin", np.sin)
unary("cos", np.cos)
unary("tanh", np.tanh)
unary("sigmoid", lambda x: 1 / (1 + np.exp(-x)))
unary("abs", np.abs)
unary("sign", np.sign)
unary("relu", lambda x: np.where(x > 0, x, 0.0))
unary("softplus", lambda x: np.log1p(np.exp(x)))
unary("erf", np.vectorize(math.erf, otypes=[np.float64]))

BIN_SHAPES = [(), (3,), (2, 3), (0, 2)]


def binary(name, ref, ga=real, gb=real):
    CASES[name] = [Case([ga(*s), gb(*s)], ref=ref) for s in BIN_SHAPES]


binary("add", np.add)
binary("sub", np.subtract)
binary("mul", np.multiply)
binary("div", np.divide, real, pos)
binary("pow", np.power, pos, real)
binary("maximum", np.maximum)
binary("minimum", np.minimum)

CASES["where"] = [Case([R.random(s) > 0.5, real(*s), real(*s)], ref=np.where, grad=(1, 2))
                  for s in BIN_SHAPES]
CASES["cast"] = [Case([real(2, 3)], {"dtype": np.dtype("float32")},
                      ref=lambda x, dtype: x.astype(dtype), grad=()),
                 Case([real(2, 3).astype(np.float32)], {"dtype": np.dtype("float64")},
                      ref=lambda x, dtype: x.astype(dtype), grad=())]

for _name, _fn in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)]:
    _a = R.integers(0, 3, (4, 3)).astype(float)
    CASES[_name] = [Case([_a, R.integers(0, 3, (4, 3)).astype(float)], ref=_fn)]
CASES["logical_and"] = [Case([R.random(5) > .5, R.random(5) > .5], ref=np.logical_and)]
CASES["logical_or"] = [Case([R.random(5) > .5, R.random(5) > .5], ref=np.logical_or)]
CASES["logical_not"] = [Case([R.random(5) > .5], ref=np.logical_not)]
_special = np.array([0.0, np.nan, np.inf, -np.inf, 1.5])
CASES["isnan"] = [Case([_special], ref=np.isnan)]
CASES["isinf"] = [Case([_special], ref=np.isinf)]
CASES["isfinite"] = [Case([_special], ref=np.isfinite)]


def _red(fn):
    return lambda x, axis, keepdims: np.asarray(fn(x, axis=axis, keepdims=keepdims))


RED_PARAMS = [((2, 3), None, False), ((2, 3), (0,), False), ((2, 3), (1,), True),
              ((2, 3, 4), (0, 2), False), ((), (), False), ((3,), (0,), True)]
CASES["sum"] = [Case([real(*s)], {"axis": a, "keepdims": k}, _red(np.sum))
                for s, a, k in RED_PARAMS + [((0, 3), (0,), False)]]
CASES["amax"] = [Case([real(*s)], {"axis": a, "keepdims": k}, _red(np.amax))
                 for s, a, k in RED_PARAMS]
CASES["amin"] = [Case([real(*s)], {"axis": a, "keepdims": k}, _red(np.amin))
                 for s, a, k in RED_PARAMS]
CASES["prod"] = [Case([real(*s)], {"axis": a, "keepdims": k}, _red(np.prod))
                 for s, a, k in RED_PARAMS]
CASES["prod"].append(Case([np.array([[1.5, 0.0, 2.0], [0.0, -1.0, 3.0]])],
                          {"axis": (1,), "keepdims": False}, _red(np.prod)))
# two zeros in a slice: exact at first order; the second order is exact only with one
CASES["prod"].append(Case([np.array([[0.0, 0.0, 3.0]])], {"axis": (1,), "keepdims": False},
                          _red(np.prod), order2=False))
CASES["argmax"] = [Case([real(3, 4)], {"axis": 1, "keepdims": False},
                        lambda x, axis, keepdims: np.argmax(x, axis)),
                   Case([real(3, 4)], {"axis": None, "keepdims": False},
                        lambda x, axis, keepdims: np.argmax(x))]
CASES["argmin"] = [Case([real(3, 4)], {"axis": 0, "keepdims": True},
                        lambda x, axis, keepdims: np.argmin(x, axis, keepdims=True))]
CASES["cumsum"] = [Case([real(3, 4)], {"axis": a}, lambda x, axis: np.cumsum(x, axis))
                   for a in (0, 1)]

CASES["reshape"] = [Case([real(*s)], {"shape": t}, lambda x, shape: x.reshape(shape))
                    for s, t in [((2, 3), (3, 2)), ((2, 3), (6,)), ((), (1, 1)), ((0, 3), (3, 0))]]
CASES["transpose"] = [Case([real(*s)], {"axes": a}, lambda x, axes: x.transpose(axes))
                      for s, a in [((2, 3), (1, 0)), ((2, 3, 4), (2, 0, 1))]]
CASES["broadcast_to"] = [Case([real(*s)], {"shape": t},
                              lambda x, shape: np.broadcast_to(x, shape))
                         for s, t in [((3,), (2, 3)), ((1, 3), (4, 3)), ((), (2, 2)),
                                      ((2, 1), (3, 2, 4))]]
_idx = [(slice(1, None), 0), (Ellipsis, None, slice(None, None, -1)),
        (np.array([0, 0, 2]),), (np.array([True, False, True]),),
        (np.array([[0, 1], [1, 1]]), np.array([2, 2])), (1,)]
CASES["getitem"] = [Case([real(3, 4)], {"index": i}, lambda x, index: x[index]) for i in _idx]


def _ia_ref(src, index, shape):
    out = np.zeros(shape)
    np.add.at(out, index, src)
    return out


CASES["index_add"] = [Case([real(*np.zeros((3, 4))[i].shape)], {"index": i, "shape": (3, 4)},
                           _ia_ref) for i in _idx]


def _ip_ref(x, src, index):
    out = x.copy()
    out[index] = src
    return out


CASES["index_put"] = [Case([real(3, 4), real(4)], {"index": (1,)}, _ip_ref),
                      Case([real(3, 4), real(2, 1)], {"index": (slice(0, 2), slice(1, 3))},
                           _ip_ref),
                      Case([real(3, 4), real(2, 4)], {"index": (np.array([2, 0]),)}, _ip_ref)]
CASES["cat"] = [Case([real(2, 3), real(1, 3)], {"axis": 0},
                     lambda *xs, axis: np.concatenate(xs, axis)),
                Case([real(2, 1), real(2, 3), real(2, 2)], {"axis": 1},
                     lambda *xs, axis: np.concatenate(xs, axis)),
                Case([real(0, 3), real(2, 3)], {"axis": 0},
                     lambda *xs, axis: np.concatenate(xs, axis))]
CASES["pad"] = [Case([real(2, 3)], {"pad_width": ((1, 0), (2, 1)), "value": 0.0},
                     lambda x, pad_width, value: np.pad(x, pad_width, constant_values=value)),
                Case([real(3)], {"pad_width": ((0, 2),), "value": -1.5},
                     lambda x, pad_width, value: np.pad(x, pad_width, constant_values=value))]
CASES["matmul"] = [Case([real(*a), real(*b)], ref=np.matmul)
                   for a, b in [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)),
                                ((2, 2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((0, 3), (3, 2))]]
CASES["einsum"] = [Case([real(*s) for s in shapes], {"equation": eq},
                        lambda *xs, equation: np.einsum(equation, *xs))
                   for eq, shapes in [("ij,jk->ik", [(2, 3), (3, 4)]),
                                      ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
                                      ("ij->", [(2, 3)]), ("i,i->", [(3,), (3,)]),
                                      ("ij->ji", [(2, 3)]), ("ij,k->ijk", [(2, 3), (2,)]),
                                      ("ij,j->i", [(2, 3), (3,)]),
                                      ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)])]]


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _lse(x, axis, keepdims):
    m = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


CASES["softmax"] = [Case([real(*s)], {"axis": a}, _softmax)
                    for s, a in [((2, 3), (1,)), ((2, 3), (0,)), ((4,), (0,)), ((2, 3), (0, 1))]]
CASES["log_softmax"] = [Case([real(*s)], {"axis": a}, lambda x, axis: np.log(_softmax(x, axis)))
                        for s, a in [((2, 3), (1,)), ((2, 3), (0,)), ((4,), (0,))]]
_t = np.array([2, 0, 2, 1])


def _xent(x, t, scale):
    return scale * np.log(_softmax(x, (1,)))[np.arange(t.size), t].sum()


def _xent_grad(x, t, g, scale):
    return (_softmax(x, (1,)) - np.eye(x.shape[1])[t]) * -(g * scale)


CASES["cross_entropy"] = [Case([real(4, 3), _t], {"scale": s}, _xent, grad=(0,))
                          for s in (-0.25, -1.0)]
CASES["cross_entropy_grad"] = [Case([real(4, 3), _t, real()], {"scale": s}, _xent_grad,
                                    grad=(0, 2)) for s in (-0.25, -1.0)]
CASES["logsumexp"] = [Case([real(*s)], {"axis": a, "keepdims": k}, _lse)
                      for s, a, k in [((2, 3), (1,), False), ((2, 3), (0,), True),
                                      ((4,), (0,), False), ((2, 3), (0, 1), False)]]
CASES["einsum"] += [Case([real(3, 3)], {"equation": "ii->i"},
                         lambda *xs, equation: np.einsum(equation, *xs)),
                    Case([real(3, 3)], {"equation": "ii->"},
                         lambda *xs, equation: np.einsum(equation, *xs)),
                    Case([real(2, 1, 3), real(4, 3)], {"equation": "abc,bc->abc"},
                         lambda *xs, equation: np.einsum(equation, *xs))]
