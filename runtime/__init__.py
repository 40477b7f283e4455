"""The shared runtime every process uses, below everything else: settings (the only reader of the environment),
telemetry, the Temporal connection, the Kubernetes access layer, the vCenter session and the health endpoint.
It imports `api` only; workflows, activities, the worker and the bridge import it."""
