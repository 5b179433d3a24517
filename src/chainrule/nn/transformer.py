"""Attention and the Transformer encoder, as in PyTorch: ``scaled_dot_product_attention``,
``MultiheadAttention``, ``TransformerEncoderLayer`` and ``TransformerEncoder``.

Everything here is composed from public ops (matmul, softmax, where, ...), so values and
gradients of any order come from the primitives' rules.

Rows of attention with nothing to attend to (every key masked out) give a zero output and
a zero gradient, as PyTorch's ``scaled_dot_product_attention`` on CPU does. (PyTorch's
``MultiheadAttention`` with ``need_weights=True`` gives NaN for such rows instead; here both
paths give zeros, with zero attention weights.)
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import numpy as np

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops import (cat, gelu, masked_fill, matmul, mean, mul, pad, permute, relu, reshape,
                   softmax, transpose, unsqueeze, zeros)
from ..ops._util import const
from . import functional as F
from . import init
from .dropout import Dropout
from .linear import Linear
from .container import ModuleList
from .module import Module, Parameter
from .normalization import LayerNorm


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else const(x)


# ------------------------------------------------------------------ the core


def _additive(mask, dtype, attend_when: bool) -> Tensor:
    """A float mask to add to the attention scores: boolean masks become 0 where a key may
    be attended (where the mask equals ``attend_when``) and -inf elsewhere; float masks are
    used as they are (and stay differentiable)."""
    m = _t(mask)
    if m.dtype == np.bool_:
        allowed = m.data if attend_when else ~m.data
        return const(np.where(allowed, 0.0, -np.inf).astype(dtype))
    if m.dtype.kind != "f":
        raise TypeError(f"attention: masks must be bool or float, got {m.dtype}, "
                        f"at {user_site()}")
    return m if m.dtype == dtype else m.to(dtype)


def _causal(n_q: int, n_k: int, dtype) -> Tensor:
    """0 on and below the diagonal, -inf above: query i attends to keys 0..i."""
    return const(np.where(np.tri(n_q, n_k, dtype=bool), 0.0, -np.inf).astype(dtype))


def _attend(q, k, v, bias, dropout_p: float, scale: Optional[float]):
    """softmax(q k^T * scale + bias) v, and the attention weights.

    q (..., L, E), k (..., S, E), v (..., S, Ev), bias broadcastable to (..., L, S).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = matmul(mul(q, scale), transpose(k, -2, -1))  # (..., L, S)
    dead = None
    if bias is not None:
        # rows where every key is masked: softmax would be 0/0; they give zeros instead
        dead = np.isneginf(bias.data).all(axis=-1, keepdims=True)  # (..., L, 1)
        if dead.any():
            bias = masked_fill(bias, const(dead), 0.0)
        else:
            dead = None
        scores = scores + bias
    weights = softmax(scores, -1)  # (..., L, S)
    if dead is not None:
        weights = masked_fill(weights, const(dead), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True)
    return matmul(weights, v), weights  # (..., L, Ev), (..., L, S)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``softmax(query @ key^T * scale + mask) @ value``, as ``torch.nn.functional``'s.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). ``attn_mask``
    broadcasts to (..., L, S): a boolean mask is True where a query may attend to a key, a
    float mask is added to the scores. ``is_causal`` masks keys after the query (top-left
    aligned when L != S); it cannot be combined with ``attn_mask``. ``scale`` defaults to
    1 / sqrt(E). ``dropout_p`` drops attention weights whenever it is > 0 (pass 0 in eval).
    With ``enable_gqa`` the query may have a multiple of the key/value heads (dim -3).
    A query row whose keys are all masked gives zeros (and zero gradients).
    """
    q, k, v = _t(query), _t(key), _t(value)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"scaled_dot_product_attention: query, key and value need at least "
                         f"2 dims (..., L, E), got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}, at {user_site()}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: query {tuple(q.shape)}, key "
                         f"{tuple(k.shape)} and value {tuple(v.shape)} do not fit: query and "
                         f"key need the same last dim, key and value the same length S "
                         f"(dim -2), at {user_site()}")
    if enable_gqa and q.ndim >= 3 and q.shape[-3] != k.shape[-3]:
        k, v = _repeat_heads(k, q.shape[-3]), _repeat_heads(v, q.shape[-3])
    n_q, n_k = q.shape[-2], k.shape[-2]
    bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"scaled_dot_product_attention: pass either attn_mask or "
                             f"is_causal=True, not both, at {user_site()}")
        bias = _causal(n_q, n_k, q.dtype)
    elif attn_mask is not None:
        bias = _additive(attn_mask, q.dtype, attend_when=True)
        try:
            np.broadcast_shapes(bias.shape, q.shape[:-2] + (n_q, n_k))
        except ValueError:
            raise ValueError(f"scaled_dot_product_attention: attn_mask {tuple(bias.shape)} "
                             f"does not broadcast to the scores {q.shape[:-2] + (n_q, n_k)}, "
                             f"at {user_site()}") from None
    return _attend(q, k, v, bias, dropout_p, scale)[0]


def _repeat_heads(x: Tensor, n_heads: int) -> Tensor:
    """(..., Hk, S, E) -> (..., n_heads, S, E), each key head serving n_heads / Hk query
    heads in turn (``repeat_interleave`` on dim -3)."""
    hk = x.shape[-3]
    if n_heads % hk:
        raise ValueError(f"scaled_dot_product_attention: enable_gqa needs the query heads "
                         f"({n_heads}) to be a multiple of the key/value heads ({hk}), "
                         f"at {user_site()}")
    lead, tail = x.shape[:-3], x.shape[-2:]
    x = unsqueeze(x, -3).expand(lead + (hk, n_heads // hk) + tail)
    return reshape(x, lead + (n_heads,) + tail)


def _linear(x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    """(..., in) @ w.T + b -> (..., out), as one 2-D matmul."""
    lead = x.shape[:-1]
    y = matmul(reshape(x, (-1, x.shape[-1])), transpose(w, 0, 1))
    if b is not None:
        y = y + b
    return reshape(y, lead + (w.shape[0],))


def _check_mask(mask, name: str, shapes: tuple) -> None:
    if tuple(mask.shape) not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise ValueError(f"MultiheadAttention: {name} has shape {tuple(mask.shape)}, "
                         f"expected {want}, at {user_site()}")


# ------------------------------------------------------------------ modules


class MultiheadAttention(Module):
    """Multi-head attention, as ``torch.nn.MultiheadAttention``.

    Parameters have PyTorch's names and shapes: ``in_proj_weight`` (3E, E) (or
    ``q_proj_weight``, ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim) when kdim or
    vdim differ from E), ``in_proj_bias`` (3E), ``out_proj`` (a Linear), and ``bias_k``,
    ``bias_v`` (1, 1, E) with ``add_bias_kv``. Inputs are (L, N, E) ((N, L, E) with
    ``batch_first``) or unbatched (L, E).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: Optional[int] = None, vdim: Optional[int] = None,
                 batch_first: bool = False, dtype=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than "
                             f"0, got embed_dim={embed_dim} and num_heads={num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by "
                             f"num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn

        def param(*shape):
            return Parameter(zeros(*shape, dtype=dtype))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = param(3 * embed_dim, embed_dim)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = param(embed_dim, embed_dim)
            self.k_proj_weight = param(embed_dim, self.kdim)
            self.v_proj_weight = param(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = param(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = param(1, 1, embed_dim)
            self.bias_v = param(1, 1, embed_dim)
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _project(self, query, key, value):
        """The input projections, each (A, B, E) in the inputs' own layout."""
        E, w, b = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        bq = bk = bv = None
        if b is not None:
            bq, bk, bv = b[:E], b[E:2 * E], b[2 * E:]
        if not self._qkv_same_embed_dim:
            return (_linear(query, self.q_proj_weight, bq), _linear(key, self.k_proj_weight, bk),
                    _linear(value, self.v_proj_weight, bv))
        # three products also for self-attention: one (A, B, 3E) product split in three
        # gives strided q, k, v (slower attention products) and three full-size gradient
        # scatters in backward (the Transformer benchmark's step: 34.8 -> 31.2 ms)
        return (_linear(query, w[:E], bq), _linear(key, w[E:2 * E], bk),
                _linear(value, w[2 * E:], bv))

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple:
        """Attend from ``query`` to ``key``/``value``; returns (attn_output, attn_weights).

        ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N * num_heads, L, S) are
        True (bool) where a key must NOT be attended, or float masks added to the scores.
        ``is_causal=True`` with no ``attn_mask`` masks the future (PyTorch raises there; it
        only reads ``is_causal`` as a hint that ``attn_mask`` is causal). The weights are
        (N, L, S) averaged over heads, (N, num_heads, L, S) with
        ``average_attn_weights=False``, or None when ``need_weights`` is False.
        """
        query, key, value = _t(query), _t(key), _t(value)
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be 3-D "
                             f"(batched) or 2-D (unbatched), got {tuple(query.shape)}, "
                             f"{tuple(key.shape)}, {tuple(value.shape)}, at {user_site()}")
        seq_first = batched and not self.batch_first  # the inputs' layout: (L, N, E)?
        if not batched:  # a batch of one, batch first
            query, key, value = (unsqueeze(x, 0) for x in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = unsqueeze(_t(key_padding_mask), 0)
        t_ax, n_ax = (0, 1) if seq_first else (1, 0)
        n, n_q, n_k = query.shape[n_ax], query.shape[t_ax], key.shape[t_ax]
        if query.shape[-1] != self.embed_dim or key.shape[-1] != self.kdim \
                or value.shape[-1] != self.vdim:
            raise ValueError(f"MultiheadAttention: expected query/key/value features "
                             f"{self.embed_dim}/{self.kdim}/{self.vdim}, got "
                             f"{query.shape[-1]}/{key.shape[-1]}/{value.shape[-1]}, "
                             f"at {user_site()}")
        if key.shape[:2] != value.shape[:2] or key.shape[n_ax] != n:
            raise ValueError(f"MultiheadAttention: key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)} must match query {tuple(query.shape)} in "
                             f"batch size and each other in length, at {user_site()}")
        H, hd = self.num_heads, self.head_dim
        perm = (1, 2, 0, 3) if seq_first else (0, 2, 1, 3)  # (A, B, H, hd) -> (N, H, T, hd)
        q, k, v = (permute(reshape(y, y.shape[:2] + (H, hd)), perm)
                   for y in self._project(query, key, value))  # (N, H, T, hd)

        bias = self._mask(attn_mask, key_padding_mask, is_causal, n, n_q, n_k, q.dtype)
        extra = []  # keys appended to every sequence: bias_k/bias_v, then zeros
        if self.bias_k is not None:
            extra.append((reshape(self.bias_k, (1, H, 1, hd)), reshape(self.bias_v, (1, H, 1, hd))))
        if self.add_zero_attn:
            z = zeros(1, H, 1, hd, dtype=q.dtype)
            extra.append((z, z))
        for bk, bv in extra:
            k = cat([k, bk.expand(n, H, 1, hd)], 2)
            v = cat([v, bv.expand(n, H, 1, hd)], 2)
            if bias is not None:
                bias = pad(bias, (0, 1))

        p = self.dropout if self.training else 0.0
        out, weights = _attend(q, k, v, bias, p, None)  # (N, H, L, hd), (N, H, L, S)
        back = (2, 0, 1, 3) if seq_first else (0, 2, 1, 3)  # -> (L, N, H, hd) or (N, L, H, hd)
        out = permute(out, back)
        out = _linear(reshape(out, out.shape[:2] + (self.embed_dim,)), self.out_proj.weight,
                      self.out_proj.bias)
        if not batched:
            out = out[0]
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = mean(weights, 1)  # (N, L, S)
        return out, (weights if batched else weights[0])

    def _mask(self, attn_mask, key_padding_mask, is_causal, n, n_q, n_k, dtype):
        """attn_mask and key_padding_mask as one float mask broadcastable to (N, H, L, S)."""
        bias = None
        if attn_mask is not None:
            bias = _additive(attn_mask, dtype, attend_when=False)
            _check_mask(bias, "attn_mask", ((n_q, n_k), (n * self.num_heads, n_q, n_k)))
            if bias.ndim == 3:
                bias = reshape(bias, (n, self.num_heads, n_q, n_k))
        elif is_causal:
            bias = _causal(n_q, n_k, dtype)
        if key_padding_mask is not None:
            kpm = _additive(key_padding_mask, dtype, attend_when=False)
            _check_mask(kpm, "key_padding_mask", ((n, n_k),))
            kpm = reshape(kpm, (n, 1, 1, n_k))
            bias = kpm if bias is None else bias + kpm
        return bias


_ACTIVATIONS = {"relu": relu, "gelu": gelu}


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual connection and
    LayerNorm (after the block, or before it with ``norm_first``), as
    ``torch.nn.TransformerEncoderLayer``. Submodules: ``self_attn``, ``linear1``,
    ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``dropout1``, ``dropout2``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str | Callable = "relu",
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype=None) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"TransformerEncoderLayer: activation should be relu/gelu, "
                                 f"not {activation}")
            activation = _ACTIVATIONS[activation]
        self.activation = activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None,
                is_causal: bool = False) -> Tensor:
        """src (L, N, E) ((N, L, E) with batch_first, or (L, E)) -> the same shape."""
        x = _t(src)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` applied in turn, then ``norm`` if
    given, as ``torch.nn.TransformerEncoder`` (``enable_nested_tensor`` and ``mask_check``
    are accepted for compatibility; there are no nested tensors here)."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Optional[Module] = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None,
                is_causal: Optional[bool] = None) -> Tensor:
        """Run every layer on ``src`` with the same masks."""
        out = _t(src)
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                        is_causal=bool(is_causal))
        if self.norm is not None:
            out = self.norm(out)
        return out
