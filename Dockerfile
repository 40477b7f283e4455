# One image for both processes: `vmsnap-worker` (the default command) and `vmsnap-bridge` (the Deployments and
# docker-compose.yml set the command). The dependencies are exactly the versions constraints.txt locks
# (transitive ones included), from wheelhouse/ when `make wheelhouse` filled it (then the build needs no network),
# else from the index; the product's wheel is built from the source here. Everything goes into a virtualenv,
# /opt/vmsnap, which the final stage copies: no pip, no source tree, no test bed in the image.
#
# BASE_IMAGE: any image with Python 3.11 as `python3` and its venv module (the official one by default; the tests
# build on a Debian bookworm made by mmdebstrap, as no registry is reachable there: testbed/image.py).
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first: this layer is reused until the lock or the wheelhouse changes.
COPY constraints.txt ./
COPY wheelhouse/ wheelhouse/
RUN if ls wheelhouse/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/src/wheelhouse; fi \
    && python3 -m venv /opt/vmsnap \
    && /opt/vmsnap/bin/pip install --quiet --no-deps --requirement constraints.txt
COPY . .
RUN if ls wheelhouse/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/src/wheelhouse; fi \
    && /opt/vmsnap/bin/pip wheel --quiet --no-deps --wheel-dir /wheels . \
    && /opt/vmsnap/bin/pip install --quiet --no-deps /wheels/vmsnap-*.whl \
    && /opt/vmsnap/bin/pip check \
    && /opt/vmsnap/bin/pip uninstall --quiet --yes pip setuptools \
    && cd /opt/vmsnap/lib/python3*/site-packages \
    && rm -rf kubernetes/aio temporalio/bridge/sdk-core temporalio/bridge/src
# The classic builder keeps this stage as an untagged image, its cache: the label lets a test remove those that a
# later build superseded (tests/deploy/test_compose_up.py).
LABEL io.vmsnap.stage=build
# Dropped from the dependencies, as nothing reads them at run time (tests/deploy/test_image.py runs both processes
# on the image): kubernetes/aio (68 MB), the client's asyncio copy (the product uses kubernetes.client), and the
# Rust and Go sources temporalio ships beside its compiled core (12 MB).

FROM ${BASE_IMAGE}
ENV PATH=/opt/vmsnap/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/vmsnap /opt/vmsnap
# The user, written directly: not every base has useradd.
RUN echo 'vmsnap:x:10001:10001:vmsnap:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'vmsnap:x:10001:' >> /etc/group
# Numeric, so the kubelet can check runAsNonRoot without looking the name up.
USER 10001:10001
# The worker's health and metrics ports, and the bridge's webhook port (VMSNAP_HEALTH_PORT, VMSNAP_METRICS_PORT,
# VMSNAP_WEBHOOK_PORT).
EXPOSE 8080 9464 9443
CMD ["vmsnap-worker"]
