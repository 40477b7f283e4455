"""What the bridge, the workflows and the worker must agree on, and nothing else: workflow types, signal and
query names, workflow and schedule IDs (contract/names.py), the payloads they exchange (contract/payloads.py,
contract/schedule_payloads.py) and the one call that starts work from outside a workflow (contract/queue.py).

Below the activities and the workflows, above api/ and runtime/: the bridge starts and signals workflows by
these names without importing workflow or activity code, and a changed name here is a change of the contract
that histories already recorded (tests/workflows/histories)."""
