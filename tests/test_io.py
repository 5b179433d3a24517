"""Safe checkpoints: chainrule.save / chainrule.load (safetensors + JSON metadata)."""
import errno
import io
import json
import math
import os

import numpy as np
import pytest

import chainrule as cr
from chainrule.io import CheckpointError, load, save

st = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402

DTYPES = ["float32", "float64", "int64", "int32", "bool", "float16", "uint8", "int8"]


def _same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, cr.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.data, b.data)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def _checkpoint():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6))
    gen = cr.Generator(2 ** 100 + 7)
    gen.rng.random(3)
    return {
        "model": {"fc1.weight": cr.tensor(base[:3, :4], dtype=cr.float32, requires_grad=True),
                  "fc1.bias": cr.zeros(3),
                  "bn.num_batches_tracked": cr.tensor(5)},
        "tensors": {d: cr.tensor((rng.standard_normal((2, 3)) * 4).astype(d)) for d in DTYPES},
        "edge": [cr.tensor(1.5, dtype=cr.float64), cr.zeros(0, 3, dtype=cr.int32),
                 cr.Tensor(base.T), cr.Tensor(base[::2, 1::3]),  # non-contiguous
                 np.arange(6, dtype=">i4").reshape(2, 3),           # big-endian
                 np.float32(2.5), np.int64(-3), np.float64(0.25), np.bool_(True)],
        "optim": {"state": {0: {"step": 10, "exp_avg": cr.ones(3)}},
                  "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                    "amsgrad": False, "params": [0, 1]}]},
        "rng": gen.get_state(),
        "misc": {"epoch": 3, "name": "run/α", "none": None, "nan": float("nan"),
                 "inf": -math.inf, "tuple": (1, [2, (3,)]), "empty": {}, "list": []},
    }


def test_round_trip_nested_structure_every_dtype(tmp_path):
    obj = _checkpoint()
    path = tmp_path / "ckpt.safetensors"
    save(obj, path)
    back = load(path)
    obj["edge"][4] = obj["edge"][4].astype(np.int32)  # big-endian comes back native
    _same(back, obj)
    assert back["optim"]["state"][0]["step"] == 10  # int keys stay ints
    assert back["edge"][2].data.flags.c_contiguous and back["edge"][0].shape == ()
    back["model"]["fc1.bias"].add_(1.0)  # loaded tensors own writable memory
    with safe_open(str(path), "np") as f:
        keys = set(f.keys())
        meta = f.metadata()
    assert {"model.fc1.weight", "optim.state.0.exp_avg", "tensors.bool", "edge.3"} <= keys
    tree = json.loads(meta["chainrule.tree"])
    assert meta["chainrule.format"] == "1" and [k for k, _ in tree[1]] == list(obj)


def test_generator_state_with_huge_ints_resumes_the_stream(tmp_path):
    g = cr.Generator(2 ** 120 + 1)
    g.rng.random(5)
    save({"rng": g.get_state()}, tmp_path / "r.safetensors")
    state = load(tmp_path / "r.safetensors")["rng"]
    assert state == g.get_state() and state["state"]["state"] > 2 ** 64
    h = cr.Generator(0)
    h.set_state(state)
    np.testing.assert_array_equal(cr.rand(4, generator=h).data, cr.rand(4, generator=g).data)


def test_shared_tensors_stay_shared_and_top_level_tensor(tmp_path):
    w = cr.randn(3, 3)
    save({"enc": w, "dec": w}, tmp_path / "tied.safetensors")
    back = load(tmp_path / "tied.safetensors")
    assert back["enc"] is back["dec"]
    save(w, tmp_path / "t.safetensors")
    _same(load(tmp_path / "t.safetensors"), w)


def test_missing_safetensors_names_the_extra(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install 'chainrule\[io\]'"):
        save({"a": 1}, tmp_path / "x.safetensors")


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    target = tmp_path / "real.safetensors"
    link = tmp_path / "latest.safetensors"
    save({"step": 1}, target)
    link.symlink_to(target)
    save({"step": 2}, link)
    assert link.is_symlink() and load(target) == {"step": 2}


def test_file_objects(tmp_path):
    buf = io.BytesIO()
    save({"a": cr.arange(4), "b": [1, 2.0]}, buf)
    buf.seek(0)
    _same(load(buf), {"a": cr.arange(4), "b": [1, 2.0]})


def test_unsupported_values_are_refused_naming_the_path(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store a set at 'opt.extra'"):
        save({"opt": {"extra": {1, 2}}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match=r"'a.1' has dtype <U1"):
        save({"a": [0, np.array(["x"])]}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        save({(1, 2): 3}, tmp_path / "x.safetensors")
    assert not os.listdir(tmp_path)


def _write_previous(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"step": 1, "w": cr.ones(100)}, path)
    return path, path.read_bytes()


def test_disk_full_mid_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    import chainrule.io as crio
    path, before = _write_previous(tmp_path)
    real = crio._write_all

    def disk_full(fd, data):
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(crio, "_write_all", disk_full)
    with pytest.raises(OSError, match=r"ckpt.safetensors failed \(No space left") as info:
        save({"step": 2, "w": cr.zeros(100)}, path)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary file left
    assert load(path)["step"] == 1


def test_failure_at_rename_and_interrupt_leave_no_temp_file(tmp_path, monkeypatch):
    import chainrule.io as crio
    path, before = _write_previous(tmp_path)

    def fail_replace(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(crio.os, "replace", fail_replace)
    with pytest.raises(PermissionError):
        save({"step": 2}, path)
    monkeypatch.undo()

    def interrupted(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(crio, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save({"step": 3}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_save_replaces_the_previous_file(tmp_path):
    path, _ = _write_previous(tmp_path)
    save({"step": 2}, path)
    assert load(path) == {"step": 2} and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_truncated_file(tmp_path):
    path, data = _write_previous(tmp_path)
    header_len = int.from_bytes(data[:8], "little")
    path.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=(
            rf"ckpt.safetensors: file is truncated: header says 400 bytes of data, file has "
            rf"{len(data) - 8 - header_len - 100}")):
        load(path)
    path.write_bytes(data[:50])
    with pytest.raises(CheckpointError, match=rf"truncated: header says {header_len} bytes of "
                                              r"header, file has 42"):
        load(path)
    path.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="truncated: 5 bytes"):
        load(path)


def test_garbage_and_corrupted_files(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"this is not a checkpoint at all, just some text\n" * 3)
    with pytest.raises(CheckpointError, match=r"junk.bin: corrupted header: .* not a "
                                              r"safetensors checkpoint"):
        load(path)
    body = b'{"a": not json}'
    path.write_bytes(len(body).to_bytes(8, "little") + body)
    with pytest.raises(CheckpointError, match="corrupted header: not valid JSON"):
        load(path)
    _, data = _write_previous(tmp_path)
    path.write_bytes(data + b"\0" * 4)
    with pytest.raises(CheckpointError, match="extra bytes at the end"):
        load(path)


def _raw(tensors, metadata, path):
    path.write_bytes(st.save(tensors, metadata=metadata))
    return path


def test_plain_safetensors_file_loads_as_flat_dict(tmp_path):
    weights = {"encoder.weight": np.ones((2, 3), np.float32), "step": np.array(4)}
    back = load(_raw(weights, {"format": "np"}, tmp_path / "w.safetensors"))
    assert set(back) == set(weights)
    for k, v in weights.items():
        _same(back[k], cr.Tensor(v))
    assert load(_raw(weights, None, tmp_path / "n.safetensors"))["step"].item() == 4


def test_malformed_chainrule_metadata(tmp_path):
    arrays = {"a": np.zeros(2, np.float32)}
    with pytest.raises(CheckpointError, match=r"not a chainrule checkpoint: metadata key "
                                              r"'chainrule.tree' missing"):
        load(_raw(arrays, {"chainrule.format": "1"}, tmp_path / "m.safetensors"))
    tree = json.dumps(["dict", [["x", ["tensor", "missing", False]]]])
    with pytest.raises(CheckpointError, match="refers to tensor 'missing'"):
        load(_raw(arrays, {"chainrule.format": "1", "chainrule.tree": tree},
                  tmp_path / "m.safetensors"))
    with pytest.raises(CheckpointError, match="unknown node tag 'pickle'"):
        load(_raw(arrays, {"chainrule.format": "1", "chainrule.tree": '["pickle", "os"]'},
                  tmp_path / "m.safetensors"))
    with pytest.raises(CheckpointError, match="format '9'"):
        load(_raw(arrays, {"chainrule.format": "9", "chainrule.tree": "null"},
                  tmp_path / "m.safetensors"))


def test_module_state_dict_round_trip(tmp_path):
    import chainrule.nn as nn

    def model(seed):
        cr.manual_seed(seed)
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))

    trained = model(0)
    trained(cr.randn(8, 3))  # moves the running statistics
    save({"model": trained.state_dict(), "epoch": 7}, tmp_path / "m.safetensors")
    ckpt = load(tmp_path / "m.safetensors")
    assert list(ckpt["model"]) == list(trained.state_dict())
    assert ckpt["model"]["1.num_batches_tracked"].shape == ()
    fresh = model(1)
    fresh.load_state_dict(ckpt["model"])
    trained.eval()
    fresh.eval()
    x = cr.randn(5, 3)
    np.testing.assert_array_equal(fresh(x).detach().data, trained(x).detach().data)
