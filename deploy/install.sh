#!/bin/sh
# Install ftpd as a systemd service on a system without the Debian package
# (on Debian and its derivatives: apt install ./ftpd_*.deb instead).
# docs/deployment.md walks through each step.
#
#   sudo deploy/install.sh                  # install or upgrade, enable and start
#   sudo deploy/install.sh --wheels DIR     # offline: pip takes everything from DIR
#   sudo deploy/install.sh --no-start       # install and enable, start later
#   sudo deploy/install.sh --uninstall      # remove the program and the units;
#                                           # config, library, logs and user stay
#   sudo ROOT=/tmp/stage deploy/install.sh
#        # stage everything below /tmp/stage (packaging, tests): the user is
#        # created in $ROOT/etc/passwd and nothing is started
#
# Safe to run again (an upgrade): an existing /etc/ftpd/ftpd.conf is kept, and
# a running ftpd is restarted gracefully (transfers in progress finish).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${ROOT:-}
PREFIX=${PREFIX:-/opt/ftpd}
START=${START:-yes}
PYTHON=${PYTHON:-python3}
WHEELS=
ACTION=install
LOCAL=/usr/local

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case $1 in
        --wheels) [ $# -ge 2 ] || usage 2; WHEELS=$(cd "$2" && pwd); shift ;;
        --wheels=*) WHEELS=$(cd "${1#--wheels=}" && pwd) ;;
        --no-start) START=no ;;
        --uninstall) ACTION=uninstall ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
    shift
done

step() { printf '\n==> %s\n' "$*"; }
run() { printf '    $ %s\n' "$*"; "$@"; }

[ "$(id -u)" = 0 ] || { echo "install.sh: must run as root" >&2; exit 1; }
if [ -z "$ROOT" ] && dpkg-query -W -f '${Status}' ftpd 2>/dev/null | grep -q 'ok installed'; then
    echo "install.sh: the Debian package ftpd is installed; upgrade or remove it with apt" >&2
    exit 1
fi

# Files this script owns (the config, the library, the logs and the user are
# the admin's and are never removed).
UNITS="ftpd.service ftpd.socket ftpd-metrics.socket"   # the last: installed, not enabled
PROGRAMS="ftpd ftpc"

uninstall() {
    step "Stop and disable the units"
    if [ -n "$ROOT" ]; then
        run systemctl --root="$ROOT" disable $UNITS || true
    else
        run systemctl disable --now $UNITS || true
    fi
    step "Remove the program, the units and what came with them"
    for unit in $UNITS; do run rm -f "$ROOT/etc/systemd/system/$unit"; done
    for program in $PROGRAMS; do
        run rm -f "$ROOT$LOCAL/bin/$program" \
            "$ROOT$LOCAL/share/bash-completion/completions/$program" \
            "$ROOT$LOCAL/share/zsh/site-functions/_$program"
    done
    run rm -f "$ROOT$LOCAL/share/man/man8/ftpd.8" "$ROOT$LOCAL/share/man/man5/ftpd.conf.5" \
        "$ROOT$LOCAL/share/man/man1/ftpc.1"
    run rm -f "$ROOT/etc/logrotate.d/ftpd" "$ROOT/etc/sysusers.d/ftpd.conf" \
        "$ROOT/etc/tmpfiles.d/ftpd.conf"
    run rm -rf "$ROOT$PREFIX"
    [ -n "$ROOT" ] || run systemctl daemon-reload
    echo
    echo "Removed. Kept: /etc/ftpd (config, accounts), /srv/ftpd (the library),"
    echo "/var/log/ftpd and the ftpd user; remove them by hand if you want them gone."
}

