# CallBuddy PBX service image: docker build -t callbuddy-pbx .
# Run it next to an existing Asterisk (AMI on the host's loopback, hence --network host):
#   docker run -d --name callbuddy --network host --env-file /etc/callbuddy/secrets.env \
#     -v /etc/callbuddy/callbuddy.yaml:/etc/callbuddy/callbuddy.yaml:ro -v callbuddy-data:/var/lib/callbuddy callbuddy-pbx
# The volume is the service's state folder, as under systemd: the example config's storage.path
# (/var/lib/callbuddy/callbuddy.sqlite3) and web.users_file (/var/lib/callbuddy/users.yaml) are in it, so
# `docker exec callbuddy callbuddy-pbx user add NAME --config /etc/callbuddy/callbuddy.yaml` (run as the image's
# user) can write the users file. Another config path: set CALLBUDDY_CONFIG and the command (`run --config ...`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CALLBUDDY_CONFIG=/etc/callbuddy/callbuddy.yaml
WORKDIR /app
COPY pyproject.toml setup.py MANIFEST.in README.md .ci/constraints.txt ./
COPY callbuddy_pbx ./callbuddy_pbx
# the trunk templates and the dialplan library go into the package (setup.py), as in any wheel
COPY sip_trunks ./sip_trunks
COPY dialplans ./dialplans
# the same versions the test suite ran with
RUN pip install --no-cache-dir -c constraints.txt . \
    && rm -rf /app/* \
    && useradd --system --uid 10001 --home-dir /var/lib/callbuddy --shell /usr/sbin/nologin callbuddy \
    && mkdir -p /var/lib/callbuddy /etc/callbuddy && chown callbuddy /var/lib/callbuddy

USER callbuddy
WORKDIR /var/lib/callbuddy
VOLUME ["/var/lib/callbuddy"]
EXPOSE 8080
# asks /healthz on the port (and address) of the config's `web:`, not a fixed 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-m", "callbuddy_pbx.healthcheck"]
ENTRYPOINT ["callbuddy-pbx"]
CMD ["run", "--config", "/etc/callbuddy/callbuddy.yaml"]
