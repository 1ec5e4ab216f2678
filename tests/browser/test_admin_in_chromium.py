"""The admin in a real browser (docs/admin.md): headless Chromium, driven by Playwright, logs in to
a live server whose executor and group workers are real processes, uploads a flow, starts an
execution and sees it SUCCESS with its worker; it saves screenshots of the key pages under
tests/browser/screenshots/ (git-ignored). Debian's `chromium` package is the browser (.ci/run
installs it); without one the test is skipped, saying so."""
import shutil
import time

import pytest
from django.contrib.auth import get_user_model

from flows.models import Execution, State
from flows.services import worker_group_samples_record
from tests.support import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "tests" / "browser" / "screenshots"
FLOW = """\
id: browser_check
namespace: company.team
tasks:
  - id: prepare
    type: io.kestra.plugin.core.log.Log
    message: preparing
  - id: fan_out
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: train
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1S
        workerGroup:
          key: gpu
      - id: report
        type: io.kestra.plugin.core.log.Log
        message: "report of {{ execution.id }}"
"""


def wait_for_text(page, selector: str, text: str, *, timeout: float = 45.0) -> None:
    """Reload until `selector` reads `text`: the execution page is not live, as a user would."""
    deadline = time.monotonic() + timeout
    while page.locator(selector).inner_text().strip() != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} still reads {page.locator(selector).inner_text()!r} after {timeout}s")
        time.sleep(0.5)
        page.reload()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH: apt-get install chromium (.ci/run does)")
def test_a_user_uploads_a_flow_runs_it_and_sees_its_worker(engine, live_server):
    from playwright.sync_api import expect, sync_playwright

    get_user_model().objects.create_superuser("admin", "admin@example.com", "browser-pw")
    worker_group_samples_record()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    gpu_worker = f"gpu@{engine.run_id}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        try:
            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "browser-pw")
            page.click("input[type=submit]")
            expect(page.locator("#site-name")).to_be_visible()

            page.goto(f"{live_server.url}/admin/flows/flow/add/")
            page.select_option("#id_tenant_key", "main")
            page.set_input_files("#id_yaml_file", files=[
                {"name": "browser_check.yaml", "mimeType": "application/x-yaml", "buffer": FLOW.encode()}])
            page.click("input[name=_continue]")
            tree = page.locator("#task-tree svg")
            expect(tree).to_contain_text("train Sleep → gpu (task)")
            expect(tree).to_contain_text("report Log → (default) (default)")
            page.locator("#task-tree").screenshot(path=SCREENSHOTS / "flow-tree.png")

            page.click("text=Execute with inputs…")
            page.click("input[value=Execute]")
            wait_for_text(page, ".field-state .readonly", State.SUCCESS.label)
            train = page.locator("#task-runs tr.task-run", has_text="train")
            expect(train.locator("td.worker")).to_have_text(gpu_worker)
            expect(train.locator("td.state")).to_have_text(State.SUCCESS)
            expect(page.locator("#timeline svg")).to_contain_text("run by the executor")  # fan_out, a Parallel
            expect(page.locator("#timeline svg g.bar")).to_have_count(4)
            expect(page.locator("#logs")).to_contain_text("report of")
            page.screenshot(path=SCREENSHOTS / "execution.png", full_page=True)

            page.goto(f"{live_server.url}/admin/flows/workergroup/")
            page.click("#result_list a:text-is('gpu')")
            expect(page.locator("#group-load svg polyline[data-series=running]")).to_have_count(1)
            page.screenshot(path=SCREENSHOTS / "worker-group.png", full_page=True)
        finally:
            browser.close()

    assert Execution.objects.get(flow_id="browser_check").task_runs.get(task_id="train").worker_id == gpu_worker
