"""The bridge's Prometheus metrics (served on VMSNAP_METRICS_PORT)."""

from prometheus_client import Counter, Gauge

EVENTS = Counter("vmsnap_bridge_events", "watched changes handled", ["resource", "kind"])
OPERATIONS_SENT = Counter("vmsnap_bridge_operations_sent",
                          "operations sent to VM queues (re-sends are de-duplicated by the queue)", ["operation"])
SIGNALS_SENT = Counter("vmsnap_bridge_signals_sent", "signals sent to running workflows", ["signal"])
FAILURES = Counter("vmsnap_bridge_failures", "watched changes whose handling failed (retried at resync)")
RELISTS = Gauge("vmsnap_bridge_relists", "full lists made (start, 410 Gone)", ["resource"])
BACKLOG = Gauge("vmsnap_bridge_backlog", "watched changes received and not handled yet, waiting or in hand (lag)")
CAUGHT_UP = Gauge("vmsnap_bridge_caught_up_seconds",
                  "seconds from start until every change of the first lists was handled (0 until then)")
# VirtualMachineSnapshotSchedule: the VMs its VMsFailing condition names (snapshot failed vmFailuresBeforeAlert or
# more runs in a row), read from each schedule's status as the bridge sees it; removed with the schedule
SCHEDULE_FAILING_VMS = Gauge("vmsnap_schedule_failing_vms",
                             "VMs of a snapshot schedule whose scheduled snapshot failed vmFailuresBeforeAlert or "
                             "more runs in a row (its VMsFailing condition)", ["namespace", "schedule"])
