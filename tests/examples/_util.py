"""Helpers shared by the example tests: reading a run folder back."""
from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

import chainrule as cr

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def weights(folder: Path) -> dict[str, np.ndarray]:
    """The run's model.safetensors as NumPy arrays."""
    return {k: v.numpy() for k, v in cr.load(folder / "model.safetensors").items()}


def assert_same_weights(a: Path, b: Path) -> None:
    """Bitwise equality of two runs' final weights."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert wa[key].dtype == wb[key].dtype, key
        assert wa[key].tobytes() == wb[key].tobytes(), f"{key} differs"


def without_time(history: list[dict]) -> list[dict]:
    """Metrics rows without the wall-clock column."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def read_csv(path: Path) -> list[dict[str, float]]:
    """metrics.csv rows as floats."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def check_run_folder(folder: Path, history: list[dict], param_names) -> None:
    """Every file of the run folder exists and parses, and agrees with ``history``."""
    rows = read_csv(folder / "metrics.csv")
    assert len(rows) == len(history)
    for row, expected in zip(rows, history):
        assert row.keys() == expected.keys()
        for key, value in expected.items():
            assert row[key] == float(value), key  # written with repr: exact round trip
    assert (folder / "metrics.png").read_bytes().startswith(PNG_SIGNATURE)
    svg = ET.parse(folder / "graph.svg").getroot()
    assert svg.tag.endswith("svg")
    dot = (folder / "graph.dot").read_text()
    assert dot.startswith("digraph")
    for name in param_names:  # leaves are labelled with the parameter names
        assert name in dot, name
    state = cr.load(folder / "model.safetensors")
    assert set(state) == set(weights(folder))
    ckpt = cr.load(folder / "checkpoint.safetensors")
    assert ckpt["epoch"] == len(history) and ckpt["batch"] == 0
    assert without_time(ckpt["history"]) == without_time(history)
    for key, value in state.items():
        assert np.array_equal(ckpt["model"][key].numpy(), value.numpy()), key
