"""Recurrent layers, as in PyTorch: ``RNNCell``, ``LSTMCell``, ``GRUCell`` (one step) and
``RNN``, ``LSTM``, ``GRU`` (whole sequences, stacked layers, both directions).

Parameter names, shapes, gate order and initialization are PyTorch's, so a PyTorch
``state_dict`` loads as it is:

* RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh)                act = tanh or relu
* LSTM: i, f, g, o = chunks of W_ih x + b_ih + W_hh h + b_hh   (in that order)
        c' = sigmoid(f) c + sigmoid(i) tanh(g),  h' = sigmoid(o) tanh(c')   (then W_hr h'
        with ``proj_size``)
* GRU:  r, z, n chunks;  r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise,
        n = tanh(W_in x + b_in + r (W_hn h + b_hn)),  h' = (1 - z) n + z h

The input projection of every time step is one matmul before the time loop; the loop
does only the recurrent matmul and the gates. Everything is composed from public ops, so
gradients of any order come from the primitives' rules. Packed sequences are not
supported (pad the batch and, if needed, mask the outputs).
"""
from __future__ import annotations

import math
from typing import Optional

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops import cat, matmul, relu, reshape, sigmoid, stack, tanh, transpose, unsqueeze, zeros
from ..ops._util import const
from . import functional as F
from . import init
from .module import Module, Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else const(x)


def _linear(x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    """(..., in) @ w.T + b -> (..., out), as one 2-D matmul."""
    lead = x.shape[:-1]
    y = matmul(reshape(x, (-1, x.shape[-1])), transpose(w, 0, 1))
    if b is not None:
        y = y + b
    return reshape(y, lead + (w.shape[0],))


# ------------------------------------------------------------------ one step
# xw is the input projection of this step, with the biases that can be added before the
# loop (b_ih + b_hh; only b_ih for the GRU, whose b_hn sits inside r * (...)).


def _rnn_step(xw, h, w_hh_t, act):
    return act(xw + matmul(h, w_hh_t))  # (B, H)


def _lstm_step(xw, h, c, w_hh_t, w_hr_t):
    H = c.shape[-1]
    gates = xw + matmul(h, w_hh_t)  # (B, 4H): i, f, g, o
    s = sigmoid(gates)  # one sigmoid for i, f, o (and g's, unused)
    i, f, o = s[..., :H], s[..., H:2 * H], s[..., 3 * H:]
    g = tanh(gates[..., 2 * H:3 * H])
    c = f * c + i * g
    h = o * tanh(c)
    if w_hr_t is not None:
        h = matmul(h, w_hr_t)  # (B, proj_size)
    return h, c


def _gru_step(xw, h, w_hh_t, b_hh):
    H = h.shape[-1]
    hw = matmul(h, w_hh_t)  # (B, 3H): r, z, n
    if b_hh is not None:
        hw = hw + b_hh
    rz = sigmoid(xw[..., :2 * H] + hw[..., :2 * H])
    r, z = rz[..., :H], rz[..., H:]
    n = tanh(xw[..., 2 * H:] + r * hw[..., 2 * H:])
    return n + z * (h - n)  # = (1 - z) n + z h


def _unbind(x: Tensor) -> list:
    """[x[0], x[1], ...]: the time steps of a (T, ...) tensor.

    The gradient of each slice is scattered into a zero tensor of its parent's size, so T
    slices taken straight from x would cost T full-size tensors in backward (quadratic in
    T). Slicing blocks of about sqrt(T) steps first costs about 2 sqrt(T) of them.
    """
    n = x.shape[0]
    size = max(1, math.isqrt(n - 1) + 1) if n > 1 else 1
    steps = []
    for start in range(0, n, size):
        block = x[start:start + size]
        steps.extend(block[i] for i in range(block.shape[0]))
    return steps


def _run_layer(mode, x, h, c, weights, reverse):
    """One layer, one direction over x (T, B, I): (output (T, B, H), h_T, c_T)."""
    w_ih, w_hh, b_ih, b_hh, w_hr = weights
    if mode == "GRU" or b_ih is None:
        bias = b_ih
    else:
        bias = b_ih + b_hh
    steps = _unbind(_linear(x, w_ih, bias))  # T x (B, G)
    w_hh_t = transpose(w_hh, 0, 1)
    w_hr_t = transpose(w_hr, 0, 1) if w_hr is not None else None
    act = relu if mode == "RNN_RELU" else tanh
    outs = [None] * len(steps)
    for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
        if mode == "LSTM":
            h, c = _lstm_step(steps[t], h, c, w_hh_t, w_hr_t)
        elif mode == "GRU":
            h = _gru_step(steps[t], h, w_hh_t, b_hh)
        else:
            h = _rnn_step(steps[t], h, w_hh_t, act)
        outs[t] = h
    return stack(outs, 0), h, c


# ------------------------------------------------------------------ cells


class RNNCellBase(Module):
    """Shared parts of the cells: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
    ``bias_ih`` and ``bias_hh`` (G*H), initialized from U(-1/sqrt(H), 1/sqrt(H))."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 dtype=None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        g = num_chunks * hidden_size
        self.weight_ih = Parameter(zeros(g, input_size, dtype=dtype))
        self.weight_hh = Parameter(zeros(g, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(zeros(g, dtype=dtype))
            self.bias_hh = Parameter(zeros(g, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _input(self, x, name: str):
        """x as (B, I) and whether it came batched."""
        x = _t(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input (batch, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(x.shape)} {x.dtype}, "
                             f"at {user_site()}")
        return (x, True) if x.ndim == 2 else (unsqueeze(x, 0), False)

    def _state(self, h, x, batched: bool, name: str):
        if h is None:
            return zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        h = _t(h)
        want = (x.shape[0], self.hidden_size)
        if tuple(h.shape) != (want if batched else want[1:]):
            raise ValueError(f"{name}: expected hidden state {want if batched else want[1:]}, "
                             f"got {tuple(h.shape)}, at {user_site()}")
        return h if batched else unsqueeze(h, 0)

    def _xw(self, x, both_biases: bool):
        xw = _linear(x, self.weight_ih, self.bias_ih)
        return xw + self.bias_hh if both_biases and self.bias_hh is not None else xw


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = tanh (or relu)(W_ih x + b_ih + W_hh h + b_hh)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r} (tanh or relu)")
        super().__init__(input_size, hidden_size, bias, 1, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None) -> Tensor:
        """input (B, I) or (I,), hx (B, H) or (H,) (zeros if None) -> h' of hx's shape."""
        x, batched = self._input(input, "RNNCell")
        h = self._state(hx, x, batched, "RNNCell")
        act = tanh if self.nonlinearity == "tanh" else relu
        h = _rnn_step(self._xw(x, True), h, transpose(self.weight_hh, 0, 1), act)
        return h if batched else h[0]


class LSTMCell(RNNCellBase):
    """One LSTM step; gates i, f, g, o in PyTorch's order."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, dtype)

    def forward(self, input, hx=None) -> tuple:
        """input (B, I) or (I,), hx = (h, c) each (B, H) or (H,) (zeros if None) ->
        (h', c')."""
        x, batched = self._input(input, "LSTMCell")
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}, "
                            f"at {user_site()}")
        h, c = (None, None) if hx is None else hx
        h = self._state(h, x, batched, "LSTMCell")
        c = self._state(c, x, batched, "LSTMCell")
        h, c = _lstm_step(self._xw(x, True), h, c, transpose(self.weight_hh, 0, 1), None)
        return (h, c) if batched else (h[0], c[0])


