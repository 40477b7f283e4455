"""`python -m bridge.admission > deploy/base/webhook.yaml`: print the in-cluster webhook configurations."""

from .manifests import render_deploy_manifest

print(render_deploy_manifest(), end="")
