# (packaging/debian/system-user.sh, put in by build-debs.sh)
# porta_system_user DIR: the porta system user, and DIR owned by it (0700)
# so that the service can use it before systemd ever starts a unit
# (StateDirectory= would create it only then). DIR is never removed.
porta_system_user() {
    if ! getent passwd porta >/dev/null; then
        adduser --system --group --home /var/lib/porta --no-create-home \
            --gecos "Porta controller and gateways" porta >/dev/null
    fi
    if [ ! -d "$1" ]; then
        install -d -o porta -g porta -m 0700 "$1"
    fi
}
# porta_restart_if_active UNIT: upgrades restart what was running; a first
# install starts nothing.
porta_restart_if_active() {
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
        if systemctl is-active --quiet "$1"; then
            systemctl restart "$1" || true
        fi
    fi
}
