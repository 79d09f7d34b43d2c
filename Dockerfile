# The image Cloud Run builds for `gcloud run jobs deploy --source .` (deploy/deploy.py).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mixpanel_alerts ./mixpanel_alerts
COPY pipelines ./pipelines
COPY alerts ./alerts
COPY dbt_project ./dbt_project
RUN pip install --no-cache-dir .
# the events configuration the job reads by default: EVENTS_CONFIG_PATH=config/events_config.json, relative
# to WORKDIR (EVENTS_CONFIG or EVENTS_CONFIG_GCS_PATH take precedence); after the install, so editing it
# rebuilds only this layer
COPY config ./config
# dbt's working copy and caches go to a writable folder of the container
ENV HOME=/tmp
ENTRYPOINT ["mixpanel-alerts"]
CMD ["run"]
