"""The worker and the bridge, as processes, on a Temporal whose frontend requires client certificates (mutual TLS,
the test bed's four-service cluster with `FrontendTLS`), configured only with the documented settings
(TEMPORAL_ADDRESS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH,
TEMPORAL_TLS_SERVER_NAME):

* the guide's snapshot goes Ready through it;
* a certificate that cannot connect (the server's not trusted, the client's expired, missing or not matching its
  key) is one line in the log, naming the setting and its file, and /readyz says the same; the process stays up,
  without a traceback, and does not try again while nothing changed;
* renewing the files in place (as cert-manager does a Secret) makes a process that could not connect ready without
  a restart, moves a connected one to the new certificate, and a renewal that does not connect keeps the working
  connection.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from testbed.pki import CertificateAuthority, KeyPair
from testbed.process import Process
from testbed.product import Product
from testbed.temporal_cluster import FrontendTLS, TemporalCluster
from testbed.vms import create_vm, eventually, snapshot_manifest
from tests.e2e.test_create_snapshot import create, ready
from tests.e2e.test_vm_operator_coexistence import becomes, log_of, readyz
from tests.fixtures.health import watch_logs

pytestmark = pytest.mark.cluster

CONNECTING = "cannot connect to Temporal at"
# file checks within which a process that retried on its own would have logged again
QUIET_CHECKS = 10
CHECK_SECONDS = 0.2
RUNNING = ("worker running", "bridge running")  # what each prints once connected and set up


@dataclass
class MTLSBed:
    cluster: TemporalCluster
    tls: FrontendTLS
    product: Product
    certs: Path

    def issue(self, stem: str, *, expired: bool = False) -> tuple[Path, Path]:
        return self.tls.ca.issue("vmsnap", expired=expired).write(self.certs, stem)

    def volume(self, pair: KeyPair) -> SecretVolume:
        volume = SecretVolume(self.certs / "volume")
        volume.root.mkdir(parents=True)
        volume.put(pair)
        return volume

    def env(self, cert: Path | None, key: Path | None, **more: str) -> dict[str, str]:
        return {**self.tls.client_environment(cert, key), **more}

    def prefix(self) -> str:
        return f"{CONNECTING} {self.cluster.address}: "


@pytest.fixture
def bed(temporal_mtls_cluster: TemporalCluster, namespace: str, kubeconfig: Path, vcsim, csi_driver,
        tmp_path: Path) -> Iterator[MTLSBed]:
    assert temporal_mtls_cluster.tls is not None
    product = Product(tmp_path, {
        "KUBECONFIG": str(kubeconfig), "TEMPORAL_ADDRESS": temporal_mtls_cluster.address, "VSPHERE_URL": vcsim.url,
        "VSPHERE_INSECURE": "true", "VMSNAP_WATCH_NAMESPACE": namespace,
        "VMSNAP_TASK_QUEUE": f"vmsnap-{uuid.uuid4().hex[:8]}", "VMSNAP_RESYNC_SECONDS": "30",
        "VMSNAP_GRACEFUL_SHUTDOWN_SECONDS": "5", "PYTHONUNBUFFERED": "1",
        "VMSNAP_TEMPORAL_CERTIFICATE_CHECK_SECONDS": str(CHECK_SECONDS),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    })
    watch_logs(lambda: {p.part: p.log for p in product.processes})
    yield MTLSBed(temporal_mtls_cluster, temporal_mtls_cluster.tls, product, tmp_path / "certs")
    product.stop()


class SecretVolume:
    """Files as the kubelet keeps a Secret's in a volume: `tls.crt` and `tls.key` are links into `..data`, itself a
    link to the current version's directory, swapped by one rename when the Secret changes (cert-manager's
    renewal): the pair changes at once."""

    def __init__(self, root: Path):
        self.root, self.versions = root, 0
        self.cert, self.key = root / "tls.crt", root / "tls.key"

    def put(self, pair: KeyPair) -> None:
        self.versions += 1
        version = self.root / f"..version-{self.versions}"
        pair.write(version, "tls")
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.root / "..data")
        for path in (self.cert, self.key):
            if not path.is_symlink():
                path.symlink_to(f"..data/{path.name}")


def expired(cert: Path) -> str:
    until = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    return (f"the server refused the client certificate TEMPORAL_TLS_CLIENT_CERT_PATH ({cert}): it has expired "
            f"(valid until {until:%Y-%m-%d %H:%M:%S} UTC)")


def stands_aside_saying(process: Process, line: str) -> None:
    """Up, not ready with this line, which the log has once and without a traceback, and not tried again while
    the files stay the same."""
    assert becomes(process, 503) == line
    for _ in range(QUIET_CHECKS):
        assert readyz(process) == (503, line)
        assert process.alive()
    text = log_of(process)
    assert text.count(line) == 1, text
    assert "Traceback" not in text and not any(running in text for running in RUNNING)


@pytest.mark.timeout(300)
def test_the_guides_snapshot_goes_ready_through_mutual_tls(bed: MTLSBed, kube_api, namespace: str, vcsim,
                                                          sim_vm: str):
    cert, key = bed.issue("client")
    worker = bed.product.start_worker(**bed.env(cert, key))
    bridge = bed.product.start_bridge(**bed.env(cert, key))
    for process in (worker, bridge):
        assert becomes(process, 200) == "ok"
        assert f"connected to Temporal at {bed.cluster.address}, namespace default (mutual TLS)" in log_of(process)
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    create(kube_api, namespace, snapshot_manifest("my-snapshot", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "my-snapshot"), what="my-snapshot Ready")


@pytest.mark.parametrize("case", ["wrong-ca", "expired", "missing", "key-mismatch"])
def test_a_certificate_that_cannot_connect_is_one_line_and_readyz_says_it(bed: MTLSBed, case: str):
    cert, key = bed.issue("client")
    if case == "wrong-ca":
        other = bed.certs / "other-ca.crt"
        other.write_bytes(CertificateAuthority("not-temporals-ca").cert_pem)
        env = {**bed.env(cert, key), "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(other)}
        line = ("the server's certificate is not trusted: it is not signed by TEMPORAL_TLS_SERVER_CA_CERT_PATH "
                f"({other})")
    elif case == "expired":
        cert, key = bed.issue("expired", expired=True)
        env = bed.env(cert, key)
        line = expired(cert)
    elif case == "missing":
        env = bed.env(None, None)
        line = ("the server requires a client certificate and none is set (TEMPORAL_TLS_CLIENT_CERT_PATH, "
                "TEMPORAL_TLS_CLIENT_KEY_PATH)")
    else:
        _, other_key = bed.issue("other")
        env = bed.env(cert, other_key)
        line = (f"the client key TEMPORAL_TLS_CLIENT_KEY_PATH ({other_key}) does not match the client certificate "
                f"TEMPORAL_TLS_CLIENT_CERT_PATH ({cert})")
    line = bed.prefix() + line
    worker = bed.product.start_worker(started=CONNECTING, **env)
    bridge = bed.product.start_bridge(started=CONNECTING, **env)
    for process in (worker, bridge):
        stands_aside_saying(process, line)


@pytest.mark.timeout(400)
def test_renewed_certificates_are_used_without_a_restart(bed: MTLSBed, kube_api, namespace: str, vcsim,
                                                        sim_vm: str):
    volume = bed.volume(bed.tls.ca.issue("vmsnap", expired=True))
    cert, key = volume.cert, volume.key
    worker = bed.product.start_worker(started=CONNECTING, **bed.env(cert, key))
    bridge = bed.product.start_bridge(started=CONNECTING, **bed.env(cert, key))
    for process in (worker, bridge):
        stands_aside_saying(process, bed.prefix() + expired(cert))

    # expired → valid: the processes that could not connect become ready, and work
    volume.put(bed.tls.ca.issue("vmsnap"))
    for process in (worker, bridge):
        assert becomes(process, 200) == "ok"
        assert sum(log_of(process).count(running) for running in RUNNING) == 1  # set up once, by the same process
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    create(kube_api, namespace, snapshot_manifest("after-renewal", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "after-renewal"), what="after-renewal Ready")

    # valid → valid: both connect anew and hand the new client over; operations keep working
    volume.put(bed.tls.ca.issue("vmsnap"))
    for process in (worker, bridge):
        eventually(lambda process=process: "connected to Temporal anew" in log_of(process), 60,
                   "connected anew")
    create(kube_api, namespace, snapshot_manifest("after-rotation", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "after-rotation"), what="after-rotation Ready")

    # valid → expired: refused, logged once, and the working connection stays in use
    volume.put(bed.tls.ca.issue("vmsnap", expired=True))
    kept = "keeping the current Temporal connection: the changed TLS files do not connect: " + bed.prefix() + \
        expired(cert)
    for process in (worker, bridge):
        eventually(lambda process=process: kept in log_of(process), 60, "the renewal refused")
        assert readyz(process) == (200, "ok")
    create(kube_api, namespace, snapshot_manifest("after-refused-renewal", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "after-refused-renewal"), what="after-refused-renewal Ready")
    for process in (worker, bridge):
        assert log_of(process).count(kept) == 1
        assert "Traceback" not in log_of(process)
