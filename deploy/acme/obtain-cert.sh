#!/usr/bin/env bash
# obtain-cert.sh gets or renews the TLS certificate of the bridge's public
# name with certbot (Debian's `certbot` package) over ACME http-01, then
# reloads nginx so it serves the new certificate. The nginx site of
# deploy/nginx reads fullchain.pem and privkey.pem from
# $ACME_CONFIG_DIR/live/$ACME_DOMAIN.
#
# Two methods:
#   standalone  certbot answers the challenge itself on ACME_HTTP_PORT; for
#               the first certificate, before nginx runs with the site (the
#               site needs a certificate to start).
#   webroot     nginx answers the challenge from ACME_WEBROOT (the site's
#               /.well-known/acme-challenge/ location); for every renewal
#               while nginx runs.
#
# Settings (environment):
#   ACME_DOMAIN      the name to certify (required), e.g. bridge.example.net
#   ACME_EMAIL       contact address for the CA; empty registers without one
#   ACME_SERVER      ACME directory URL (default: Let's Encrypt production)
#   ACME_METHOD      webroot (default) or standalone
#   ACME_WEBROOT     webroot for the webroot method (default /var/www/acme)
#   ACME_HTTP_PORT   port certbot listens on for standalone (default 80)
#   ACME_HTTP_ADDRESS address certbot listens on for standalone (default: all)
#   ACME_CONFIG_DIR  certbot's --config-dir (default /etc/letsencrypt)
#   ACME_WORK_DIR    certbot's --work-dir (default /var/lib/letsencrypt)
#   ACME_LOGS_DIR    certbot's --logs-dir (default /var/log/letsencrypt)
#   ACME_RENEW       "force" renews even when the certificate is not due
#   NGINX_RELOAD     command that reloads nginx after a new certificate
#                    (default "nginx -s reload"; empty skips the reload)
#   REQUESTS_CA_BUNDLE  CA file certbot trusts for ACME_SERVER (test CAs only)
#
# Renew twice a day from cron or a systemd timer with ACME_METHOD=webroot;
# certbot only renews a certificate within 30 days of its expiry.
# Exit status: 0 when the certificate is in place (new or still valid), 2 on
# bad settings, 1 when certbot or the reload failed.
set -euo pipefail

say() { echo "obtain-cert: $*" >&2; }
die() { say "$*"; exit "${2:-1}"; }

ACME_DOMAIN=${ACME_DOMAIN:-}
ACME_EMAIL=${ACME_EMAIL:-}
ACME_SERVER=${ACME_SERVER:-https://acme-v02.api.letsencrypt.org/directory}
ACME_METHOD=${ACME_METHOD:-webroot}
ACME_WEBROOT=${ACME_WEBROOT:-/var/www/acme}
ACME_HTTP_PORT=${ACME_HTTP_PORT:-80}
ACME_HTTP_ADDRESS=${ACME_HTTP_ADDRESS:-}
ACME_CONFIG_DIR=${ACME_CONFIG_DIR:-/etc/letsencrypt}
ACME_WORK_DIR=${ACME_WORK_DIR:-/var/lib/letsencrypt}
ACME_LOGS_DIR=${ACME_LOGS_DIR:-/var/log/letsencrypt}
ACME_RENEW=${ACME_RENEW:-}
NGINX_RELOAD=${NGINX_RELOAD-nginx -s reload}

name_re='^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$'
[ -n "$ACME_DOMAIN" ] || die "ACME_DOMAIN is required, e.g. ACME_DOMAIN=bridge.example.net" 2
[[ $ACME_DOMAIN =~ $name_re ]] || die "ACME_DOMAIN=$ACME_DOMAIN is not a fully qualified host name, e.g. bridge.example.net" 2
[[ $ACME_SERVER == https://* ]] || die "ACME_SERVER=$ACME_SERVER must be an https:// ACME directory URL" 2
[[ $ACME_HTTP_PORT =~ ^[0-9]{1,5}$ ]] || die "ACME_HTTP_PORT=$ACME_HTTP_PORT is not a port, e.g. 80" 2
case "$ACME_RENEW" in "" | force) ;; *) die "ACME_RENEW=$ACME_RENEW must be empty or force" 2 ;; esac
command -v certbot >/dev/null 2>&1 || die "certbot is missing: install Debian's certbot package (apt-get install certbot)"

args=(certonly --non-interactive --agree-tos --cert-name "$ACME_DOMAIN" -d "$ACME_DOMAIN"
  --server "$ACME_SERVER"
  --config-dir "$ACME_CONFIG_DIR" --work-dir "$ACME_WORK_DIR" --logs-dir "$ACME_LOGS_DIR"
  --keep-until-expiring)
if [ -n "$ACME_EMAIL" ]; then
  args+=(--email "$ACME_EMAIL")
else
  args+=(--register-unsafely-without-email)
fi
if [ "$ACME_RENEW" = force ]; then
  args+=(--force-renewal)
fi
case "$ACME_METHOD" in
webroot)
  mkdir -p "$ACME_WEBROOT/.well-known/acme-challenge"
  args+=(--webroot --webroot-path "$ACME_WEBROOT")
  ;;
standalone)
  args+=(--standalone --http-01-port "$ACME_HTTP_PORT")
  if [ -n "$ACME_HTTP_ADDRESS" ]; then
    args+=(--http-01-address "$ACME_HTTP_ADDRESS")
  fi
  ;;
*) die "ACME_METHOD=$ACME_METHOD must be webroot or standalone" 2 ;;
esac
mkdir -p "$ACME_CONFIG_DIR" "$ACME_WORK_DIR" "$ACME_LOGS_DIR"

live="$ACME_CONFIG_DIR/live/$ACME_DOMAIN"
before=""
if [ -e "$live/cert.pem" ]; then
  before=$(readlink -f "$live/cert.pem")
fi

say "requesting a certificate for $ACME_DOMAIN from $ACME_SERVER ($ACME_METHOD)"
certbot "${args[@]}" >&2 || die "certbot could not get a certificate for $ACME_DOMAIN; see $ACME_LOGS_DIR/letsencrypt.log"

[ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ] ||
  die "certbot finished but $live/fullchain.pem or privkey.pem is missing"
after=$(readlink -f "$live/cert.pem")
if [ "$before" = "$after" ]; then
  say "the certificate in $live is still valid; nothing to reload"
  exit 0
fi
say "new certificate in $live"
if [ -n "$NGINX_RELOAD" ]; then
  # shellcheck disable=SC2086 # NGINX_RELOAD is a command line.
  $NGINX_RELOAD >&2 || die "the certificate is in place but reloading nginx failed: $NGINX_RELOAD"
  say "nginx reloaded"
fi
