#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# BLE round-trip benchmark (`make bench-ble`): protocol v2's pairing exchange and
# command exchanges, through the real bluezscriptd and the fake bluetoothd on a
# private D-Bus.
#
#   bench/run-ble-roundtrip.sh [BUILD_DIR]        (default build-bench; built beforehand)
#
# Environment: BENCH_N measured commands (default 200), BENCH_WARMUP (default 10),
# BENCH_KEEP=1 keeps the temporary folder (config, state, daemon log, fake trace).
#
# Steps: a temporary config + state + a trivial action; the owner's `bluezscript
# pair add` makes one pending device and its link (a 0600 file, never on a command
# line); bzs_testlib.bus starts a private bus and the fake and runs this script
# again inside (BZS_BENCH_INNER=1), which starts bluezscriptd on hci0, runs
# bzs_bench_ble (it pairs that device by the exchange, then sends every command
# with it), relays its report, and stops the daemon. Figures are printed, never
# judged.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
self="$here/bench/run-ble-roundtrip.sh"

if [ "${BZS_BENCH_INNER:-}" = 1 ]; then
    # ---- inside the harness: DBUS_SYSTEM_BUS_ADDRESS is the private bus ----
    build=$1
    dir=$BZS_BENCH_DIR
    daemon_pid=""
    stop_daemon() {
        if [ -n "$daemon_pid" ]; then
            kill -TERM "$daemon_pid" 2>/dev/null || true
            wait "$daemon_pid" 2>/dev/null || true
            daemon_pid=""
        fi
    }
    trap stop_daemon EXIT

    "$build/bluezscriptd" --config "$dir/bluezscript.toml" >"$dir/daemon.log" 2>&1 &
    daemon_pid=$!
    rc=0
    "$build/bench/bzs_bench_ble" --link-file "$dir/link" --count "${BENCH_N:-200}" \
        --warmup "${BENCH_WARMUP:-10}" --action noop --adapter hci1 2>&1 || rc=$?
    stop_daemon
    exit "$rc"
fi
# ---- outside: prepare, then run the inner part under the harness ----
build=$(cd "${1:-build-bench}" && pwd)
for bin in "$build/bluezscriptd" "$build/bluezscript" "$build/bench/bzs_bench_ble"; do
    if [ ! -x "$bin" ]; then
        echo "run-ble-roundtrip: $bin is missing: build it first (make bench-ble)" >&2
        exit 2
    fi
done
if [ ! -x /usr/bin/python3 ] || ! command -v dbus-daemon >/dev/null; then
    echo "run-ble-roundtrip: needs /usr/bin/python3 (python3-dbus, python3-gi) and dbus-daemon" >&2
    exit 2
fi

umask 077
dir=$(mktemp -d "${TMPDIR:-/tmp}/bzs-bench-ble.XXXXXX")
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [ "${BENCH_KEEP:-}" = 1 ]; then
        echo "run-ble-roundtrip: kept $dir"
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
mkdir -p "$dir/state" "$dir/actions.d"
cat >"$dir/bluezscript.toml" <<'CONF'
# bench/run-ble-roundtrip.sh: a throw-away instance for the BLE round-trip benchmark.
[daemon]
state_dir = "state"
actions_dir = "actions.d"
pi_name = "bench-pi"
log_level = "info"

[web]
enabled = false

[ble]
adapter = "hci0"
# The central does not bond (the fake's permission check is the same either way).
require_bonding = false

[limits]
# Raised to their maxima: only unauthenticated failures count, but a benchmark must
# never measure a limit.
link_max_failures_per_minute = 10000
global_max_failures_per_minute = 100000
CONF
printf '#!/bin/sh\nexit 0\n' >"$dir/actions.d/noop"
chmod 700 "$dir/actions.d/noop"
# One pending device; its link goes to a private file for the client.
"$build/bluezscript" --config "$dir/bluezscript.toml" pair add bench --actions noop --no-qr \
    --json >"$dir/pair.json"
/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["uri"])' \
    "$dir/pair.json" >"$dir/link"

fake_args=(--quiet)
harness_log=()
if [ "${BENCH_KEEP:-}" = 1 ]; then
    fake_args=()
    harness_log=(--log "$dir/fake.log")
fi

echo "BLE round trip, protocol v2: pairing exchange, then command exchanges (bluezscriptd + fake bluetoothd, private D-Bus)"
echo "config: limits.link_max_failures_per_minute = 10000, limits.global_max_failures_per_minute = 100000 (maxima; defaults 10/30), ble.require_bonding = false"
echo "action: noop (#!/bin/sh exit 0); one device paired by the exchange sends every command, one connection hci1 -> hci0"
rc=0
BZS_BENCH_INNER=1 BZS_BENCH_DIR="$dir" PYTHONPATH="$here/tests/pylib" /usr/bin/python3 -m bzs_testlib.bus \
    "${harness_log[@]}" run "${fake_args[@]}" -- "$self" "$build" || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "run-ble-roundtrip: failed (status $rc); last lines of the daemon's log:" >&2
    tail -n 20 "$dir/daemon.log" >&2 2>/dev/null || echo "  (no daemon log)" >&2
fi
exit "$rc"
