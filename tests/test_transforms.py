"""The function transforms: values against finite differences, PyTorch's torch.func and
each other; compositions to depth three on an MLP and a small conv net; pytrees; errors."""
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import chainrule as cr
from chainrule.testing import numerical_jacobian

F64 = cr.float64
R = np.random.default_rng(0)


def t(*shape, scale=1.0):
    return cr.tensor(R.standard_normal(shape) * scale, dtype=F64)


def numjac(f, x):
    """(outputs, inputs) Jacobian by central differences."""
    return numerical_jacobian(f, [x.detach().requires_grad_()])[0]


def fd_grad(f, x, eps=1e-6):
    """Central differences of a scalar function of one tensor."""
    base = x.data.copy()
    g = np.zeros_like(base)
    for i in np.ndindex(base.shape):
        for s in (1, -1):
            xx = base.copy()
            xx[i] += s * eps
            g[i] += s * float(f(cr.tensor(xx, dtype=F64))) / (2 * eps)
    return g


# ---------------------------------------------------------------- models

def mlp_params(sizes=(4, 6, 3)):
    return {f"w{i}": t(a, b, scale=0.5) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))} | \
           {f"b{i}": t(b, scale=0.1) for i, b in enumerate(sizes[1:])}


def mlp_loss(params, x, y):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < n - 1:
            h = cr.tanh(h)
    return cr.cross_entropy(h, y)


X, Y = t(5, 4), cr.tensor([0, 2, 1, 1, 0])
Y2 = cr.tensor([0, 0, 1, 1, 0])


def test_grad_of_mlp_loss_wrt_param_dict_matches_finite_differences():
    params = mlp_params()
    g = cr.grad(mlp_loss)(params, X, Y)
    assert list(g) == list(params)
    for k in params:
        def f(v, k=k):
            return mlp_loss({**params, k: v}, X, Y)
        np.testing.assert_allclose(g[k].data, fd_grad(f, params[k]), rtol=1e-6, atol=1e-8)


def test_hessian_of_mlp_loss_wrt_param_dict_is_symmetric_and_matches_fd():
    params = mlp_params((3, 4, 2))
    H = cr.hessian(mlp_loss)(params, X[:, :3], Y2)
    assert set(H) == set(params) and all(set(H[k]) == set(params) for k in H)
    assert H["w0"]["b1"].shape == (3, 4, 2)
    for a in params:
        for b in params:
            np.testing.assert_allclose(
                H[a][b].data.reshape(params[a].numel(), params[b].numel()),
                H[b][a].data.reshape(params[b].numel(), params[a].numel()).T, atol=1e-10)
    # one block against finite differences of the gradient
    g_w0 = lambda w: cr.grad(mlp_loss)({**params, "w0": w}, X[:, :3], Y2)["b0"]  # noqa: E731
    num = numjac(g_w0, params["w0"])
    np.testing.assert_allclose(H["b0"]["w0"].data.reshape(num.shape), num, atol=1e-6)


def test_hvp_equals_hessian_times_vector_and_all_composition_orders_agree():
    x = t(6)

    def f(x):
        return (cr.sin(x) * cr.exp(x / 3)).sum() + (x @ x) ** 1.5

    v = t(6)
    val, (hv,) = cr.hvp(f, (x,), (v,))
    H = cr.hessian(f)(x)
    np.testing.assert_allclose(hv.data, H.data @ v.data, rtol=1e-10)
    assert float(val) == pytest.approx(float(f(x)))
    np.testing.assert_allclose(cr.jacfwd(cr.jacrev(f))(x).data, H.data, rtol=1e-10)
    np.testing.assert_allclose(cr.jacrev(cr.jacrev(f))(x).data, H.data, rtol=1e-10)
    np.testing.assert_allclose(cr.jacrev(cr.jacfwd(f))(x).data, H.data, rtol=1e-10)
    np.testing.assert_allclose(cr.jacfwd(cr.jacfwd(f))(x).data, H.data, rtol=1e-10)
    # grad(jvp) and jvp(grad) both give H v
    np.testing.assert_allclose(cr.grad(lambda x: cr.jvp(f, (x,), (v,))[1])(x).data,
                               hv.data, rtol=1e-10)
    np.testing.assert_allclose(cr.jvp(cr.grad(f), (x,), (v,))[1].data, hv.data, rtol=1e-10)


