"""RNN, LSTM, GRU and their cells against PyTorch (same weights: values and gradients wrt
inputs, initial states and every parameter), plus finite-difference checks at first and
second order."""
import numpy as np
import pytest

import chainrule as cr
from chainrule.nn import rnn as nn
from chainrule.testing import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

T, N, C, H = 5, 3, 4, 6  # time steps, batch, input features, hidden size
TOL = {np.float64: dict(rtol=1e-9, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-5)}
TORCH_DT = {np.float64: torch.float64, np.float32: torch.float32}


def copy_weights(src, dst):
    """Load a torch module's state_dict into a chainrule module, checking that the names,
    order and shapes of the parameters are PyTorch's."""
    sd = src.state_dict()
    names = [n for n, _ in dst.named_parameters()]
    assert names == list(sd), (names, list(sd))
    for name, p in dst.named_parameters():
        assert p.shape == tuple(sd[name].shape), name
        p.data[...] = sd[name].numpy()


def pair(torch_cls, cr_cls, dtype, *args, **kwargs):
    torch.manual_seed(0)
    tm = torch_cls(*args, **kwargs).to(TORCH_DT[dtype])
    cm = cr_cls(*args, dtype=dtype, **kwargs)
    copy_weights(tm, cm)
    return tm, cm


def leaves(rng, shapes, dtype):
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return ([torch.tensor(a, requires_grad=True) for a in arrays],
            [cr.tensor(a, requires_grad=True) for a in arrays])


