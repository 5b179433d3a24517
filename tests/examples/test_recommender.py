"""recommender: the factorization beats the global-mean baseline on held-out ratings and
approaches the noise level; the data generator and the model's formula."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

import chainrule as cr  # noqa: E402
from chainrule.examples import recommender  # noqa: E402


def test_beats_the_global_mean_baseline(tmp_path):
    result = recommender.run(epochs=5, out=tmp_path, verbose=False)  # 40,125 ratings
    assert result["test_rmse"] < 0.6 * result["baseline_rmse"]
    assert result["test_rmse"] < 2 * result["noise"]
    rmse = [row["test_rmse"] for row in result["history"]]
    assert rmse[-1] < rmse[0]


def test_result_line(tmp_path, capsys):
    result = recommender.run(epochs=1, users=60, items=40, out=tmp_path, verbose=False)
    line = capsys.readouterr().out.strip()
    assert line == (f"test RMSE: {result['test_rmse']:.3f} (global-mean baseline "
                    f"{result['baseline_rmse']:.3f})")


def test_synthetic_ratings_are_seeded_low_rank_and_noisy():
    a = recommender.synthetic_ratings(50, 40, 3, 0.5, 0.1, seed=7)
    b = recommender.synthetic_ratings(50, 40, 3, 0.5, 0.1, seed=7)
    c = recommender.synthetic_ratings(50, 40, 3, 0.5, 0.1, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["rating"], c["rating"])
    pairs = set(zip(a["user"].tolist(), a["item"].tolist()))
    assert len(pairs) == len(a["user"])  # each pair observed at most once
    assert 0.4 < len(pairs) / (50 * 40) < 0.6
    assert abs(a["rating"].mean() - 3.5) < 0.3


def test_prediction_is_mean_plus_biases_plus_dot_product():
    cr.manual_seed(0)
    model = recommender.MatrixFactorization(5, 4, 3, mean=3.0)
    with cr.no_grad():
        model.user_bias.weight[...] = cr.randn(5, 1)
        model.item_bias.weight[...] = cr.randn(4, 1)
    user, item = cr.tensor([0, 4, 2]), cr.tensor([3, 0, 3])
    with cr.no_grad():
        pred, penalty = model(user, item)
    w = {k: v.numpy() for k, v in model.state_dict().items()}  # detached
    p, q = w["user.weight"][[0, 4, 2]], w["item.weight"][[3, 0, 3]]
    expected = (3.0 + w["user_bias.weight"][[0, 4, 2], 0] + w["item_bias.weight"][[3, 0, 3], 0]
                + (p * q).sum(1))
    np.testing.assert_allclose(pred.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(penalty.item(), ((p * p).sum(1) + (q * q).sum(1)).mean(),
                               rtol=1e-6)
