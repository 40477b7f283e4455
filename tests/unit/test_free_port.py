"""The test bed's ports never come from the kernel's ephemeral range, where a server picking its own ports by
binding port 0 (the Temporal dev server's internal services) could take one before the part it was chosen for
binds it — as once happened to a dev server's metrics port."""

from __future__ import annotations

import socket

from testbed.process import _ephemeral_ports, free_port


def test_ports_come_from_outside_the_ephemeral_range_and_are_never_handed_out_twice():
    ephemeral = _ephemeral_ports()
    ports = [free_port() for _ in range(300)]
    assert not [p for p in ports if p in ephemeral]
    assert len(set(ports)) == len(ports)


def test_a_port_handed_out_can_be_bound():
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_a_port_the_kernel_hands_out_for_port_0_is_not_one_of_ours():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert s.getsockname()[1] in _ephemeral_ports()


def test_sessions_side_by_side_choose_from_slices_that_do_not_overlap(monkeypatch):
    from testbed.process import _worker_slice
    ports = range(10000, 32768)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    slices = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(set(_worker_slice(ports)))
    assert slices[0] and slices[1] and not slices[0] & slices[1]
    assert slices[0] | slices[1] <= set(ports)
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert _worker_slice(ports) == ports  # one session alone has the whole range
