"""Lab 02's explorer and a `labkit report` page in a real browser: JupyterLab and headless Chromium (Selenium
with Debian's chromium-driver). Skipped, with the reason, where Chromium, its driver, JupyterLab or Selenium is
missing. Screenshots are kept under pytest's tmp path and their paths printed (pytest -s shows them)."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.grading.lab_grading import SOLUTIONS

pytestmark = pytest.mark.slow

NOTEBOOK = SOLUTIONS / "02_cgan_mnist.ipynb"
EXPLORER_CALL = "explorer = explore_tools.explore("
SERVER_TIMEOUT = 120      # JupyterLab's first start builds its workspace
RUN_TIMEOUT = 600         # the notebook's cells above the explorer in quick mode, on a busy 2-core CPU
REDRAW_TIMEOUT = 120      # one explorer frame: a kernel round trip and one figure


def _requirements() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: apt-get install -y chromium chromium-driver)"
    for module in ("selenium", "jupyterlab", "ipywidgets"):
        try:
            __import__(module)
        except ImportError:
            return f"Python package {module} not installed (pip install jupyterlab selenium ipywidgets)"
    return ""


REASON = _requirements()
requires_browser = pytest.mark.skipif(bool(REASON), reason=REASON or "browser available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on a free local port over a folder holding lab 02's solution; yields (url, folder)."""
    root = tmp_path_factory.mktemp("jupyterlab")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port, token = _free_port(), "labkit-browser-test"
    settings = root / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')   # no pop-up over outputs
    env = {**_kernel_env(), "JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".jupyter" / "lab" / "user-settings")}
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                               f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
                               f"--ServerApp.root_dir={root}", "--ip=127.0.0.1", "--allow-root"], cwd=root, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + SERVER_TIMEOUT
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"JupyterLab exited or did not answer within {SERVER_TIMEOUT} s; see {root / 'jupyterlab.log'}")
            time.sleep(1)
    yield f"{url}/lab/tree/{NOTEBOOK.name}?token={token}", root
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def _wait(condition, timeout: float, what: str, poll: float = 1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"{what} did not happen within {timeout} s")


def _explorer_index() -> int:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return next(i for i, c in enumerate(cells) if EXPLORER_CALL in "".join(c["source"]))


def _frame_png(driver, index: int) -> bytes:
    """The explorer's current frame (the image in its output), as PNG bytes of a browser screenshot."""
    from selenium.webdriver.common.by import By

    cell = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[index]
    images = cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    return images[-1].screenshot_as_png if images else b""


@requires_browser
def test_the_explorer_redraws_when_a_slider_moves_in_jupyterlab(browser, jupyterlab, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _ = jupyterlab
    index = _explorer_index()
    browser.get(url)
    _wait(lambda: browser.execute_script("return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                         " && window.jupyterapp.shell.currentWidget.sessionContext"
                                         " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                         " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel)"),
          SERVER_TIMEOUT, "the notebook opening with a kernel")
    # Everything above the explorer (quick mode: one epoch, the shipped checkpoint for Section 2), then the explorer.
    browser.execute_script(f"""
        const panel = window.jupyterapp.shell.currentWidget;
        panel.content.activeCellIndex = {index};
        window.jupyterapp.commands.execute('notebook:run-all-above').then(
            () => window.jupyterapp.commands.execute('notebook:run-cell'));""")
    sliders = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .widget-slider .noUi-handle")
                    and _frame_png(browser, index) and browser.find_elements(
                        By.CSS_SELECTOR, ".jp-Notebook .widget-slider .noUi-handle"), RUN_TIMEOUT,
                    "the explorer's sliders and first frame appearing")
    before = _frame_png(browser, index)
    first = tmp_path / "explorer_before.png"
    first.write_bytes(before)
    sliders[0].click()                                   # the "class" slider: 3 -> 4
    sliders[0].send_keys(Keys.ARROW_RIGHT)
    after = _wait(lambda: (png := _frame_png(browser, index)) and png != before and png, REDRAW_TIMEOUT,
                  "the frame changing after the class slider moved")
    second = tmp_path / "explorer_after.png"
    second.write_bytes(after)
    browser.save_screenshot(str(tmp_path / "jupyterlab.png"))
    print(f"screenshots: {first} {second} {tmp_path / 'jupyterlab.png'}")
    from PIL import Image, ImageChops

    a, b = (Image.open(io.BytesIO(png)).convert("L") for png in (before, after))
    b = b.resize(a.size)                 # the element's box may round to a pixel more or less
    changed = ImageChops.difference(a, b).point(lambda v: 255 if v > 64 else 0)
    assert changed.getbbox() is not None and sum(changed.histogram()[255:]) > 0.01 * a.size[0] * a.size[1]


def _kernel_env() -> dict:
    """The environment for kernels that show live widgets and inline figures (the tests run with
    LABKIT_HEADLESS and the Agg backend, which would hide both)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LABKIT_HEADLESS", "MPLBACKEND")}
    env.update(LABKIT_QUICK="1", LABKIT_OFFLINE="1", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return env


def _report_notebook(folder: Path) -> Path:
    """A small executed notebook like a student's: a heading, an answer, a figure and a three-frame training GIF."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Lab report\n\n## Section 1"),
        nbformat.v4.new_code_cell(
            "import torch\nfrom labkit.viz.plotting import image_grid\nfrom labkit.viz.animation import show_gif, "
            "write_grid_gif\ntorch.manual_seed(0)\nimages = torch.rand(20, 1, 28, 28) * 2 - 1\n"
            "image_grid(images, torch.arange(2).repeat_interleave(10), nrow=10, class_names=['zero', 'one']);"),
        nbformat.v4.new_code_cell(
            "frames = [(epoch, images * (epoch + 1) / 3) for epoch in range(3)]\n"
            "show_gif(write_grid_gif(frames, 'training.gif', nrow=10, labels=torch.arange(2).repeat_interleave(10)))"),
        nbformat.v4.new_markdown_cell("**Your answers:** the grid shows two classes, one per row."),
    ]
    path = folder / "report_me.ipynb"
    nbformat.write(nb, path)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "notebook", "--inplace",
                    str(path)], check=True, cwd=folder, env=_kernel_env(), capture_output=True)
    return path


@requires_browser
def test_a_report_page_shows_its_images_and_animated_gifs(browser, tmp_path):
    notebook = _report_notebook(tmp_path)
    page = tmp_path / "report.html"
    subprocess.run([sys.executable, "-m", "labkit", "report", str(notebook), "--out", str(page)], check=True,
                   cwd=tmp_path)
    browser.get(page.as_uri())
    _wait(lambda: browser.execute_script("return document.readyState") == "complete", 30, "the report loading")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0, "
        "getComputedStyle(i).display !== 'none' && i.offsetParent !== null])")
    shown = [src for src, loaded, visible in images if visible]
    assert shown and all(loaded for _, loaded, visible in images if visible), "an image of the report did not load"
    gifs = [src for src in shown if src.startswith("data:image/gif")]
    assert gifs, "the report shows no GIF"
    from PIL import Image

    for src in gifs:
        assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).n_frames >= 3
    assert any(src.startswith("data:image/png") for src in shown), "the report shows no figure"
    screenshot = tmp_path / "report.png"
    browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")
