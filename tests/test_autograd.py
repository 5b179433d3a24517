"""The reverse-mode engine: accumulation, graph lifetime, hooks, grad mode, in-place
safety, higher order, and the errors users see."""
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.testing import gradcheck


def t64(*shape, seed=0, rg=True):
    return cr.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=rg)


def test_leaf_accumulates_across_backward_calls():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3, 3])


def test_diamond_graph_sums_paths():
    x = t64(3)
    a = x.exp()
    y = (a * a + a.sin()).sum()
    y.backward()
    e = np.exp(x.data)
    np.testing.assert_allclose(x.grad.data, 2 * e * e + np.cos(e) * e)


def test_grads_of_shared_cotangent_are_independent_buffers():
    a, b = t64(3), t64(3, seed=1)
    (a + b).sum().backward()
    a.grad.zero_()
    np.testing.assert_allclose(b.grad.data, np.ones(3))
    assert a.grad.data.flags.writeable


def test_second_backward_needs_retain_graph():
    x = t64(3)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp(x.data))
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_saved_values_are_freed_after_backward():
    x = t64(3)
    y = x.exp()
    z = y.sum()
    assert y.grad_fn.out is not None
    z.backward()
    assert y.grad_fn.out is None and y.grad_fn.inputs is None


def test_long_chain_without_recursion_error():
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    assert sys.getrecursionlimit() < 100_000
    y.backward()
    assert x.grad.item() == 1.0


def test_autograd_grad_leaves_dot_grad_alone_and_handles_unused():
    x, z = t64(3), t64(3, seed=2)
    y = (x * x).sum()
    (gx,) = cr.autograd.grad(y, x, retain_graph=True)
    np.testing.assert_allclose(gx.data, 2 * x.data)
    assert x.grad is None
    with pytest.raises(RuntimeError, match="not used"):
        cr.autograd.grad(y, [x, z], retain_graph=True)
    gx2, gz = cr.autograd.grad(y, [x, z], allow_unused=True)
    assert gz is None


def test_grad_with_respect_to_intermediate():
    x = t64(3)
    h = x.sin()
    y = (h * h).sum()
    gh, gx = cr.autograd.grad(y, [h, x])
    np.testing.assert_allclose(gh.data, 2 * np.sin(x.data))
    np.testing.assert_allclose(gx.data, 2 * np.sin(x.data) * np.cos(x.data))


def test_backward_inputs_restricts_accumulation():
    a, b = t64(2), t64(2, seed=1)
    (a * b).sum().backward(inputs=[a])
    np.testing.assert_allclose(a.grad.data, b.data)
    assert b.grad is None


def test_no_grad_enable_grad_set_grad_enabled():
    x = t64(2)
    with cr.no_grad():
        assert not (x * 2).requires_grad
        with cr.enable_grad():
            assert (x * 2).requires_grad
    with cr.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert cr.is_grad_enabled()

    @cr.no_grad()
    def f(v):
        return v * 2
    assert not f(x).requires_grad


def test_manual_update_idiom():
    p = cr.tensor([1.0, -2.0], requires_grad=True)
    for _ in range(3):
        loss = (p * p).sum()
        loss.backward()
        with cr.no_grad():
            p -= 0.25 * p.grad
        p.grad = None
    np.testing.assert_allclose(p.data, np.array([1.0, -2.0]) * 0.5 ** 3)
    assert p.is_leaf and p.requires_grad and p.dtype == np.float32


def test_hooks_on_leaf_and_intermediate():
    x = t64(3)
    seen = []
    h = x.exp()
    h.register_hook(lambda g: seen.append(g.data.copy()))
    handle = x.register_hook(lambda g: g * 2)
    h.sum().backward()
    np.testing.assert_allclose(seen[0], np.ones(3))
    np.testing.assert_allclose(x.grad.data, 2 * np.exp(x.data))
    handle.remove()
    x.grad = None
    x.exp().sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp(x.data))


def test_retain_grad():
    x = t64(3)
    h = x * 2
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.data, 2 * h.data)


def test_detach_and_requires_grad_rules():
    x = t64(3)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    with pytest.raises(RuntimeError, match="floating point"):
        cr.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)


