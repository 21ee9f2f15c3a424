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


@pytest.mark.parametrize("fast, base", [("off", "fp32"), ("on", "fast")])
def test_train_speed_side_by_side_workers_time_the_path_asked_for(fast, base, monkeypatch, capsys):
    # on a CPU a run trains in fp32 (TrainConfig.fast "auto"): the processes side by side must time that path,
    # not the bf16 one, which a CPU without bf16 instructions emulates many times slower
    ts = load("train_speed")
    cmds = []

    class Worker:
        returncode = 0

        def __init__(self, cmd, **kwargs):
            cmds.append(cmd)

        def communicate(self):
            return "WORKER_MS 10.0\n", None

    monkeypatch.setattr(ts.subprocess, "Popen", Worker)
    ts.concurrent(["cdcgan_c32_scratch"], [1, 2], "smoke", ts.torch.device("cpu"), 3, fast)
    assert len(cmds) == 3 and all(c[c.index("--base") + 1] == base for c in cmds)
    assert ("fp32 eager" if fast == "off" else "the fast path") in capsys.readouterr().out