def test_third_order_compositions_agree_with_the_closed_form():
    x = t(4)
    th = np.tanh(x.data)
    d3 = -2 * (1 - th ** 2) ** 2 + 4 * th ** 2 * (1 - th ** 2)  # tanh'''
    f = lambda x: cr.tanh(x).sum()  # noqa: E731
    ggg = cr.grad(lambda x: cr.grad(lambda x: cr.grad(f)(x).sum())(x).sum())(x)
    np.testing.assert_allclose(ggg.data, d3, rtol=1e-10)
    ones = cr.ones(4, dtype=F64)
    fff = cr.jvp(lambda x: cr.jvp(lambda x: cr.jvp(f, (x,), (ones,))[1], (x,), (ones,))[1],
                 (x,), (ones,))[1]
    assert float(fff) == pytest.approx(d3.sum(), rel=1e-10)
    mixed = cr.jvp(lambda x: cr.grad(lambda x: cr.grad(f)(x).sum())(x), (x,), (ones,))[1]
    np.testing.assert_allclose(mixed.data, d3, rtol=1e-10)


def test_transforms_mix_with_eager_backward_and_autograd_grad():
    w = t(3).requires_grad_()
    x = t(3)
    g = cr.grad(lambda x: (w * x ** 3).sum())(x)  # 3 w x^2, depends on w
    g.sum().backward()
    np.testing.assert_allclose(w.grad.data, 3 * x.data ** 2, rtol=1e-12)
    # autograd.grad of a jvp output
    out, tan = cr.jvp(lambda x: (w * cr.sin(x)).sum(), (x,), (cr.ones(3, dtype=F64),))
    gw, = cr.autograd.grad(tan, w)
    np.testing.assert_allclose(gw.data, np.cos(x.data), rtol=1e-12)
    # a transform inside a function that eager backward differentiates
    x2 = t(3).requires_grad_()
    y = cr.grad(lambda z: (z ** 3).sum())(x2)  # 3 x^2
    y.sum().backward()
    np.testing.assert_allclose(x2.grad.data, 6 * x2.data, rtol=1e-12)


def test_no_perturbation_confusion_in_either_mode():
    x = cr.tensor(1.5, dtype=F64)
    one = cr.tensor(1.0, dtype=F64)
    # d/dx [x * d/dy (x * y)] = d/dx x^2 = 2x
    assert float(cr.grad(lambda x: x * cr.grad(lambda y: x * y)(x))(x)) == pytest.approx(3.0)
    inner = lambda x: cr.jvp(lambda y: x * y, (x,), (one,))[1]  # noqa: E731
    assert float(cr.jvp(lambda x: x * inner(x), (x,), (one,))[1]) == pytest.approx(3.0)


def test_first_order_grad_records_nothing_without_an_outer_level():
    x = t(3)
    g = cr.grad(lambda x: (x * x).sum())(x)
    assert g.grad_fn is None and not g.requires_grad
    value, g = cr.value_and_grad(lambda x: (x * x).sum())(x)
    assert value.grad_fn is None


def test_grad_under_no_grad_still_differentiates():
    x = t(3)
    with cr.no_grad():
        g = cr.grad(lambda x: (x ** 2).sum())(x)
    np.testing.assert_allclose(g.data, 2 * x.data)


# ---------------------------------------------------------------- signatures

def test_argnums_has_aux_and_value_and_grad():
    a, b = t(3), t(3)

    def f(a, b, scale):
        return (a * b).sum() * scale, {"prod": a * b}

    (val, aux), (ga, gb) = cr.value_and_grad(f, argnums=(0, 1), has_aux=True)(a, b, 2.0)
    np.testing.assert_allclose(ga.data, 2 * b.data)
    np.testing.assert_allclose(gb.data, 2 * a.data)
    np.testing.assert_allclose(aux["prod"].data, a.data * b.data)
    gb_only, aux2 = cr.grad(f, argnums=1, has_aux=True)(a, b, 3.0)
    np.testing.assert_allclose(gb_only.data, 3 * a.data)
    assert float(cr.grad(f, argnums=-2, has_aux=True)(a, b, 1.0)[0][0]) == float(a[0])


