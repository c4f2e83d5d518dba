# Sourced by the benchmarks that need S3: starts MinIO on a free loopback
# port with its data in $TMP/minio, exports AWS_* and MC_S3_ENDPOINT, builds
# bench/s3get into $TMP and creates bucket "bench". The caller defines
# $TMP, $ROOT, die() and a cleanup trap that runs minio_stop.
MINIO=$(command -v minio || echo "$(go env GOPATH)/bin/minio")
[[ -x $MINIO ]] || die "minio not found: go install github.com/minio/minio@latest"
MINIO_PID=
minio_stop() {
	[[ -n $MINIO_PID ]] && kill "$MINIO_PID" 2>/dev/null && wait "$MINIO_PID" 2>/dev/null
	MINIO_PID=
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
(cd "$ROOT" && go build -o "$TMP/s3get" ./bench/s3get)
port=$(free_port)
cport=$(free_port)
export AWS_ACCESS_KEY_ID=benchadmin AWS_SECRET_ACCESS_KEY=benchsecret123 AWS_REGION=us-east-1
export MC_S3_ENDPOINT=http://127.0.0.1:$port
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
	"$MINIO" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" "$TMP/minio" >"$TMP/minio.log" 2>&1 &
MINIO_PID=$!
for _ in $(seq 100); do
	curl -sf "$MC_S3_ENDPOINT/minio/health/ready" >/dev/null && break
	sleep 0.1
done
curl -sf "$MC_S3_ENDPOINT/minio/health/ready" >/dev/null || die "minio did not start: $(cat "$TMP/minio.log")"
"$TMP/s3get" -bucket bench -mkbucket
