"""How vSphere's faults become the messages users read in conditions (pure: pyvmomi fault objects)."""

from pyVmomi import vim, vmodl

from activities.vsphere.tasks import REVERT_CROSSES_FCD_SNAPSHOT_KEY, REVERT_ERROR_KEY, fault_message
from api.messages import REVERT_CROSSES_CSI_VOLUME_SNAPSHOT


def test_a_revert_blocked_by_a_csi_volume_snapshot_says_what_to_do():
    fault = vim.fault.GenericVmConfigFault(faultMessage=[
        vmodl.LocalizableMessage(key=REVERT_ERROR_KEY, message="An error occurred while reverting."),
        vmodl.LocalizableMessage(key=REVERT_CROSSES_FCD_SNAPSHOT_KEY, message="fcd")])
    assert fault_message(fault) == "An error occurred while reverting." + REVERT_CROSSES_CSI_VOLUME_SNAPSHOT
    assert "VolumeSnapshots should be deleted before retrying the revert" in fault_message(fault)


def test_a_plain_revert_error_is_vspheres_own_words():
    fault = vim.fault.GenericVmConfigFault(faultMessage=[
        vmodl.LocalizableMessage(key=REVERT_ERROR_KEY, message="An error occurred while reverting.")])
    assert fault_message(fault) == "An error occurred while reverting."


def test_other_faults_use_their_message_or_type():
    assert fault_message(vim.fault.ToolsUnavailable(msg="VMware Tools is not running")) == \
        "VMware Tools is not running"
    assert fault_message(vim.fault.InvalidPowerState()) == "InvalidPowerState"
