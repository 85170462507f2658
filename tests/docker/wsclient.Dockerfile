# tests/docker/wsclient.Dockerfile - the WebSocket client the Docker test runs
# on the cluster's network (corio's runtime image has no Python): Debian's
# python3-websockets and ws_echo.py. Context: tests/docker.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-websockets \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY ws_echo.py /usr/local/bin/ws_echo.py
USER 65534:65534
ENTRYPOINT ["python3", "/usr/local/bin/ws_echo.py"]
