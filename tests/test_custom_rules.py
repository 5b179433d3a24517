"""Custom differentiation rules: autograd.Function, custom_vjp, custom_jvp."""
import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import Function

F64 = cr.float64


def x64(*vals, grad=False):
    return cr.tensor(list(vals), dtype=F64, requires_grad=grad)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = cr.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y

    @staticmethod
    def jvp(ctx, t):
        return t * cr.exp(ctx.x_for_jvp) if hasattr(ctx, "x_for_jvp") else None


class ScaledMul(Function):
    """Mixed tensor and non-tensor arguments, needs_input_grad, two outputs."""

    @staticmethod
    def forward(ctx, a, k, b):
        ctx.k = k
        ctx.save_for_backward(a, b)
        return a * b * k, a + b

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        a, b = ctx.saved_tensors
        ga = g_prod * b * ctx.k + g_sum if ctx.needs_input_grad[0] else None
        gb = g_prod * a * ctx.k + g_sum if ctx.needs_input_grad[2] else None
        return ga, None, gb


def test_function_first_and_second_order():
    x = x64(0.1, 0.5, -1.0, grad=True)
    Exp.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp(x.data))
    (g,) = cr.autograd.grad(Exp.apply(x).sum(), x, create_graph=True)
    (gg,) = cr.autograd.grad(g.sum(), x)  # the backward is in chainrule ops: differentiable
    np.testing.assert_allclose(gg.data, np.exp(x.data))
    d2 = cr.grad(lambda x: cr.grad(lambda x: Exp.apply(x).sum())(x).sum())(x.detach())
    np.testing.assert_allclose(d2.data, np.exp(x.data))


def test_function_with_two_outputs_and_non_tensor_args():
    a, b = x64(1.0, 2.0, grad=True), x64(3.0, -1.0, grad=True)
    p, s = ScaledMul.apply(a, 2.0, b)
    (p.sum() * 3 + (s * s).sum()).backward()
    np.testing.assert_allclose(a.grad.data, 3 * 2 * b.data + 2 * (a.data + b.data))
    np.testing.assert_allclose(b.grad.data, 3 * 2 * a.data + 2 * (a.data + b.data))
    a2 = x64(1.0, 2.0, grad=True)
    _, s2 = ScaledMul.apply(a2, 2.0, x64(3.0, -1.0))  # b needs no grad; one output used
    s2.sum().backward()
    np.testing.assert_allclose(a2.grad.data, [1.0, 1.0])


def test_function_forward_mode_uses_its_jvp_and_errors_without_one():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g

        @staticmethod
        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return 3 * x * x * t

    x = x64(1.0, -2.0)
    _, tan = cr.jvp(Cube.apply, (x,), (x64(1.0, 1.0),))
    np.testing.assert_allclose(tan.data, 3 * x.data ** 2)
    np.testing.assert_allclose(cr.hessian(lambda x: Cube.apply(x).sum())(x).data,
                               np.diag(6 * x.data))

    class NoJvp(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    with pytest.raises(RuntimeError, match="NoJvp: forward-mode AD needs a jvp"):
        cr.jvp(NoJvp.apply, (x,), (x,))


def test_function_backward_with_the_wrong_shape_or_count_is_named():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return cr.ones(7, dtype=F64)

    class TooMany(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    x = x64(1.0, 2.0, grad=True)
    with pytest.raises(RuntimeError, match=r"Bad.backward: the gradient returned for input 0 "
                                           r"has shape \(7,\), expected \(2,\)"):
        Bad.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match="returned 2 gradients but forward took 1"):
        TooMany.apply(x).sum().backward()


def test_function_broadcastable_gradient_is_summed():
    class RowSum(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum(1)

        @staticmethod
        def backward(ctx, g):
            return g.reshape(-1, 1) * cr.ones(1, 3, dtype=F64)

    x = cr.ones(2, 3, dtype=F64, requires_grad=True)
    RowSum.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.ones((2, 3)))


def test_custom_vjp_changes_the_gradient_and_keeps_the_value():
    @cr.custom_vjp
    def clip_gradient(x):
        return x * 1

    clip_gradient.defvjp(lambda x: (x * 1, None), lambda res, g: (cr.clamp(g, -0.5, 0.5),))
    x = x64(1.0, 2.0)
    np.testing.assert_allclose(cr.grad(lambda x: (clip_gradient(x) * 3).sum())(x).data,
                               [0.5, 0.5])
    np.testing.assert_allclose(clip_gradient(x).data, x.data)
    with pytest.raises(TypeError, match="forward-mode AD .* is not defined for a custom_vjp"):
        cr.jvp(clip_gradient, (x,), (x,))


def test_custom_vjp_with_residuals_pytree_outputs_and_second_order():
    @cr.custom_vjp
    def f(x, y):
        return {"p": x * y, "s": cr.sin(x)}

    def fwd(x, y):
        return f(x, y), (x, y)

    def bwd(res, ct):
        x, y = res
        return ct["p"] * y + ct["s"] * cr.cos(x), ct["p"] * x

    f.defvjp(fwd, bwd)
    x, y = x64(0.3, 0.7), x64(2.0, -1.0)
    gx, gy = cr.grad(lambda x, y: (f(x, y)["p"] + f(x, y)["s"]).sum(), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx.data, y.data + np.cos(x.data))
    np.testing.assert_allclose(gy.data, x.data)
    H = cr.jacrev(cr.grad(lambda x: f(x, y)["s"].sum()))(x)  # bwd is differentiable
    np.testing.assert_allclose(H.data, np.diag(-np.sin(x.data)), atol=1e-12)


def test_custom_jvp_drives_forward_and_reverse_mode():
    @cr.custom_jvp
    def softplus(x):
        return cr.log1p(cr.exp(x))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t * cr.sigmoid(x)

    x = x64(1000.0, -3.0, 0.0)  # exp(1000) overflows: the rule keeps the slope finite
    s = 1 / (1 + np.exp(-x.data))
    np.testing.assert_allclose(cr.jvp(softplus, (x,), (cr.ones(3, dtype=F64),))[1].data, s)
    np.testing.assert_allclose(cr.grad(lambda x: softplus(x).sum())(x).data, s)
    np.testing.assert_allclose(cr.hessian(lambda x: softplus(x).sum())(x).data,
                               np.diag(s * (1 - s)), atol=1e-12)
    xr = x64(0.5, grad=True)
    softplus(xr).sum().backward()  # eager backward too
    np.testing.assert_allclose(xr.grad.data, 1 / (1 + np.exp(-0.5)))


def test_undefined_rules_error_clearly():
    f = cr.custom_vjp(lambda x: x)
    with pytest.raises(RuntimeError, match="call defvjp"):
        f(x64(1.0))
    g = cr.custom_jvp(lambda x: x)
    with pytest.raises(RuntimeError, match="call defjvp"):
        g(x64(1.0))
