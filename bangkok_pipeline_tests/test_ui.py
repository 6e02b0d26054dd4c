"""End to end with `bangkok-pipeline up` and its daemon, checked in a real browser: with a second
building registered (`buildings add`), the sensor loads both buildings' months it finds, the UI
shows every ingestion asset and their lineage, a month's materialization metadata and its plots
over the building × month partitions, the checks (per partition, with the coverage heatmap), the
sensors and schedules; a day appended to a file is loaded on its own (the
time until it is queryable is printed); SIGTERM stops everything cleanly.

Drives Debian's headless Chromium through /usr/bin/chromedriver (`.ci/run` installs both).
Screenshots go to `test-output/ui/` under the test's tmp_path; their paths are printed. Three of
them are the README's pictures: `--readme-screenshots DIR` copies them to DIR once the test has
passed (`pytest bangkok_pipeline_tests/test_ui.py --readme-screenshots docs/images`).
"""

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.definitions import defs
from bangkok_pipeline.defs.ingestion.partitions import monthly_partitions, partition_key
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline.runtime.services import free_port
from bangkok_pipeline.source.layout import BUILDING

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MONTH = "2019-02"  # a whole month: its partition page, its checks, the coverage heatmap
# The first SHORT_DAYS days of the next month: a second partition for the metadata plots, and
# the month a day is appended to (a reload of three days, not of a whole month).
SHORT_MONTH = "2019-03"
SHORT_DAYS = 3
CUBEMS_MONTH = partition_key(BUILDING, MONTH)
TOWER = "Tower B"  # a second building, registered before `up`: its SHORT_MONTH days load too
INGESTION_ASSETS = (
    "raw_readings",
    "validated_readings",
    "sensor_readings",
    "hourly_aggregates",
    "daily_aggregates",
)
README_SHOTS = ("asset-graph", "metadata-plots", "coverage-heatmap")
README_SHOT_MAX_BYTES = 300_000
CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1300",  # tall enough for the heatmap dialog (204 sensors x 4 px)
)
PAGE_TIMEOUT_S = 90  # generous: CI machines are small and the daemon may be loading

# Boxes of the elements a selector matches (arguments[0]), in page CSS pixels.
BOXES_JS = (
    "return [...document.querySelectorAll(arguments[0])]"
    ".map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0)"
    ".map(r => [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]);"
)
# Each lineage node's text, by asset name (the nodes are HTML inside SVG foreignObjects).
GRAPH_NODES_JS = (
    "return Object.fromEntries([...document.querySelectorAll('svg foreignObject')]"
    ".map(f => [...f.children].map(c => c.innerText).join('\\n'))"
    ".map(text => [text.split('\\n')[0], text]));"
)
# What each metadata plot draws, read from the props its chart component got (the axis labels are
# painted on the canvas, so they are not in the page text): per plot, the x axis title, the
# category labels of the x axis, and the labels that have a point. Null until every chart is
# mounted with a size.
PLOTS_JS = """
const plots = {};
for (const canvas of document.querySelectorAll('canvas')) {
  const key = Object.keys(canvas).find(k => k.startsWith('__reactFiber$'));
  let fiber = key ? canvas[key] : null;
  while (fiber && !(fiber.memoizedProps && fiber.memoizedProps.data
                    && fiber.memoizedProps.options)) {
    fiber = fiber.return;
  }
  if (!fiber || canvas.width === 0 || canvas.height === 0) return null;
  const {data, options} = fiber.memoizedProps;
  const points = data.datasets[0].data;
  plots[data.datasets[0].label] = {
    title: options.scales.x.title.text,
    labels: data.labels,
    plotted: data.labels.filter((_, i) => points[i] && Number.isFinite(points[i].y)),
  };
}
return Object.keys(plots).length ? plots : null;
"""

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs /usr/bin/chromium and /usr/bin/chromedriver "
        "(apt-get install chromium chromium-driver)",
    ),
]


def _cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from bangkok_pipeline.cli.main import main; main()", *args]


