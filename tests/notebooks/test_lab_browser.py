"""Notebook 03 in a real JupyterLab, driven by a headless Chromium (selenium).

Runs every cell through the UI (smoke profile), checks that no cell shows a traceback, plays
with the explorer's widgets (seed slider, class dropdown: the grid must change), saves,
reloads the page and checks that the explorer's static default picture survived and that no
widget failed to display.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; without them
the test skips (under CI with a browser present, a missing driver fails instead).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

import pytest

import labdriver

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "03_mnist_dcgan_kd.ipynb"
RUN_TIMEOUT = 600      # smoke 03 takes about 3.5 min on 2 CPU cores
KERNEL_TIMEOUT = 120   # kernel start
WIDGET_TIMEOUT = 30    # a redraw after a widget change (a few 16-image grids on the CPU)

pytestmark = [pytest.mark.notebook, pytest.mark.browser]

# ------------------------------------------------------------------ page probes (JavaScript)

_PANEL = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"

JS_STATE = f"""
const panel = {_PANEL};
if (!panel) return null;
const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator')
            || document.querySelector('.jp-Notebook-ExecutionIndicator');
const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell.jp-CodeCell')];
const errors = [];
cells.forEach((cell, i) => {{
  cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
                        + ' [data-mime-type="application/vnd.jupyter.error"]').forEach(o => {{
    const text = o.textContent || '';
    if (text.includes('Traceback') || o.dataset.mimeType === 'application/vnd.jupyter.error')
      errors.push({{cell: i, text: text.slice(0, 3000)}});
  }});
}});
return {{
  status: ind ? ind.dataset.status : null,
  prompts: cells.map(c => (c.querySelector('.jp-InputPrompt')?.textContent || '').trim()),
  errors: errors,
}};
"""

# the explorer cell: the notebook's last code cell
_CELL = f"[...({_PANEL}).querySelectorAll('.jp-Notebook .jp-Cell.jp-CodeCell')].pop()"

JS_EXPLORER = f"""
const panel = {_PANEL};
if (!panel) return null;
const cell = {_CELL};
if (!cell) return null;
const area = cell.querySelector('.jp-Cell-outputArea');
const top = area ? [...area.querySelectorAll(':scope > .jp-OutputArea-child > .jp-OutputArea-output')] : [];
const first = top[0];
const box = cell.querySelector('.gankd-explorer');
const labels = box ? [...box.querySelectorAll('.widget-label')].map(l => l.textContent.trim()) : [];
const view = box ? box.querySelector('.gankd-explorer-view img') : null;
return {{
  outputs: top.map(o => o.dataset.mimeType
                   || (o.matches('.jupyter-widgets') || o.querySelector('.jupyter-widgets') ? 'widget' : '')),
  static_src: first && first.dataset.mimeType === 'image/png' ? (first.querySelector('img')?.src || '') : null,
  box: !!box,
  box_after_static: !!(box && top.length > 1 && top.slice(1).some(o => o.contains(box))),
  labels: labels,
  view_src: view ? view.src : null,
}};
"""


JS_WIDGET_ERRORS = f"""
const needle = 'Error displaying widget';
const panel = {_PANEL};
const cells = panel ? [...panel.querySelectorAll('.jp-Notebook .jp-Cell.jp-CodeCell')] : [];
return {{
  page: (document.body.textContent || '').includes(needle),
  cells: cells.map((c, i) => (c.textContent || '').includes(needle) ? i : -1).filter(i => i >= 0),
}};
"""


JS_CONTROL = """
const [kind, label] = arguments;
for (const el of document.querySelectorAll('.gankd-explorer .widget-' + kind)) {
  const lab = el.querySelector('.widget-label');
  if (lab && lab.textContent.trim() === label) return el;
}
return null;
"""


def _control(driver, kind: str, label: str):
    """The explorer's ``.widget-<kind>`` (slider, dropdown) described ``label``, or None."""
    return driver.execute_script(JS_CONTROL, kind, label)


# ------------------------------------------------------------------ waits

def _poll(fn, timeout: float, interval: float = 0.5):
    """Call ``fn`` until it returns something truthy (returned) or ``timeout`` seconds pass (None).

    An element that went stale (a widget view redrawn between two calls) counts as not yet.
    """
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def _wait(what: str, fn, timeout: float, interval: float = 0.5):
    """Like :func:`_poll`, but a timeout fails the test, naming ``what`` it waited for."""
    value = _poll(fn, timeout, interval)
    if not value:
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
    return value


def _state(driver):
    return driver.execute_script(JS_STATE)


def _explorer(driver):
    return driver.execute_script(JS_EXPLORER) or {}


def _numbered(prompt: str) -> bool:
    return re.fullmatch(r"\[\d+\]:", prompt) is not None


def _widget_errors(driver) -> dict:
    """Where the page says "Error displaying widget": anywhere, and in which code cells."""
    return driver.execute_script(JS_WIDGET_ERRORS)


def _fail_on_errors(state):
    if state and state["errors"]:
        e = state["errors"][0]
        pytest.fail(f"code cell {e['cell']} shows a traceback:\n{e['text']}")


