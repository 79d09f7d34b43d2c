# The image Cloud Run builds for `gcloud run jobs deploy --source .` (deploy/deploy.py). Production runs
# WAREHOUSE=bigquery: the image installs the bigquery extra (BigQuery, Secret Manager, GCS).
# `just install-check` replays this file's COPY and RUN lines in CI (there is no Docker engine there).
FROM python:3.11-slim
WORKDIR /app
# the dependencies first, from pyproject.toml alone: a change to the code reuses this layer
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['bigquery']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md ./
COPY mixpanel_alerts ./mixpanel_alerts
COPY pipelines ./pipelines
COPY alerts ./alerts
COPY dbt_project ./dbt_project
# the package itself (its dependencies are all above: pip check says so if one is not)
RUN pip install --no-cache-dir --no-deps . && pip check
# the events configuration the job reads by default: EVENTS_CONFIG_PATH=config/events_config.json, relative
# to WORKDIR (EVENTS_CONFIG or EVENTS_CONFIG_GCS_PATH take precedence); after the install, so editing it
# rebuilds only this layer
COPY config ./config
# dbt's working copy and caches go to a writable folder of the container
ENV HOME=/tmp
ENTRYPOINT ["mixpanel-alerts"]
CMD ["run"]
