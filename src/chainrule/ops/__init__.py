"""All tensor operations. Primitive rows live in the modules below; the rest is composed."""
from .composite import (binary_cross_entropy, binary_cross_entropy_with_logits, clamp, clip,
                        cross_entropy, gelu, l1_loss, log_sigmoid, logsigmoid, mse_loss,
                        nll_loss, reciprocal, rsqrt, silu, softplus, square)
from .creation import (Generator, arange, as_tensor, default_generator, empty, empty_like,
                       eye, from_numpy, full, full_like, linspace, manual_seed, ones,
                       ones_like, rand, rand_like, randint, randn, randn_like, randperm,
                       tensor, zeros, zeros_like)
from .elementwise import (abs, add, cast, cos, div, divide, eq, erf, exp, expm1, ge, gt,
                          isfinite, isinf, isnan, le, log, log1p, logical_and, logical_not,
                          logical_or, lt, maximum, minimum, mul, multiply, ne, neg, negative,
                          pow, relu, sigmoid, sign, sin, sqrt, sub, subtract, tanh,
                          true_divide, where)
from .inplace import clone, fill_, inplace, setitem_
from .linalg import einsum, matmul
from .movement import (broadcast_to, cat, chunk, concatenate, expand, expand_as, flatten, flip,
                       getitem, index_add, index_put, masked_fill, pad, permute, repeat,
                       reshape, reshape_as, split, squeeze, stack, sum_to, swapaxes,
                       transpose, unsqueeze, view, view_as)
from .indexing import gather, one_hot, take, take_along, take_along_dim
from .reduce import (amax, amin, argmax, argmin, cumsum, max, mean, min, norm, prod, std,
                     sum, var)
from .special import log_softmax, logsumexp, softmax

import types as _types

# the public op namespace re-exported by chainrule: functions, not modules or internals
__all__ = [_n for _n, _v in list(globals().items())
           if not _n.startswith("_") and not isinstance(_v, _types.ModuleType)
           and _n not in {"inplace", "setitem_", "fill_", "annotations"}]