def _wait_for_line(process: subprocess.Popen[bytes], output: Path, prefix: str) -> str:
    """The first line of `output` starting with `prefix`, once `process` has written it."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for line in output.read_text().splitlines():
            if line.startswith(prefix):
                return line
        if process.poll() is not None:
            pytest.fail(f"`up` exited with {process.returncode}:\n{output.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"`up` printed no {prefix!r} line in 300 s:\n{output.read_text()}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROME_ARGS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=ChromeService(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Pages:
    """Open UI paths, wait for texts to render, keep a screenshot of each; `readme` names the
    screenshots that are the README's pictures."""

    def __init__(self, driver: webdriver.Chrome, base: str, shots: Path) -> None:
        self.driver = driver
        self.base = base
        self.shots = shots
        self.saved: list[Path] = []
        self.readme: dict[str, Path] = {}
        shots.mkdir(parents=True, exist_ok=True)
        # The UI greets a fresh browser on 127.0.0.1 with a newsletter dialog; it stays away once
        # `communityNux` is set (ui-core useStateWithStorage). The navigation shrunk to its icons
        # leaves the pages more room.
        driver.get(f"{base}/server_info")
        driver.execute_script(
            "window.localStorage.setItem('communityNux', '\"1\"');"
            "window.localStorage.setItem('dagster-nav-collapsed', 'true');"
        )

    def expect(self, name: str, path: str, texts: list[str]) -> str:
        """Open `path`, wait until the page shows every text, screenshot it; the page text."""
        self.driver.get(self.base + path)
        return self._wait_for(name, texts)

    def asset_graph(self, focus: str, depth: int, assets: tuple[str, ...]) -> None:
        """The lineage tab of `focus`, `depth` steps up- and downstream; waits until each node of
        `assets` shows its status, then keeps the graph alone (README picture)."""
        partitions = f"{2 * len(monthly_partitions.get_partition_keys())} partitions"
        # Zoomed out enough that a chain of five nodes in three groups fits 1600 px.
        self.driver.execute_script("window.localStorage.setItem('lineageGraphZoomLevel', '0.7')")
        self.driver.get(f"{self.base}/assets/{focus}?view=lineage&lineageDepth={depth}")

        def loaded(_: object) -> bool:
            nodes = self.driver.execute_script(GRAPH_NODES_JS)
            return all(
                asset in nodes
                and partitions in nodes[asset]
                and "Loading" not in nodes[asset]
                and "Latest event\n–" not in nodes[asset]
                for asset in assets
            )

        self._until(loaded, "asset-graph", f"the lineage of {assets} with their status")
        self._readme("asset-graph", self.driver.execute_script(BOXES_JS, "svg foreignObject"))

    def metadata_plots(self, asset: str, partitions: list[str]) -> dict[str, Any]:
        """The Plots view of `asset`'s metadata on its overview; waits until every plot has a
        point for each of `partitions`, keeps the first two rows of plots (README picture) and
        returns what each plot draws (see PLOTS_JS)."""
        self.expect(f"{asset}-overview", f"/assets/{asset}", ["Metadata", "Plots"])
        self.driver.find_element(By.XPATH, "//button[normalize-space(.)='Plots']").click()
        plots: dict[str, Any] = {}

        def drawn(_: object) -> bool:
            nonlocal plots
            if "Loading plots" in self.driver.find_element(By.TAG_NAME, "body").text:
                return False
            plots = self.driver.execute_script(PLOTS_JS) or {}
            return bool(plots) and all(p["plotted"] == partitions for p in plots.values())

        self._until(drawn, f"{asset}-plots", f"plots with points for {partitions}")
        heading = self.driver.find_element(By.XPATH, "//*[normalize-space(text())='Metadata']")
        toggle = self.driver.find_element(By.XPATH, "//button[normalize-space(.)='Partitions']")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", heading)
        boxes = self.driver.execute_script(BOXES_JS, "canvas")[:4]
        boxes += self._boxes_of(heading) + self._boxes_of(toggle)
        self._readme("metadata-plots", boxes, top=0)  # the tab bar's edge is 2 px above
        return plots

    def check_partition(self, name: str, building: str, month: str, texts: list[str]) -> str:
        """On a check's page (shown), its Partitions tab (a column of buildings by a column of
        months) with `building`'s `month` selected; waits until the details show every text,
        screenshots them; the page text."""
        self.driver.find_element(By.XPATH, "//button[normalize-space(.)='Partitions']").click()
        self._wait_for(f"{name}-list", [f"{2 * 18} Partitions", building, month])
        for key in (building, month):
            self.driver.find_element(By.XPATH, f"//*[normalize-space(text())='{key}']").click()
        return self._wait_for(name, texts)

    def show_markdown(self, key: str, readme: str | None = None) -> None:
        """Open the Markdown of metadata entry `key` on the page shown (the UI's dialog), wait
        for its images to load, screenshot it; with `readme`, also the dialog alone down to its
        last paragraph (README picture of that name)."""
        link = self.driver.find_element(
            By.XPATH,
            f"//*[normalize-space(text())='{key}']/following::*[contains(text(),'Show Markdown')]",
        )
        link.click()
        WebDriverWait(self.driver, PAGE_TIMEOUT_S).until(
            lambda driver: driver.execute_script(
                "const images = [...document.querySelectorAll('img')]"
                ".filter(i => i.src.startsWith('data:image/'));"
                "return images.length > 0 && images.every(i => i.complete && i.naturalWidth);"
            )
        )
        self._shoot(f"{key}-markdown")
        if readme:
            box = self.driver.execute_script(
                "const image = [...document.querySelectorAll('img')]"
                ".find(i => i.src.startsWith('data:image/'));"
                "const dialog = image.closest('.dagster-dialog').getBoundingClientRect();"
                "const text = [...image.closest('.dagster-dialog').querySelectorAll('p')].pop()"
                ".getBoundingClientRect();"
                "return [dialog.left, dialog.top, dialog.width, text.bottom + 16 - dialog.top];"
            )
            self._readme(readme, [box], margin=0)

    def _wait_for(self, name: str, texts: list[str]) -> str:
        def body() -> str:
            return self.driver.find_element(By.TAG_NAME, "body").text

        try:
            WebDriverWait(self.driver, PAGE_TIMEOUT_S).until(
                lambda _: all(text in body() for text in texts)
            )
        except TimeoutException:
            self._shoot(f"{name}-FAILED")
            missing = [text for text in texts if text not in body()]
            pytest.fail(
                f"{self.driver.current_url} never showed {missing} (screenshots: {self.saved})"
            )
        self._shoot(name)
        return body()

    def _until(self, condition: Callable[[object], bool], name: str, what: str) -> None:
        try:
            WebDriverWait(self.driver, PAGE_TIMEOUT_S).until(condition)
        except TimeoutException:
            self._shoot(f"{name}-FAILED")
            pytest.fail(f"{self.driver.current_url} never showed {what} ({self.saved})")

    def _boxes_of(self, element: WebElement) -> list[list[float]]:
        rect = element.rect
        return [[rect["x"], rect["y"], rect["width"], rect["height"]]]

    def _readme(
        self, name: str, boxes: list[list[float]], margin: int = 12, top: int | None = None
    ) -> None:
        """Keep the smallest area around `boxes` (page CSS pixels), widened by `margin` (at the
        top by `top`, if given), as the README picture `name` (Chrome's DevTools protocol clips
        the screenshot)."""
        left = max(min(b[0] for b in boxes) - margin, 0)
        upper = max(min(b[1] for b in boxes) - (margin if top is None else top), 0)
        right = max(b[0] + b[2] for b in boxes) + margin
        bottom = max(b[1] + b[3] for b in boxes) + margin
        clip = {"x": left, "y": upper, "width": right - left, "height": bottom - upper, "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "clip": clip}
        )
        target = self._next(f"readme-{name}")
        target.write_bytes(base64.b64decode(shot["data"]))
        self.readme[name] = target

    def _shoot(self, name: str) -> None:
        self.driver.save_screenshot(str(self._next(name)))

    def _next(self, name: str) -> Path:
        target = self.shots / f"{len(self.saved) + 1:02d}-{name}.png"
        self.saved.append(target)
        return target


