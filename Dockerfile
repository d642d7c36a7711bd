# The pipeline image: flixluigi installed with the exact versions of constraints.txt (the ones
# the tests pass with), the project's luigi.cfg as the base configuration, docs/production.cfg on
# top. docker-compose.yml runs the pipeline, its S3 check and luigid from it, so the scheduler
# reads the same [scheduler] and [resources] settings as the workers; luigid reads luigid.cfg on
# top instead of production.cfg (its Prometheus collector: the `luigid` extra is installed).
# Nothing is installed at start-up.
#   docker build -t flixluigi:0.3.0 .

# Python 3.11 as in the tests; Debian bookworm. Pinned to a patch release: rebuilding gives the same base.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY constraints.txt ./
# The build backend at the pinned versions, then a wheel of the project alone.
RUN pip install --no-cache-dir --disable-pip-version-check --constraint constraints.txt setuptools wheel
COPY pyproject.toml setup.cfg README.md ./
COPY flixluigi ./flixluigi
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    LUIGI_CONFIG_PATH=/etc/flixluigi/production.cfg
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --disable-pip-version-check --constraint /tmp/constraints.txt "$(ls /tmp/wheels/*.whl)[luigid]" \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && useradd --system --uid 10001 --home-dir /var/lib/flixluigi --create-home flixluigi \
    && install -d -o flixluigi -g flixluigi /var/lib/luigid /var/lib/luigid/log
# Luigi reads /etc/luigi/luigi.cfg, then $LUIGI_CONFIG_PATH: project settings, then production's
# (luigid's service sets LUIGI_CONFIG_PATH=/etc/flixluigi/luigid.cfg).
COPY luigi.cfg /etc/luigi/luigi.cfg
COPY docs/production.cfg /etc/flixluigi/production.cfg
COPY luigid.cfg /etc/flixluigi/luigid.cfg
USER flixluigi
WORKDIR /var/lib/flixluigi
CMD ["luigi", "--module", "flixluigi", "LastWeek", "--scheduler-host", "luigid", "--scheduler-port", "8082"]
