#!/bin/sh
# Creates the compose secrets of docker/compose.yaml in docker/secrets/ (git-ignored):
# the PostgreSQL password, the gateway's database URL, the /metrics bearer token, the keys
# shared with the GSMA Mobile Money sandbox (its API key, and the key it signs callbacks with)
# and the WeChat Pay APIv3 key (32 characters) shared with the WeChat Pay sandbox.
# Existing files are kept, so re-running never changes a password under a running database.
# Usage: docker/init-secrets.sh [directory]
set -eu

dir="${1:-$(dirname "$0")/secrets}"
umask 077
mkdir -p "$dir"
# The directory protects the files on the host. The files themselves are readable by others
# because compose bind-mounts each secret with its host owner, and the containers run as
# their own users (postgres, gateway 10001).
chmod 0700 "$dir"

random_hex() {
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

write() {
    if [ -s "$dir/$1" ]; then
        echo "kept    $dir/$1"
    else
        printf '%s' "$2" > "$dir/$1"
        chmod 0644 "$dir/$1"
        echo "created $dir/$1"
    fi
}

write postgres_password "$(random_hex)"
password=$(cat "$dir/postgres_password")
write database_url "postgresql+psycopg://gateway:${password}@postgres:5432/gateway"
write metrics_token "$(random_hex)"
write gsma_mm_api_key "$(random_hex)"
write gsma_mm_callback_key "$(random_hex)"
write wechatpay_apiv3_key "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
