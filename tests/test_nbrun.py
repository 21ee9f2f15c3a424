"""The executed copies keep what Jupyter shows: one stream output per run of refreshes, each bar's last drawing."""
import json

import pytest

from gankd_utils import nbrun, paths


def _stream(text, name="stderr"):
    return {"output_type": "stream", "name": name, "text": text}


def test_collapse_streams_keeps_each_bars_last_drawing():
    fig = {"output_type": "display_data", "data": {"text/plain": "<Figure>"}, "metadata": {}}
    outs = [_stream("train:   0%|   | 0/3\r"), _stream("train:  33%|#  | 1/3\r"),
            _stream("train: 100%|###| 3/3\n"), _stream("loaded 3 runs\n", "stdout"), _stream("note: a\n", "stdout"),
            fig, _stream("\rscore:  50%|#  | 1/2"), _stream("\rscore: 100%|##| 2/2\r\n"),
            _stream("tune:  10%|   | 1/9\r" + " " * 20 + "\r", "stdout")]
    got = nbrun.collapse_streams(outs)
    assert [o["output_type"] for o in got] == ["stream", "stream", "display_data", "stream", "stream"]
    assert got[0] == _stream("train: 100%|###| 3/3\n")
    assert got[1] == _stream("loaded 3 runs\nnote: a\n", "stdout")  # plain lines are untouched, only joined
    assert got[2] is fig
    assert got[3]["text"] == "score: 100%|##| 2/2\n"
    assert got[4]["text"] == ""  # a bar that clears itself when done (tqdm's leave=False) leaves nothing
    # nbformat may keep a text as a list of lines
    assert nbrun.collapse_streams([_stream(["a\r", "b\n"])])[0]["text"] == "b\n"


def test_tidy_executed_collapses_streams_and_relativises_paths(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("train()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=f"step {i}/200\r") for i in range(200)]
    nb.cells = [cell]
    nb.metadata["papermill"] = {"input_path": str(paths.REPO_ROOT / "notebooks" / "03_x.ipynb"),
                                "output_path": "/elsewhere/out.ipynb"}
    f = tmp_path / "executed.ipynb"
    nbformat.write(nb, f)
    nbrun.tidy_executed(f)
    got = json.loads(f.read_text())
    outs = got["cells"][0]["outputs"]
    assert len(outs) == 1 and "".join(outs[0]["text"]) == "step 199/200"
    assert got["metadata"]["papermill"] == {"input_path": "notebooks/03_x.ipynb", "output_path": "/elsewhere/out.ipynb"}
