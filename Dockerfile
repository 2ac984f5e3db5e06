# The lab as an OCI image: `ocsp-lab up --json` (CA, OCSP responder, stapling TLS server).
#   docker build -t ocsp-lab .
#   docker run --rm -e OCSP_LAB_ADMIN_TOKEN=$(openssl rand -hex 16) \
#     -p 127.0.0.1:8080:8080 -p 127.0.0.1:8443:8443 ocsp-lab
# The first stdout line is the JSON line of `up --json` (see the README, "Containers").
FROM node:20-bookworm-slim

# openssl: for `docker exec <container> openssl ...` against the lab (the lab itself needs none).
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ocsp-lab
COPY . .
RUN npx -y pnpm@10 install --frozen-lockfile && npx tsc -b \
  && ln -s /opt/ocsp-lab/packages/harness/bin/ocsp-lab.js /usr/local/bin/ocsp-lab

# The state folder (CA, keys, certificates): mount a volume here to keep the CA across runs.
ENV OCSP_LAB_HOME=/var/lib/ocsp-lab
# up binds 127.0.0.1; the entry point forwards these ports on the container's own addresses to
# it, and refuses to start without OCSP_LAB_ADMIN_TOKEN (the admin API is published with them).
# 8080: OCSP responder (and its admin API, token required); 8443: stapling TLS server.
EXPOSE 8080 8443
ENTRYPOINT ["node", "/opt/ocsp-lab/packages/harness/bin/container-entrypoint.js"]