def test_vjp_with_pytree_outputs_and_inputs():
    Pair = namedtuple("Pair", "u v")
    x = {"a": t(2), "b": [t(3), None]}

    def f(x):
        return Pair(x["a"].sum() * x["b"][0], cr.exp(x["a"]))

    out, vjp_fn = cr.vjp(f, x)
    assert isinstance(out, Pair)
    ct = Pair(cr.ones(3, dtype=F64), cr.ones(2, dtype=F64))
    (g,) = vjp_fn(ct)
    assert set(g) == {"a", "b"} and g["b"][1] is None
    np.testing.assert_allclose(g["a"].data, x["b"][0].data.sum() + np.exp(x["a"].data))
    np.testing.assert_allclose(g["b"][0].data, np.full(3, x["a"].data.sum()))
    with pytest.raises(ValueError, match="structure"):
        vjp_fn(cr.ones(3, dtype=F64))


def test_jvp_with_pytrees_and_unused_outputs():
    p = OrderedDict(w=t(2, 2), c=t(2))
    v = OrderedDict(w=t(2, 2), c=cr.zeros(2, dtype=F64))
    out, tan = cr.jvp(lambda p: {"y": p["w"] @ p["c"], "k": cr.ones(1)}, (p,), (v,))
    np.testing.assert_allclose(tan["y"].data, v["w"].data @ p["c"].data)
    assert float(tan["k"].sum()) == 0.0


def test_jacobians_of_non_scalar_functions_against_numerical():
    x = t(3)
    f = lambda x: cr.stack([x[0] * x[1], cr.sin(x[2]), x.sum() ** 2, x[1]])  # noqa: E731
    num = numjac(f, x)
    np.testing.assert_allclose(cr.jacrev(f)(x).data, num, atol=1e-7)
    np.testing.assert_allclose(cr.jacfwd(f)(x).data, num, atol=1e-7)
    # two inputs, matrix shaped
    a, b = t(2, 3), t(3)
    ja, jb = cr.jacrev(lambda a, b: a @ b, argnums=(0, 1))(a, b)
    assert ja.shape == (2, 2, 3) and jb.shape == (2, 3)
    np.testing.assert_allclose(jb.data, a.data)
    ja2, jb2 = cr.jacfwd(lambda a, b: a @ b, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ja2.data, ja.data)
    np.testing.assert_allclose(jb2.data, jb.data)


def test_tree_utilities():
    tree = {"a": (1, [2, None]), "b": OrderedDict(c=3)}
    leaves, td = cr.tree_flatten(tree)
    assert leaves == [1, 2, 3]
    assert cr.tree_unflatten(td, [4, 5, 6]) == {"a": (4, [5, None]), "b": OrderedDict(c=6)}
    assert cr.tree_map(lambda a, b: a + b, tree, tree) == {"a": (2, [4, None]),
                                                           "b": OrderedDict(c=6)}
    assert hash(td) == hash(cr.tree_flatten({"a": (7, [8, None]), "b": OrderedDict(c=9)})[1])
    assert td != cr.tree_flatten({"b": OrderedDict(c=3), "a": (1, [2, None])})[1]
    with pytest.raises(ValueError, match="structure"):
        cr.tree_map(lambda a, b: a, tree, [1, 2, 3])
    with pytest.raises(ValueError):
        cr.tree_unflatten(td, [1, 2])


# ---------------------------------------------------------------- errors

def test_errors_name_the_problem_and_the_users_line():
    x = t(3)
    with pytest.raises(TypeError, match=r"one-element floating point tensor.*\(3,\).*"
                                        r"test_transforms.py"):
        cr.grad(lambda x: x * 2)(x)
    with pytest.raises(TypeError, match="only floating point tensors"):
        cr.grad(lambda n: n.sum())(cr.tensor([1, 2]))
    with pytest.raises(ValueError, match="argnums"):
        cr.grad(lambda a: a.sum(), argnums=3)(x)
    with pytest.raises(ValueError, match=r"tangent 0 has shape \(2,\)"):
        cr.jvp(lambda a: a, (x,), (cr.ones(2, dtype=F64),))
    with pytest.raises(TypeError, match="pair"):
        cr.grad(lambda a: a.sum(), has_aux=True)(x)


