#!/bin/sh
# Install ftpd as a systemd service; docs/deployment.md walks through each step.
#
#   sudo deploy/install.sh              # install, enable and start ftpd.service
#   sudo START=no deploy/install.sh     # install and enable, start later
#   sudo ROOT=/tmp/stage deploy/install.sh
#        # stage everything below /tmp/stage (packaging, tests): the user is
#        # created in $ROOT/etc/passwd and nothing is started
#
# Safe to run again (an upgrade): an existing /etc/ftpd/ftpd.conf is kept.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${ROOT:-}
PREFIX=${PREFIX:-/opt/ftpd}
START=${START:-yes}
PYTHON=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }
run() { printf '    $ %s\n' "$*"; "$@"; }

[ "$(id -u)" = 0 ] || { echo "install.sh: must run as root" >&2; exit 1; }

step "1. The program: a virtualenv in $PREFIX, ftpd on the PATH"
run "$PYTHON" -m venv "$ROOT$PREFIX"
run "$ROOT$PREFIX/bin/pip" install --quiet --upgrade "$SRC"
run install -d "$ROOT/usr/local/bin"
run ln -sfn "$PREFIX/bin/ftpd" "$ROOT/usr/local/bin/ftpd"
run install -D -m 0644 "$SRC/docs/deployment.md" "$ROOT$PREFIX/share/doc/ftpd/deployment.md"

step "2. The ftpd user and its directories (library /srv/ftpd, logs /var/log/ftpd)"
run install -D -m 0644 "$SRC/deploy/sysusers.d/ftpd.conf" "$ROOT/etc/sysusers.d/ftpd.conf"
run install -D -m 0644 "$SRC/deploy/tmpfiles.d/ftpd.conf" "$ROOT/etc/tmpfiles.d/ftpd.conf"
if command -v systemd-sysusers >/dev/null; then
    run systemd-sysusers ${ROOT:+--root="$ROOT"} "$ROOT/etc/sysusers.d/ftpd.conf"
elif ! getent passwd ftpd >/dev/null; then
    run useradd --system --user-group --home-dir /srv/ftpd --shell /usr/sbin/nologin ftpd
fi
run systemd-tmpfiles ${ROOT:+--root="$ROOT"} --create "$ROOT/etc/tmpfiles.d/ftpd.conf"

step "3. The config: /etc/ftpd/ftpd.conf (kept if it exists), then checked"
if [ -e "$ROOT/etc/ftpd/ftpd.conf" ]; then
    echo "    keeping the existing $ROOT/etc/ftpd/ftpd.conf"
else
    run install -D -m 0640 "$SRC/etc/ftpd.conf" "$ROOT/etc/ftpd/ftpd.conf"
fi
run "$ROOT$PREFIX/bin/ftpd" -c "$ROOT/etc/ftpd/ftpd.conf" check

step "4. The systemd units and the logrotate policy"
run install -D -m 0644 "$SRC/systemd/ftpd.service" "$ROOT/etc/systemd/system/ftpd.service"
run install -D -m 0644 "$SRC/systemd/ftpd.socket" "$ROOT/etc/systemd/system/ftpd.socket"
run install -D -m 0644 "$SRC/deploy/logrotate.d/ftpd" "$ROOT/etc/logrotate.d/ftpd"

step "5. Enable (and start) ftpd.service"
if [ -n "$ROOT" ]; then
    run systemctl --root="$ROOT" enable ftpd.service
elif [ "$START" = yes ]; then
    run systemctl daemon-reload
    run systemctl enable --now ftpd.service
    run systemctl --no-pager status ftpd.service
else
    run systemctl daemon-reload
    run systemctl enable ftpd.service
fi
echo
echo "Done. Status: ftpd -c /etc/ftpd/ftpd.conf status; logs: journalctl -u ftpd"
