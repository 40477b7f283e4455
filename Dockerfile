# One image for both processes: `vmsnap-worker` (the default command) and `vmsnap-bridge` (the Deployments and
# docker-compose.yml set the command). Built from the project as pip installs it, with the versions pyproject.toml
# pins; the wheel is built in a first stage so the image holds the installed package, not the source tree.
FROM python:3.11.13-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.13-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmsnap
# Numeric, so the kubelet can check runAsNonRoot without looking the name up.
USER 10001:10001
# The worker's health and metrics ports, and the bridge's webhook port (VMSNAP_HEALTH_PORT, VMSNAP_METRICS_PORT,
# VMSNAP_WEBHOOK_PORT).
EXPOSE 8080 9464 9443
CMD ["vmsnap-worker"]
