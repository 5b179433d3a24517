"""Tensor creation, dtypes and NumPy 2 promotion, conversions, repr, random generators."""
import numpy as np
import pytest

import chainrule as cr


def test_creation_defaults():
    assert cr.tensor([1.0, 2.0]).dtype == np.float32
    assert cr.tensor([1, 2]).dtype == np.int64
    assert cr.tensor([True]).dtype == np.bool_
    assert cr.tensor(np.zeros(2)).dtype == np.float64  # NumPy arrays keep their dtype
    assert cr.zeros(2, 3).shape == (2, 3) and cr.zeros((2, 3)).dtype == np.float32
    assert cr.ones(2, dtype=cr.float64).dtype == np.float64
    assert cr.full((2,), 7).dtype == np.int64 and cr.full((2,), 7.0).dtype == np.float32
    assert cr.arange(5).dtype == np.int64 and cr.arange(0, 1, 0.5).dtype == np.float32
    np.testing.assert_allclose(cr.linspace(0, 1, 5).data, np.linspace(0, 1, 5))
    np.testing.assert_array_equal(cr.eye(3).data, np.eye(3))
    x = cr.randn(2, 3)
    assert cr.zeros_like(x).shape == (2, 3) and cr.ones_like(x).dtype == np.float32
    assert cr.full_like(x, 2.0).data.sum() == 12


def test_from_numpy_and_as_tensor_share_memory_tensor_copies():
    a = np.zeros(3)
    t = cr.from_numpy(a)
    a[0] = 1
    assert t.data[0] == 1 and cr.as_tensor(a).data is a
    c = cr.tensor(a)
    a[1] = 1
    assert c.data[1] == 0


def test_promotion_follows_numpy2():
    f32 = cr.ones(2)
    assert (f32 * 2.5).dtype == np.float32  # Python scalars are weak
    assert (f32 + 1).dtype == np.float32
    assert (f32 + cr.ones(2, dtype=cr.float64)).dtype == np.float64
    assert (cr.arange(3) * 2).dtype == np.int64
    assert (cr.arange(3) * 0.5).dtype == np.float64
    assert (cr.arange(3) / 2).dtype == np.float64
    assert (2.0 - f32).dtype == np.float32 and (2.0 / f32).dtype == np.float32


def test_mixed_dtype_gradients_keep_each_inputs_dtype():
    a = cr.ones(3, requires_grad=True)
    b = cr.ones(3, dtype=cr.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_to_float_double_and_grad_through_cast():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [2, 4])
    assert x.to(cr.int64).dtype == np.int64 and x.detach().long().dtype == np.int64


def test_conversions():
    x = cr.tensor([[1.5, 2.0]])
    assert x.tolist() == [[1.5, 2.0]]
    assert cr.tensor(3.5).item() == 3.5 and float(cr.tensor(2.0)) == 2.0
    np.testing.assert_array_equal(np.asarray(x), x.data)
    with pytest.raises(ValueError, match="one element"):
        x.item()
    with pytest.raises(RuntimeError, match="detach"):
        x.requires_grad_().numpy()
    assert x.detach().numpy() is x.data


def test_metadata():
    x = cr.zeros(2, 3, 4)
    assert x.ndim == 3 and x.dim() == 3 and x.size() == (2, 3, 4) and x.size(1) == 3
    assert x.numel() == 24 and len(x) == 2
    assert x.T.shape == (4, 3, 2) and x.mT.shape == (2, 4, 3)
    assert x.is_leaf and x.grad_fn is None and not x.requires_grad


def test_repr():
    assert repr(cr.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=float64" in repr(cr.tensor([1.0], dtype=cr.float64))
    x = cr.tensor([1.0], requires_grad=True)
    assert repr(x) == "tensor([1.], requires_grad=True)"
    assert "grad_fn=<MulBackward>" in repr(x * 2)


def test_generators_are_seeded_and_independent():
    a = cr.randn(3, generator=cr.Generator(5))
    b = cr.randn(3, generator=cr.Generator(5))
    np.testing.assert_array_equal(a.data, b.data)
    cr.manual_seed(1)
    c = cr.rand(4)
    cr.manual_seed(1)
    np.testing.assert_array_equal(c.data, cr.rand(4).data)
    assert c.dtype == np.float32 and (0 <= c.data).all() and (c.data < 1).all()
    g = cr.Generator(3)
    state = g.get_state()
    first = cr.randint(0, 10, (5,), generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(first.data, cr.randint(0, 10, (5,), generator=g).data)
    assert sorted(cr.randperm(5).tolist()) == [0, 1, 2, 3, 4]


def test_inplace_ops_and_no_grad_update():
    x = cr.ones(3)
    x.add_(1).mul_(3)
    np.testing.assert_array_equal(x.data, [6, 6, 6])
    x.zero_()
    assert x.data.sum() == 0 and x._version_count == 3
    i = cr.arange(3)
    with pytest.raises(TypeError, match="add_"):
        i.add_(0.5)
    x[0] = 4.0
    x[1:] = cr.tensor([1.0, 2.0])
    np.testing.assert_array_equal(x.data, [4, 1, 2])


def test_set_default_dtype():
    cr.set_default_dtype(cr.float64)
    try:
        assert cr.tensor([1.0]).dtype == np.float64 and cr.zeros(1).dtype == np.float64
    finally:
        cr.set_default_dtype(cr.float32)


def test_shape_ops():
    x = cr.arange(24).reshape(2, 3, 4)
    assert x.view(6, 4).shape == (6, 4) and x.flatten(1).shape == (2, 12)
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).squeeze().shape == (2, 3, 4)
    assert x.permute(2, 0, 1).shape == (4, 2, 3) and x.transpose(0, 2).shape == (4, 3, 2)
    assert cr.ones(3, 1).expand(-1, 4).shape == (3, 4)
    assert [p.shape for p in x.split(2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [p.shape for p in x.chunk(3, 1)] == [(2, 1, 4)] * 3
    assert cr.stack([x, x], 1).shape == (2, 2, 3, 4)
    assert cr.cat([x, x], -1).shape == (2, 3, 8)
    assert cr.pad(cr.ones(2, 2), (1, 1)).shape == (2, 4)
    np.testing.assert_array_equal(cr.one_hot(cr.tensor([0, 2]), 3).data, [[1, 0, 0], [0, 0, 1]])
    v, i = cr.max(cr.tensor([[1.0, 5.0], [7.0, 2.0]]), 1)
    assert v.tolist() == [5.0, 7.0] and i.tolist() == [1, 0]