class GRUCell(RNNCellBase):
    """One GRU step; gates r, z, n in PyTorch's order, with n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn))."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, dtype)

    def forward(self, input, hx=None) -> Tensor:
        """input (B, I) or (I,), hx (B, H) or (H,) (zeros if None) -> h'."""
        x, batched = self._input(input, "GRUCell")
        h = self._state(hx, x, batched, "GRUCell")
        h = _gru_step(self._xw(x, False), h, transpose(self.weight_hh, 0, 1), self.bias_hh)
        return h if batched else h[0]


# ------------------------------------------------------------------ sequences


class RNNBase(Module):
    """Shared parts of RNN, LSTM and GRU: parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (and ``weight_hr_l{k}`` with an LSTM's
    ``proj_size``), with a ``_reverse`` suffix for the second direction."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, dtype=None) -> None:
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1], got "
                             f"{dropout!r}")
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"{name}: input_size, hidden_size and num_layers must be greater "
                             f"than zero, got {input_size}, {hidden_size}, {num_layers}")
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"{name}: proj_size must be 0 (no projection) or smaller than "
                             f"hidden_size {hidden_size}, got {proj_size}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size is supported only by LSTM")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gates = _GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih" + sfx, (gates, layer_in)),
                          ("weight_hh" + sfx, (gates, real_hidden))]
                if bias:
                    shapes += [("bias_ih" + sfx, (gates,)), ("bias_hh" + sfx, (gates,))]
                if proj_size:
                    shapes.append(("weight_hr" + sfx, (proj_size, hidden_size)))
                for pname, shape in shapes:
                    setattr(self, pname, Parameter(zeros(*shape, dtype=dtype)))
                names = [n for n, _ in shapes]
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    @property
    def all_weights(self) -> list:
        """The parameters of each layer and direction, as lists in PyTorch's order."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """Does nothing (PyTorch compacts weights for cuDNN here)."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def _weights(self, layer: int, direction: int) -> tuple:
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of one layer and direction (None where absent)."""
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        p = self._parameters
        return (p["weight_ih" + sfx], p["weight_hh" + sfx], p.get("bias_ih" + sfx),
                p.get("bias_hh" + sfx), p.get("weight_hr" + sfx))

    def _initial(self, state, n: int, size: int, batched: bool, what: str, dtype) -> Tensor:
        """An initial state as (layers * directions, N, size): zeros when None."""
        count = self.num_layers * (2 if self.bidirectional else 1)
        if state is None:
            return zeros(count, n, size, dtype=dtype)
        state = _t(state)
        want = (count, n, size) if batched else (count, size)
        if tuple(state.shape) != want:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {want}, got "
                             f"{tuple(state.shape)}, at {user_site()}")
        return state if batched else unsqueeze(state, 1)

    def _run(self, input, h0, c0):
        """Shared forward: (output, h_n, c_n) for RNN, LSTM and GRU."""
        x = _t(input)
        name = type(self).__name__
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(N, L, {})" if self.batch_first else "(L, N, {})"
            raise ValueError(f"{name}: expected input {layout.format(self.input_size)} or "
                             f"unbatched (L, {self.input_size}), got {tuple(x.shape)} "
                             f"{x.dtype}, at {user_site()}")
        batched = x.ndim == 3
        if not batched:
            x = unsqueeze(x, 1)  # (L, 1, I)
        elif self.batch_first:
            x = transpose(x, 0, 1)  # (L, N, I)
        n = x.shape[1]
        lstm = self.mode == "LSTM"
        h0 = self._initial(h0, n, self.proj_size or self.hidden_size, batched, "h0", x.dtype)
        if lstm:
            c0 = self._initial(c0, n, self.hidden_size, batched, "c0", x.dtype)
        directions = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(directions):
                k = layer * directions + d
                out, h, c = _run_layer(self.mode, x, h0[k], c0[k] if lstm else None,
                                       self._weights(layer, d), reverse=d == 1)
                outs.append(out)  # (L, N, H)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if directions == 1 else cat(outs, -1)  # (L, N, D * H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        h_n = stack(h_n, 0)  # (layers * D, N, H)
        c_n = stack(c_n, 0) if lstm else None
        if not batched:
            return x[:, 0], h_n[:, 0], (c_n[:, 0] if lstm else None)
        return (transpose(x, 0, 1) if self.batch_first else x), h_n, c_n


class RNN(RNNBase):
    """A multi-layer Elman RNN with tanh or relu, as ``torch.nn.RNN``:
    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype=None) -> None:
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r} (tanh or relu)")
        super().__init__(modes[nonlinearity], input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None) -> tuple:
        """input (L, N, I) ((N, L, I) with batch_first, or (L, I)), hx (layers * D, N, H)
        -> (output (L, N, D * H), h_n (layers * D, N, H))."""
        out, h_n, _ = self._run(input, hx, None)
        return out, h_n


class LSTM(RNNBase):
    """A multi-layer LSTM, as ``torch.nn.LSTM``: ``LSTM(input_size, hidden_size,
    num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
    proj_size=0)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype=dtype)

    def forward(self, input, hx=None) -> tuple:
        """input (L, N, I) ((N, L, I) with batch_first, or (L, I)), hx = (h0, c0) ->
        (output (L, N, D * H_out), (h_n (layers * D, N, H_out), c_n (layers * D, N, H)));
        H_out is proj_size when set, else hidden_size."""
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"LSTM: hx must be a tuple (h0, c0), got {type(hx).__name__}, "
                            f"at {user_site()}")
        h0, c0 = (None, None) if hx is None else hx
        out, h_n, c_n = self._run(input, h0, c0)
        return out, (h_n, c_n)


class GRU(RNNBase):
    """A multi-layer GRU, as ``torch.nn.GRU``: ``GRU(input_size, hidden_size,
    num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype=dtype)

    def forward(self, input, hx=None) -> tuple:
        """input (L, N, I) ((N, L, I) with batch_first, or (L, I)), hx (layers * D, N, H)
        -> (output (L, N, D * H), h_n (layers * D, N, H))."""
        out, h_n, _ = self._run(input, hx, None)
        return out, h_n
