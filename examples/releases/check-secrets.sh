#!/bin/sh
# verify gate for the horadus releases (see secrets.toml): envsync runs it with
# ENVSYNC_RELEASE = the new, complete release folder, before `current` switches to it.
# A non-zero exit keeps the old release current and writes nothing (envsync exits 2).
# It prints names only, never a value.
set -eu
release=${ENVSYNC_RELEASE:?ENVSYNC_RELEASE is not set: run me from envsync verify}
status=0
for name in database_url redis_url secret_key sentry_dsn; do
    if [ ! -s "$release/$name" ]; then
        echo "check-secrets: $name is missing or empty" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] || exit "$status"
case $(cat "$release/database_url") in
    postgres://* | postgresql://*) ;;
    *) echo "check-secrets: database_url is not a postgres:// URL" >&2; status=1 ;;
esac
case $(cat "$release/redis_url") in
    redis://* | rediss://*) ;;
    *) echo "check-secrets: redis_url is not a redis:// URL" >&2; status=1 ;;
esac
if [ $(($(wc -c < "$release/secret_key"))) -lt 32 ]; then
    echo "check-secrets: secret_key is shorter than 32 bytes" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "check-secrets: $(basename "$release") ok" >&2
exit "$status"
