"""A small causal Transformer language model over characters, trained on the
documentation text that ships with Python (``pydoc_data.topics``, via
``chainrule.data.datasets.char_corpus``).

Token and position embeddings feed a few pre-norm ``nn.TransformerEncoderLayer`` blocks
with a causal mask (each position attends to itself and the past only); a final
LayerNorm and a linear head give the next character's logits. Training minimizes the
cross-entropy per character with AdamW (linear warm-up, then an exponential decay that
depends on the step only, so resumed runs match). The validation loss is compared with
the unigram entropy of the training text, the loss of a model that ignores context,
and the run ends with a sample drawn at a temperature from a seeded generator.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import numpy as np

from .. import nn
from ..core.dispatch import no_grad
from ..core.tensor import Tensor
from ..data import DataLoader
from ..data.datasets import CharCorpus, char_corpus
from ..nn import functional as F
from ..ops.creation import Generator, arange, manual_seed
from ..optim import AdamW
from ..optim.lr_scheduler import LambdaLR
from .runner import RUN_FILES, Progress, Run, Task, count_parameters

NAME = "char-transformer"
DESCRIPTION = "a causal Transformer language model over the characters of Python's docs"
DEFAULTS: dict[str, Any] = {
    "epochs": 8, "lr": 5e-3, "seed": 0, "batch_size": 32, "block_size": 64,
    "d_model": 64, "heads": 4, "layers": 2, "d_ff": 256, "steps_per_epoch": 60,
    "warmup": 30, "decay": 0.996, "weight_decay": 0.01, "clip": 1.0, "val_batches": 8,
    "sample_chars": 300, "temperature": 0.8, "prompt": "The ",
}


def _gelu(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


class CharTransformer(nn.Module):
    """Embeddings, ``layers`` causal pre-norm Transformer blocks, LayerNorm, linear head:
    (B, T) character indices -> (B, T, vocab_size) next-character logits."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int = 64, heads: int = 4,
                 layers: int = 2, d_ff: int = 256, dropout: float = 0.0):
        super().__init__()
        self.block_size = block_size
        self.token = nn.Embedding(vocab_size, d_model)      # (vocab, C)
        self.position = nn.Embedding(block_size, d_model)   # (block, C)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout, activation=_gelu,
                                       batch_first=True, norm_first=True)
            for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        future = np.triu(np.ones((block_size, block_size), dtype=bool), 1)
        self.register_buffer("mask", Tensor(future), persistent=False)  # True: masked
        with no_grad():  # GPT-style small embeddings (N(0, 1) would swamp the blocks)
            nn.init.normal_(self.token.weight, std=0.02)
            nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"CharTransformer: sequence of {t} characters is longer than "
                             f"block_size {self.block_size}")
        x = self.token(idx) + self.position(arange(t))  # (B, T, C)
        mask = self.mask[:t, :t]                         # (T, T)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)  # (B, T, C)
        return self.head(self.norm(x))                   # (B, T, vocab)


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """The entropy (nats per character) of the character frequencies in ``ids``: the
    cross-entropy of the best model that ignores the context."""
    p = np.bincount(ids, minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def generate(model: CharTransformer, corpus: CharCorpus, prompt: str, n: int,
             temperature: float, generator: Generator) -> str:
    """Continue ``prompt`` by ``n`` characters, each drawn from the softmax of the
    logits divided by ``temperature`` (uniforms from ``generator``)."""
    ids = list(corpus.encode(prompt).data)
    model.eval()
    with no_grad():
        for _ in range(n):
            context = Tensor(np.array([ids[-model.block_size:]], dtype=np.int64))  # (1, T)
            logits = model(context)[0, -1].numpy().astype(np.float64)          # (vocab,)
            z = logits / temperature
            p = np.exp(z - z.max())
            cdf = np.cumsum(p / p.sum())
            u = generator.rng.random()
            ids.append(int(min(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)))
    return corpus.decode(ids)


def _val_batches(corpus: CharCorpus, batches: int, batch_size: int) -> list[tuple]:
    """A fixed validation set: ``batches`` batches of windows spread evenly over the
    validation text."""
    val = corpus.val
    starts = np.linspace(0, len(val) - 1, batches * batch_size).astype(np.int64)
    return [val.get_batch(chunk) for chunk in np.split(starts, batches)]


def run(epochs: int | None = None, lr: float | None = None, seed: int | None = None, *,
        out: str | os.PathLike | None = None, resume: bool = False, verbose: bool = True,
        progress: bool | None = None, steps_per_epoch: int | None = None,
        layers: int | None = None, d_model: int | None = None, block_size: int | None = None,
        sample_chars: int | None = None, prompt: str | None = None, text: str | None = None,
        on_batch_end: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Train the language model, write the run folder (default
    ``runs/char-transformer``) and print a sample; return the final metrics
    (``val_loss``, ``unigram_entropy``, ...), the ``sample``, the ``history``,
    ``parameters`` and ``seconds``.

    An epoch is ``steps_per_epoch`` batches drawn from the shuffled training windows.
    ``text`` replaces the pydoc corpus (tests use a small one); the sample continues
    ``prompt``. The last line printed is
    ``val loss: X nats/char (unigram entropy Y)``.
    """
    start = time.perf_counter()
    session = Run(NAME, out, resume=resume, verbose=verbose, progress=progress)
    cfg = session.settings(DEFAULTS, epochs=epochs, lr=lr, seed=seed,
                           steps_per_epoch=steps_per_epoch, layers=layers, d_model=d_model,
                           block_size=block_size, sample_chars=sample_chars, prompt=prompt)
    corpus = char_corpus(cfg["block_size"], text=text)
    unknown = sorted(set(cfg["prompt"]) - set(corpus.stoi))
    if unknown:
        raise ValueError(f"{NAME}: the prompt {cfg['prompt']!r} has characters the text "
                         f"never uses: {unknown}")
    baseline = unigram_entropy(corpus.train.data.data, corpus.vocab_size)
    val_batches = _val_batches(corpus, cfg["val_batches"], cfg["batch_size"])

    manual_seed(cfg["seed"])
    model = CharTransformer(corpus.vocab_size, cfg["block_size"], cfg["d_model"],
                            cfg["heads"], cfg["layers"], cfg["d_ff"])
    optimizer = AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    warmup, decay = cfg["warmup"], cfg["decay"]
    scheduler = LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup)
                         * decay ** max(0, s - warmup))
    loader = DataLoader(corpus.train, batch_size=cfg["batch_size"], shuffle=True)

    def loss_of(x: Tensor, y: Tensor) -> Tensor:
        logits = model(x)                                       # (B, T, vocab)
        return F.cross_entropy(logits.reshape(-1, corpus.vocab_size), y.reshape(-1))

    def step(batch) -> tuple[Tensor, int, dict[str, float]]:
        x, y = batch                                            # (B, T) each
        loss = loss_of(x, y)
        return loss, y.numel(), {"loss": loss.item() * y.numel()}

    def evaluate() -> dict[str, float]:
        with no_grad():
            losses = [loss_of(x, y).item() for x, y in val_batches]
        return {"val_loss": float(np.mean(losses))}

    n_params = count_parameters(model)
    session.header(f"{NAME}: {DESCRIPTION}", [
        ("model", f"{cfg['layers']} pre-norm blocks, d_model {cfg['d_model']}, "
                  f"{cfg['heads']} heads, context {cfg['block_size']}; {n_params:,} parameters"),
        ("data", f"{len(corpus.text):,} characters, vocabulary {corpus.vocab_size}: "
                 f"{len(corpus.train.data):,} train / {len(corpus.val.data):,} validation"),
        ("training", f"{cfg['epochs']} epochs x {cfg['steps_per_epoch']} steps, batch "
                     f"{cfg['batch_size']}, AdamW lr {cfg['lr']:g} (warm-up "
                     f"{warmup}, x{decay:g} per step), clip {cfg['clip']:g}"),
        ("baseline", f"unigram entropy of the training text: {baseline:.3f} nats/char"),
        ("run folder", str(session.folder)),
    ])
    task = Task(model=model, optimizer=optimizer, step=step, evaluate=evaluate, loader=loader,
                scheduler=scheduler, schedule_per_batch=True,
                batches_per_epoch=cfg["steps_per_epoch"], max_grad_norm=cfg["clip"])
    history = session.train(task, cfg["epochs"], on_batch_end)
    final = history[-1]
    sample = generate(model, corpus, cfg["prompt"], cfg["sample_chars"],
                      cfg["temperature"], Generator(cfg["seed"]))
    seconds = time.perf_counter() - start
    session.say(f"wrote {', '.join(RUN_FILES)} to {session.folder}; {seconds:.1f} s in all",
                f"sample (temperature {cfg['temperature']:g}, seed {cfg['seed']}):", "",
                sample, "")
    session.result(f"val loss: {final['val_loss']:.3f} nats/char (unigram entropy "
                   f"{baseline:.3f}, {math.exp(final['val_loss']):.1f} vs "
                   f"{math.exp(baseline):.1f} perplexity)")
    return {**final, "unigram_entropy": baseline, "sample": sample, "history": history,
            "parameters": n_params, "seconds": seconds}
