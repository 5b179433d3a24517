"""scaled_dot_product_attention, MultiheadAttention, TransformerEncoderLayer and
TransformerEncoder against PyTorch (same weights: values and gradients wrt inputs, float
masks and every parameter), plus finite-difference checks at first and second order."""
import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule.nn import transformer as nn
from chainrule.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float64: dict(rtol=1e-9, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-5)}
TORCH_DT = {np.float64: torch.float64, np.float32: torch.float32}


def copy_weights(src, dst):
    """Load a torch module's state_dict into a chainrule module by name, checking the
    names, order and shapes."""
    sd = src.state_dict()
    assert [n for n, _ in dst.named_parameters()] == list(sd)
    for name, p in dst.named_parameters():
        assert p.shape == tuple(sd[name].shape), name
        p.data[...] = sd[name].numpy()


def pair(torch_cls, cr_cls, dtype, *args, **kwargs):
    torch.manual_seed(0)
    tm = torch_cls(*args, **kwargs).to(TORCH_DT[dtype])
    cm = cr_cls(*args, dtype=dtype, **kwargs)
    copy_weights(tm, cm)
    return tm, cm


def both(array, grad=True):
    """The same data as a torch and a chainrule tensor (leaves needing grad if float)."""
    grad = grad and array.dtype.kind == "f"
    return torch.tensor(array, requires_grad=grad), cr.tensor(array, requires_grad=grad)


def compare(t_outs, c_outs, t_leaves, c_leaves, dtype, tm=None, cm=None, seed=0):
    """Compare outputs, then backpropagate the same cotangents and compare the gradients
    of the leaves and of every parameter."""
    t_outs = [o for o in t_outs if o is not None]
    c_outs = [o for o in c_outs if o is not None]
    assert len(t_outs) == len(c_outs)
    tol = TOL[dtype]
    for a, b in zip(c_outs, t_outs):
        assert a.shape == tuple(b.shape) and a.dtype == dtype
        np.testing.assert_allclose(a.data, b.detach().numpy(), **tol)
    rng = np.random.default_rng(seed)
    cots = [rng.standard_normal(a.shape).astype(dtype) for a in c_outs]
    sum(torch.sum(o * torch.tensor(g)) for o, g in zip(t_outs, cots)).backward()
    sum(cr.sum(o * cr.tensor(g)) for o, g in zip(c_outs, cots)).backward()
    for a, b in zip(c_leaves, t_leaves):
        if b.requires_grad:
            np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **tol)
    if tm is not None:
        t_params = dict(tm.named_parameters())
        for name, p in cm.named_parameters():
            np.testing.assert_allclose(p.grad.data, t_params[name].grad.numpy(), **tol,
                                       err_msg=name)


# ------------------------------------------------------------------ scaled_dot_product_attention


def bool_mask(rng, shape, empty_row=False):
    m = rng.random(shape) < 0.7
    m[..., 0] = True  # every query sees a key
    if empty_row:
        m[..., 1, :] = False
    return m


SDPA_CASES = {
    "plain": dict(),
    "bool_mask": dict(mask=lambda r: bool_mask(r, (5, 6))),
    "bool_mask_batched": dict(mask=lambda r: bool_mask(r, (2, 1, 5, 6))),
    "float_mask": dict(mask=lambda r: r.standard_normal((3, 5, 6))),
    "masked_row": dict(mask=lambda r: bool_mask(r, (5, 6), empty_row=True)),
    "float_masked_row": dict(mask=lambda r: np.where(bool_mask(r, (5, 6), True), 0.3, -np.inf)),
    "causal": dict(is_causal=True),
    "causal_square": dict(is_causal=True, s=5),
    "scale": dict(scale=0.3),
    "gqa": dict(enable_gqa=True, hk=1),
    "3d": dict(shape3=True),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(SDPA_CASES))
def test_sdpa(case, dtype):
    c = dict(SDPA_CASES[case])
    rng = np.random.default_rng(1)
    s, hk = c.pop("s", 6), c.pop("hk", 3)
    lead = (3,) if c.pop("shape3", False) else (2, 3)
    lead_k = lead[:-1] + (hk,)
    q, k, v = (both(rng.standard_normal(sh).astype(dtype))
               for sh in (lead + (5, 4), lead_k + (s, 4), lead_k + (s, 7)))
    mask = c.pop("mask", None)
    leaves_t, leaves_c = [q[0], k[0], v[0]], [q[1], k[1], v[1]]
    kw_t, kw_c = dict(c), dict(c)
    if mask is not None:
        m = mask(rng)
        m = m.astype(dtype) if m.dtype.kind == "f" else m
        mt, mc = both(m)
        kw_t["attn_mask"], kw_c["attn_mask"] = mt, mc
        leaves_t.append(mt)
        leaves_c.append(mc)
    t_out = F.scaled_dot_product_attention(q[0], k[0], v[0], **kw_t)
    c_out = nn.scaled_dot_product_attention(q[1], k[1], v[1], **kw_c)
    compare([t_out], [c_out], leaves_t, leaves_c, dtype)
    if "masked_row" in case:  # the empty row: zeros, and no gradient flows from it
        assert not c_out.data[..., 1, :].any()
        assert np.isfinite(q[1].grad.data).all() and not q[1].grad.data[..., 1, :].any()


