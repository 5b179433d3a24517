"""Learning-rate schedulers against PyTorch's, step for step, and their state dicts."""
from __future__ import annotations

import io

import pytest

import chainrule as cr
from chainrule import optim
from chainrule.optim import lr_scheduler as S

STEPS = 30
LRS = (0.1, 0.02)  # two parameter groups


def _optimizer(lib):
    """An SGD optimizer with two groups, in chainrule (lib=cr) or PyTorch."""
    if lib is cr:
        ps = [cr.tensor([1.0], requires_grad=True), cr.tensor([2.0], requires_grad=True)]
        return optim.SGD([{"params": [ps[0]], "lr": LRS[0]},
                          {"params": [ps[1]], "lr": LRS[1]}], momentum=0.9)
    ps = [lib.tensor([1.0], requires_grad=True), lib.tensor([2.0], requires_grad=True)]
    return lib.optim.SGD([{"params": [ps[0]], "lr": LRS[0]},
                          {"params": [ps[1]], "lr": LRS[1]}], momentum=0.9)


def _decay(epoch):
    return 0.95 ** epoch


# name -> factory(scheduler module, optimizer)
SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "LinearLR-warmup": lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=5),
    "LinearLR-decay": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.2,
                                              total_iters=4),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=3),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=6, power=2.0),
    "LambdaLR": lambda m, o: m.LambdaLR(o, _decay),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [_decay, lambda e: 1.0 / (1 + e)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9),
    "SequentialLR-warmup-cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.01, total_iters=5), m.CosineAnnealingLR(o, T_max=20)],
        milestones=[5]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.5, total_iters=2), m.ExponentialLR(o, gamma=0.8),
            m.StepLR(o, step_size=4, gamma=0.5)], milestones=[3, 8]),
}


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_matches_torch(name):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    copt, topt = _optimizer(cr), _optimizer(torch)
    csched = SCHEDULES[name](S, copt)
    tsched = SCHEDULES[name](torch.optim.lr_scheduler, topt)
    assert csched.get_last_lr() == tsched.get_last_lr() and _lrs(copt) == _lrs(topt)
    for epoch in range(STEPS):
        copt.step()
        csched.step()
        topt.step()
        tsched.step()
        assert csched.get_last_lr() == tsched.get_last_lr(), (name, epoch)
        assert _lrs(copt) == _lrs(topt) == csched.get_last_lr()


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_resume_from_state_dicts(name):
    """Optimizer and scheduler state dicts, loaded into new ones, continue the schedule."""
    opt = _optimizer(cr)
    sched = SCHEDULES[name](S, opt)
    expected = []
    for k in range(20):
        if k == 7:
            saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
        opt.step()
        sched.step()
        expected.append(sched.get_last_lr())
    opt2 = _optimizer(cr)
    sched2 = SCHEDULES[name](S, opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    got = []
    for _ in range(13):
        opt2.step()
        sched2.step()
        got.append(sched2.get_last_lr())
    assert got == expected[7:]


def test_state_dict_through_checkpoint_file():
    pytest.importorskip("safetensors")
    cio = pytest.importorskip("chainrule.io")
    opt = _optimizer(cr)
    sched = SCHEDULES["SequentialLR-warmup-cosine"](S, opt)
    for _ in range(6):
        sched.step()
    buf = io.BytesIO()
    cio.save({"optim": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    ckpt = cio.load(buf)
    opt2 = _optimizer(cr)
    sched2 = SCHEDULES["SequentialLR-warmup-cosine"](S, opt2)
    opt2.load_state_dict(ckpt["optim"])
    sched2.load_state_dict(ckpt["sched"])
    for _ in range(5):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


class _Warmup:
    """A callable object: its attributes go into LambdaLR's state dict."""

    def __init__(self, n):
        self.n = n

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.n)


def test_lambda_state_dict_saves_callable_objects_only():
    opt = _optimizer(cr)
    sched = S.LambdaLR(opt, [_Warmup(4), _decay])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"n": 4}, None] and "optimizer" not in sd
    other = S.LambdaLR(_optimizer(cr), [_Warmup(10), _decay])
    other.load_state_dict(sd)
    assert other.lr_lambdas[0].n == 4


def test_resume_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_optimizer(cr), step_size=2, last_epoch=4)
    opt = _optimizer(cr)
    S.StepLR(opt, step_size=2)
    for g, lr in zip(opt.param_groups, LRS):
        assert g["initial_lr"] == lr


def test_scheduler_errors():
    opt = _optimizer(cr)
    with pytest.raises(TypeError, match="not an Optimizer"):
        S.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        S.LambdaLR(opt, [_decay])
    with pytest.raises(ValueError, match="one milestone fewer"):
        S.SequentialLR(opt, [S.ExponentialLR(opt, 0.9), S.ExponentialLR(opt, 0.8)],
                       milestones=[])
    with pytest.raises(ValueError, match="another optimizer"):
        S.SequentialLR(opt, [S.ExponentialLR(_optimizer(cr), 0.9)], milestones=[])
    with pytest.raises(ValueError, match="start_factor"):
        S.LinearLR(opt, start_factor=0.0)


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR",
                                  "CosineAnnealingLR", "LinearLR-warmup", "PolynomialLR"])
def test_explicit_epoch_uses_closed_form_like_torch(name):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    copt, topt = _optimizer(cr), _optimizer(torch)
    csched = SCHEDULES[name](S, copt)
    tsched = SCHEDULES[name](torch.optim.lr_scheduler, topt)
    for epoch in [3, 4, 9, 2]:
        with pytest.warns(UserWarning, match="deprecated"):
            csched.step(epoch)
        with pytest.warns(UserWarning):
            tsched.step(epoch)
        assert csched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)


def test_tensor_learning_rate_is_updated_in_place():
    p = cr.tensor([1.0], requires_grad=True)
    lr = cr.tensor(0.5, dtype=cr.float64)
    opt = optim.SGD([p], lr=lr)
    sched = S.ExponentialLR(opt, gamma=0.5)
    sched.step()
    sched.step()
    assert opt.param_groups[0]["lr"] is lr and float(lr) == 0.125
    assert [float(v) for v in sched.get_last_lr()] == [0.125]
    assert float(opt.param_groups[0]["initial_lr"]) == 0.5  # a copy, not the live tensor
