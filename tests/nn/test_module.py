"""Module, Parameter and the containers: registration, iteration, state_dict round trips and
errors, hooks, modes, dtype conversion, repr."""
from __future__ import annotations

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(cr.ones(1))
        self.register_buffer("step", cr.zeros(1))
        self.register_buffer("cache", cr.zeros(2), persistent=False)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(cr.relu(self.bn(self.fc1(x)))) * self.scale


def test_parameter_is_a_tensor_that_shares_memory():
    t = cr.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert isinstance(p, nn.Parameter) and isinstance(p, cr.Tensor)
    assert p.requires_grad and p.is_leaf
    assert p.data is t.data
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    y = (p * p).sum()
    assert type(p * p) is cr.Tensor
    y.backward()
    np.testing.assert_array_equal(p.grad.data, [2.0, 4.0])
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(cr.tensor([1, 2]))


def test_registration_by_assignment():
    m = Net()
    assert list(m._parameters) == ["scale"]
    assert list(m._modules) == ["fc1", "bn", "fc2"]
    assert list(m._buffers) == ["step", "cache"]
    assert [n for n, _ in m.named_parameters()] == [
        "scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in m.named_buffers()] == [
        "step", "cache", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in m.named_children()] == ["fc1", "bn", "fc2"]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "bn", "fc2"]
    assert len(list(m.modules())) == 4
    assert m.get_parameter("fc1.weight") is m.fc1.weight
    assert m.get_buffer("bn.running_mean") is m.bn.running_mean
    assert m.get_submodule("bn") is m.bn
    # a plain tensor attribute is not registered; None keeps a parameter slot
    m.plain = cr.zeros(3)
    assert "plain" not in m._parameters and "plain" not in m._buffers
    m.fc2.bias = None
    assert m.fc2.bias is None and "fc2.bias" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        m.fc1.weight = cr.zeros(4, 3)
    # re-assigning a name moves it between registries
    m.fc1 = nn.Parameter(cr.zeros(2))
    assert "fc1" in m._parameters and "fc1" not in m._modules
    del m.fc1
    assert "fc1" not in m._parameters
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        m.nothing


def test_register_errors_and_init_order():
    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(cr.zeros(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Early()
    m = nn.Module()
    with pytest.raises(KeyError, match="contain no '.'"):
        m.register_buffer("a.b", cr.zeros(1))
    with pytest.raises(TypeError, match="Tensor or None required"):
        m.register_buffer("b", np.zeros(1))
    m.x = 1
    with pytest.raises(KeyError, match="attribute 'x' already exists"):
        m.register_parameter("x", nn.Parameter(cr.zeros(1)))
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        m(1)


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(m.named_parameters(remove_duplicate=False))) == 4
    assert [n for n, _ in m.named_modules()] == ["", "0", "1"]
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    tied = nn.Module()
    tied.emb = nn.Embedding(5, 3)
    tied.head = nn.Linear(3, 5, bias=False)
    tied.head.weight = tied.emb.weight
    assert len(list(tied.parameters())) == 1


def test_state_dict_round_trip_shares_and_copies():
    cr.manual_seed(0)
    a = Net()
    sd = a.state_dict()
    assert list(sd) == ["scale", "step", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias",
                        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
                        "fc2.weight", "fc2.bias"]
    assert "cache" not in sd
    assert sd["fc1.weight"].data is a.fc1.weight.data  # detached views of the same memory
    assert not sd["fc1.weight"].requires_grad
    assert a.state_dict(keep_vars=True)["fc1.weight"] is a.fc1.weight
    assert list(a.state_dict(prefix="model."))[0] == "model.scale"
    cr.manual_seed(1)
    b = Net()
    w_before = b.fc1.weight
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"
    assert b.fc1.weight is w_before  # copied in place, the Parameter object stays
    assert b.fc1.weight.data is not a.fc1.weight.data
    for k, v in sd.items():
        np.testing.assert_array_equal(b.state_dict()[k].data, v.data)
    x = cr.randn(5, 3)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x).data, b(x).data)
    # numpy arrays and other float dtypes load too (converted to the model's dtype)
    b.load_state_dict({k: v.data.astype(np.float64) if v.dtype.kind == "f" else v.data
                       for k, v in sd.items()})
    assert b.fc1.weight.dtype == np.float32


def test_failed_strict_load_lists_every_problem_and_changes_nothing():
    m = Net()
    before = {k: v.data.copy() for k, v in m.state_dict().items()}
    bad = {k: v.data + 1 for k, v in m.state_dict().items()}
    del bad["bn.running_var"]
    del bad["fc2.bias"]
    bad["extra.weight"] = np.zeros(3)
    bad["fc1.weight"] = np.zeros((3, 4))  # transposed
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "bn.running_var", "fc2.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight".' in msg
    assert ("size mismatch for fc1.weight: copying a param with shape (3, 4) from "
            "checkpoint, the shape in current model is (4, 3)") in msg
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.data, before[k], err_msg=k)
    # non-strict: missing/unexpected are reported, not raised; shapes still must match
    with pytest.raises(RuntimeError, match="size mismatch for fc1.weight"):
        m.load_state_dict(bad, strict=False)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.data, before[k], err_msg=k)
    bad["fc1.weight"] = bad["fc1.weight"].T
    res = m.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["bn.running_var", "fc2.bias"]
    assert res.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(m.scale.data, before["scale"] + 1)
    np.testing.assert_array_equal(m.fc2.bias.data, before["fc2.bias"])