def test_sdpa_dropout():
    rng = np.random.default_rng(0)
    q, k, v = (cr.tensor(rng.standard_normal((2, 4, 3))) for _ in range(3))
    full = nn.scaled_dot_product_attention(q, k, v).data
    none = nn.scaled_dot_product_attention(q, k, v, dropout_p=1.0).data
    assert not none.any()  # every weight dropped
    cr.manual_seed(0)
    a = nn.scaled_dot_product_attention(q, k, v, dropout_p=0.5).data
    cr.manual_seed(0)
    assert np.array_equal(a, nn.scaled_dot_product_attention(q, k, v, dropout_p=0.5).data)
    assert not np.allclose(a, full)


@pytest.mark.parametrize("bad,match", [
    (lambda q: nn.scaled_dot_product_attention(q, q[..., :3], q), "do not fit"),
    (lambda q: nn.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((5, 5), bool),
                                               is_causal=True), "not both"),
    (lambda q: nn.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 5), bool)),
     "does not broadcast"),
    (lambda q: nn.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), np.int64)),
     "bool or float"),
])
def test_sdpa_errors(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad(cr.randn(2, 4, 4))


def test_sdpa_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(2)
    q, k, v = (cr.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((1, 3, 2), (1, 4, 2), (1, 4, 2)))
    mask = cr.tensor(bool_mask(rng, (3, 4)))

    def fn(q, k, v):
        return nn.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    assert gradcheck(fn, (q, k, v))
    assert gradgradcheck(fn, (q, k, v))


# ------------------------------------------------------------------ MultiheadAttention

E, HEADS, L, S, NB = 8, 2, 4, 5, 3

MHA_CASES = {
    "self": dict(),
    "self_batch_first": dict(batch_first=True),
    "cross": dict(cross=True),
    "cross_kdim_vdim": dict(cross=True, kdim=3, vdim=6),
    "kv_same": dict(kv_same=True),
    "kpm_bool": dict(kpm="bool"),
    "kpm_float": dict(kpm="float", batch_first=True),
    "causal": dict(causal=True),
    "causal_hint": dict(causal=True, is_causal=True, kpm="bool"),
    "mask_3d": dict(mask3d=True, cross=True),
    "mask_float": dict(mask_float=True, cross=True),
    "no_weights": dict(need_weights=False, causal=True, is_causal=True),
    "per_head": dict(average_attn_weights=False, kpm="bool"),
    "unbatched": dict(unbatched=True, kpm="bool"),
    "unbatched_cross": dict(unbatched=True, cross=True, kdim=3),
    "no_bias": dict(bias=False),
    "bias_kv": dict(add_bias_kv=True, kpm="bool", causal=True),
    "zero_attn": dict(add_zero_attn=True, cross=True, mask3d=True),
}


def mha_case(name, dtype):
    c = dict(MHA_CASES[name])
    ctor = {k: c.pop(k) for k in ("batch_first", "kdim", "vdim", "bias", "add_bias_kv",
                                  "add_zero_attn") if k in c}
    tm, cm = pair(torch.nn.MultiheadAttention, nn.MultiheadAttention, dtype, E, HEADS,
                  **ctor)
    rng = np.random.default_rng(3)
    cross, unbatched = c.pop("cross", False), c.pop("unbatched", False)
    kv_same = c.pop("kv_same", False)
    n_k = S if cross or kv_same else L
    bf = ctor.get("batch_first", False)

    def seq(n, d):
        shape = (n, d) if unbatched else ((NB, n, d) if bf else (n, NB, d))
        return both(rng.standard_normal(shape).astype(dtype))

    q = seq(L, E)
    if cross:
        k, v = seq(S, ctor.get("kdim", E)), seq(S, ctor.get("vdim", E))
    elif kv_same:
        k = v = seq(S, E)
    else:
        k = v = q  # the same tensor: the packed self-attention path
    kw_t, kw_c = {}, {}
    leaves = [q, k, v] if cross else [q, k] if kv_same else [q]
    kpm = c.pop("kpm", None)
    if kpm:
        m = rng.random((n_k,) if unbatched else (NB, n_k)) < 0.3
        m[..., 0] = False
        if kpm == "float":
            m = np.where(m, -1e4, rng.standard_normal(m.shape)).astype(dtype)
        kw_t["key_padding_mask"], kw_c["key_padding_mask"] = both(m, grad=False)
    if c.pop("causal", False):
        kw_t["attn_mask"], kw_c["attn_mask"] = both(np.triu(np.ones((L, n_k), bool), 1))
    if c.pop("mask3d", False):
        heads = HEADS * (1 if unbatched else NB)
        m = rng.random((heads, L, n_k)) < 0.3
        m[..., 0] = False
        kw_t["attn_mask"], kw_c["attn_mask"] = both(m)
    if c.pop("mask_float", False):
        mt, mc = both(rng.standard_normal((L, n_k)).astype(dtype))
        kw_t["attn_mask"], kw_c["attn_mask"] = mt, mc
        leaves.append((mt, mc))
    kw_t.update(c)
    kw_c.update(c)
    t_out = tm(q[0], k[0], v[0], **kw_t)
    c_out = cm(q[1], k[1], v[1], **kw_c)
    assert (c_out[1] is None) == (t_out[1] is None)
    compare(t_out, c_out, [x[0] for x in leaves], [x[1] for x in leaves], dtype, tm, cm)


@pytest.mark.parametrize("case", list(MHA_CASES))
def test_mha_float64(case):
    mha_case(case, np.float64)


@pytest.mark.parametrize("case", ["self", "cross_kdim_vdim", "kpm_bool", "bias_kv"])
def test_mha_float32(case):
    mha_case(case, np.float32)


def test_mha_parameters_and_init():
    t = torch.nn.MultiheadAttention(E, HEADS, kdim=3, vdim=5, add_bias_kv=True)
    m = nn.MultiheadAttention(E, HEADS, kdim=3, vdim=5, add_bias_kv=True)
    assert [(n, p.shape) for n, p in m.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    assert m.in_proj_weight is None and not m.in_proj_bias.data.any()
    assert not m.out_proj.bias.data.any()
    packed = nn.MultiheadAttention(64, 4)
    bound = np.sqrt(6 / (64 + 3 * 64))  # xavier_uniform_ of the (3E, E) matrix
    w = packed.in_proj_weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def test_mha_fully_masked_row_gives_zeros():
    """PyTorch gives NaN for a sequence whose keys are all padded (need_weights=True) and
    zeros without weights; here both give zeros, and the gradients stay finite."""
    tm, cm = pair(torch.nn.MultiheadAttention, nn.MultiheadAttention, np.float64, E, HEADS)
    x = np.random.default_rng(4).standard_normal((L, NB, E))
    kpm = np.zeros((NB, L), bool)
    kpm[1] = True
    xt, xc = both(x)
    t_out = tm(xt, xt, xt, key_padding_mask=torch.tensor(kpm), need_weights=False)[0]
    c_out, w = cm(xc, xc, xc, key_padding_mask=kpm)
    assert np.isnan(tm(xt, xt, xt, key_padding_mask=torch.tensor(kpm))[0].detach().numpy()).any()
    np.testing.assert_allclose(c_out.data, t_out.detach().numpy(), rtol=1e-9, atol=1e-10)
    assert not w.data[1].any() and np.isfinite(w.data).all()
    c_out.sum().backward()
    assert np.isfinite(xc.grad.data).all()


def test_mha_dropout_in_training_only():
    tm, cm = pair(torch.nn.MultiheadAttention, nn.MultiheadAttention, np.float64, E, HEADS,
                  dropout=1.0)
    x = np.random.default_rng(5).standard_normal((L, NB, E))
    xt, xc = both(x)
    out, w = cm(xc, xc, xc)  # every attention weight dropped: the output is out_proj's bias
    np.testing.assert_allclose(out.data, tm(xt, xt, xt)[0].detach().numpy(), atol=1e-12)
    assert not w.data.any()
    cm.eval()
    tm.eval()
    np.testing.assert_allclose(cm(xc, xc, xc)[0].data, tm(xt, xt, xt)[0].detach().numpy(),
                               rtol=1e-9, atol=1e-10)


def test_mha_is_causal_without_mask_builds_it():
    m = nn.MultiheadAttention(E, HEADS)
    x = cr.randn(L, NB, E)
    causal = np.triu(np.ones((L, L), bool), 1)
    a = m(x, x, x, is_causal=True)
    b = m(x, x, x, attn_mask=causal)
    np.testing.assert_array_equal(a[0].data, b[0].data)
    np.testing.assert_array_equal(a[1].data, b[1].data)


@pytest.mark.parametrize("bad,match", [
    (lambda m, x: m(x, x, x[..., :4]), "features"),
    (lambda m, x: m(x, x[:3], x), "batch size|length"),
    (lambda m, x: m(x, x, x, key_padding_mask=np.zeros((NB, L + 1), bool)), "key_padding_mask"),
    (lambda m, x: m(x, x, x, attn_mask=np.zeros((L, L + 1), bool)), "attn_mask"),
    (lambda m, x: m(x[0, 0], x[0, 0], x[0, 0]), "3-D"),
])
def test_mha_errors(bad, match):
    m = nn.MultiheadAttention(E, HEADS)
    with pytest.raises(ValueError, match=match):
        bad(m, cr.randn(L, NB, E))
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(E, 3)


def test_mha_gradcheck_and_gradgradcheck():
    cr.manual_seed(0)
    m = nn.MultiheadAttention(4, 2, dtype=np.float64)
    rng = np.random.default_rng(6)
    q = cr.tensor(rng.standard_normal((2, 1, 4)), requires_grad=True)
    kv = cr.tensor(rng.standard_normal((3, 1, 4)), requires_grad=True)
    kpm = np.array([[False, False, True]])
    params = list(m.parameters())

    def fn(q, kv, *ps):  # ps are perturbed in place; the module reads them
        return m(q, kv, kv, key_padding_mask=kpm)

    assert gradcheck(fn, (q, kv, *params))
    assert gradgradcheck(fn, (q, kv, *params))


# ------------------------------------------------------------------ encoder

D_MODEL, NHEAD, FF = 8, 2, 12


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
def test_encoder_layer(batch_first, activation, norm_first, dtype):
    tm, cm = pair(torch.nn.TransformerEncoderLayer, nn.TransformerEncoderLayer, dtype,
                  D_MODEL, NHEAD, FF, 0.1, activation, batch_first=batch_first,
                  norm_first=norm_first)
    tm.eval()
    cm.eval()
    rng = np.random.default_rng(7)
    x = both(rng.standard_normal((NB, L, D_MODEL) if batch_first else (L, NB, D_MODEL))
             .astype(dtype))
    kpm = np.zeros((NB, L), bool)
    kpm[0, -2:] = True
    mask = np.triu(np.ones((L, L), bool), 1)
    t_out = tm(x[0], src_mask=torch.tensor(mask), src_key_padding_mask=torch.tensor(kpm))
    c_out = cm(x[1], src_mask=mask, src_key_padding_mask=kpm)
    compare([t_out], [c_out], [x[0]], [x[1]], dtype, tm, cm)


def test_encoder_layer_unbatched_and_callable_activation():
    tm, cm = pair(torch.nn.TransformerEncoderLayer, nn.TransformerEncoderLayer, np.float64,
                  D_MODEL, NHEAD, FF, 0.0, bias=False)
    cm.activation = cr.tanh
    tm.activation = torch.tanh
    x = both(np.random.default_rng(8).standard_normal((L, D_MODEL)))
    compare([tm(x[0])], [cm(x[1])], [x[0]], [x[1]], np.float64, tm, cm)


def test_encoder_stack():
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, batch_first=True,
                                               dtype=torch.float64)
    tm = torch.nn.TransformerEncoder(t_layer, 2, norm=torch.nn.LayerNorm(
        D_MODEL, dtype=torch.float64), enable_nested_tensor=False)
    with torch.no_grad():  # make the two copies differ
        tm.layers[1].linear1.weight.mul_(-0.5)
    layer = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, batch_first=True, dtype=np.float64)
    norm = nn.LayerNorm(D_MODEL, dtype=np.float64)
    cm = nn.TransformerEncoder(layer, 2, norm=norm)
    assert cm.layers[0] is not layer and cm.layers[0].linear1.weight is not \
        cm.layers[1].linear1.weight
    copy_weights(tm, cm)
    tm.eval()
    cm.eval()
    x = both(np.random.default_rng(9).standard_normal((NB, L, D_MODEL)))
    kpm = np.zeros((NB, L), bool)
    kpm[2, -1] = True
    t_out = tm(x[0], src_key_padding_mask=torch.tensor(kpm))
    c_out = cm(x[1], src_key_padding_mask=kpm)
    compare([t_out], [c_out], [x[0]], [x[1]], np.float64, tm, cm)


def test_encoder_layer_dropout_is_seeded_and_off_in_eval():
    layer = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=0.5)
    x = cr.randn(L, NB, D_MODEL)
    cr.manual_seed(1)
    a = layer(x).data
    cr.manual_seed(1)
    assert np.array_equal(a, layer(x).data)
    layer.eval()
    b = layer(x).data
    assert not np.allclose(a, b) and np.array_equal(b, layer(x).data)


def test_deepcopy_is_independent():
    layer = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF)
    twin = copy.deepcopy(layer)
    twin.linear1.weight.data[...] = 0
    assert layer.linear1.weight.data.any()
    with pytest.raises(ValueError, match="relu/gelu"):
        nn.TransformerEncoderLayer(D_MODEL, NHEAD, activation="swish")
