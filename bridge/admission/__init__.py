"""Admission for VirtualMachineSnapshot, VirtualMachine, VirtualMachineSnapshotSchedule and
VirtualMachineGroupSnapshot, served by the bridge.

  server          AdmissionServer: the HTTPS server the bridge embeds (start/stop)
  registration    the Mutating/ValidatingWebhookConfigurations registered with the apiserver (Service or URL form)
  manifests       the in-cluster form and deploy/base/webhook.yaml rendered from it
  webhooks        the webhooks: names, paths, resources
  snapshot_mutation, snapshot_validation, vm_validation, schedule_validation, group_validation   what each
                  webhook decides
  review          AdmissionReview in and out; field_errors: refusals in the Kubernetes style
  cluster         the reads of other objects; vm_view: the part of a VM a rule reads
  bypass          when validation steps aside; tls: the reloading certificate
"""

from .manifests import IN_CLUSTER_SERVICE, IN_CLUSTER_USERS, in_cluster_webhook_configurations, render_deploy_manifest
from .registration import DEFAULT_NAMESPACE_SELECTOR, ServiceReference, UrlReference, webhook_configurations
from .server import AdmissionServer
from .webhooks import (
                       GROUP_SNAPSHOT_VALIDATING,
                       MEMBER_DELETE_VALIDATING,
                       MUTATING_WEBHOOKS,
                       SCHEDULE_VALIDATING,
                       SNAPSHOT_MUTATING,
                       SNAPSHOT_VALIDATING,
                       VALIDATING_WEBHOOKS,
                       VM_VALIDATING,
)

__all__ = [
    "AdmissionServer",
    "DEFAULT_NAMESPACE_SELECTOR", "IN_CLUSTER_SERVICE", "IN_CLUSTER_USERS", "ServiceReference", "UrlReference",
    "in_cluster_webhook_configurations", "render_deploy_manifest", "webhook_configurations",
    "MUTATING_WEBHOOKS", "SNAPSHOT_MUTATING", "SNAPSHOT_VALIDATING", "VALIDATING_WEBHOOKS", "VM_VALIDATING",
    "SCHEDULE_VALIDATING", "GROUP_SNAPSHOT_VALIDATING", "MEMBER_DELETE_VALIDATING",
]