def _settled_view(driver, timeout: float = WIDGET_TIMEOUT) -> str:
    """The explorer's current grid once the kernel is idle and the picture stopped changing."""
    seen = {"src": None, "since": 0.0}

    def stable():
        src = _explorer(driver).get("view_src")
        now = time.monotonic()
        if src != seen["src"]:
            seen.update(src=src, since=now)
            return None
        idle = (_state(driver) or {}).get("status") == "idle"
        return src if src and idle and now - seen["since"] >= 1.5 else None

    return _wait("the explorer's picture to settle", stable, timeout, interval=0.3)


def _view_changes_from(driver, before: str, what: str) -> str:
    def changed():
        src = _explorer(driver).get("view_src")
        return src if src and src != before else None

    return _wait(f"the explorer's picture to change after {what}", changed, WIDGET_TIMEOUT, interval=0.3)


def _menu(driver, menu: str, command: str, attempts: int = 3, done=None, timeout: float = 15):
    """Menu bar ``menu`` > its entry bound to ``command`` (a JupyterLab command id), until ``done()``.

    The entry is clicked only once it is enabled; when ``done`` does not come true within
    ``timeout`` seconds (a menu closed by a late focus change), the menu is opened again.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def title():
        return next((m for m in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text.strip() == menu),
                    None)

    def entry():
        return next((e for e in driver.find_elements(By.CSS_SELECTOR, f'.lm-Menu-item[data-command="{command}"]')
                     if e.is_displayed() and "lm-mod-disabled" not in (e.get_attribute("class") or "")), None)

    for attempt in range(1, attempts + 1):
        _wait(f"the {menu} menu", title, 30).click()
        item = _poll(entry, 10)
        if item is None:  # not shown, or disabled: close the menu and open it again
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
            continue
        item.click()
        if done is None or _poll(done, timeout, interval=0.3):
            return
    pytest.fail(f"{menu} > {command} had no effect after {attempts} attempts")


def _saved_cells(path: Path):
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


# ------------------------------------------------------------------ fixtures

def _browser_or_skip():
    chromium, chromedriver = labdriver.find_chromium(), labdriver.find_chromedriver()
    missing = []
    if not chromium:
        missing.append("no Chromium binary (apt-get install chromium)")
    if not chromedriver:
        missing.append("no chromedriver (apt-get install chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package is not installed (pip install -r requirements.txt)")
    if missing:
        msg = "JupyterLab browser test: " + "; ".join(missing)
        if os.environ.get("CI") and chromium:
            pytest.fail(msg + " (CI has a browser, so this test must run)")
        pytest.skip(msg)
    return chromium, chromedriver


@pytest.fixture
def browser_bins():
    return _browser_or_skip()


@pytest.fixture
def lab(browser_bins, tmp_path, data_root, mnist_train):  # browser first: a skip starts nothing
    """JupyterLab on 127.0.0.1 with notebook 03 (smoke profile) in its private root folder."""
    server = labdriver.LabServer(tmp_path / "lab", env={
        "PYTHONPATH": str(REPO_ROOT),
        "GANKD_RESULTS": str(tmp_path / "results"),
        "GANKD_TEACHERS": str(tmp_path / "teachers"),
        "GANKD_DATA_ROOT": str(Path(data_root).resolve()),
        "GANKD_OFFLINE": os.environ.get("GANKD_OFFLINE", "1"),
        "GANKD_HEADLESS": None,  # the papermill runner sets it; the explorer's widgets need it unset
        "MPLBACKEND": None,      # the kernel's inline backend
    })
    labdriver.set_parameters(REPO_ROOT / "notebooks" / NOTEBOOK, server.root / NOTEBOOK, PROFILE="smoke")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def driver(browser_bins, tmp_path):
    chromium, chromedriver = browser_bins
    d = labdriver.chrome(chromium, chromedriver, tmp_path / "chromium-profile", tmp_path / "chromedriver.log")
    try:
        yield d
    finally:
        with contextlib.suppress(Exception):
            d.quit()


@contextlib.contextmanager
def _diagnostics(driver, lab, out: Path):
    """On failure keep a screenshot, the page and the server log next to the test's files."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(out / "failure.png"))
            (out / "failure.html").write_text(driver.page_source)
        print(f"[browser test] screenshot, page and logs under {out}\n--- JupyterLab log (tail) ---\n"
              f"{lab.log_tail()}")
        raise


# ------------------------------------------------------------------ the test