install_program() {
    step "1. The program: a virtualenv in $PREFIX; ftpd and ftpc on the PATH"
    run "$PYTHON" -m venv "$ROOT$PREFIX"
    if [ -n "$WHEELS" ]; then
        run "$ROOT$PREFIX/bin/pip" install --quiet --upgrade --no-index \
            --find-links "$WHEELS" "$SRC"
    else
        run "$ROOT$PREFIX/bin/pip" install --quiet --upgrade "$SRC"
    fi
    run install -d "$ROOT$LOCAL/bin"
    for program in $PROGRAMS; do
        run ln -sfn "$PREFIX/bin/$program" "$ROOT$LOCAL/bin/$program"
    done
    run install -D -m 0644 "$SRC/docs/deployment.md" "$ROOT$PREFIX/share/doc/ftpd/deployment.md"
    # Man pages and completion, rendered from the code just installed.
    generated="$ROOT$PREFIX/share/generated"
    run "$ROOT$PREFIX/bin/python" "$SRC/tools/gen_man.py" --out "$generated/man"
    run "$ROOT$PREFIX/bin/python" "$SRC/tools/gen_completion.py" --out "$generated/completion"
    for page in ftpd.8 ftpd.conf.5 ftpc.1; do
        run install -D -m 0644 "$generated/man/$page" \
            "$ROOT$LOCAL/share/man/man${page##*.}/$page"
    done
    for program in $PROGRAMS; do
        run install -D -m 0644 "$generated/completion/$program.bash" \
            "$ROOT$LOCAL/share/bash-completion/completions/$program"
        run install -D -m 0644 "$generated/completion/_$program" \
            "$ROOT$LOCAL/share/zsh/site-functions/_$program"
    done
}

install_user_and_dirs() {
    step "2. The ftpd user and its directories (library /srv/ftpd, logs /var/log/ftpd)"
    run install -D -m 0644 "$SRC/deploy/sysusers.d/ftpd.conf" "$ROOT/etc/sysusers.d/ftpd.conf"
    run install -D -m 0644 "$SRC/deploy/tmpfiles.d/ftpd.conf" "$ROOT/etc/tmpfiles.d/ftpd.conf"
    if command -v systemd-sysusers >/dev/null; then
        run systemd-sysusers ${ROOT:+--root="$ROOT"} "$ROOT/etc/sysusers.d/ftpd.conf"
    elif ! getent passwd ftpd >/dev/null; then
        run useradd --system --user-group --home-dir /srv/ftpd --shell /usr/sbin/nologin ftpd
    fi
    run systemd-tmpfiles ${ROOT:+--root="$ROOT"} --create "$ROOT/etc/tmpfiles.d/ftpd.conf"
}

install_config() {
    step "3. The config: /etc/ftpd/ftpd.conf (kept if it exists), then checked"
    if [ -e "$ROOT/etc/ftpd/ftpd.conf" ]; then
        echo "    keeping the existing $ROOT/etc/ftpd/ftpd.conf"
    else
        run install -D -m 0640 "$SRC/etc/ftpd.conf" "$ROOT/etc/ftpd/ftpd.conf"
    fi
    if [ -n "$ROOT" ]; then
        # Its users and paths are the target system's, not this one's.
        echo "    not checked: staged below $ROOT (run ftpd check on the target)"
    else
        run "$ROOT$PREFIX/bin/ftpd" -c "$ROOT/etc/ftpd/ftpd.conf" check
    fi
}

install_units() {
    step "4. The systemd units and the logrotate policy"
    for unit in $UNITS; do
        run install -D -m 0644 "$SRC/systemd/$unit" "$ROOT/etc/systemd/system/$unit"
    done
    run install -D -m 0644 "$SRC/deploy/logrotate.d/ftpd" "$ROOT/etc/logrotate.d/ftpd"
}

enable_and_start() {
    step "5. Enable (and start) ftpd.service; an upgrade restarts it gracefully"
    if [ -n "$ROOT" ]; then
        run systemctl --root="$ROOT" enable ftpd.service
        return
    fi
    run systemctl daemon-reload
    if [ "$START" != yes ]; then
        run systemctl enable ftpd.service
        return
    fi
    # A running ftpd drains on SIGTERM (transfers finish) while ftpd.socket,
    # left alone, queues new clients for the new daemon.
    run systemctl try-restart ftpd.service
    run systemctl enable --now ftpd.service
    run systemctl --no-pager status ftpd.service
}

if [ "$ACTION" = uninstall ]; then
    uninstall
    exit 0
fi
install_program
install_user_and_dirs
install_config
install_units
enable_and_start
echo
echo "Done. Status: ftpd -c /etc/ftpd/ftpd.conf status; logs: journalctl -u ftpd"
