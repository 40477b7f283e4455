"""How vSphere's faults become text (pure: pyvmomi fault objects): vSphere's words in general (runtime/vsphere.py), the
messages users read in conditions when a task fails (activities/vsphere/tasks.py), and the privileges check's warning
when it could not be made (runtime/vsphere_privileges.py)."""

from pyVmomi import vim, vmodl

from activities.vsphere.tasks import REVERT_CROSSES_FCD_SNAPSHOT_KEY, REVERT_ERROR_KEY, TaskFailed, failure_message
from api.messages import REVERT_CROSSES_CSI_VOLUME_SNAPSHOT
from runtime.vsphere import fault_message, fault_name
from runtime.vsphere_privileges import error_text


def test_a_revert_blocked_by_a_csi_volume_snapshot_says_what_to_do():
    fault = vim.fault.GenericVmConfigFault(faultMessage=[
        vmodl.LocalizableMessage(key=REVERT_ERROR_KEY, message="An error occurred while reverting."),
        vmodl.LocalizableMessage(key=REVERT_CROSSES_FCD_SNAPSHOT_KEY, message="fcd")])
    assert failure_message(fault) == "An error occurred while reverting." + REVERT_CROSSES_CSI_VOLUME_SNAPSHOT
    assert "VolumeSnapshots should be deleted before retrying the revert" in failure_message(fault)
    assert TaskFailed(fault).message == failure_message(fault)


def test_a_plain_revert_error_is_vspheres_own_words():
    fault = vim.fault.GenericVmConfigFault(msg="Reverting failed", faultMessage=[
        vmodl.LocalizableMessage(key="msg.other", message="Something else."),
        vmodl.LocalizableMessage(key=REVERT_ERROR_KEY, message="An error occurred while reverting.")])
    assert failure_message(fault) == "An error occurred while reverting."


def test_other_failed_tasks_use_vspheres_words():
    fault = vim.fault.GenericVmConfigFault(msg="Reconfigure failed", faultMessage=[
        vmodl.LocalizableMessage(key="msg.a", message="The file is locked.")])
    assert failure_message(fault) == fault_message(fault) == "Reconfigure failed The file is locked."


def test_a_faults_words_are_its_message_and_localized_messages_or_its_type():
    assert fault_message(vim.fault.ToolsUnavailable(msg="VMware Tools is not running")) == \
        "VMware Tools is not running"
    assert fault_message(vim.fault.InvalidPowerState()) == "InvalidPowerState"
    assert fault_message(vim.fault.GenericVmConfigFault(faultMessage=[
        vmodl.LocalizableMessage(key="msg.a", message="first"), vmodl.LocalizableMessage(key="msg.b", message=""),
        vmodl.LocalizableMessage(key="msg.a", message="again")])) == "again"


def test_a_fault_is_named_as_vsphere_names_it():
    assert type(vim.fault.InvalidState()).__name__ == "vim.fault.InvalidState"
    assert fault_name(vim.fault.InvalidState()) == "InvalidState"
    assert fault_name(ConnectionRefusedError()) == "ConnectionRefusedError"


def test_the_privileges_warning_names_the_error_and_gives_its_words():
    assert error_text(vmodl.fault.MethodNotFound(msg="HasPrivilegeOnEntities")) == \
        "MethodNotFound: HasPrivilegeOnEntities"
    assert error_text(vmodl.fault.NotSupported()) == "NotSupported"
    assert error_text(ConnectionRefusedError(111, "Connection refused")) == \
        "ConnectionRefusedError: [Errno 111] Connection refused"
    # vSphere's localized messages too, as in a failed task's message
    assert error_text(vim.fault.NoPermission(msg="Permission to perform this operation was denied.", faultMessage=[
        vmodl.LocalizableMessage(key="msg.p", message="System.View on the root folder")])) == \
        "NoPermission: Permission to perform this operation was denied. System.View on the root folder"
