"""A VirtualMachine read for admission: its metadata and only the spec fields a rule looks at.

Next to VM Operator, VirtualMachine objects carry many fields that api.VirtualMachine types loosely or not at
all; an oddity in one of them must never make this webhook refuse a VM update (or a snapshot) for a reason
unrelated to snapshots. So each rule reads only what it judges, and only a problem there is reported.
"""

from __future__ import annotations

from typing import Any

from api.virtualmachine import VirtualMachine, VirtualMachineSpec


def vm_view(document: dict[str, Any], *spec_fields: str) -> VirtualMachine:
    """The VM with its metadata and the named spec fields (python names, e.g. "current_snapshot_name").

    Raises pydantic's ValidationError, with locations in the object's JSON, if one of those does not parse.
    """
    spec = document.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    aliases = [VirtualMachineSpec.model_fields[name].alias or name for name in spec_fields]
    metadata = document.get("metadata")
    return VirtualMachine.model_validate({
        "metadata": metadata if isinstance(metadata, dict) else {},
        "spec": {alias: spec[alias] for alias in aliases if alias in spec},
    })
