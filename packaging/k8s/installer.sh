#!/bin/sh
# runsc-guard's node installer, run by the DaemonSet in installer.yaml:
#   installer.sh install   copies the binaries onto the node (the init container), and the
#                          example runsc.toml when the node has none; containerd's config is
#                          never touched
#   installer.sh watch     runs `runsc-guard doctor --json` on the node every $INTERVAL seconds
#                          (the container): one JSON line per audit on stdout, a summary line on
#                          stderr, and $READY_FILE present while the last audit found no failure
#                          (the readiness probe)
#
# Environment (defaults in brackets):
#   HOST_ROOT    where the node's / is mounted [/host]
#   SRC_DIR      where the image keeps the binaries [/opt/runsc-guard/bin]
#   EXAMPLE_TOML the example runsc.toml [/opt/runsc-guard/runsc.toml]
#   DEST_DIR     where on the node the binaries go [/usr/local/bin]
#   INTERVAL     seconds between audits [300]
#   READY_FILE   [/tmp/runsc-guard-ready]
#   DOCTOR_ARGS  more arguments for doctor (word-split) []
#   CHROOT       1: run doctor chrooted into HOST_ROOT, so it sees the node's files and programs
#                as they are; 0: run $HOST_ROOT$DEST_DIR/runsc-guard in place (tests) [1]
#   ONCE         1: one audit, then exit with doctor's status [0]
set -eu

HOST_ROOT=${HOST_ROOT:-/host}
SRC_DIR=${SRC_DIR:-/opt/runsc-guard/bin}
EXAMPLE_TOML=${EXAMPLE_TOML:-/opt/runsc-guard/runsc.toml}
DEST_DIR=${DEST_DIR:-/usr/local/bin}
INTERVAL=${INTERVAL:-300}
READY_FILE=${READY_FILE:-/tmp/runsc-guard-ready}
DOCTOR_ARGS=${DOCTOR_ARGS:-}
CHROOT=${CHROOT:-1}
ONCE=${ONCE:-0}
BINARIES="containerd-shim-runsc-v1 runsc-guard"

log() { echo "runsc-guard-installer: $*" >&2; }
die() { log "$*"; exit 1; }

install_binaries() {
    dest="$HOST_ROOT$DEST_DIR"
    [ -d "$dest" ] || die "$dest does not exist: mount the node's $DEST_DIR there (hostPath)"
    for bin in $BINARIES; do
        src="$SRC_DIR/$bin"
        [ -x "$src" ] || die "$src is missing from the image"
        if cmp -s "$src" "$dest/$bin"; then
            log "$DEST_DIR/$bin is up to date"
            continue
        fi
        # Copy beside, then rename: a shim that is running keeps its old file, containerd
        # starts the next one from the new file, and nobody ever sees half a binary.
        cp "$src" "$dest/.$bin.new"
        chmod 755 "$dest/.$bin.new"
        mv -f "$dest/.$bin.new" "$dest/$bin"
        log "installed $DEST_DIR/$bin"
    done
    toml="$HOST_ROOT/etc/containerd/runsc.toml"
    if [ -e "$toml" ]; then
        log "/etc/containerd/runsc.toml exists; left as it is"
    elif [ -d "$HOST_ROOT/etc/containerd" ] && [ -f "$EXAMPLE_TOML" ]; then
        cp "$EXAMPLE_TOML" "$toml.new"
        chmod 644 "$toml.new"
        mv "$toml.new" "$toml"
        log "installed /etc/containerd/runsc.toml (the documented defaults)"
    fi
    log "containerd's config was not changed: add the runsc handler (packaging/containerd/) and restart containerd"
}

doctor() {
    # shellcheck disable=SC2086 # DOCTOR_ARGS is a list of words
    if [ "$CHROOT" = 1 ]; then
        chroot "$HOST_ROOT" "$DEST_DIR/runsc-guard" doctor --json $DOCTOR_ARGS
    else
        "$HOST_ROOT$DEST_DIR/runsc-guard" doctor --json $DOCTOR_ARGS
    fi
}

audit_once() {
    status=0
    # JSON strings hold no raw newline, so joining the lines keeps it valid: one line per audit.
    json=$(doctor) || status=$?
    printf '%s\n' "$json" | tr -d '\n'
    echo
    case $status in
        0) verdict="all well" ;;
        1) verdict="warnings" ;;
        2) verdict="FAILURES" ;;
        *) verdict="doctor did not run (exit $status)" ;;
    esac
    if [ "$status" -le 1 ]; then
        touch "$READY_FILE"
    else
        rm -f "$READY_FILE"
    fi
    log "doctor: $verdict (exit $status); kubectl logs shows the findings, each with what to do"
    return "$status"
}

watch() {
    if [ "$ONCE" = 1 ]; then
        audit_once
        return
    fi
    while :; do
        audit_once || :
        sleep "$INTERVAL"
    done
}

case "${1:-}" in
    install) install_binaries ;;
    watch) watch ;;
    *) die "usage: installer.sh install|watch" ;;
esac