def _readings_on(url: str, day: str, days: int = 1, building: int = 1) -> int:
    """Readings of `building` in `sensor_readings` from `day` (Bangkok) on, for `days` days."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sensor_readings WHERE ts >= %s::timestamptz "
            "AND ts < %s::timestamptz + make_interval(days => %s) "
            "AND sensor_id / 32768 + 1 = %s",
            (f"{day} 00:00+07", f"{day} 00:00+07", days, building),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 300) -> float:
    """Seconds until `condition` holds; fails the test after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def _months_after(month: str, count: int) -> list[str]:
    months, current = [], Month.parse(month)
    for _ in range(count):
        current = current.next()
        months.append(str(current))
    return months


def test_up_loads_through_the_sensor_shows_it_in_the_ui_and_picks_up_an_appended_day(
    tmp_path: Path,
    browser: webdriver.Chrome,
    capsys: pytest.CaptureFixture[str],
    readme_screenshots: Path | None,
) -> None:
    """`up` with its daemon: the sensor loads the months found in the source directory, the UI
    shows them, and a day appended to a file is queryable soon after (the latency is printed)."""
    home = tmp_path / "home"
    source = tmp_path / "source"
    env = {
        **os.environ,
        "BANGKOK_HOME": str(home),
        "CUBEMS_SOURCE_DIR": str(source),
        "BANGKOK_SENSOR_INTERVAL_SECONDS": "5",
    }
    for name in ("DATABASE_URL", "DAGSTER_HOME", "BANGKOK_DAGSTER_PG_URL"):
        env[name] = ""
    generate(source, [Month.parse(MONTH), Month.parse(SHORT_MONTH)], seed=5)
    tower = tmp_path / "tower"
    generate(tower, [Month.parse(SHORT_MONTH)], seed=29)
    short_end = f"\n{SHORT_MONTH}-{SHORT_DAYS + 1:02d} ".encode()
    for path in sorted([*source.glob("*Floor*.csv"), *tower.glob("*Floor*.csv")]):
        data = path.read_bytes()
        path.write_bytes(data[: data.index(short_end) + 1])
    appended_day = f"{SHORT_MONTH}-{SHORT_DAYS:02d}"
    floor3 = source / "2019Floor3.csv"
    data = floor3.read_bytes()
    cut = data.index(f"\n{appended_day} ".encode()) + 1
    floor3.write_bytes(data[:cut])
    up_output = tmp_path / "up.out"
    up: subprocess.Popen[bytes] | None = None
    pages: Pages | None = None
    try:
        for command in (("db", "migrate"), ("buildings", "add", TOWER, "--source", str(tower))):
            done = subprocess.run(_cli_command(*command), env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
        port = free_port()
        with up_output.open("wb") as output:
            up = subprocess.Popen(
                _cli_command("up", "--host", "127.0.0.1", "--port", str(port)),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
        ui = _wait_for_line(up, up_output, "Dagster UI: ").split()[2]
        assert ui == f"http://127.0.0.1:{port}"
        url = subprocess.run(
            _cli_command("db", "url"), env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        first_load = _wait_until(
            lambda: (
                _readings_on(url, f"{MONTH}-27") > 0
                and _readings_on(url, appended_day) > 0
                and _readings_on(url, f"{SHORT_MONTH}-01", building=2) > 0
            ),
            "the sensor-triggered first load of both buildings' months",
        )
        rows_loaded = str(_readings_on(url, f"{MONTH}-01", days=28))

        pages = Pages(browser, ui, tmp_path / "test-output" / "ui")
        pages.expect("catalog", "/assets", list(INGESTION_ASSETS))
        partition = pages.expect(
            "sensor-readings-partition",
            f"/assets/sensor_readings?view=partitions&partition={quote(CUBEMS_MONTH)}",
            ["Latest materialization", "rows_loaded", rows_loaded, "partition_size"],
        )
        assert f"{MONTH}\nMaterialized" in partition

        # The plots' x axis is the partitions, from the first on and in order, with a point at
        # each loaded month. Dagster 1.13.27 continues the axis past the last partition up to
        # the month before today (its descending partition-key pagination, which the plots
        # use, starts at today and ignores end_date; README "The Dagster UI"): whatever
        # follows the partitions must be that run of months, nothing else.
        loaded = [CUBEMS_MONTH, partition_key(BUILDING, SHORT_MONTH)]
        plots = pages.metadata_plots(
            "sensor_readings", [*loaded, partition_key(TOWER, SHORT_MONTH)]
        )
        partitions = monthly_partitions.get_partition_keys()
        axis = plots["rows_loaded"]["labels"]
        assert plots["rows_loaded"]["title"] == "Partition"
        per_building = len(axis) // 2  # the building dimension in the order buildings were added
        overshoot = _months_after(partitions[-1], per_building - len(partitions))
        assert axis == [
            partition_key(building, month)
            for building in (BUILDING, TOWER)
            for month in [*partitions, *overshoot]
        ], axis
        assert {"completeness", "duration_s", "rows_per_second"} <= set(plots)

        pages.expect(
            "sensor-readings-reconciliation",
            "/assets/sensor_readings?view=checks&checkDetail=reconciliation",
            ["reconciliation\nSucceeded", "This is a blocking asset check", "Passed"],
        )
        pages.check_partition(  # both buildings' loaded months passed: 3 of the 36
            "reconciliation-partition",
            BUILDING,
            MONTH,
            ["Passed (3)", f"{CUBEMS_MONTH}\nPassed", "mismatched_sensors 0"],
        )
        pages.expect(
            "sensor-readings-coverage",
            "/assets/sensor_readings?view=checks&checkDetail=coverage",
            ["coverage", "heatmap", "least_complete_sensors"],
        )
        pages.check_partition(
            "coverage-partition",
            BUILDING,
            MONTH,
            [f"{CUBEMS_MONTH}\n", "heatmap", "least_complete_sensors"],
        )
        pages.show_markdown("heatmap", readme="coverage-heatmap")
        heatmaps = browser.execute_script(
            "return [...document.querySelectorAll('img')]"
            ".filter(i => i.src.startsWith('data:image/png;base64,'))"
            ".map(i => [i.naturalWidth, i.naturalHeight, i.alt])"
        )
        assert heatmaps and heatmaps[0][0] > 0 and heatmaps[0][1] > 0, heatmaps  # decoded
        assert heatmaps[0][2] == f"coverage of {MONTH}: sensors x days"
        pages.asset_graph("sensor_readings", 2, INGESTION_ASSETS)  # once the checks have run
        assert defs.sensors is not None and defs.schedules is not None
        automations = [s.name for s in defs.sensors] + [s.name for s in defs.schedules]
        assert {"source_files_sensor", "nightly_ingest_schedule"} <= set(automations)
        pages.expect("automation", "/automation", automations)

        before = _readings_on(url, appended_day)
        with floor3.open("ab") as handle:
            handle.write(data[cut:])
        latency = _wait_until(
            lambda: _readings_on(url, appended_day) > before, "loading the appended day"
        )
        with capsys.disabled():
            print(
                f"\nfirst load through the sensor: {first_load:.1f} s after `up` answered; "
                f"appended day queryable {latency:.1f} s after it was written; the plots' axis "
                f"runs {len(overshoot)} months past the last partition, for each building"
            )

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0, up_output.read_text()
        assert "stopped dagster-webserver" in up_output.read_text()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()

        assert set(pages.readme) == set(README_SHOTS)
        for name, shot in pages.readme.items():
            assert shot.stat().st_size < README_SHOT_MAX_BYTES, (name, shot.stat().st_size)
        if readme_screenshots is not None:
            readme_screenshots.mkdir(parents=True, exist_ok=True)
            for name, shot in pages.readme.items():
                shutil.copyfile(shot, readme_screenshots / f"{name}.png")
    finally:
        if up is not None and up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
        subprocess.run(_cli_command("db", "stop"), env=env, capture_output=True, timeout=120)
        if pages is not None:
            with capsys.disabled():
                print("\nUI screenshots:", *pages.saved, sep="\n  ")
