"""lrsflows-report on real runs trained through the CLI (two finished, one failed, one stopped), and the page it
writes opened in headless Chromium: it renders, shows the table and every picture, and needs nothing but itself."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import escape
from PIL import Image, ImageStat
from test_cli import TINY_2D, lrsflows, start

from lrsflows.results.report import write_report

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH and `make test` could not install it (apt-get install chromium)"
)
WINDOW = (1280, 2400)
# Appended to a copy of the page: once everything has loaded, how many <img> decoded, out of how many.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter((image) => image.complete && image.naturalWidth > 0).length;
  document.body.setAttribute("data-images", decoded + "/" + images.length);
});
</script>"""


def report_command(*arguments: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("lrsflows-report")
    return subprocess.run([str(command), *arguments], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder of runs: a two-model sweep of 40 steps, a run that fails at start and one stopped mid-training."""
    work = tmp_path_factory.mktemp("report")
    runs = work / "runs"
    common = [*TINY_2D, "dataset=rings", "trainer.max_steps=40", "trainer.val_every=10"]
    lrsflows("-m", *common, "model=lrs,rq_nsf", f"hydra.sweep.dir={runs / 'sweep'}", cwd=work)
    failed = lrsflows(*common, "dataset.num_train=100", f"hydra.run.dir={runs / 'failed'}", cwd=work, check=False)
    assert failed.returncode == 1, failed.stderr
    stopped_dir = runs / "stopped"
    stopping = start([*common, "seed=1", "trainer.max_steps=1000000", f"hydra.run.dir={stopped_dir}"], cwd=work)
    deadline = time.monotonic() + 120
    while "val/log_prob" not in _text(stopped_dir / "metrics.csv") and time.monotonic() < deadline:
        time.sleep(0.1)
    stopping.send_signal(signal.SIGTERM)
    stopping.communicate(timeout=60)
    assert not (stopped_dir / "results.json").exists() and (stopped_dir / "checkpoints" / "last.pt").is_file()
    return runs


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


@pytest.fixture(scope="module")
def page(runs) -> Path:
    done = report_command(str(runs))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {runs / 'report.html'}"
    return runs / "report.html"


def chromium(*arguments: str, home: Path) -> subprocess.CompletedProcess:
    """Headless Chromium with its profile under `home` (a test's tmp_path), as root when the tests run as root."""
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    command = [CHROMIUM, "--headless", "--disable-gpu", *sandbox, f"--user-data-dir={home / 'profile'}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return done


def test_the_page_holds_everything_itself(page):
    html = page.read_text()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references and all(link.startswith(("data:image/png;base64,", "#")) for link in references), references
    assert "<script" not in html and "<link" not in html and "url(" not in html
    # The sweep's runs drew one density picture each; the stopped run none yet; one curve chart for rings.
    assert html.count("<img") == 3


@needs_chromium
def test_chromium_shows_the_table_curves_and_pictures(runs, page, tmp_path):
    screenshot = tmp_path / "report.png"
    chromium(f"--screenshot={screenshot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", page.as_uri(), home=tmp_path)
    print(f"screenshot: {screenshot}")
    with Image.open(screenshot) as image:
        assert image.size == WINDOW
        assert ImageStat.Stat(image.convert("L")).var[0] > 500, "the screenshot is (nearly) blank"

    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), home=tmp_path).stdout
    decoded, total = re.search(r'data-images="(\d+)/(\d+)"', dom).groups()
    assert decoded == total == "3", f"{decoded} of {total} pictures decoded"
    for results in sorted((runs / "sweep").rglob("results.json")):
        record = json.loads(results.read_text())
        assert f"{record['value']:.3f} ± " in dom, record["value"]  # the table cell, as lrsflows-tables writes it
        assert str(record["num_parameters"]) in dom  # provenance
    assert "LRS (C)" in dom and "RQ-NSF (C)" in dom and "2-D densities: test log-likelihood" in dom
    assert "density_step0000040.png" in dom


def test_runs_without_results_are_listed_with_what_is_known(runs, page):
    html = page.read_text()
    listing = html[html.index('id="without-results"') : html.index('id="runs"')]
    reason = json.loads((runs / "failed" / "failure.json").read_text())["error"]
    assert "exceeds the 100 training examples" in reason and re.search(
        rf"failed.*?>failed<.*?<td>none</td><td>{re.escape(escape(reason))}</td>", listing, re.DOTALL
    ), listing
    last_step = pd.read_csv(runs / "stopped" / "metrics.csv")["step"].max()
    assert re.search(rf"unfinished.*?>stopped<.*?<td>{last_step}</td>", listing, re.DOTALL), listing


def test_write_report_takes_another_path_and_refuses_a_folder_without_runs(runs, tmp_path):
    out = tmp_path / "elsewhere" / "sweep.html"
    assert write_report(runs / "sweep", out) == out and out.read_text().count("<img") == 3
    with pytest.raises(FileNotFoundError, match="no training run under"):
        write_report(out.parent)
    done = report_command(str(tmp_path / "missing"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{tmp_path / 'missing'} is not a folder" in done.stderr and "Traceback" not in done.stderr
