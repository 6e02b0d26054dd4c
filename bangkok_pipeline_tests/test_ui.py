"""End to end with `bangkok-pipeline up` and its daemon, checked in a real browser: the sensor
loads the month it finds, the UI shows every ingestion asset, the month's materialization
metadata and checks, the sensors and schedules; a day appended to a file is loaded on its own
(the time until it is queryable is printed); SIGTERM stops everything cleanly.

Drives Debian's headless Chromium through /usr/bin/chromedriver (`.ci/run` installs both).
Screenshots go to `test-output/ui/` under the test's tmp_path; their paths are printed.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.definitions import defs
from bangkok_pipeline.devtools.generator import generate

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MONTH = "2019-02"
INGESTION_ASSETS = (
    "raw_readings",
    "validated_readings",
    "sensor_readings",
    "hourly_aggregates",
    "daily_aggregates",
)
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
    "--window-size=1600,1000",
)
PAGE_TIMEOUT_S = 90  # generous: CI machines are small and the daemon may be loading

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    """Open UI paths, wait for texts to render, keep a screenshot of each."""

    def __init__(self, driver: webdriver.Chrome, base: str, shots: Path) -> None:
        self.driver = driver
        self.base = base
        self.shots = shots
        self.saved: list[Path] = []
        shots.mkdir(parents=True, exist_ok=True)
        # The UI greets a fresh browser on 127.0.0.1 with a newsletter dialog; it stays away once
        # this key is set (ui-core useStateWithStorage, key `communityNux`).
        driver.get(f"{base}/server_info")
        driver.execute_script("window.localStorage.setItem('communityNux', '\"1\"')")

    def expect(self, name: str, path: str, texts: list[str]) -> str:
        """Open `path`, wait until the page shows every text, screenshot it; the page text."""
        self.driver.get(self.base + path)

        def body() -> str:
            return self.driver.find_element(By.TAG_NAME, "body").text

        try:
            WebDriverWait(self.driver, PAGE_TIMEOUT_S).until(
                lambda _: all(text in body() for text in texts)
            )
        except TimeoutException:
            self._shoot(f"{name}-FAILED")
            missing = [text for text in texts if text not in body()]
            pytest.fail(f"{path} never showed {missing} (screenshots: {self.saved})")
        self._shoot(name)
        return body()

    def show_markdown(self, key: str) -> None:
        """Open the Markdown of metadata entry `key` on the page shown (the UI's dialog), wait
        for its images to load, screenshot it."""
        link = self.driver.find_element(
            By.XPATH,
            f"//*[normalize-space(text())='{key}']/following::*[contains(text(),'Show Markdown')]",
        )
        link.click()
        WebDriverWait(self.driver, PAGE_TIMEOUT_S).until(
            lambda driver: driver.execute_script(
                "const images = [...document.querySelectorAll('img')]"
                ".filter(i => i.src.startsWith('data:image/'));"
                "return images.length > 0 && images.every(i => i.complete);"
            )
        )
        self._shoot(f"{key}-markdown")

    def _shoot(self, name: str) -> None:
        target = self.shots / f"{len(self.saved) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(target))
        self.saved.append(target)


def _readings_on(url: str, day: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sensor_readings WHERE ts >= %s::timestamptz "
            "AND ts < %s::timestamptz + interval '1 day'",
            (f"{day} 00:00+07", f"{day} 00:00+07"),
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


def test_up_loads_through_the_sensor_shows_it_in_the_ui_and_picks_up_an_appended_day(
    tmp_path: Path, browser: webdriver.Chrome, capsys: pytest.CaptureFixture[str]
) -> None:
    """`up` with its daemon: the sensor loads the month found in the source directory, the UI
    shows it, and a day appended to a file is queryable soon after (the latency is printed)."""
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
    generate(source, [Month(2019, 2)], seed=5)
    floor3 = source / "2019Floor3.csv"
    data = floor3.read_bytes()
    cut = data.index(b"\n2019-02-28 ") + 1
    floor3.write_bytes(data[:cut])
    up_output = tmp_path / "up.out"
    up: subprocess.Popen[bytes] | None = None
    pages: Pages | None = None
    try:
        port = _free_port()
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
            lambda: _readings_on(url, "2019-02-27") > 0, "the sensor-triggered first load"
        )
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()
        rows_loaded = str(row[0] if row else 0)

        pages = Pages(browser, ui, tmp_path / "test-output" / "ui")
        pages.expect("catalog", "/assets", list(INGESTION_ASSETS))
        partition = pages.expect(
            "sensor-readings-partition",
            f"/assets/sensor_readings?view=partitions&partition={MONTH}",
            ["Latest materialization", "rows_loaded", rows_loaded, "partition_size"],
        )
        assert f"{MONTH}\nMaterialized" in partition
        pages.expect(
            "sensor-readings-reconciliation",
            "/assets/sensor_readings?view=checks&checkDetail=reconciliation",
            ["reconciliation\nSucceeded", "This is a blocking asset check", "Passed", MONTH],
        )
        pages.expect(
            "sensor-readings-coverage",
            "/assets/sensor_readings?view=checks&checkDetail=coverage",
            ["coverage", "heatmap", "least_complete_sensors"],
        )
        pages.show_markdown("heatmap")
        heatmaps = browser.execute_script(
            "return [...document.querySelectorAll('img')]"
            ".filter(i => i.src.startsWith('data:image/png;base64,'))"
            ".map(i => [i.naturalWidth, i.naturalHeight, i.alt])"
        )
        assert heatmaps and heatmaps[0][0] > 0 and heatmaps[0][1] > 0, heatmaps  # decoded
        assert heatmaps[0][2] == f"coverage of {MONTH}: sensors x days"
        assert defs.sensors is not None and defs.schedules is not None
        automations = [s.name for s in defs.sensors] + [s.name for s in defs.schedules]
        assert {"source_files_sensor", "nightly_ingest_schedule"} <= set(automations)
        pages.expect("automation", "/automation", automations)

        before = _readings_on(url, "2019-02-28")
        with floor3.open("ab") as handle:
            handle.write(data[cut:])
        latency = _wait_until(
            lambda: _readings_on(url, "2019-02-28") > before, "loading the appended day"
        )
        with capsys.disabled():
            print(
                f"\nfirst load through the sensor: {first_load:.1f} s after `up` answered; "
                f"appended day queryable {latency:.1f} s after it was written"
            )

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0, up_output.read_text()
        assert "stopped dagster-webserver" in up_output.read_text()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
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
