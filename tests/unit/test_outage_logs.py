"""While Temporal is unreachable the SDK warns for every retried call and logs a stack trace per failed report;
the product's log handler keeps one line of each kind per minute, and leaves every other line alone."""

from __future__ import annotations

import logging

from temporalio.service import RPCError, RPCStatusCode

from runtime.temporal import OutageLogFilter, is_outage, outage_text

RETRY = ("[sdk_core::temporalio_client::retry] gRPC call poll_activity_task_queue retried {n} times "
         "{{'error': 'Status {{ code: Unavailable, message: \"tcp connect error\", source: Some(...) }}'}}")


def record(name: str, msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, None,
                             (type(exc), exc, None) if exc is not None else None)


def test_retries_of_one_kind_make_one_line():
    keep = OutageLogFilter(window=60)
    first = record("temporalio.core-retry", RETRY.format(n=5))
    assert keep.filter(first)
    assert first.getMessage().startswith("[sdk_core::temporalio_client::retry] gRPC call poll_activity_task_queue "
                                         "retried 5 times: Unavailable: tcp connect error")
    assert "\n" not in first.getMessage() and "source" not in first.getMessage()
    assert not any(keep.filter(record("temporalio.core-retry", RETRY.format(n=n))) for n in range(6, 20))
    other = record("temporalio.core-retry", RETRY.format(n=5).replace("poll_activity", "poll_workflow"))
    assert keep.filter(other), "another call is another kind: said once too"


def test_a_stack_trace_for_an_unreachable_temporal_becomes_one_line():
    keep = OutageLogFilter()
    error = RPCError("Not enough hosts to serve the request", RPCStatusCode.UNAVAILABLE, b"")
    failed = record("temporalio.activity", "Failed completing activity task", error)
    assert keep.filter(failed)
    assert failed.exc_info is None
    assert failed.getMessage().startswith("Failed completing activity task (UNAVAILABLE: Not enough hosts")


def test_other_lines_pass_untouched():
    keep = OutageLogFilter()
    ours = record("vmsnap.bridge", "Temporal unreachable (UNAVAILABLE: x): holding 3 changes")
    bug = record("temporalio.workflow", "Failed handling activation", ValueError("a bug"))
    assert keep.filter(ours) and keep.filter(ours)
    assert keep.filter(bug) and bug.exc_info is not None


def test_outage_statuses():
    assert is_outage(RPCError("down", RPCStatusCode.UNAVAILABLE, b""))
    assert not is_outage(RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b""))
    assert not is_outage(RuntimeError("Unavailable"))
    assert outage_text(RPCError("down", RPCStatusCode.DEADLINE_EXCEEDED, b"")) == "DEADLINE_EXCEEDED: down"
