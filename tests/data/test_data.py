"""Datasets, samplers, collate and DataLoader: batching, shuffling under a seed, and
resuming a run from the loader's state."""
import collections

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, RandomSampler,
                            SequentialSampler, Subset, TensorDataset, default_collate,
                            random_split)
from chainrule.io import load, save


def _ds(n=10):
    x = cr.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    y = cr.arange(n)
    return TensorDataset(x, y)


def _ids(loader):
    """The sample ids of every batch (y holds the ids)."""
    return [batch[1].tolist() for batch in loader]


def test_tensor_dataset_items_and_errors():
    ds = _ds(5)
    x, y = ds[2]
    assert len(ds) == 5 and x.tolist() == [6.0, 7.0, 8.0] and y.item() == 2
    with pytest.raises(ValueError, match=r"same size in dim 0.*\(5, 3\), \(4,\)"):
        TensorDataset(ds.tensors[0], cr.arange(4))
    with pytest.raises(TypeError):
        Dataset()  # abstract


@pytest.mark.parametrize("drop_last,sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_batch_shapes_and_len(drop_last, sizes):
    loader = DataLoader(_ds(10), batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [b[1].shape[0] for b in batches] == sizes
    assert all(b[0].shape == (s, 3) and b[0].dtype == np.float32 and b[1].dtype == np.int64
               for b, s in zip(batches, sizes))
    assert isinstance(batches[0], list)  # a tuple sample collates to a list, as in PyTorch
    assert _ids(loader)[0] == [0, 1, 2, 3]


def test_fast_path_equals_item_by_item():
    ds = _ds(23)
    g1, g2 = cr.Generator(5), cr.Generator(5)
    fast = DataLoader(ds, batch_size=8, shuffle=True, generator=g1)
    slow = DataLoader(ds, batch_size=8, shuffle=True, generator=g2,
                      collate_fn=lambda b: default_collate(b))
    for a, b in zip(fast, slow):
        for ta, tb in zip(a, b):
            assert ta.dtype == tb.dtype
            np.testing.assert_array_equal(ta.data, tb.data)
    # a Subset of a TensorDataset gathers whole batches too, with its own index map
    sub = Subset(ds, [7, 3, 11, 0])
    assert hasattr(sub, "get_batch") and not hasattr(Subset(ConcatDataset([ds]), [0]),
                                                     "get_batch")
    assert _ids(DataLoader(sub, batch_size=3)) == [[7, 3, 11], [0]]


def test_shuffle_reproducible_under_seed_and_every_sample_once():
    ds = _ds(50)
    run = [_ids(DataLoader(ds, batch_size=7, shuffle=True, generator=cr.Generator(0)))
           for _ in range(2)]
    assert run[0] == run[1]
    other = _ids(DataLoader(ds, batch_size=7, shuffle=True, generator=cr.Generator(1)))
    assert other != run[0]
    loader = DataLoader(ds, batch_size=7, shuffle=True, generator=cr.Generator(0))
    epochs = [sum(_ids(loader), []) for _ in range(3)]
    for ids in epochs:
        assert sorted(ids) == list(range(50))
    assert epochs[0] != epochs[1] != epochs[2]
    assert epochs[0] != list(range(50))


def test_shuffle_without_generator_follows_manual_seed():
    ds = _ds(30)
    cr.manual_seed(123)
    a = _ids(DataLoader(ds, batch_size=5, shuffle=True))
    cr.manual_seed(123)
    b = _ids(DataLoader(ds, batch_size=5, shuffle=True))
    cr.manual_seed(124)
    c = _ids(DataLoader(ds, batch_size=5, shuffle=True))
    assert a == b and a != c


def test_resume_mid_epoch_through_a_checkpoint(tmp_path):
    ds = _ds(20)

    def loader():
        return DataLoader(ds, batch_size=3, shuffle=True, generator=cr.Generator(7))

    ref = loader()
    full = [_ids(ref) for _ in range(3)]

    first = loader()
    seen = [_ids(first)]
    it = iter(first)
    seen.append([next(it)[1].tolist() for _ in range(2)])
    save({"loader": first.state_dict(), "epoch": 1}, tmp_path / "ckpt.safetensors")

    ckpt = load(tmp_path / "ckpt.safetensors")
    assert ckpt["loader"]["batches_done"] == 2 and ckpt["epoch"] == 1
    resumed = loader()
    resumed.load_state_dict(ckpt["loader"])
    seen[1] += _ids(resumed)
    seen.append(_ids(resumed))
    assert seen == full


def test_resume_at_epoch_boundary_with_generator_state():
    ds = _ds(16)
    g = cr.Generator(3)
    ref = DataLoader(ds, batch_size=4, shuffle=True, generator=g)
    _ids(ref)
    state = ref.generator.get_state()
    assert ref.state_dict() == {"generator": state, "batches_done": 0}
    expected = [_ids(ref) for _ in range(2)]
    resumed = DataLoader(ds, batch_size=4, shuffle=True, generator=cr.Generator(3))
    resumed.generator.set_state(state)
    assert [_ids(resumed) for _ in range(2)] == expected


def test_state_dict_without_shuffle_skips_batches():
    loader = DataLoader(_ds(10), batch_size=3)
    it = iter(loader)
    next(it)
    sd = loader.state_dict()
    assert sd == {"generator": None, "batches_done": 1}
    fresh = DataLoader(_ds(10), batch_size=3)
    fresh.load_state_dict(sd)
    assert _ids(fresh) == [[3, 4, 5], [6, 7, 8], [9]]
    assert _ids(fresh) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # the next epoch is whole
    with pytest.raises(ValueError, match="does not shuffle"):
        fresh.load_state_dict({"generator": cr.Generator(0).get_state(), "batches_done": 0})


def test_default_collate_structures():
    Point = collections.namedtuple("Point", "a b")
    samples = [{"x": np.full((2,), i, np.float32), "y": i, "w": float(i), "name": f"s{i}",
                "pair": (cr.tensor([i, i]), True), "pt": Point(i, [i, i + 1])}
               for i in range(3)]
    out = default_collate(samples)
    assert set(out) == {"x", "y", "w", "name", "pair", "pt"}
    assert out["x"].shape == (3, 2) and out["x"].dtype == np.float32
    assert out["y"].tolist() == [0, 1, 2] and out["y"].dtype == np.int64
    assert out["w"].dtype == np.float64  # Python floats collate to float64, as in PyTorch
    assert out["name"] == ["s0", "s1", "s2"]
    assert isinstance(out["pair"], list) and out["pair"][0].shape == (3, 2)
    assert out["pair"][1].dtype == np.bool_
    assert isinstance(out["pt"], Point) and out["pt"].a.tolist() == [0, 1, 2]
    assert [t.tolist() for t in out["pt"].b] == [[0, 1, 2], [1, 2, 3]]
    assert default_collate([np.float32(1), np.float32(2)]).dtype == np.float32
    with pytest.raises(RuntimeError, match="different shapes"):
        default_collate([cr.zeros(2), cr.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object()])


def test_default_collate_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    samples = [{"x": np.arange(3, dtype=np.float32) + i, "y": i, "w": 0.5 * i,
                "t": (np.int32(i), [i, 2 * i])} for i in range(4)]

    def same(a, b):
        if isinstance(b, torch.Tensor):
            assert isinstance(a, cr.Tensor) and str(a.dtype) == str(b.dtype).split(".")[1]
            np.testing.assert_array_equal(a.data, b.numpy())
        else:
            assert type(a) is type(b)
            if isinstance(b, dict):
                assert a.keys() == b.keys()
                for k in b:
                    same(a[k], b[k])
            else:
                for u, v in zip(a, b, strict=True):
                    same(u, v)

    same(default_collate(samples), torch_collate(samples))


def test_collate_keeps_the_graph():
    w = cr.randn(3, requires_grad=True)
    batch = default_collate([w * 1.0, w * 2.0])
    batch.sum().backward()
    np.testing.assert_allclose(w.grad.data, np.full(3, 3.0))


def test_random_split_sizes_disjoint_and_seeded():
    ds = _ds(103)
    parts = random_split(ds, [0.8, 0.1, 0.1], generator=cr.Generator(0))
    assert [len(p) for p in parts] == [83, 10, 10]  # floors 82/10/10, the remainder to the first
    ids = [p.indices for p in parts]
    assert sorted(sum(ids, [])) == list(range(103))
    again = random_split(ds, [83, 10, 10], generator=cr.Generator(0))
    assert [p.indices for p in again] == ids
    assert random_split(ds, [83, 20], generator=cr.Generator(1))[0].indices != ids[0]
    assert parts[1][0][1].item() == ids[1][0]
    with pytest.raises(ValueError, match="does not equal the length of the dataset 103"):
        random_split(ds, [50, 50])
    with pytest.raises(ValueError, match="non-negative integers"):
        random_split(ds, [100.5, 2.5])


def test_concat_dataset():
    a, b = _ds(3), _ds(4)
    cat = a + b
    assert isinstance(cat, ConcatDataset) and len(cat) == 7 and cat.cumulative_sizes == [3, 7]
    assert cat[3][1].item() == 0 and cat[-1][1].item() == 3 and cat[2][1].item() == 2
    with pytest.raises(IndexError):
        cat[7]
    assert _ids(DataLoader(cat, batch_size=4)) == [[0, 1, 2, 0], [1, 2, 3]]


def test_samplers():
    ds = _ds(10)
    assert list(SequentialSampler(ds)) == list(range(10))
    rs = RandomSampler(ds, replacement=True, num_samples=25, generator=cr.Generator(0))
    draws = list(rs)
    assert len(rs) == 25 == len(draws) and all(0 <= i < 10 for i in draws)
    assert draws == list(RandomSampler(ds, True, 25, generator=cr.Generator(0)))
    bs = BatchSampler(range(10), 4, drop_last=False)
    assert list(bs) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(bs) == 3
    custom = DataLoader(ds, batch_size=2, sampler=[9, 8, 7])
    assert _ids(custom) == [[9, 8], [7]]
    by_batches = DataLoader(ds, batch_sampler=[[1, 2], [5]])
    assert _ids(by_batches) == [[1, 2], [5]] and len(by_batches) == 2
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="positive integer, got 0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="replacement=True"):
        RandomSampler(ds, num_samples=3)
