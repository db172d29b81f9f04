#!/bin/sh
# Points a MinIO deployment's bucket notifications at the Distillery pipeline (run by the chart's minio-notify
# Job, image minio/mc): registers a notification target, Kafka (the events topic ingest consumes) or a webhook
# (ingest's POST /events), then subscribes each bucket's ObjectCreated (put) events to it. Idempotent: the
# target's settings are set again and existing subscriptions are kept (--ignore-existing).
#
# Environment (set by the Job from the chart's values and Secret):
#   MINIO_ENDPOINT, MINIO_ACCESS_KEY, MINIO_SECRET_KEY   the deployment and an admin user (config changes need one)
#   TARGET            kafka or webhook;  TARGET_ID   the target's identifier (its ARN: arn:minio:sqs::ID:TARGET)
#   BUCKETS           one "bucket[|prefix[|suffix]]" per line
#   EVENTS            mc event names, comma-separated (default put)
#   RESTART           "true": restart MinIO after changing the target (MinIO applies notify_* settings at startup)
#   kafka:   KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_SASL (on/off), KAFKA_SASL_MECHANISM (plain, sha256, sha512),
#            KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_TLS (on/off), KAFKA_TLS_SKIP_VERIFY (on/off)
#   webhook: WEBHOOK_ENDPOINT, WEBHOOK_AUTH_TOKEN (sent as "Authorization: Bearer ...", what ingest's webhook checks)
set -eu

: "${MINIO_ENDPOINT:?}" "${MINIO_ACCESS_KEY:?}" "${MINIO_SECRET_KEY:?}" "${TARGET:?}" "${TARGET_ID:?}" "${BUCKETS:?}"
EVENTS="${EVENTS:-put}"
ALIAS=store

log() { printf 'minio-notify: %s\n' "$*" >&2; }

case "$TARGET" in
  kafka | webhook) ;;
  *)
    log "TARGET must be kafka or webhook (got $TARGET)"
    exit 2
    ;;
esac

mc alias set "$ALIAS" "$MINIO_ENDPOINT" "$MINIO_ACCESS_KEY" "$MINIO_SECRET_KEY" >/dev/null

case "$TARGET" in
  kafka)
    : "${KAFKA_BROKERS:?}" "${KAFKA_TOPIC:?}"
    set -- "notify_kafka:$TARGET_ID" "brokers=$KAFKA_BROKERS" "topic=$KAFKA_TOPIC" \
      "tls=${KAFKA_TLS:-off}" "tls_skip_verify=${KAFKA_TLS_SKIP_VERIFY:-off}"
    if [ "${KAFKA_SASL:-off}" = "on" ]; then
      : "${KAFKA_SASL_USERNAME:?}" "${KAFKA_SASL_PASSWORD:?}"
      set -- "$@" "sasl=on" "sasl_mechanism=${KAFKA_SASL_MECHANISM:-plain}" \
        "sasl_username=$KAFKA_SASL_USERNAME" "sasl_password=$KAFKA_SASL_PASSWORD"
    fi
    ;;
  webhook)
    : "${WEBHOOK_ENDPOINT:?}"
    set -- "notify_webhook:$TARGET_ID" "endpoint=$WEBHOOK_ENDPOINT"
    if [ -n "${WEBHOOK_AUTH_TOKEN:-}" ]; then
      set -- "$@" "auth_token=$WEBHOOK_AUTH_TOKEN"
    fi
    ;;
esac
log "setting the $TARGET target $TARGET_ID"
mc admin config set "$ALIAS" "$@"

if [ "${RESTART:-false}" = "true" ]; then
  log "restarting MinIO so the target is loaded"
  mc admin service restart "$ALIAS"
  attempts=0
  until mc ready "$ALIAS" >/dev/null 2>&1; do
    attempts=$((attempts + 1))
    if [ "$attempts" -ge 60 ]; then
      log "MinIO did not come back within 5 minutes"
      exit 1
    fi
    sleep 5
  done
fi

ARN="arn:minio:sqs::$TARGET_ID:$TARGET"
printf '%s\n' "$BUCKETS" | while IFS='|' read -r bucket prefix suffix; do
  [ -n "$bucket" ] || continue
  set -- event add "$ALIAS/$bucket" "$ARN" --event "$EVENTS" --ignore-existing
  [ -z "${prefix:-}" ] || set -- "$@" --prefix "$prefix"
  [ -z "${suffix:-}" ] || set -- "$@" --suffix "$suffix"
  log "subscribing $bucket (prefix '${prefix:-}', suffix '${suffix:-}') to $ARN"
  mc "$@"
done
log "done"
