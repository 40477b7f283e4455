"""The bridge's side of VirtualMachineGroupSnapshot: one GroupSnapshot saga per object, started when the bridge
sees it (and at every resync until the object says it is finished), and one GroupRevert per generation that sets
spec.revert on a Ready group. The saga's ID is deterministic
(`group-snapshot/<ns>/<name>/<uid>`) and a closed one is never started again, so a second bridge, a restarted one
or a re-list cannot run a group twice. Deleting the group needs nothing from the bridge: its members are owned by
it, and garbage collection deletes them (each through its usual delete)."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.group_snapshot import VirtualMachineGroupSnapshot
from api.group_snapshot_names import GROUP_SNAPSHOT_PLURAL
from bridge.object_sync import ObjectSync
from contract.group_payloads import GroupRef, GroupRevertRef
from contract.names import (
    GROUP_REVERT_WORKFLOW,
    GROUP_SNAPSHOT_WORKFLOW,
    group_revert_workflow_id,
    group_snapshot_workflow_id,
)
from runtime import search_attributes as sa
from runtime.informer import Event
from runtime.telemetry import tracer

log = logging.getLogger("vmsnap.bridge.group_snapshots")


class GroupSnapshotSync(ObjectSync):
    what = "group snapshot"

    def __init__(self, client: Client, task_queue: str):
        super().__init__()
        self.client = client
        self.task_queue = task_queue
        self._started: set[str] = set()   # saga IDs this bridge started or found started

    async def handle(self, event: Event) -> None:
        group = VirtualMachineGroupSnapshot.model_validate(event.obj)
        namespace, name, uid = group.namespace or "", group.name or "", group.metadata.uid or ""
        ref = GroupRef(namespace=namespace, name=name, uid=uid)
        saga = group_snapshot_workflow_id(namespace, name, uid)
        if event.kind == "DELETED" or group.metadata.is_being_deleted:
            self._started = {w for w in self._started if not w.startswith((saga, f"group-revert/{namespace}/{name}/"))}
            return
        if not group.finished:
            await self._start(saga, GROUP_SNAPSHOT_WORKFLOW, ref, f"group snapshot {namespace}/{name}")
        elif group.revert_wanted:
            generation = group.metadata.generation or 0
            await self._start(group_revert_workflow_id(namespace, name, uid, generation), GROUP_REVERT_WORKFLOW,
                              GroupRevertRef(group=ref, generation=generation),
                              f"revert group snapshot {namespace}/{name} (generation {generation})")
        else:
            self._started.discard(saga)

    async def _start(self, workflow_id: str, workflow: str, arg: GroupRef | GroupRevertRef, summary: str) -> None:
        """Start it unless it ran already (a closed one is never started again)."""
        if workflow_id in self._started:
            return
        group = arg if isinstance(arg, GroupRef) else arg.group
        # the root of the group's trace (its members' creates join it: api.group_snapshot_names)
        with tracer().start_as_current_span(f"bridge {workflow} {GROUP_SNAPSHOT_PLURAL}", attributes={
                "k8s.namespace": group.namespace, "k8s.name": group.name}):
            await self._start_workflow(workflow_id, workflow, arg, summary, group)
        self._started.add(workflow_id)

    async def _start_workflow(self, workflow_id: str, workflow: str, arg: GroupRef | GroupRevertRef, summary: str,
                              group: GroupRef) -> None:
        try:
            await self.client.start_workflow(
                workflow, arg, id=workflow_id, task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, static_summary=summary,
                search_attributes=sa.for_group_snapshot(group.namespace, group.name))
            log.info("started %s", workflow_id)
        except WorkflowAlreadyStartedError:
            pass
