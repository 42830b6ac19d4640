#!/bin/bash
# Starts or stops the Mosquitto broker of one sinergi instance, on 127.0.0.1 only.
#   scripts/mqtt-broker.sh start DIR PORT   create DIR, write its config from etc/mosquitto.conf.in,
#                                          set up dynamic security with a random admin password
#                                          (DIR/admin.pw, mode 0600), start, wait for the port
#   scripts/mqtt-broker.sh stop DIR         stop it (persistence is saved on the way out)
#   scripts/mqtt-broker.sh status DIR       exit 0 when running
# Idempotent: starting a running broker or stopping a stopped one does nothing. Environment:
# MQTT_ADMIN_USER (default sinergi.admin), MQTT_MAX_QUEUED (default 1000000 messages per client).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2; exit 2; }
ADMIN=${MQTT_ADMIN_USER:-sinergi.admin}
MAX_QUEUED=${MQTT_MAX_QUEUED:-1000000}

running() {
    [ -f "$DIR/mosquitto.pid" ] || return 1
    pid=$(cat "$DIR/mosquitto.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q mosquitto "/proc/$pid/cmdline" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

find_plugin() {
    for p in /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so \
             /usr/local/lib/mosquitto_dynamic_security.so; do
        [ -f "$p" ] && { echo "$p"; return 0; }
    done
    echo "mqtt-broker: mosquitto_dynamic_security.so not found (apt-get install mosquitto)" >&2
    return 1
}

case "$cmd" in
start)
    PORT=${3:-}
    [ -n "$PORT" ] || { echo "usage: $0 start DIR PORT" >&2; exit 2; }
    command -v mosquitto >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
    command -v mosquitto >/dev/null 2>&1 || { echo "mqtt-broker: mosquitto is not installed (scripts/deps.sh)" >&2; exit 1; }
    mkdir -p "$DIR"
    chmod 0700 "$DIR"
    DIR=$(cd "$DIR" && pwd)
    if running; then
        echo "mqtt-broker: already running (pid $(cat "$DIR/mosquitto.pid")) in $DIR"
        exit 0
    fi
    plugin=$(find_plugin)
    sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$PORT|g" -e "s|@USER@|$(id -un)|g" \
        -e "s|@PLUGIN@|$plugin|g" -e "s|@MAX_QUEUED@|$MAX_QUEUED|g" \
        "$ROOT/etc/mosquitto.conf.in" > "$DIR/mosquitto.conf.tmp"
    mv "$DIR/mosquitto.conf.tmp" "$DIR/mosquitto.conf"
    if [ -s "$DIR/dynsec.json" ] && [ ! -s "$DIR/admin.pw" ]; then
        echo "mqtt-broker: $DIR/admin.pw is missing but $DIR/dynsec.json holds the accounts;" \
             "restore it, or delete dynsec.json to start over (every device account is lost)" >&2
        exit 1
    fi
    if [ ! -s "$DIR/dynsec.json" ]; then
        umask 077
        head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$DIR/admin.pw.tmp"
        mv "$DIR/admin.pw.tmp" "$DIR/admin.pw"
        mosquitto_ctrl dynsec init "$DIR/dynsec.json" "$ADMIN" "$(cat "$DIR/admin.pw")" >/dev/null
        chmod 0600 "$DIR/dynsec.json" "$DIR/admin.pw"
    fi
    rm -f "$DIR/mosquitto.pid"
    mosquitto -c "$DIR/mosquitto.conf" -d
    i=0
    until running && port_open "$PORT"; do
        i=$((i + 1))
        if [ $i -gt 200 ]; then
            echo "mqtt-broker: mosquitto did not open 127.0.0.1:$PORT; see $DIR/mosquitto.log" >&2
            tail -n 5 "$DIR/mosquitto.log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.05
    done
    echo "mqtt-broker: running on 127.0.0.1:$PORT (pid $(cat "$DIR/mosquitto.pid"), $DIR)"
    ;;
stop)
    if running; then
        pid=$(cat "$DIR/mosquitto.pid")
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            i=$((i + 1))
            [ $i -gt 200 ] && { echo "mqtt-broker: pid $pid did not stop" >&2; exit 1; }
            sleep 0.05
        done
    fi
    rm -f "$DIR/mosquitto.pid"
    ;;
status)
    running
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2
    exit 2
    ;;
esac
