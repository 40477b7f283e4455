"""Activity that waits for vCenter to report snapshot-tree changes (of snapshots made or removed anywhere,
vCenter's UI included), so the Kubernetes status follows within seconds."""

from __future__ import annotations

import time

from temporalio import activity

from activities.kube.bound_vms import BoundVMs
from activities.vsphere.change_feed import SnapshotChangeFeed


class VSphereTreeWatchActivities:
    def __init__(self, feed: SnapshotChangeFeed, bound_vms: BoundVMs | None = None):
        self.feed = feed
        self.bound_vms = bound_vms

    @activity.defn(name="vsphere_wait_for_snapshot_changes")
    def wait_for_snapshot_changes(self, seconds: float) -> list[str]:
        """The VMs (morefs) whose snapshot tree changed; waits up to `seconds` for one, heartbeating. VMs no
        object here is bound to are not reported (nothing to write for them). A worker shutting down ends the wait
        at once, with nothing changed: the watch's next wait runs on a worker that stays (waiting out `seconds`
        held every worker's drain ~20 s)."""
        deadline = time.monotonic() + seconds
        while True:
            changed = self.feed.take(timeout=min(5.0, max(0.0, deadline - time.monotonic())))
            if changed and self.bound_vms is not None and self.bound_vms.synced:
                changed = self.bound_vms.bound(changed)
            if changed or time.monotonic() >= deadline or activity.is_worker_shutdown():
                return sorted(changed)
            activity.heartbeat()
