# CallBuddy PBX service image: docker build -t callbuddy-pbx .
# Run it next to an existing Asterisk (AMI on the host's loopback, hence --network host):
#   docker run -d --name callbuddy --network host --env-file /etc/callbuddy/secrets.env \
#     -v /etc/callbuddy/callbuddy.yaml:/etc/callbuddy/callbuddy.yaml:ro -v callbuddy-data:/data callbuddy-pbx
# The config's storage.path should be /data/callbuddy.sqlite3 (the volume).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md .ci/constraints.txt ./
COPY callbuddy_pbx ./callbuddy_pbx
COPY sip_trunks /usr/share/callbuddy/sip_trunks
COPY dialplans /usr/share/callbuddy/dialplans
# the same versions the test suite ran with
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin callbuddy \
    && mkdir -p /data /etc/callbuddy && chown callbuddy /data

USER callbuddy
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
ENTRYPOINT ["callbuddy-pbx"]
CMD ["run", "--config", "/etc/callbuddy/callbuddy.yaml"]
