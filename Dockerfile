# The image Cloud Run builds for `gcloud run jobs deploy --source .` (deploy/deploy.py).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mixpanel_alerts ./mixpanel_alerts
COPY pipelines ./pipelines
COPY alerts ./alerts
COPY dbt_project ./dbt_project
RUN pip install --no-cache-dir .
# dbt's working copy and caches go to a writable folder of the container
ENV HOME=/tmp
ENTRYPOINT ["mixpanel-alerts"]
CMD ["run"]
