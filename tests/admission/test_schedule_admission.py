"""VirtualMachineSnapshotSchedule admission against the REAL apiserver with the bridge's webhooks registered: a
bad cron, an unknown time zone, retention that keeps nothing, a template a VirtualMachineSnapshot would refuse and
a spread window longer than the schedule's interval are each refused, naming the field, and so are a negative (or
too large) spec.retention.keepFailed and a negative spec.vmFailuresBeforeAlert. Some are refused by the CRD's
schema and CEL rules first (`by_schema`), the rest by the schedule's validating webhook (which refuses those too,
for an object that reaches it past an older CRD)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api.schedule_names import SCHEDULE_API_VERSION, SCHEDULE_GROUP, SCHEDULE_KIND, SCHEDULE_PLURAL, SCHEDULE_VERSION
from bridge.admission import SCHEDULE_VALIDATING
from tests.admission.kube_objects import Objects, refused

GOOD: dict[str, Any] = {"schedule": "0 2 * * *", "timeZone": "Europe/Paris", "vmNames": ["db-1"],
                        "template": {"memory": True, "quiesce": {"timeout": "10min"}},
                        "retention": {"keepLast": 3, "daily": 7}, "spreadWindow": "10m"}


def create(objects: Objects, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": SCHEDULE_API_VERSION, "kind": SCHEDULE_KIND, "metadata": {"name": name},
            "spec": {**GOOD, **spec}}
    return objects.custom.create_namespaced_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, objects.namespace,
                                                          SCHEDULE_PLURAL, body)


def test_a_good_schedule_is_admitted(objects: Objects):
    assert create(objects, "nightly")["spec"]["schedule"] == "0 2 * * *"
    assert create(objects, "every-6h", schedule="@every 6h", spreadWindow="1h")["metadata"]["name"] == "every-6h"


@pytest.mark.parametrize(("spec", "field", "says"), [
    ({"schedule": "0 25 * * *"}, "spec.schedule", "hour '25' is out of range 0-23"),
    ({"schedule": "every day"}, "spec.schedule", "has 2 fields"),
    ({"timeZone": "Europe/Atlantis"}, "spec.timeZone", "is not an IANA time zone"),
    ({"template": {"quiesce": {"timeout": "2m"}}}, "spec.template.quiesce.timeout", "below vSphere's minimum"),
    ({"template": {"quiesce": {"timeout": "300m"}}}, "spec.template.quiesce.timeout", "above vSphere's maximum"),
    ({"schedule": "*/5 * * * *", "spreadWindow": "10m"}, "spec.spreadWindow",
     "longer than the shortest time between two runs"),
    ({"retention": {"maxAge": "a while"}}, "spec.retention.maxAge", "is not a duration"),
])
def test_refused_by_the_webhook_naming_the_field(objects: Objects, spec: dict, field: str, says: str):
    refusal = refused(lambda: create(objects, "bad", **spec))
    assert f'admission webhook "{SCHEDULE_VALIDATING.name}" denied the request' in refusal.message
    assert refusal.code == 422 and refusal.fields == {field}
    assert says in refusal.message and f"{SCHEDULE_KIND}.{SCHEDULE_GROUP}" in refusal.message


@pytest.mark.parametrize(("spec", "says"), [
    ({"retention": {}}, "spec.retention keeps nothing"),
    ({"retention": {"keepLast": 0, "daily": 0}}, "spec.retention keeps nothing"),
    ({"vmSelector": {"matchLabels": {"tier": "db"}}}, "exactly one of spec.vmSelector and spec.vmNames"),
    ({"template": {"quiesce": {"timeout": "soon"}}}, "spec.template.quiesce.timeout must be a duration"),
])
def test_refused_by_the_schema_naming_the_field(objects: Objects, spec: dict, says: str):
    refusal = refused(lambda: create(objects, "bad", **spec))
    assert refusal.by_schema and refusal.code == 422
    assert says in refusal.message


def test_a_name_too_long_for_the_label_is_refused(objects: Objects):
    refusal = refused(lambda: create(objects, "s" * 64))
    assert refusal.by_schema and "metadata.name must be at most 63 characters" in refusal.message


def test_keep_failed_and_the_vm_alert_are_admitted_as_given_and_left_out_when_absent(objects: Objects):
    given = create(objects, "given", retention={"keepLast": 3, "keepFailed": 0}, vmFailuresBeforeAlert=5)
    assert given["spec"]["retention"]["keepFailed"] == 0 and given["spec"]["vmFailuresBeforeAlert"] == 5
    absent = create(objects, "absent")  # defaulted by the code (1 and 3), not written into the object
    assert "keepFailed" not in absent["spec"]["retention"] and "vmFailuresBeforeAlert" not in absent["spec"]


@pytest.mark.parametrize(("spec", "field"), [
    ({"retention": {"keepLast": 3, "keepFailed": -1}}, "spec.retention.keepFailed"),
    ({"retention": {"keepLast": 3, "keepFailed": 33}}, "spec.retention.keepFailed"),
    ({"retention": {"keepLast": 3, "keepFailed": "one"}}, "spec.retention.keepFailed"),
    ({"vmFailuresBeforeAlert": -1}, "spec.vmFailuresBeforeAlert"),
    ({"vmFailuresBeforeAlert": 1.5}, "spec.vmFailuresBeforeAlert"),
])
def test_failure_counts_are_whole_numbers_refused_naming_the_field(objects: Objects, spec: dict, field: str):
    refusal = refused(lambda: create(objects, "bad", **spec))
    assert refusal.by_schema and refusal.code == 422
    # a wrong type also gets the apiserver's own causes without a field (`<nil>`)
    assert field in refusal.message and field in refusal.fields, (refusal.message, refusal.fields)
    assert refusal.fields <= {field, "<nil>"}, refusal.fields


@pytest.mark.parametrize(("spec", "field", "says"), [
    ({"retention": {"keepLast": 3, "keepFailed": -1}}, "spec.retention.keepFailed", "from 0 to 32"),
    ({"retention": {"keepLast": 3, "keepFailed": 40}}, "spec.retention.keepFailed", "from 0 to 32"),
    ({"vmFailuresBeforeAlert": -1}, "spec.vmFailuresBeforeAlert", "0 or more"),
])
async def test_the_webhook_refuses_failure_counts_too(spec: dict, field: str, says: str):
    """What the schema refuses first, the webhook refuses on its own as well (a cluster with an older CRD)."""
    from bridge.admission.review import AdmissionRequest
    from bridge.admission.schedule_validation import validate_schedule

    request = AdmissionRequest.model_validate({
        "uid": "u", "kind": {"group": SCHEDULE_GROUP, "version": SCHEDULE_VERSION, "kind": SCHEDULE_KIND},
        "operation": "CREATE", "object": {"apiVersion": SCHEDULE_API_VERSION, "kind": SCHEDULE_KIND,
                                          "metadata": {"name": "bad"}, "spec": {**GOOD, **spec}}})
    verdict = await validate_schedule(request)
    (error,) = verdict.errors
    assert error.field == field and says in str(error), str(error)


def test_an_update_is_checked_too(objects: Objects):
    create(objects, "nightly")
    refusal = refused(lambda: objects.custom.patch_namespaced_custom_object(
        SCHEDULE_GROUP, SCHEDULE_VERSION, objects.namespace, SCHEDULE_PLURAL, "nightly",
        {"spec": {"timeZone": "Nowhere/Special"}}))
    assert refusal.fields == {"spec.timeZone"}


def test_the_docs_example_is_admitted(objects: Objects):
    page = (Path(__file__).resolve().parents[2] / "docs" / "schedules.md").read_text()
    block = page.split("kubectl apply -f - <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    manifest = yaml.safe_load(block)
    assert manifest["kind"] == SCHEDULE_KIND
    created = objects.custom.create_namespaced_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, objects.namespace,
                                                             SCHEDULE_PLURAL, manifest)
    assert created["spec"] == manifest["spec"]
