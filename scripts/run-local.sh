#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# `make run`: a local instance with config and state under ./run/ (created on
# first use with a sample action), then the daemon in the foreground.
set -euo pipefail
build=${1:-build}
dir=${2:-run}
src=$(cd "$(dirname "$0")/.." && pwd)
umask 077
mkdir -p "$dir/actions.d" "$dir/state"
chmod 700 "$dir" "$dir/state"
conf="$dir/bluezscript.toml"
if [ ! -f "$conf" ]; then
  cat > "$conf" <<CONF
# Local configuration for \`make run\`; see docs/configuration.md for every key.
[daemon]
state_dir = "state"
actions_dir = "actions.d"
pi_name = "$(hostname | cut -c1-32)"

# The web UI on this machine only: plain HTTP on loopback, no LAN listener.
[web]
https_address = ""
http_address = "127.0.0.1"
http_port = 8080
# The phone app as built by \`make app\`, served at http://127.0.0.1:8080/app/
# (Web Bluetooth works there in a desktop Chrome or Edge: loopback is a secure context).
app_dir = "$src/clients/web/dist"

# Pairing codes open that local copy of the app (docs/phone-app.md).
[pairing]
app_url = "http://127.0.0.1:8080/app/"
CONF
fi
if [ ! -e "$dir/actions.d/hello" ]; then
  cat > "$dir/actions.d/hello" <<'ACTION'
#!/bin/sh
# Sample action: says hello and who asked. Replace with your own script.
echo "Hello from $(hostname), $BLUEZSCRIPT_DEVICE_NAME!"
date
ACTION
  chmod 700 "$dir/actions.d/hello"
  cat > "$dir/actions.d/hello.toml" <<'META'
description = "Say hello (sample action)"
timeout = 10
META
  chmod 600 "$dir/actions.d/hello.toml"
fi
abs=$(cd "$dir" && pwd)
cat <<MSG
BlueZscript local instance
  config:   $abs/bluezscript.toml
  state:    $abs/state   (database, master key)
  actions:  $abs/actions.d   (sample action: hello)
  owner CLI: BLUEZSCRIPT_CONFIG=$abs/bluezscript.toml $(cd "$build" && pwd)/bluezscript --help
             e.g. ... pair add my-phone --actions hello
  web UI:   http://127.0.0.1:8080/ (set its password first: ... admin passwd)
  phone app: http://127.0.0.1:8080/app/ (built by make app; docs/phone-app.md)
Starting bluezscriptd (Ctrl-C stops it)...
MSG
exec "$build/bluezscriptd" --config "$conf"
