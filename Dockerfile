# CallBuddy PBX service image. Build: docker build -t callbuddy-pbx .
# Run:   docker run -v /srv/callbuddy:/data -e AMI_SECRET=... callbuddy-pbx run --config /data/callbuddy.yaml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY callbuddy_pbx ./callbuddy_pbx
RUN pip install --no-cache-dir . && useradd --system --home /data callbuddy && mkdir -p /data && chown callbuddy /data

USER callbuddy
VOLUME ["/data"]
ENTRYPOINT ["callbuddy-pbx"]
CMD ["run", "--config", "/data/callbuddy.yaml"]
