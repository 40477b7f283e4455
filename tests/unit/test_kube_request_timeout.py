"""Every Kubernetes request of the product gives up when the apiserver accepted the connection and went quiet
(the kubernetes client's default is to wait forever), so a step's attempt fails and is retried instead of holding a
worker thread for good."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from kubernetes import client

from api.names import SNAPSHOT_PLURAL
from runtime.kube import Kube, TimedApiClient, api_client
from runtime.settings import Settings


@pytest.fixture
def silent_apiserver():
    """A TCP listener that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def call_in_thread(fn, wait: float) -> tuple[bool, BaseException | None]:
    """(finished within `wait`, the exception it raised)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            raised.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    return not thread.is_alive(), (raised[0] if raised else None)


def kube_at(host: str, request_timeout: float | None) -> Kube:
    configuration = client.Configuration()
    configuration.host = host
    configuration.retries = False  # one attempt: the timeout, not urllib3's retries, is under test
    if request_timeout is None:
        return Kube(client.ApiClient(configuration))
    return Kube(TimedApiClient(configuration, request_timeout))


def test_a_request_to_a_silent_apiserver_fails_instead_of_hanging(silent_apiserver):
    finished, error = call_in_thread(
        lambda: kube_at(silent_apiserver, 0.5).get_object(SNAPSHOT_PLURAL, "ns", "s"), wait=20)
    assert finished and error is not None and "timed out" in str(error).lower(), error


def test_the_plain_client_would_have_hung(silent_apiserver):
    """The case the timeout is for: without it the same call is still waiting."""
    finished, _ = call_in_thread(lambda: kube_at(silent_apiserver, None).get_object(SNAPSHOT_PLURAL, "ns", "s"),
                                 wait=3)
    assert not finished


def test_a_call_that_sets_its_own_timeout_keeps_it(silent_apiserver):
    kube = kube_at(silent_apiserver, 600)
    finished, error = call_in_thread(lambda: kube.get_object(SNAPSHOT_PLURAL, "ns", "s", timeout=0.5), wait=20)
    assert finished and error is not None


def test_the_product_client_has_the_settings_timeout(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("""
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""")
    api = api_client(Settings(kubeconfig=kubeconfig, kube_request_timeout_seconds=12))
    assert isinstance(api, TimedApiClient) and api.request_timeout == (4, 12)
    assert api.configuration.host == "https://127.0.0.1:6443"
