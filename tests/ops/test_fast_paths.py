"""Fast paths of eager kernels give NumPy's values: ``sum`` over the last axis of
C-ordered float rows is one BLAS gemv (``ops.reduce.add_reduce``; eager, compiled and
the softmax family agree), and max/min take a scalar operand as a line of the array."""
import numpy as np
import pytest

import chainrule as cr
from chainrule.ops.reduce import ROW_MAX, add_reduce

R = np.random.default_rng(3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(16, 12), (3, 5, 40), (64, 10)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_last_axis_sums_are_a_gemv_close_to_numpys(shape, dtype, keepdims):
    x = R.standard_normal(shape).astype(dtype)
    got = cr.sum(cr.tensor(x), -1, keepdim=keepdims).data
    gemv = (x.reshape(-1, shape[-1]) @ np.ones(shape[-1], dtype)).reshape(
        shape[:-1] + ((1,) if keepdims else ()))
    assert got.tobytes() == gemv.tobytes() and got.shape == gemv.shape
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, np.add.reduce(x.astype(np.float64), -1, keepdims=keepdims),
                               rtol=tol, atol=tol * shape[-1])


@pytest.mark.parametrize("shape,axis", [((2, 12), (1,)), ((16, ROW_MAX + 1), (1,)),
                                        ((16, 12), (0,)), ((16, 12), (0, 1))])
def test_other_sums_keep_numpys_reduction(shape, axis):
    """Few rows, long rows and other axes: NumPy's pairwise sum, bit for bit."""
    x = R.standard_normal(shape).astype(np.float32)
    got = cr.sum(cr.tensor(x), axis).data
    assert got.tobytes() == np.add.reduce(x, axis=axis).tobytes()
    strided = x[:, ::2]  # not C-ordered
    got = add_reduce(strided, (1,), False)
    assert got.tobytes() == np.add.reduce(strided, axis=1).tobytes()


def test_compiled_row_sums_equal_eager_bit_for_bit():
    x = cr.tensor(R.standard_normal((32, 24)).astype(np.float32))

    def f(x):
        return cr.sum(cr.exp(x), -1) * 2.0

    compiled = cr.jit(f)
    compiled(x)  # (the first call traces: eager)
    e = np.exp(x.data)  # the premise: the gemv and NumPy's reduction round differently here
    assert (e @ np.ones(24, np.float32) != np.add.reduce(e, -1)).any()
    assert compiled(x).data.tobytes() == f(x).data.tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
def test_add_reduce_into_a_given_array(order):
    x = R.standard_normal((4, 8, 12))
    out = np.zeros((4, 8), order=order)
    got = add_reduce(x, (2,), False, out)
    assert got is out
    assert out.tobytes() == np.asarray(add_reduce(x, (2,), False), order=order).tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("op", ["relu", "maximum", "minimum"])
def test_a_scalar_operand_of_max_and_min_keeps_values_and_memory_order(op, order):
    """relu, maximum and minimum pass a scalar as one line along the contiguous axis (a
    row, or a column of an F-ordered array); values and the result's order are NumPy's."""
    x = np.asarray(R.standard_normal((32, 24)).astype(np.float32), order=order)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    ref = {"relu": np.maximum(x, 0), "maximum": np.maximum(x, 0.5),
           "minimum": np.minimum(x, 0.5)}[op]
    t = cr.tensor(x)
    got = (cr.relu(t) if op == "relu" else getattr(cr, op)(t, 0.5)).data
    assert got.tobytes(order="A") == ref.tobytes(order="A")
    assert got.flags.f_contiguous == ref.flags.f_contiguous