def test_notebook_03_in_jupyterlab(lab, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    t0 = time.monotonic()
    with _diagnostics(driver, lab, tmp_path):
        # 1. open the notebook; its kernel starts
        n_code = len(_saved_cells(lab.root / NOTEBOOK))

        def rendered():
            s = _state(driver)
            return s and s["status"] == "idle" and len(s["prompts"]) == n_code

        driver.get(lab.lab_url(NOTEBOOK))
        _wait(f"the notebook's {n_code} code cells and an idle kernel", rendered, KERNEL_TIMEOUT)

        # 2. Run > Run All Cells; wait until the kernel is idle and the last cell has its number
        def started():
            prompts = _state(driver)["prompts"]
            return "[*]:" in prompts or _numbered(prompts[-1])

        # activate the notebook first (a click on its first cell's prompt): the menu acts on the current panel
        driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt"
                            ).click()
        _menu(driver, "Run", "runmenu:run-all", done=started)

        def finished():
            s = _state(driver)
            _fail_on_errors(s)
            if s["status"] == "dead":
                pytest.fail("the kernel died")
            return s["status"] == "idle" and _numbered(s["prompts"][-1]) and "[*]:" not in s["prompts"]

        _wait("every cell to run (kernel idle, last cell numbered)", finished, RUN_TIMEOUT, interval=2)
        t_run = time.monotonic() - t0

        # 3. the explorer: a static PNG of the default grid first, then the widget box
        def explorer_complete():
            e = _explorer(driver)
            return e if e.get("box") and e.get("view_src") else None

        ex = _poll(explorer_complete, 60) or _explorer(driver)  # else the asserts below say what is missing
        assert ex.get("outputs"), "the explorer cell shows no output"
        assert ex["outputs"][0] == "image/png", \
            f"the explorer cell's first output must be a PNG image of the default grid, got {ex['outputs']}"
        assert ex["static_src"].startswith("data:image/png"), ex["static_src"][:80]
        assert ex["box"], "no widget box with CSS class 'gankd-explorer' in the explorer cell"
        assert ex["box_after_static"], f"the widget box must follow the static image: {ex['outputs']}"
        assert ex["view_src"], "no <img> in the explorer's '.gankd-explorer-view' Output"
        for label in ("model", "seed", "samples"):
            assert label in ex["labels"], f"explorer controls {ex['labels']} lack {label!r}"
        static_src = ex["static_src"]

        # 4a. the seed slider: focus its handle, press the Right arrow; the picture changes
        before = _settled_view(driver)
        seed = _control(driver, "slider", "seed")
        assert seed is not None, "no IntSlider described 'seed' in the explorer"
        handle = seed.find_element(By.CSS_SELECTOR, ".noUi-handle")
        value0 = handle.get_attribute("aria-valuenow")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
        handle.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        _wait("the seed slider to move", lambda: _control(driver, "slider", "seed").find_element(
            By.CSS_SELECTOR, ".noUi-handle").get_attribute("aria-valuenow") != value0, 10)
        _view_changes_from(driver, before, "moving the seed slider")

        # 4b. the class dropdown (conditional models only: choose such a model first when needed)
        def select(label):  # looked up afresh: the box may redraw a row when the model changes
            box = _control(driver, "dropdown", label)
            return Select(box.find_element(By.TAG_NAME, "select")) if box else None

        current = _settled_view(driver)
        if select("class") is None:
            chosen = select("model").first_selected_option.text
            for name in [o.text for o in select("model").options if o.text != chosen]:
                select("model").select_by_visible_text(name)
                _view_changes_from(driver, current, f"choosing model {name!r}")
                current = _settled_view(driver)
                if select("class") is not None:
                    break
        cls = select("class")
        assert cls is not None, "no model of the explorer shows a 'class' dropdown"
        chosen = cls.first_selected_option.get_attribute("value")
        cls.select_by_index(next(i for i, o in enumerate(cls.options) if o.get_attribute("value") != chosen))
        _view_changes_from(driver, current, "choosing another class")
        _settled_view(driver)
        t_widgets = time.monotonic() - t0 - t_run

        # 5. File > Save Notebook: the file on disk holds the explorer's static picture
        def saved():
            cells = _saved_cells(lab.root / NOTEBOOK)
            outputs = cells[-1].get("outputs") if cells else None
            return bool(outputs) and "image/png" in outputs[0].get("data", {})

        _menu(driver, "File", "docmanager:save", done=saved, timeout=30)

        # ... reload the page: the static picture is still there, no widget fails to display
        driver.refresh()
        _wait("the notebook to render again", lambda: len((_state(driver) or {}).get("prompts", [])) == n_code, 90)
        _wait("the explorer's static picture after the reload", lambda: _explorer(driver).get("static_src"), 60)
        ex = _explorer(driver)
        assert ex["outputs"][0] == "image/png" and ex["static_src"] == static_src, \
            f"after a reload the explorer cell must still show its default grid first, got {ex['outputs']}"
        _wait("the explorer's widgets to come back from the live kernel (or a widget error)",
              lambda: _explorer(driver).get("box") or _widget_errors(driver)["page"], WIDGET_TIMEOUT)
        time.sleep(3)  # the other widget views resolve their models at the same time
        errors = _widget_errors(driver)
        assert not errors["page"], \
            f"'Error displaying widget' after the reload, in code cells {errors['cells']} (0-based)"
        assert _explorer(driver).get("box"), "the explorer's widgets did not come back after the reload"
        _fail_on_errors(_state(driver))
    print(f"[browser test] run all {t_run:.0f} s, widgets {t_widgets:.0f} s, total {time.monotonic() - t0:.0f} s")
