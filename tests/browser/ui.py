"""The Temporal UI as a person reads it: a page's text, including the Markdown the UI renders in frames of their own
(a workflow's Summary, Details and Current Details), waited for until it shows what the test expects. The UI is a
single-page app that keeps polling a running workflow, so a page is never "network idle": tests wait for text."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import quote

from playwright.async_api import Page
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

# how long a page may take to show what it should (the SPA's first render and its API calls on a loaded machine);
# a hang guard, not a timing assertion
SHOWS_WITHIN = 60.0


class TemporalUI:
    def __init__(self, page: Page, base_url: str, namespace: str = "default"):
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.namespace = namespace

    # -- where things are --

    def workflow_list_url(self, query: str) -> str:
        return f"{self.base_url}/namespaces/{quote(self.namespace)}/workflows?query={quote(query, safe='')}"

    def schedule_url(self, schedule_id: str) -> str:
        return f"{self.base_url}/namespaces/{quote(self.namespace)}/schedules/{quote(schedule_id, safe='')}"

    # -- reading --

    async def open(self, url: str) -> None:
        await self.page.goto(url, wait_until="load")

    async def text(self) -> str:
        """What a person reads: the page's text and that of the frames the UI renders Markdown into."""
        parts = [await self.page.inner_text("body")]
        for frame in self.page.frames:
            if frame is self.page.main_frame:
                continue
            try:
                parts.append(await frame.inner_text("body"))
            except Exception:  # noqa: BLE001 - a frame that went away while being read has nothing to show
                continue
        return "\n".join(parts)

    async def shows(self, *needles: str, timeout: float = SHOWS_WITHIN) -> str:
        """Wait until the page shows every one of `needles`; its text then."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            text = await self.text()
            missing = [n for n in needles if n not in text]
            if not missing:
                return text
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.page.url} does not show {missing} after {timeout:.0f}s; it shows:\n{text}")
            await asyncio.sleep(0.5)

    async def rows(self, labels: set[str]) -> list[str]:
        """The labels a workflow's timeline shows, top to bottom: each row names its activity type, after its attempt
        when retried (`Attempt 2 / ∞ • vsphere_create_snapshot • CreateSnapshotEx_Task …`). The dev server's UI
        draws them as text of the page, the UI server's (2.58) as Markdown frames of their own (whose order in the
        document is not the rows'), so rows are placed by where they are drawn."""
        placed: list[tuple[float, str]] = [
            (y, label) for label, y in await self.page.evaluate(_TEXT_POSITIONS, sorted(labels))]
        for frame in self.page.frames:
            if frame is self.page.main_frame:
                continue
            try:
                box = await (await frame.frame_element()).bounding_box()
                label = _label(await frame.inner_text("body"), labels)
            except Exception:  # noqa: BLE001 - a frame that went away while being read is no row
                continue
            if box is not None and label is not None:
                placed.append((box["y"], label))
        return [label for _, label in sorted(placed, key=lambda p: p[0])]

    async def tab(self, test_id: str) -> None:
        """A workflow page's tab by its test id (timeline-tab, history-tab, user-metadata-tab ...)."""
        await self.page.get_by_test_id(test_id).click()


def workflow_ids_shown(text: str) -> set[str]:
    """The workflow IDs a workflow list shows (the product's IDs: kind/namespace/...)."""
    return set(re.findall(r"^\s*((?:create-snapshot|delete-snapshot|revert-snapshot|vm-snapshot-queue|"
                          r"scheduled-snapshot-run)/\S+)", text, flags=re.MULTILINE))


def _label(text: str, labels: set[str]) -> str | None:
    """The first of `labels` a row's text names (its parts are separated by •)."""
    for line in text.splitlines():
        for part in line.split("•"):
            if part.strip() in labels:
                return part.strip()
    return None


# [label, y] of each text node of the page that names one of the labels (the argument), y where it is drawn
_TEXT_POSITIONS = """(labels) => {
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const label = node.textContent.split("•").map((part) => part.trim()).find((part) => labels.includes(part));
    if (label && node.parentElement) found.push([label, node.parentElement.getBoundingClientRect().top]);
  }
  return found;
}"""


async def activities_recorded(client: Client, workflow_id: str) -> list[str]:
    """The activity types a workflow ran, in the order of its history: regular activities as scheduled, local
    activities by their markers."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = e.marker_recorded_event_attributes.details
            if "data" in details:
                names.append(json.loads(details["data"].payloads[0].data)["activity_type"])
    return names
