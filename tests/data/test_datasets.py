"""Bundled datasets: scikit-learn's digits and breast cancer, the stratified split, and
the character corpus made of Python's own documentation."""
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import DataLoader, TensorDataset, default_collate
from chainrule.data import datasets as D


def test_digits_shapes_dtypes_labels():
    pytest.importorskip("sklearn")
    ds = D.load_digits()
    assert isinstance(ds, TensorDataset) and len(ds) == 1797
    x, y = ds.tensors
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.data.min() == 0 and x.data.max() == 1  # pixels 0..16 scaled to [0, 1]
    assert sorted(set(y.tolist())) == list(range(10))
    xi, yi = D.load_digits(images=True, return_X_y=True)
    assert xi.shape == (1797, 1, 8, 8) and xi.dtype == np.float32
    np.testing.assert_array_equal(xi.data.reshape(1797, 64), x.data)
    np.testing.assert_array_equal(yi.data, y.data)


def test_breast_cancer_shapes_dtypes_labels():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    x, y = D.load_breast_cancer(return_X_y=True)
    assert x.shape == (569, 30) and x.dtype == np.float32 and y.dtype == np.int64
    assert set(y.tolist()) == {0, 1} and int(y.data.sum()) == 357
    np.testing.assert_allclose(x.data, sklearn_datasets.load_breast_cancer().data, rtol=1e-6)
    assert len(D.load_breast_cancer()) == 569


def test_missing_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r"load_digits.*pip install 'chainrule\[examples\]'"):
        D.load_digits()


def test_stratified_split_keeps_class_shares_and_is_deterministic():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [50, 30, 20])
    x = rng.standard_normal((100, 4)).astype(np.float32)
    x[:, 0] = np.arange(100)  # a sample id to check disjointness
    xtr, xte, ytr, yte = D.stratified_split(x, cr.tensor(y), test_size=0.25, seed=3)
    assert len(xte) == 25 and len(xtr) == 75 and xtr.dtype == np.float32
    assert np.bincount(yte.data).tolist() == [13, 7, 5]  # 12.5/7.5/5 -> largest remainders
    ids = np.concatenate([xtr.data[:, 0], xte.data[:, 0]])
    assert sorted(ids.tolist()) == list(range(100))
    np.testing.assert_array_equal(y[xte.data[:, 0].astype(int)], yte.data)  # pairs kept
    again = D.stratified_split(x, y, test_size=0.25, seed=3)
    np.testing.assert_array_equal(again[1].data, xte.data)
    other = D.stratified_split(x, y, test_size=0.25, seed=4)
    assert not np.array_equal(other[1].data, xte.data)
    with pytest.raises(ValueError, match=r"test_size must be in \(0, 1\)"):
        D.stratified_split(x, y, test_size=25)
    with pytest.raises(ValueError, match="x has 99 samples but y has 100"):
        D.stratified_split(x[:99], y)


def test_standardize_uses_train_statistics_only():
    train = np.array([[1.0, 5.0], [3.0, 5.0]], np.float32)
    test = np.array([[2.0, 6.0]], np.float32)
    tr, te = D.standardize(train, cr.tensor(test))
    np.testing.assert_allclose(tr.data, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(te.data, [[0, 1]])  # constant feature: centred only
    assert te.dtype == np.float32


def test_pydoc_text_is_deterministic_and_nonempty():
    text = D.load_pydoc_text()
    assert len(text) > 100_000 and text == D.load_pydoc_text()
    from pydoc_data.topics import topics
    first = sorted(topics)[0]
    assert text.startswith(topics[first].strip()[:200])


def test_char_corpus_blocks_and_splits():
    corpus = D.char_corpus(block_size=16, val_fraction=0.1)
    n = len(corpus.data)
    assert corpus.data.dtype == np.int64 and n == len(corpus.text)
    assert corpus.itos == sorted(set(corpus.text)) and corpus.vocab_size == len(corpus.itos)
    assert all(corpus.stoi[c] == i for i, c in enumerate(corpus.itos))
    assert corpus.decode(corpus.data[:500]) == corpus.text[:500]
    assert corpus.decode(corpus.encode("def f(x):")) == "def f(x):"
    cut = int(n * 0.9)
    assert len(corpus.train) == cut - 16 and len(corpus.val) == n - cut - 16
    x, y = corpus.train[5]
    assert x.shape == y.shape == (16,) and x.dtype == np.int64
    np.testing.assert_array_equal(x.data[1:], y.data[:-1])
    assert corpus.decode(x) == corpus.text[5:21]
    vx, _ = corpus.val[-1]
    assert corpus.decode(vx) == corpus.text[n - 17:n - 1]
    with pytest.raises(IndexError):
        corpus.train[len(corpus.train)]


def test_char_dataset_batches_fast_path_matches_items():
    corpus = D.char_corpus(block_size=8, text="hello world, hello chainrule! " * 10)
    idx = [3, 0, 41, 17]
    fast = corpus.train.get_batch(idx)
    slow = default_collate([corpus.train[i] for i in idx])
    for a, b in zip(fast, slow):
        assert a.shape == (4, 8) and a.dtype == b.dtype
        np.testing.assert_array_equal(a.data, b.data)
    loader = DataLoader(corpus.train, batch_size=32, shuffle=True, generator=cr.Generator(0))
    xb, yb = next(iter(loader))
    assert xb.shape == yb.shape == (32, 8)
    np.testing.assert_array_equal(xb.data[:, 1:], yb.data[:, :-1])
    with pytest.raises(ValueError, match="block_size"):
        D.CharDataset(corpus.data[:4], 8)
