# Mitra as an image: the application in its own virtual environment, run as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY mitra mitra
COPY actors actors
COPY handlers handlers
COPY streams streams
RUN python -m venv /opt/mitra && /opt/mitra/bin/pip install --no-cache-dir '.[postgres,kafka]'

FROM python:3.11-slim
COPY --from=build /opt/mitra /opt/mitra
# The production settings file, read by every command through the entry point; secrets and
# per-deployment names come from MITRA_* variables, which win over the file.
COPY config/production.example.toml /etc/mitra/mitra.toml
ENV PATH=/opt/mitra/bin:$PATH
RUN useradd --system --uid 10001 mitra && mkdir -p /app/var && chown mitra /app/var
WORKDIR /app
USER mitra
EXPOSE 8080
ENTRYPOINT ["mitra", "--config", "/etc/mitra/mitra.toml"]
CMD ["serve"]
