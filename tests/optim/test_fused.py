"""Fused optimizer steps: ``step()`` running the update rule compiled by ``jit`` (one
kernel per parameter, written into the parameter's own buffer) gives the eager numbers
bit for bit, for every optimizer and option, and falls back to the eager rule wherever
compiling would not be safe or would not pay."""
from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.compile.codegen import NUMBA_MIN_SIZE

pytest.importorskip("numba")

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
]
BIG = (NUMBA_MIN_SIZE // 64 + 1, 64)  # just over the size from which steps are fused


def _params(dtype=np.float32, shapes=(BIG, (64,))):
    rng = np.random.default_rng(0)
    return [cr.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
            for s in shapes]


def _grads(step, params):
    rng = np.random.default_rng(100 + step)
    for p in params:
        p.grad = cr.tensor(rng.standard_normal(p.shape).astype(p.dtype))


def _state(opt):
    return {(i, k): np.array(v.data if isinstance(v, cr.Tensor) else v)
            for i, s in enumerate(opt.state.values()) for k, v in s.items()}


def _compiled_calls(opt):
    return sum(len(e) for _, j in opt._compiled.values() if j is not None
               for e in j.cache.values())


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}{i}" for i, (n, _) in
                                                  enumerate(CONFIGS)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_steps_equal_eager_steps_bitwise(name, kw, dtype):
    eager_ps, fused_ps = _params(dtype), _params(dtype)
    eager = getattr(optim, name)(eager_ps, fused=False, **kw)
    fused = getattr(optim, name)(fused_ps, **kw)
    for step in range(4):
        for ps, opt in ((eager_ps, eager), (fused_ps, fused)):
            _grads(step, ps)
            opt.step()
        if step == 1:  # eager at the first step, compiled from the second
            buffer = id(fused_ps[0].data)
        for a, b in zip(fused_ps, eager_ps):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        ws, we = _state(fused), _state(eager)
        assert ws.keys() == we.keys()
        for k in ws:
            np.testing.assert_array_equal(ws[k], we[k], err_msg=str(k))
    assert _compiled_calls(fused) == 1 and not eager._compiled
    assert id(fused_ps[0].data) == buffer  # the big weight was updated in its buffer
    assert fused_ps[0]._version_count == eager_ps[0]._version_count


def test_small_groups_and_fused_false_stay_eager():
    small = _params(shapes=[(8, 4)])
    opt = optim.SGD(small, lr=0.1)
    big = _params()
    off = optim.SGD(big, lr=0.1, fused=False)
    for step in range(3):
        for ps, o in ((small, opt), (big, off)):
            _grads(step, ps)
            o.step()
    assert all(j is None for _, j in opt._compiled.values()) and not off._compiled


def test_an_alias_of_a_parameter_sees_each_fused_update():
    ps = _params()
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    alias = ps[0].detach()  # shares the buffer: the update must land in it
    for step in range(4):
        _grads(step, ps)
        opt.step()
        np.testing.assert_array_equal(alias.numpy(), ps[0].detach().numpy())
    assert _compiled_calls(opt) == 1


def test_a_learning_rate_changed_every_step_gives_the_eager_numbers():
    eager_ps, fused_ps = _params(), _params()
    eager, fused = optim.Adam(eager_ps, lr=0.01, fused=False), optim.Adam(fused_ps, lr=0.01)
    scheds = [optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (eager, fused)]
    for step in range(8):
        for ps, opt, sched in zip((eager_ps, fused_ps), (eager, fused), scheds):
            _grads(step, ps)
            opt.step()
            sched.step()
    for a, b in zip(fused_ps, eager_ps):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert _compiled_calls(fused) == 1  # the last lr held for two steps: compiled again


def test_loading_a_state_dict_drops_the_compiled_update():
    eager_ps, fused_ps = _params(), _params()
    eager = optim.SGD(eager_ps, lr=0.1, momentum=0.9, fused=False)
    fused = optim.SGD(fused_ps, lr=0.1, momentum=0.9)
    for step in range(3):
        for ps, opt in ((eager_ps, eager), (fused_ps, fused)):
            _grads(step, ps)
            opt.step()
    saved = eager.state_dict()
    fused.load_state_dict(saved)  # new momentum tensors: the old graph read the others
    assert not fused._compiled
    for step in range(3, 6):
        for ps, opt in ((eager_ps, eager), (fused_ps, fused)):
            _grads(step, ps)
            opt.step()
    np.testing.assert_array_equal(fused.state[fused_ps[0]]["momentum_buffer"].numpy(),
                                  eager.state[eager_ps[0]]["momentum_buffer"].numpy())


def test_a_step_inside_a_jitted_training_step_is_traced_with_it():
    """Inside a trace (or a transform) the update runs as ops of the outer function."""
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((4, BIG[0])).astype(np.float32))
    steps = []
    for compiled in (False, True):
        w = cr.tensor(np.random.default_rng(1).standard_normal(BIG).astype(np.float32),
                      requires_grad=True)
        opt = optim.SGD([w], lr=0.1, momentum=0.9)

        def train(x):
            opt.zero_grad()
            loss = (x @ w).square().mean()
            loss.backward()
            opt.step()
            return loss

        step = cr.jit(train) if compiled else train
        steps.append([step(x).item() for _ in range(4)] + [w.detach().numpy()])
        if compiled:
            assert len(step.cache) == 1
            graph = next(iter(step.cache.values()))[0].lowered.graph
            assert any(e.prim.name.startswith("fused") for e in graph.eqns)
    assert steps[0][:4] == pytest.approx(steps[1][:4], rel=1e-6)
    np.testing.assert_allclose(steps[1][4], steps[0][4], rtol=1e-5)


def test_a_copied_or_pickled_optimizer_compiles_its_own_update():
    import copy
    import pickle
    ps = _params()
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    for step in range(3):
        _grads(step, ps)
        opt.step()
    before = [p.detach().numpy().copy() for p in ps]
    results = []
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert not clone._compiled
        params = clone.param_groups[0]["params"]
        for step in range(3, 6):
            _grads(step, params)
            clone.step()
        assert _compiled_calls(clone) == 1
        results.append([p.detach().numpy() for p in params])
    for p, b in zip(ps, before):  # the clones updated their own parameters only
        np.testing.assert_array_equal(p.detach().numpy(), b)
    for step in range(3, 6):
        _grads(step, ps)
        opt.step()
    for got in results:
        for a, b in zip(got, ps):
            np.testing.assert_array_equal(a, b.detach().numpy())
