# The kfchain image: one image for the chain services, the predictor, the frontend and the
# pipelines' components (KFCHAIN_IMAGE). Each Knative Service picks its process by command,
# e.g. ["python", "-m", "services.selector"].
#   docker build -t ghcr.io/kfchain/kfchain:latest .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the package needs (tests, load results and local state stay out of the image).
COPY pyproject.toml README.md ./
COPY events ./events
COPY pipelines ./pipelines
COPY services ./services
COPY knative ./knative
COPY frontend ./frontend
COPY load ./load
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KFCHAIN_HOME=/var/lib/kfchain
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
# Non-root, with a numeric UID so Kubernetes' runAsNonRoot can verify it.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/kfchain kfchain \
    && mkdir -p /var/lib/kfchain \
    && chown kfchain:kfchain /var/lib/kfchain
USER 10001:10001
WORKDIR /var/lib/kfchain
# Knative sets PORT; the services listen on it (KFCHAIN_BIND_HOST=0.0.0.0 comes from the manifests).
EXPOSE 8080
CMD ["python", "-m", "services.selector"]
