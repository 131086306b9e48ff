# Kiln's egress gateway: squid (the forward proxy) and dnsmasq (its resolver), from Debian's packages.
# Built by `kiln images` like the runner images; run by Kiln, one per job that has egress, as the
# `proxy` user with no capabilities and a read-only root (see src/docker/egress-gateway.ts).
FROM {{BASE_IMAGE}}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN set -eux; \
    rm -f /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; \
    printf '%s\n' {{APT_SOURCES}} > /etc/apt/sources.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends squid dnsmasq-base; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
USER proxy
CMD ["squid", "-v"]
