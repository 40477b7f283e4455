"""The worker on a Temporal that checks API keys (the test bed's cluster with `FrontendAuth`: its frontend serves TLS
and lets in only calls whose bearer token its JWT claim mapper accepts and its authorizer allows), configured with the
documented settings (TEMPORAL_API_KEY, which turns TLS on; TEMPORAL_TLS_SERVER_CA_CERT_PATH for the test bed's CA):
a key the server accepts connects; one it does not (signed by a key it does not know), or one without the
namespace's permission, is one line in the log and on /readyz, and the process stays up without a traceback.

Self-hosted Temporal checks a bearer token as a JWT (its default claim mapper); Temporal Cloud's API keys are its
own, unreachable from here: this shows the product's side (the key sent on every call, a refusal said in one line)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import temporal_messages as says
from testbed.product import Product
from testbed.temporal_cluster import TLS_SERVER_NAME, TemporalCluster
from testbed.tokens import TokenIssuer
from tests.e2e.test_temporal_mtls import CONNECTING, stands_aside_saying
from tests.e2e.test_vm_operator_coexistence import becomes, log_of
from tests.fixtures.health import watch_logs

pytestmark = pytest.mark.cluster


@pytest.fixture
def product(temporal_auth_cluster: TemporalCluster, namespace: str, kubeconfig: Path, vcsim,
            tmp_path: Path) -> Iterator[Product]:
    product = Product(tmp_path, {
        "KUBECONFIG": str(kubeconfig), "TEMPORAL_ADDRESS": temporal_auth_cluster.address, "VSPHERE_URL": vcsim.url,
        "VSPHERE_INSECURE": "true", "VMSNAP_WATCH_NAMESPACE": namespace,
        "VMSNAP_TASK_QUEUE": f"vmsnap-{uuid.uuid4().hex[:8]}", "VMSNAP_GRACEFUL_SHUTDOWN_SECONDS": "5",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    })
    watch_logs(lambda: {p.part: p.log for p in product.processes})
    yield product
    product.stop()


@pytest.mark.timeout(300)
def test_an_api_key_the_server_accepts_connects_and_a_wrong_one_is_one_line(
        temporal_auth_cluster: TemporalCluster, product: Product):
    auth = temporal_auth_cluster.auth
    assert auth is not None
    env = {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(auth.ca_file), "TEMPORAL_TLS_SERVER_NAME": TLS_SERVER_NAME}
    with_key = {**env, "TEMPORAL_API_KEY": auth.issuer.token("default:admin")}
    for process in (product.start_worker(**with_key), product.start_bridge(**with_key)):
        assert becomes(process, 200) == "ok"
        assert says.connected(temporal_auth_cluster.address, "default", mutual_tls=False) in log_of(process)

    # a key of the right shape, signed by a key the server does not know: refused at the connect's first call
    refused = product.start_worker(started=CONNECTING, TEMPORAL_API_KEY=TokenIssuer().token("default:admin"), **env)
    stands_aside_saying(refused, says.cannot_connect(temporal_auth_cluster.address,
                                                     says.api_key_refused("Request unauthorized.")))
    # a key the server accepts, for another namespace: refused the namespace (the connect's own call is allowed)
    elsewhere = product.start_worker(started=CONNECTING, TEMPORAL_API_KEY=auth.issuer.token("other:admin"), **env)
    stands_aside_saying(elsewhere, says.cannot_connect(temporal_auth_cluster.address, says.namespace_refused(
        "default", "Request unauthorized.", api_key=True)))

