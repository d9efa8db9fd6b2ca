#!/usr/bin/env bash
# `make compose-check`: `docker compose config` on docker-compose.yml, with the
# real Docker Compose CLI plugin. Needs the docker CLI (no engine: `config` only
# parses, interpolates and validates against the compose spec). When the docker
# CLI has no compose plugin, the plugin is built once from the Go module proxy
# (`go`) into $TOKENLORD_CACHE_DIR/compose-<version>/ (default ~/.cache/tokenlord)
# and used through DOCKER_CONFIG pointing there — ~/.docker is never touched.
# Without docker, or without both a compose plugin and go, or when the build
# fails, it says why and succeeds (nothing to check with). An invalid file
# fails, and so do warnings of `config`.
# The file is checked with the passwords of .env.example (--env-file: a
# developer's own .env is never read), and once more without each of them:
# every one must be required (`${VAR:?message}`), so `config` must fail and
# name it.
set -euo pipefail
cd "$(dirname "$0")/.."

# v5.7.x needs go >= 1.26.10; v5.6.0 builds with go 1.26.8 (the machine's).
COMPOSE_VERSION=${COMPOSE_VERSION:-v5.6.0}
COMPOSE_MODULE=github.com/docker/compose/${COMPOSE_VERSION%%.*}
CACHE=${TOKENLORD_CACHE_DIR:-$HOME/.cache/tokenlord}/compose-$COMPOSE_VERSION
PLUGIN=$CACHE/docker-config/cli-plugins/docker-compose
FILE=${1:-docker-compose.yml}
ENV_FILE=${ENV_FILE:-.env.example}

skip() { echo "compose-check: skipped: $*"; exit 0; }

command -v docker >/dev/null || skip "no docker CLI"

build_plugin() {  # into $PLUGIN; the module and build caches are thrown away afterwards
    local dir json
    BUILD_TMP=$CACHE/build.tmp-$$
    mkdir -p "$BUILD_TMP" "$(dirname "$PLUGIN")"
    trap 'chmod -R u+w "$BUILD_TMP" 2>/dev/null; rm -rf "$BUILD_TMP"' EXIT
    export GOMODCACHE=$BUILD_TMP/mod GOCACHE=$BUILD_TMP/cache GOFLAGS=-modcacherw GOTOOLCHAIN=local GOWORK=off
    # Not `go install module/cmd@version`: compose's go.mod has exclude
    # directives, which `go install ...@version` refuses. Build in the
    # downloaded module instead (its own go.mod and go.sum pin everything).
    json=$(go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION") || { echo "$json" >&2; return 1; }
    dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
    [ -n "$dir" ] || { echo "$json" >&2; return 1; }
    (cd "$dir" && CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" -o "$PLUGIN.tmp" ./cmd) || return 1
    mv "$PLUGIN.tmp" "$PLUGIN"
}

if ! docker compose version >/dev/null 2>&1; then
    if [ ! -x "$PLUGIN" ]; then
        command -v go >/dev/null || skip "the docker CLI has no compose plugin and there is no go to build it"
        echo "compose-check: building Docker Compose $COMPOSE_VERSION from the Go module proxy (once; ~2 min cold) into $CACHE"
        # A failed build (no module proxy, an older go) is not an invalid file: say so loudly, do not fail.
        build_plugin || skip "WARNING: could not build Docker Compose $COMPOSE_VERSION with $(go version) (see above); docker-compose.yml NOT checked"
    fi
    export DOCKER_CONFIG=$CACHE/docker-config
fi
compose=(docker compose)

# The variables of the env file, unset from this environment so only --env-file sets them.
mapfile -t required < <(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' "$ENV_FILE")
[ "${#required[@]}" -gt 0 ] || { echo "compose-check: $ENV_FILE names no variables" >&2; exit 1; }
for var in "${required[@]}"; do unset "$var"; done

out=$("${compose[@]}" --env-file "$ENV_FILE" -f "$FILE" config -q 2>&1) || {
    echo "$out" >&2; echo "compose-check: $FILE is invalid (with $ENV_FILE)" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "$out" >&2
    echo "compose-check: docker compose config warned about $FILE" >&2
    exit 1
fi
without=$(mktemp)
trap 'rm -f "$without"' EXIT
for var in "${required[@]}"; do
    grep -v "^$var=" "$ENV_FILE" >"$without"
    if out=$("${compose[@]}" --env-file "$without" -f "$FILE" config -q 2>&1); then
        echo "compose-check: $FILE starts without $var: give it no default (\${$var:?message})" >&2; exit 1
    fi
    case $out in
        *"required variable $var is missing a value"*) ;;
        *) echo "$out" >&2; echo "compose-check: without $var, config failed for another reason" >&2; exit 1 ;;
    esac
done
echo "compose-check: $FILE ok, ${#required[@]} passwords required ($("${compose[@]}" version --short))"