# ---------------------------------------------------------------- torch.func

def test_against_torch_func():
    torch = pytest.importorskip("torch")
    from torch import func as tf
    xn = R.standard_normal(5)
    vn = R.standard_normal(5)

    def f_cr(x):
        return (cr.log1p(cr.exp(x)) * cr.sin(x)).sum() / (1 + (x * x).sum())

    def f_t(x):
        return (torch.nn.functional.softplus(x) * torch.sin(x)).sum() / (1 + (x * x).sum())

    x, v = cr.tensor(xn, dtype=F64), cr.tensor(vn, dtype=F64)
    xt, vt = torch.tensor(xn), torch.tensor(vn)
    np.testing.assert_allclose(cr.grad(f_cr)(x).data, tf.grad(f_t)(xt).numpy(), rtol=1e-10)
    np.testing.assert_allclose(cr.hessian(f_cr)(x).data, tf.hessian(f_t)(xt).numpy(),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cr.jvp(cr.grad(f_cr), (x,), (v,))[1].data,
                               tf.jvp(tf.grad(f_t), (xt,), (vt,))[1].numpy(), rtol=1e-9)
    g3 = cr.grad(lambda x: cr.grad(lambda x: cr.grad(f_cr)(x)[0])(x)[1])(x)
    g3t = tf.grad(lambda x: tf.grad(lambda x: tf.grad(f_t)(x)[0])(x)[1])(xt)
    np.testing.assert_allclose(g3.data, g3t.numpy(), rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------- a small conv net

def conv_loss(p, x, y):
    F = cr.nn.functional
    h = cr.tanh(F.conv2d(x, p["k1"], p["c1"], padding=1))  # (N, 3, 6, 6)
    h = F.max_pool2d(h, 2)                                   # (N, 3, 3, 3)
    h = cr.tanh(F.conv2d(h, p["k2"], stride=1))             # (N, 2, 1, 1)
    return cr.cross_entropy(h.reshape(h.shape[0], -1), y)


def conv_params():
    return {"k1": t(3, 1, 3, 3, scale=0.5), "c1": t(3, scale=0.1), "k2": t(2, 3, 3, 3, scale=0.5)}


def test_conv_net_gradient_and_hvp_in_every_mode_pair():
    import chainrule.nn  # noqa: F401  (conv2d, max_pool2d)
    p = conv_params()
    x, y = t(2, 1, 6, 6), cr.tensor([0, 1])
    g = cr.grad(conv_loss)(p, x, y)
    for k in p:
        def f(v, k=k):
            return conv_loss({**p, k: v}, x, y)
        np.testing.assert_allclose(g[k].data, fd_grad(f, p[k]), rtol=1e-5, atol=1e-8)
    v = {k: t(*a.shape) for k, a in p.items()}
    _, (hv,) = cr.hvp(lambda q: conv_loss(q, x, y), (p,), (v,))
    rr = cr.grad(lambda q: sum((gi * v[k]).sum() for k, gi in
                               cr.grad(conv_loss)(q, x, y).items()))(p)
    rf = cr.grad(lambda q: cr.jvp(lambda q: conv_loss(q, x, y), (q,), (v,))[1])(p)
    for k in p:
        np.testing.assert_allclose(hv[k].data, rr[k].data, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(rf[k].data, rr[k].data, rtol=1e-9, atol=1e-12)
    # and against finite differences of the gradient along v
    eps = 1e-6
    gp = cr.grad(conv_loss)({k: p[k] + eps * v[k] for k in p}, x, y)
    gm = cr.grad(conv_loss)({k: p[k] - eps * v[k] for k in p}, x, y)
    for k in p:
        np.testing.assert_allclose(hv[k].data, (gp[k].data - gm[k].data) / (2 * eps),
                                   rtol=1e-5, atol=1e-7)
