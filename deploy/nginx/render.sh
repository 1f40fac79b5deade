#!/usr/bin/env bash
# render.sh prints deploy/nginx/bridge.conf with its {{...}} values filled
# in from the environment:
#
#   DOMAIN        public name of the API (required), e.g. bridge.example.net
#   UPSTREAMS     the nodes' HTTP addresses, host:port separated by commas
#                 (required), e.g. 10.0.0.11:8080,10.0.0.12:8080,10.0.0.13:8080
#   LISTEN_HTTP   nginx's listen value for plain HTTP (default 80)
#   LISTEN_HTTPS  nginx's listen value for HTTPS (default 443)
#   CERT_DIR      directory holding fullchain.pem and privkey.pem
#                 (default /etc/letsencrypt/live/$DOMAIN, where certbot puts them)
#   ACME_WEBROOT  webroot of the ACME http-01 challenges (default /var/www/acme)
#   MAX_FAILS     failures before a node is skipped (default 3)
#   FAIL_TIMEOUT  how long it is skipped (default 10s)
#
# Usage: DOMAIN=... UPSTREAMS=... deploy/nginx/render.sh > bridge.conf
set -euo pipefail

die() { echo "render.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template=${TEMPLATE:-$here/bridge.conf}

DOMAIN=${DOMAIN:-}
UPSTREAMS=${UPSTREAMS:-}
LISTEN_HTTP=${LISTEN_HTTP:-80}
LISTEN_HTTPS=${LISTEN_HTTPS:-443}
CERT_DIR=${CERT_DIR:-/etc/letsencrypt/live/$DOMAIN}
ACME_WEBROOT=${ACME_WEBROOT:-/var/www/acme}
MAX_FAILS=${MAX_FAILS:-3}
FAIL_TIMEOUT=${FAIL_TIMEOUT:-10s}

name_re='^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$'
listen_re='^(([0-9]{1,3}\.){3}[0-9]{1,3}:|\[[0-9A-Fa-f:]+\]:)?[0-9]{1,5}$'
path_re='^/[A-Za-z0-9._/@+-]*$'

[ -n "$DOMAIN" ] || die "DOMAIN is required, e.g. DOMAIN=bridge.example.net"
[[ $DOMAIN =~ $name_re ]] || die "DOMAIN=$DOMAIN is not a host name, e.g. bridge.example.net"
[ -n "$UPSTREAMS" ] || die "UPSTREAMS is required, e.g. UPSTREAMS=10.0.0.11:8080,10.0.0.12:8080"
[[ $LISTEN_HTTP =~ $listen_re ]] || die "LISTEN_HTTP=$LISTEN_HTTP is not a port or address:port, e.g. 80"
[[ $LISTEN_HTTPS =~ $listen_re ]] || die "LISTEN_HTTPS=$LISTEN_HTTPS is not a port or address:port, e.g. 443"
[[ $CERT_DIR =~ $path_re ]] || die "CERT_DIR=$CERT_DIR is not an absolute path without spaces"
[[ $ACME_WEBROOT =~ $path_re ]] || die "ACME_WEBROOT=$ACME_WEBROOT is not an absolute path without spaces"
[[ $MAX_FAILS =~ ^[0-9]+$ ]] || die "MAX_FAILS=$MAX_FAILS is not a number, e.g. 3"
[[ $FAIL_TIMEOUT =~ ^[0-9]+(ms|s|m)?$ ]] || die "FAIL_TIMEOUT=$FAIL_TIMEOUT is not an nginx time, e.g. 10s"
[ -r "$template" ] || die "cannot read the template $template"

servers=""
IFS=',' read -r -a ups <<<"$UPSTREAMS"
for u in "${ups[@]}"; do
  u=${u//[[:space:]]/}
  [ -n "$u" ] || continue
  host=${u%:*}
  port=${u##*:}
  [ "$host" != "$u" ] && [[ $port =~ ^[0-9]{1,5}$ ]] && { [[ $host =~ $name_re ]] || [[ $host =~ ^\[[0-9A-Fa-f:]+\]$ ]]; } ||
    die "UPSTREAMS entry $u is not host:port, e.g. 10.0.0.11:8080"
  servers+="    server $u max_fails=$MAX_FAILS fail_timeout=$FAIL_TIMEOUT;"$'\n'
done
[ -n "$servers" ] || die "UPSTREAMS names no node"
servers=${servers%$'\n'}

shopt -u patsub_replacement 2>/dev/null || true
conf=$(<"$template")
conf=${conf//'{{UPSTREAM_SERVERS}}'/$servers}
conf=${conf//'{{DOMAIN}}'/$DOMAIN}
conf=${conf//'{{LISTEN_HTTP}}'/$LISTEN_HTTP}
conf=${conf//'{{LISTEN_HTTPS}}'/$LISTEN_HTTPS}
conf=${conf//'{{CERT_DIR}}'/$CERT_DIR}
conf=${conf//'{{ACME_WEBROOT}}'/$ACME_WEBROOT}
left=$(grep -oE '\{\{[A-Z_]+\}\}' <<<"$conf" | sort -u | tr '\n' ' ' || true)
[ -z "$left" ] || die "the template has values render.sh does not know: $left"

printf '%s\n' "$conf"