def test_inplace_on_saved_tensor_is_caught_naming_both_ops():
    x = t64(3)
    y = x.exp()
    z = y.sum()
    y.add_(1)  # exp saved its output for backward
    with pytest.raises(RuntimeError) as err:
        z.backward()
    msg = str(err.value)
    assert "'exp'" in msg and "add_" in msg and "test_autograd.py" in msg


def test_inplace_on_unsaved_tensor_is_fine_and_differentiable():
    x = t64(3)
    y = x * 2
    y.add_(1)  # mul does not save its output
    y.mul_(x)  # records mul with the old value of y
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data + 1)
    assert y._version_count == 2


def test_inplace_on_leaf_requiring_grad_is_an_error():
    x = t64(3)
    with pytest.raises(RuntimeError, match="leaf"):
        x.add_(1)


def test_setitem_with_gradients():
    x = t64(4)
    v = t64(2, seed=3)
    y = x * 1
    y[1:3] = v * 2
    (y * y).sum().backward()
    expected = 2 * x.data
    expected[1:3] = 0
    np.testing.assert_allclose(x.grad.data, expected)
    np.testing.assert_allclose(v.grad.data, 2 * 2 * (2 * v.data))


def test_views_share_version_counter():
    x = cr.zeros(2, 3)
    v = x.reshape(6)
    v[0] = 5.0
    assert x.data[0, 0] == 5.0
    assert x._version_count == v._version_count == 1


def test_indexing_gradient_scatter_adds_repeated_indices():
    x = t64(3)
    x[[0, 0, 2]].sum().backward()
    np.testing.assert_allclose(x.grad.data, [2, 0, 1])
    x.grad = None
    x[x.data > 0].sum().backward()
    np.testing.assert_allclose(x.grad.data, (x.data > 0).astype(float))


def test_third_derivative_of_tanh():
    x = cr.tensor(0.3, dtype=cr.float64, requires_grad=True)
    (g1,) = cr.autograd.grad(x.tanh(), x, create_graph=True)
    (g2,) = cr.autograd.grad(g1, x, create_graph=True)
    (g3,) = cr.autograd.grad(g2, x)
    t = np.tanh(0.3)
    np.testing.assert_allclose(g1.item(), 1 - t ** 2)
    np.testing.assert_allclose(g2.item(), -2 * t * (1 - t ** 2))
    np.testing.assert_allclose(g3.item(), (1 - t ** 2) * (6 * t ** 2 - 2), rtol=1e-12)
    h = 1e-3
    num = (np.tanh(0.3 + 2 * h) - 2 * np.tanh(0.3 + h) + 2 * np.tanh(0.3 - h)
           - np.tanh(0.3 - 2 * h)) / (2 * h ** 3)
    np.testing.assert_allclose(g3.item(), num, rtol=1e-5)


def _mlp_loss(w1, b1, w2, b2, x, y):
    h = (x @ w1 + b1).tanh()
    return cr.cross_entropy(h @ w2 + b2, y)


