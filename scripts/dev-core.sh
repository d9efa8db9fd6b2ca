#!/usr/bin/env bash
# Fast inner loop: rebuild only the native module (release) and drop it into the
# installed package. `make install` is the real build; this is for iteration.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/var/cargo-target}
PYO3_PYTHON=$PWD/.venv/bin/python cargo build --release --features python --lib --quiet
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
# --remove-destination: a new inode, so running processes keep their mapped copy
cp --remove-destination "$CARGO_TARGET_DIR/release/libtokenlord_core.so" "$site/tokenlord/_core.abi3.so"
echo "updated $site/tokenlord/_core.abi3.so"
# ...and the package's Python sources (the wheel install is not editable).
cp -r python/tokenlord/. "$site/tokenlord/"
echo "synced python/tokenlord -> $site/tokenlord"
# ...and the Faust app (the wheel ships streams/ as a top-level package).
mkdir -p "$site/streams"
cp -r streams/. "$site/streams/"
echo "synced streams -> $site/streams"
