"""char-transformer: the model is causal, a short run learns far below the unigram
baseline (on a small repetitive text and on the pydoc corpus), and sampling is seeded."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

import chainrule as cr  # noqa: E402
from chainrule.data.datasets import char_corpus  # noqa: E402
from chainrule.examples import char_transformer as ct  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog. " * 200
SMALL = {"steps_per_epoch": 20, "layers": 1, "d_model": 32, "block_size": 32,
         "sample_chars": 40, "verbose": False}


def test_model_is_causal():
    cr.manual_seed(0)
    model = ct.CharTransformer(vocab_size=11, block_size=8, d_model=16, heads=2, layers=2,
                               d_ff=32)
    model.requires_grad_(False)
    idx = cr.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    changed = cr.tensor([[1, 2, 3, 4, 9, 9, 9, 9]])  # the future of position 3 differs
    a, b = model(idx).numpy(), model(changed).numpy()  # (1, 8, 11)
    assert a.shape == (1, 8, 11)
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=0, atol=1e-6)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-3


def test_learns_a_repetitive_text_from_context(tmp_path, capsys):
    result = ct.run(epochs=3, prompt="the ", text=TEXT, out=tmp_path, **SMALL)
    assert result["unigram_entropy"] > 2.5
    assert result["val_loss"] < 0.5  # knowing the context, the next character is certain
    assert result["sample"].startswith("the ") and len(result["sample"]) == 44
    assert set(result["sample"]) <= set(TEXT)
    line = capsys.readouterr().out.strip()
    assert line == (f"val loss: {result['val_loss']:.3f} nats/char (unigram entropy "
                    f"{result['unigram_entropy']:.3f}, {math.exp(result['val_loss']):.1f} vs "
                    f"{math.exp(result['unigram_entropy']):.1f} perplexity)")


def test_short_run_on_the_pydoc_corpus_beats_the_unigram_baseline(tmp_path):
    result = ct.run(epochs=3, out=tmp_path, **SMALL)
    corpus = char_corpus(32)
    assert result["unigram_entropy"] == pytest.approx(
        ct.unigram_entropy(corpus.train.data.numpy(), corpus.vocab_size))
    assert result["val_loss"] < result["unigram_entropy"] - 0.4
    losses = [row["val_loss"] for row in result["history"]]
    assert losses[-1] < losses[0]


def test_generation_is_seeded():
    corpus = char_corpus(8, text=TEXT)
    cr.manual_seed(0)
    model = ct.CharTransformer(corpus.vocab_size, 8, d_model=16, heads=2, layers=1, d_ff=32)
    samples = [ct.generate(model, corpus, "the", 30, 1.0, cr.Generator(seed))
               for seed in (1, 1, 2)]
    assert samples[0] == samples[1] != samples[2]
    assert len(samples[0]) == 33 and samples[0].startswith("the")


def test_unigram_entropy():
    ids = np.array([0, 0, 1, 3])
    p = np.array([0.5, 0.25, 0.25])
    assert ct.unigram_entropy(ids, 4) == pytest.approx(-(p * np.log(p)).sum())


def test_unknown_prompt_characters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="never uses"):
        ct.run(epochs=1, prompt="Zebra", text=TEXT, out=tmp_path, **SMALL)
