"""The benchmark scripts' own logic (their timings are printed figures, never tested)."""
import argparse
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_speed_switches_combine_with_plus():
    ts = load("train_speed")
    assert ts.switch_settings("compile") == {"compile": "on"}
    assert ts.switch_settings("channels_last+compile") == {"channels_last": True, "compile": "on"}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown switch 'fp16'"):
        ts.switch_settings("channels_last+fp16")
