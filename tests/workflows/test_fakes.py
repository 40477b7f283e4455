"""The fakes stand in for the product's activities: the same names (what the workflows schedule) and the same
argument and result types (what the data converter decodes), so a renamed or retyped activity fails here rather
than as a workflow test that waits for an activity no worker serves."""

from __future__ import annotations

from temporalio import activity

from tests.workflows.fakes import PRODUCT_ACTIVITY_CLASSES, FakeWorld, VMRef

# SnapshotTreeWatch's own activities: that workflow is not among those tested here
TREE_WATCH_ONLY = {"kube_list_vm_targets", "vsphere_wait_for_snapshot_changes"}


def definitions(functions) -> dict[str, activity._Definition]:
    found = (activity._Definition.from_callable(f) for f in functions)
    return {d.name: d for d in found if d is not None}


def test_every_activity_of_the_operation_workflows_has_a_fake_of_the_same_name_and_types():
    product = definitions(f for cls in PRODUCT_ACTIVITY_CLASSES for f in vars(cls).values())
    main, vcenter = FakeWorld(vm=VMRef(namespace="ns", name="vm")).activities()
    fakes = definitions([*main, *vcenter])

    assert len(product) > len(TREE_WATCH_ONLY), "the product's activities were found"
    assert set(fakes) == set(product) - TREE_WATCH_ONLY
    for name, fake in fakes.items():
        assert (fake.arg_types, fake.ret_type) == (product[name].arg_types, product[name].ret_type), name
