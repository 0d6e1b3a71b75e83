# The one image of mirador's Python parts. Every container of docker-compose.yml that runs our code is
# built from it and differs only by its command: `mirador stack up` (the `register` job), uvicorn for each
# write service, `mirador run` (the pipeline), `mirador serve` (the read API), `mirador simulate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, read from pyproject.toml and pinned by constraints.txt (the versions CI tests):
# this layer is rebuilt when they change, not on every edit of the code. Every dependency ships
# manylinux wheels, so no compiler is needed.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (.dockerignore keeps tests, local state and virtualenvs out). The install gives
# the `mirador` script; the code runs from this tree (PYTHONPATH), with the files it reads beside it, such
# as the read API's page, which the package does not carry.
COPY . .
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# Run as an unprivileged user; local state (MIRADOR_HOME) goes to a directory it owns. The mount points
# of docker-compose.yml's volumes (the pipeline's working file, the publications) exist and are its own,
# so a new named volume starts owned by it, not by root.
RUN useradd --create-home --uid 10001 --user-group mirador \
    && install -d -o mirador -g mirador /var/lib/mirador /var/lib/mirador/warehouse /var/lib/mirador/published
ENV PYTHONPATH=/app \
    MIRADOR_HOME=/var/lib/mirador \
    MIRADOR_DBT_PROJECT_DIR=/app/dbt_project
USER mirador

CMD ["mirador", "--help"]
