# One image for every role: `vectorizer serve` (data plane) and `vectorizer operator`.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dataplane ./dataplane
COPY operator ./operator
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin vectorizer \
    && mkdir -p /data && chown vectorizer /data
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV VECTORIZER_HOST=0.0.0.0 VECTORIZER_DATA_DIR=/data \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 15002
VOLUME ["/data"]
ENTRYPOINT ["vectorizer"]
CMD ["serve"]