def test_hessian_of_small_mlp_loss_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = cr.Tensor(rng.standard_normal((5, 3)))
    y = cr.tensor([0, 1, 2, 1, 0])
    params = [cr.Tensor(rng.standard_normal(s) * 0.5, requires_grad=True)
              for s in [(3, 4), (4,), (4, 3), (3,)]]
    flat = np.concatenate([p.data.ravel() for p in params])
    sizes = [p.data.size for p in params]

    def unflat(v):
        out, i = [], 0
        for p, n in zip(params, sizes):
            out.append(cr.Tensor(v[i:i + n].reshape(p.shape), requires_grad=True))
            i += n
        return out

    def grad_at(v):
        ps = unflat(v)
        gs = cr.autograd.grad(_mlp_loss(*ps, x, y), ps)
        return np.concatenate([g.data.ravel() for g in gs])

    loss = _mlp_loss(*params, x, y)
    gs = cr.autograd.grad(loss, params, create_graph=True)
    gflat = cr.cat([g.reshape(-1) for g in gs])
    hess = np.stack([np.concatenate([h.data.ravel() for h in cr.autograd.grad(
        gflat[i], params, retain_graph=True)]) for i in range(flat.size)])
    eps = 1e-5
    num = np.stack([(grad_at(flat + eps * e) - grad_at(flat - eps * e)) / (2 * eps)
                    for e in np.eye(flat.size)])
    np.testing.assert_allclose(hess, num, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(hess, hess.T, atol=1e-12)


def test_gradcheck_on_composite_mlp():
    rng = np.random.default_rng(1)
    x = cr.Tensor(rng.standard_normal((4, 3)))
    y = cr.tensor([0, 2, 1, 1])
    params = [cr.Tensor(rng.standard_normal(s), requires_grad=True)
              for s in [(3, 5), (5,), (5, 3), (3,)]]
    assert gradcheck(lambda *ps: _mlp_loss(*ps, x, y), params)


# ------------------------------------------------------------------ errors

def test_nonscalar_backward_needs_gradient_and_names_line():
    x = t64(3)
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(3,\).*test_autograd.py:\d+"):
        (x * 2).backward()


def test_wrong_gradient_shape():
    x = t64(3)
    with pytest.raises(RuntimeError, match=r"gradient of shape \(2,\).*\(3,\)"):
        (x * 2).backward(cr.ones(2, dtype=cr.float64))


def test_shape_mismatch_names_op_shapes_and_line():
    a, b = t64(3), t64(4)
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(4,\).*test_autograd.py:\d+"):
        a + b
    with pytest.raises(ValueError, match=r"mul.*\(3,\).*\(4,\).*test_autograd.py"):
        a.detach() * b.detach()
    with pytest.raises(ValueError, match=r"matmul: \(32, 784\) @ \(128, 10\) — inner dim"
                                         r"ensions 784 and 128 differ, at .*test_autograd.py"):
        cr.zeros(32, 784) @ cr.zeros(128, 10)


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        cr.ones(2).sum().backward()


def test_interpreter_stack_sees_every_primitive():
    from chainrule.core import dispatch

    class Recorder(dispatch.Interpreter):
        """Logs each primitive, then evaluates it with the interpreters below."""

        def __init__(self):
            self.names = []

        def process(self, prim, args, params):
            self.names.append(prim.name)
            top = dispatch._interpreters.pop()
            try:
                return dispatch.bind(prim, *args, **params)
            finally:
                dispatch._interpreters.append(top)

    x = t64(2, 3)
    w = t64(3, 4, seed=1)
    rec = Recorder()
    with dispatch.interpreter(rec):
        y = cr.softmax(x @ w, -1).sum()
    assert rec.names == ["matmul", "softmax", "sum"]
    y.backward()
    np.testing.assert_allclose(w.grad.data, np.zeros((3, 4)), atol=1e-12)  # rows sum to 1
    assert not dispatch._interpreters


def test_set_grad_enabled_as_function_and_decorator():
    x = t64(2)

    @cr.set_grad_enabled(False)
    def f(v):
        return v * 2
    assert cr.is_grad_enabled()  # decorating switches nothing
    assert not f(x).requires_grad and cr.is_grad_enabled()
    cr.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        cr.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_inplace_on_view_of_leaf_requiring_grad_is_an_error():
    x = t64(3, 4)
    with pytest.raises(RuntimeError, match="leaf"):
        x[0].add_(1)
    with cr.no_grad():
        x[0].add_(1)  # an update under no_grad is fine
    assert x._version_count == 1


def test_inplace_on_view_rebases_base_and_other_views():
    x = t64(3, 4)
    y = x * 1
    row = y[1]
    col = y[:, 2]
    row.mul_(3)  # y[1, 2] is shared by the row and the column
    (col * 1).sum().backward()
    expected = np.zeros((3, 4))
    expected[:, 2] = [1, 3, 1]
    np.testing.assert_allclose(x.grad.data, expected)


def test_grad_mode_is_per_thread():
    import threading
    x = t64(2)
    seen = {}

    def worker():
        seen["recording"] = (x * 2).requires_grad

    with cr.no_grad():
        th = threading.Thread(target=worker)
        th.start()
        th.join()
        assert not (x * 2).requires_grad
    assert seen["recording"]  # the other thread kept recording on


def test_recorded_inplace_with_a_wider_dtype_keeps_the_tensors_dtype():
    x = cr.ones(3, requires_grad=True)  # float32
    y = x * 2
    y.add_(cr.ones(3, dtype=cr.float64, requires_grad=True))
    assert y.dtype == np.float32 and y.grad_fn.prim.name == "cast"
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [2, 2, 2])