def flat(out):
    """The tensors in an (output, h) or (output, (h, c)) result, in order."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def compare(tm, cm, t_in, c_in, call, dtype, rng):
    """Forward both, backpropagate the same random cotangents, compare outputs and the
    gradients of the inputs and of every parameter."""
    t_out, c_out = flat(call(tm, t_in)), flat(call(cm, c_in))
    assert [tuple(o.shape) for o in c_out] == [tuple(o.shape) for o in t_out]
    tol = TOL[dtype]
    for a, b in zip(c_out, t_out):
        assert a.dtype == dtype
        np.testing.assert_allclose(a.data, b.detach().numpy(), **tol)
    cots = [rng.standard_normal(tuple(o.shape)).astype(dtype) for o in t_out]
    sum(torch.sum(o * torch.tensor(g)) for o, g in zip(t_out, cots)).backward()
    sum(cr.sum(o * cr.tensor(g)) for o, g in zip(c_out, cots)).backward()
    for a, b in zip(c_in, t_in):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **tol)
    t_params = dict(tm.named_parameters())
    for name, p in cm.named_parameters():
        np.testing.assert_allclose(p.grad.data, t_params[name].grad.numpy(), **tol,
                                   err_msg=name)


SEQ_MODELS = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
SEQ_CONFIGS = [
    dict(),
    dict(num_layers=2, bidirectional=True, init=True),
    dict(num_layers=2, batch_first=True, init=True),
    dict(bidirectional=True, batch_first=True),
    dict(unbatched=True),
    dict(num_layers=2, bidirectional=True, unbatched=True, init=True),
    dict(bias=False, init=True),
]


def seq_case(kind, extra, config, dtype, seed=0):
    config = dict(config)
    init, unbatched = config.pop("init", False), config.pop("unbatched", False)
    kwargs = {**extra, **config}
    tm, cm = pair(getattr(torch.nn, kind), getattr(nn, kind), dtype, C, H, **kwargs)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    h_size = kwargs.get("proj_size") or H
    x_shape = (T, C) if unbatched else ((N, T, C) if kwargs.get("batch_first") else (T, N, C))
    shapes = [x_shape]
    if init:
        shapes.append((layers, h_size) if unbatched else (layers, N, h_size))
        if kind == "LSTM":
            shapes.append((layers, H) if unbatched else (layers, N, H))
    rng = np.random.default_rng(seed)
    t_in, c_in = leaves(rng, shapes, dtype)

    def call(m, xs):
        if not init:
            return m(xs[0])
        return m(xs[0], tuple(xs[1:]) if kind == "LSTM" else xs[1])

    compare(tm, cm, t_in, c_in, call, dtype, rng)


@pytest.mark.parametrize("config", SEQ_CONFIGS, ids=lambda c: "-".join(c) or "default")
@pytest.mark.parametrize("kind,extra", SEQ_MODELS, ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_sequence_models_float64(kind, extra, config):
    seq_case(kind, extra, config, np.float64)


@pytest.mark.parametrize("kind,extra", SEQ_MODELS, ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_sequence_models_float32(kind, extra):
    seq_case(kind, extra, dict(num_layers=2, bidirectional=True, init=True), np.float32)


@pytest.mark.parametrize("config", [dict(proj_size=4, init=True),
                                    dict(proj_size=3, num_layers=2, bidirectional=True,
                                         init=True, batch_first=True)])
def test_lstm_projection(config):
    seq_case("LSTM", {}, config, np.float64)


def test_parameter_names_and_shapes():
    m = nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    t = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    assert [(n, p.shape) for n, p in m.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    assert [[tuple(p.shape) for p in ps] for ps in m.all_weights] == \
        [[tuple(p.shape) for p in ps] for ps in t.all_weights]
    assert repr(m) == repr(t)
    assert repr(nn.GRU(2, 3, bias=False, batch_first=True)) == \
        repr(torch.nn.GRU(2, 3, bias=False, batch_first=True))


def test_init_range_and_seed():
    cr.manual_seed(3)
    a = nn.GRU(4, 16, num_layers=2)
    cr.manual_seed(3)
    b = nn.GRU(4, 16, num_layers=2)
    bound = 1 / np.sqrt(16)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert np.array_equal(p.data, q.data), name
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.8 * bound, name
        assert p.dtype == np.float32


def test_dropout_between_layers():
    """With p = 1 every input to layer 2 is zero: deterministic, so it can be compared."""
    tm, cm = pair(torch.nn.LSTM, nn.LSTM, np.float64, C, H, num_layers=2, dropout=1.0)
    x = np.random.default_rng(1).standard_normal((T, N, C))
    t_out = tm(torch.tensor(x))[0].detach().numpy()
    c_out = cm(cr.tensor(x))[0].data
    np.testing.assert_allclose(c_out, t_out, rtol=1e-10, atol=1e-12)
    cm.eval()
    tm.eval()
    np.testing.assert_allclose(cm(cr.tensor(x))[0].data, tm(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    assert not np.allclose(cm(cr.tensor(x))[0].data, c_out)


def test_dropout_p_half_is_seeded():
    m = nn.GRU(C, H, num_layers=2, dropout=0.5)
    x = cr.randn(T, N, C)
    cr.manual_seed(5)
    a = m(x)[0].data
    cr.manual_seed(5)
    assert np.array_equal(a, m(x)[0].data)
    assert not np.array_equal(a, m(x)[0].data)


CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}),
         ("GRUCell", {}), ("GRUCell", {"bias": False})]


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("init", [True, False])
@pytest.mark.parametrize("kind,extra", CELLS,
                         ids=["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_nobias"])
def test_cells(kind, extra, init, batched):
    dtype = np.float64
    tm, cm = pair(getattr(torch.nn, kind), getattr(nn, kind), dtype, C, H, **extra)
    lead = (N,) if batched else ()
    shapes = [lead + (C,)] + ([lead + (H,)] * (2 if kind == "LSTMCell" else 1) if init else [])
    rng = np.random.default_rng(2)
    t_in, c_in = leaves(rng, shapes, dtype)

    def call(m, xs):
        if not init:
            return m(xs[0])
        return m(xs[0], tuple(xs[1:]) if kind == "LSTMCell" else xs[1])

    compare(tm, cm, t_in, c_in, call, dtype, rng)
    assert repr(cm) == repr(tm)


def test_cell_matches_sequence_step():
    """An LSTMCell with an LSTM's weights gives the LSTM's first step."""
    lstm, cell = nn.LSTM(C, H), nn.LSTMCell(C, H)
    for a, b in zip(cell.parameters(), lstm.parameters()):
        a.data[...] = b.data
    x = cr.randn(T, N, C)
    out, (h, c) = lstm(x[:1])
    h1, c1 = cell(x[0])
    np.testing.assert_allclose(h1.data, out.data[0], rtol=1e-6)
    np.testing.assert_allclose(c1.data, c.data[0], rtol=1e-6)


@pytest.mark.parametrize("bad,match", [
    (lambda: nn.LSTM(C, H)(cr.randn(T, N, C + 1)), "expected input"),
    (lambda: nn.GRU(C, H)(cr.randn(T, N, C), cr.randn(2, N, H)), "expected h0"),
    (lambda: nn.LSTM(C, H)(cr.randn(T, N, C), (cr.randn(1, N, H), cr.randn(1, N, 2))),
     "expected c0"),
    (lambda: nn.RNN(C, H, nonlinearity="gelu"), "nonlinearity"),
    (lambda: nn.LSTM(C, H, proj_size=H), "proj_size"),
    (lambda: nn.GRUCell(C, H)(cr.randn(N, C), cr.randn(N + 1, H)), "hidden state"),
])
def test_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_lstm_state_must_be_a_pair():
    with pytest.raises(TypeError, match="tuple"):
        nn.LSTM(C, H)(cr.randn(T, N, C), cr.randn(1, N, H))
    with pytest.raises(TypeError, match="tuple"):
        nn.LSTMCell(C, H)(cr.randn(N, C), cr.randn(N, H))


def test_error_names_user_line():
    with pytest.raises(ValueError, match=r"test_rnn\.py:\d+"):
        nn.RNN(C, H)(cr.randn(T, N, 2))


def tiny_lstm():
    cr.manual_seed(0)
    m = nn.LSTM(2, 2, dtype=np.float64)
    rng = np.random.default_rng(4)
    x, h0, c0 = (cr.tensor(rng.standard_normal(s), requires_grad=True)
                 for s in ((3, 1, 2), (1, 1, 2), (1, 1, 2)))
    params = list(m.parameters())

    def fn(x, h0, c0, *ps):  # ps are perturbed in place; the module reads them
        out, (h, c) = m(x, (h0, c0))
        return out, c

    return fn, (x, h0, c0, *params)


def test_lstm_gradcheck():
    fn, inputs = tiny_lstm()
    assert gradcheck(fn, inputs)


def test_lstm_gradgradcheck():
    fn, inputs = tiny_lstm()
    assert gradgradcheck(fn, inputs)


def test_gru_gradgradcheck():
    cr.manual_seed(1)
    m = nn.GRU(2, 2, dtype=np.float64, bidirectional=True)
    x = cr.tensor(np.random.default_rng(5).standard_normal((2, 2)), requires_grad=True)
    params = list(m.parameters())
    assert gradgradcheck(lambda x, *ps: m(x)[0], (x, *params))


def test_unbind_blocks_cover_every_step():
    from chainrule.nn.rnn import _unbind
    for n in (1, 2, 5, 9, 10, 17):
        x = cr.arange(n * 2, dtype=np.float64).reshape(n, 2)
        steps = _unbind(x)
        assert [s.data.tolist() for s in steps] == x.data.tolist()