def test_load_rejects_incompatible_dtype_and_bumps_version():
    m = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="dtype mismatch for weight"):
        m.load_state_dict({"weight": np.zeros((2, 2), np.complex64), "bias": np.zeros(2)})
    v = m.weight._version_count
    m.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    assert m.weight._version_count == v + 1


def test_forward_hooks_and_handles():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1)
    x = cr.ones(3, 2)
    np.testing.assert_allclose(m(x).data, np.broadcast_to(m.bias.data + 1, (3, 2)), rtol=1e-6)
    assert calls == [(3, 2)]
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(m(x).data, (x @ m.weight.T + m.bias).data, rtol=1e-6)
    assert calls == [(3, 2)]
    order = []
    m.register_forward_hook(lambda *a: order.append("a"))
    m.register_forward_hook(lambda *a: order.append("b"), prepend=True)
    with m.register_forward_pre_hook(lambda mod, args: order.append("pre")):
        m(x)
    m(x)
    assert order == ["pre", "b", "a", "b", "a"]
    # a non-tuple result of a pre-hook is wrapped
    m2 = nn.Identity()
    m2.register_forward_pre_hook(lambda mod, args: args[0] * 2)
    assert m2(cr.tensor(3.0)).item() == 6.0


def test_train_eval_apply_requires_grad_zero_grad():
    m = Net()
    assert m.training and m.bn.training
    assert m.eval() is m and not m.training and not m.bn.training
    m.train()
    assert m.bn.training
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "BatchNorm1d", "Linear", "Net"]
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()
    m(cr.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    grads = [p.grad for p in m.parameters()]
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in m.parameters())
    assert all(g.data is p.grad.data for g, p in zip(grads, m.parameters()))
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_double_keeps_parameter_objects_and_integer_buffers():
    m = Net()
    params = list(m.parameters())
    m(cr.randn(4, 3)).sum().backward()
    assert m.double() is m
    assert all(a is b for a, b in zip(m.parameters(), params))
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in m.parameters())
    assert m.bn.running_mean.dtype == np.float64 and m.cache.dtype == np.float64
    assert m.bn.num_batches_tracked.dtype == np.int64
    y = m(cr.randn(4, 3, dtype=cr.float64))
    assert y.dtype == np.float64
    m.to(dtype=cr.float32)
    assert m.fc1.weight.dtype == np.float32
    m.to(cr.zeros(1, dtype=cr.float64), "cpu")
    assert m.fc1.weight.dtype == np.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(cr.int64)


def test_repr_nested_with_extra_repr():
    m = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Dropout(0.1)))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Dropout(p=0.1, inplace=False)\n"
        "  )\n"
        ")")
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.Tanh()])
    assert repr(ml) == ("ModuleList(\n  (0-1): 2 x Linear(in_features=2, out_features=2, "
                        "bias=True)\n  (2): Tanh()\n)")


def test_sequential_container_ops():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b, c)
    assert len(s) == 3 and s[0] is a and s[-1] is c and list(s) == [a, b, c]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub._modules) == ["1", "2"]  # names kept, as PyTorch
    x = cr.randn(4, 2)
    np.testing.assert_allclose(s(x).data, c(b(a(x))).data)
    s.append(nn.Sigmoid())
    assert len(s) == 4 and isinstance(s[3], nn.Sigmoid)
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and s[1] is c
    s[0] = nn.Identity()
    assert isinstance(s[0], nn.Identity)
    s.insert(0, b)
    assert s[0] is b and len(s) == 4
    with pytest.raises(IndexError, match="out of range"):
        s[10]
    named = nn.Sequential(OrderedDict([("fc", a), ("act", b)]))
    assert named.fc is a and list(named._modules) == ["fc", "act"]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.Linear(2, 2))
    layers += [nn.ReLU()]
    assert len(layers) == 5 and isinstance(layers[-1], nn.ReLU)
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    del layers[0]
    assert list(layers._modules) == ["0", "1", "2", "3"]
    layers.insert(1, nn.Tanh())
    assert isinstance(layers[1], nn.Tanh) and len(layers) == 5
    d = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    assert "a" in d and list(d) == ["a", "b"] and len(d) == 2
    d["c"] = nn.Linear(2, 1)
    assert list(d.keys()) == ["a", "b", "c"]
    assert [n for n, _ in d.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    assert isinstance(d.pop("b"), nn.ReLU) and "b" not in d
    d.update([("z", nn.Identity())])
    assert list(d.keys()) == ["a", "c", "z"]


def test_deepcopy_and_pickle_give_independent_equal_modules():
    m = Net()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert isinstance(clone.fc1.weight, nn.Parameter)
        assert clone.fc1.weight.requires_grad
        np.testing.assert_array_equal(clone.fc1.weight.data, m.fc1.weight.data)
        assert clone.fc1.weight.data is not m.fc1.weight.data
        assert list(clone.state_dict()) == list(m.state_dict())
        x = cr.randn(4, 3)
        np.testing.assert_array_equal(clone.eval()(x).data, m.eval()(x).data)


def test_call_passes_kwargs_and_multiple_inputs():
    class Two(nn.Module):
        def forward(self, a, b, *, scale=1.0):
            return (a + b) * scale

    assert Two()(cr.tensor(1.0), cr.tensor(2.0), scale=2.0).item() == 6.0
