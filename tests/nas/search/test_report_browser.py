"""``nas report`` opened in a real browser: headless Chromium (Debian's ``chromium`` package; ``.ci/run``
installs it when missing) loads the page with every network request refused, logs no console message, and
the DOM shows the comparison table and every figure decoded."""

import re
import shutil
import subprocess

import pytest

from nas.cli import main
from tests.nas.search.test_report import make_study, make_toy_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium (.ci/run installs it when missing)")]


def chromium(profile, *args, timeout=180):
    """Run headless Chromium with a private profile and every host unresolvable (the page must need no
    network)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_report_loads_in_chromium_with_every_figure(tmp_path):
    make_study(tmp_path / "study")  # nas search on the NB201 table: three strategies × two seeds
    make_toy_study(tmp_path / "toy")  # failures, and a second and third task
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "study"), str(tmp_path / "toy"), "-o", str(page)]) == 0
    figures = page.read_text().count('<img class="plot')
    assert figures == 3 * 2 + 2  # per task (nb201, toy-a, toy-b): curves and a drawing; two filtered groups

    done = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if re.search(r":CONSOLE\b|Uncaught", line)]
    assert not console, console  # the page logs nothing: any console message is an error
    dom = done.stdout
    assert f'id="figures-decoded" data-decoded="{figures}"' in dom, re.findall(r'id="figures-decoded"[^<]*', dom)
    assert "<table>" in dom and ">nb201-cifar10</td>" in dom and ">filtered</td>" in dom

    shot = tmp_path / "report.png"
    done = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", done.stderr[-2000:]
