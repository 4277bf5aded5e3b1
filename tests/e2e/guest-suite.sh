#!/bin/bash
# Runs INSIDE the e2e guest VM, started by e2e-guest.service (via /usr/local/sbin/e2e-guest-boot)
# from the read-only payload share. Turns the freshly booted Debian guest into a kubelet-less
# Kubernetes node (containerd with CRI, three runtime handlers, local images) and runs the CRI
# driver against it. Everything it learns goes to the results share:
#   guest-suite.log      this script's output
#   guest-checks.json    its own pre-checks {"passed":N,"failed":N,"checks":[...]}
#   versions.txt         kernel, containerd, runc, runsc, systemd versions
#   driver/              the driver's report.md, report.json, summary.json
#   logs/                containerd's journal, the whole journal, dmesg, shim and runsc logs
#   guest-done           written last, always: "status N"; its absence means the guest died
#
# Payload layout (written by tests/e2e/run.sh):
#   env                  E2E_SUITE=..., optional E2E_GUEST_TIMEOUT, E2E_RUNSC_DEBUG, E2E_DRIVER_ARGS,
#                        E2E_BENCH (1: the bench's extra handlers, see bench.sh)
#   guest-suite.sh       this file
#   bin/containerd-shim-runsc-v1   the project's shim (release build)
#   bin/runsc-guard      the operator CLI (the driver runs its doctor)
#   bin/e2e-driver       the CRI driver (optional while it is being written)
#   images/*.tar         OCI archives of localhost/e2e/{busybox,pause,eater}:1
#   debs/*.deb, README.md, guest-install.sh   the package (make deb), and the README whose
#                        "Install on a node" guest-install.sh follows with it (bookworm)
#
# No `set -e`: a failed step is recorded and the steps after it still run where they can, so
# one run shows as much as possible. The exit status says whether everything passed.
set -uo pipefail

PAYLOAD=/mnt/payload
RESULTS=/mnt/results
IMAGES=(localhost/e2e/busybox:1 localhost/e2e/pause:1 localhost/e2e/eater:1)
SANDBOX_IMAGE=localhost/e2e/pause:1
SOCK=/run/containerd/containerd.sock

mkdir -p "$RESULTS/logs"
exec > >(tee -a "$RESULTS/guest-suite.log") 2>&1

t0=$SECONDS
say() { printf '[guest %4ds] %s\n' "$((SECONDS - t0))" "$*"; }

# --- pre-check bookkeeping: each check is a name, ok/failed and a detail ---
checks_json=()
passed=0
failed=0
check() { # check NAME OK(0|1) DETAIL
    local name=$1 ok=$2 detail=$3
    if [[ $ok -eq 0 ]]; then
        passed=$((passed + 1))
        say "PASS $name: $detail"
    else
        failed=$((failed + 1))
        say "FAIL $name: $detail"
    fi
    detail=${detail//\\/\\\\}
    detail=${detail//\"/\\\"}
    detail=$(printf '%s' "$detail" | tr '\n\t\r' '   ')
    checks_json+=("{\"name\":\"$name\",\"ok\":$([[ $ok -eq 0 ]] && echo true || echo false),\"detail\":\"$detail\"}")
}

# shellcheck disable=SC2317 # called from finish(), the EXIT trap
write_checks() {
    local IFS=,
    printf '{"passed":%d,"failed":%d,"checks":[%s]}\n' "$passed" "$failed" "${checks_json[*]}" \
        >"$RESULTS/guest-checks.json"
}

# Always, however the script ends: collect the logs a failure would need, then the marker.
# shellcheck disable=SC2317 # called by the EXIT trap
finish() {
    local rc=$?
    say "collecting logs"
    journalctl --no-pager -u containerd >"$RESULTS/logs/containerd.log" 2>&1
    journalctl --no-pager -b >"$RESULTS/logs/journal.log" 2>&1
    dmesg >"$RESULTS/logs/dmesg.log" 2>&1
    systemd-cgls --no-pager >"$RESULTS/logs/cgls.txt" 2>&1
    local d
    for d in /var/log/runsc /var/log/runsc-stock /var/log/runsc-shim /var/log/runsc-gvisor /run/containerd/runsc; do
        if [[ -d $d ]]; then
            mkdir -p "$RESULTS/logs/${d//\//_}"
            cp -a "$d/." "$RESULTS/logs/${d//\//_}/" 2>/dev/null
        fi
    done
    [[ $failed -gt 0 && $rc -eq 0 ]] && rc=1
    write_checks
    say "done: pre-checks $passed passed, $failed failed; status $rc"
    printf 'status %d\n' "$rc" >"$RESULTS/guest-done"
    sync
    # An EXIT trap's own exit sets the script's status; a failed pre-check must show in it.
    exit "$rc"
}
trap finish EXIT
# e2e-guest-boot's timeout sends TERM: end through finish() so the logs are still collected.
trap 'say "terminated (guest time limit)"; exit 124' TERM

# --- what this run is ---
E2E_SUITE=""
E2E_RUNSC_DEBUG=1
E2E_DRIVER_ARGS=""
E2E_BENCH=0
if [[ -r $PAYLOAD/env ]]; then
    # shellcheck disable=SC1091 # written by run.sh for this run
    . "$PAYLOAD/env"
fi
E2E_IMAGE_SUITE=${E2E_IMAGE_SUITE:-$E2E_SUITE}
E2E_UPSTREAM=${E2E_UPSTREAM:-}
built_for=$(cat /etc/e2e-suite 2>/dev/null || echo unknown)
if [[ -z $E2E_SUITE || $E2E_IMAGE_SUITE != "$built_for" ]]; then
    check suite-image 1 "payload says suite '${E2E_SUITE}' on image '${E2E_IMAGE_SUITE}', this image was built for '$built_for'"
    exit 1
fi
say "suite $E2E_SUITE on $(uname -r) (image $built_for)"

# --- the upstream suite: the Go module builds of tools/go over the image's Debian packages ---
# containerd, ctr, containerd-shim-runc-v2, runc and runsc replace Debian's where PATH finds them
# (runc is /usr/sbin's, the others /usr/bin's), so the image's units and every caller take the
# new ones; the disk is a snapshot, so nothing outlives the boot.
# gVisor's own shim goes to /usr/local/lib/gvisor/, where only the runsc-gvisor handler's
# runtime_path names it: io.containerd.runsc.v1 on PATH stays this project's shim.
GVISOR_SHIM=/usr/local/lib/gvisor/containerd-shim-runsc-v1
if [[ -n $E2E_UPSTREAM ]]; then
    up_errs=""
    for component in $E2E_UPSTREAM; do
        dir=$PAYLOAD/upstream/$component
        if [[ ! -f $dir/VERSIONS ]]; then
            up_errs+=" $component: not in the payload"
            continue
        fi
        while read -r bin _; do
            if [[ $component == gvisor* && $bin == containerd-shim-runsc-v1 ]]; then
                install -D -m 0755 "$dir/bin/$bin" "$GVISOR_SHIM" || up_errs+=" $bin"
            else
                target=$(command -v "$bin" || echo "/usr/bin/$bin")
                install -m 0755 "$dir/bin/$bin" "$target" || up_errs+=" $bin"
            fi
        done <"$dir/VERSIONS"
        sed "s/^/$component /" "$dir/VERSIONS" >>"$RESULTS/upstream-versions.txt"
    done
    check upstream-installed "$([[ -z $up_errs ]] && echo 0 || echo 1)" \
        "$E2E_UPSTREAM over the image's packages${up_errs:+; failed:$up_errs}"
fi

containerd_version=$(containerd --version 2>/dev/null | awk '{print $3}')
containerd_version=${containerd_version#v}
runsc_version_text=$(runsc --version 2>/dev/null | head -n1)
{
    printf 'suite %s\nkernel %s\n' "$E2E_SUITE" "$(uname -r)"
    printf 'containerd %s\n' "$containerd_version"
    printf 'runc %s\n' "$(runc --version 2>/dev/null | head -n1)"
    printf 'runsc %s\n' "$runsc_version_text"
    printf 'systemd %s\n' "$(systemctl --version | head -n1)"
    printf 'mem_total_kib %s\n' "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    if [[ -f $RESULTS/upstream-versions.txt ]]; then
        # component binary module@version go-version stamp
        awk '{ printf "built %s %s %s (%s%s)\n", $1, $2, $3, $4, ($5 == "-" ? "" : ", stamped " $5) }' \
            "$RESULTS/upstream-versions.txt"
    fi
} >"$RESULTS/versions.txt"
cat "$RESULTS/versions.txt"

# runsc's release date (e.g. 20221219 from "runsc version release-20221219.0" or Debian's
# "0.0~20221219.0"): newer releases refuse host-network pods without --network=host.
runsc_date=$(grep -oE '20[0-9]{6}' <<<"$runsc_version_text" | head -n1)
runsc_date=${runsc_date:-0}

# --- the node install as README.md describes it, with the .deb (bookworm; guest-install.sh) ---
packaged=0
if [[ -r $PAYLOAD/guest-install.sh ]]; then
    # shellcheck source=guest-install.sh
    . "$PAYLOAD/guest-install.sh"
    guest_install_readme
    guest_install_packaged && packaged=1
fi

# --- the project's shim ---
shim_src=$PAYLOAD/bin/containerd-shim-runsc-v1
runsc_guard=/usr/local/bin/runsc-guard
if [[ $packaged == 1 ]]; then
    # The whole suite runs through the packaged binaries; /usr/local/bin stays empty of them so
    # containerd finds /usr/bin's.
    runsc_guard=/usr/bin/runsc-guard
    check shim-installed 0 "$(command -v containerd-shim-runsc-v1) (from the .deb)"
elif [[ -x $shim_src ]]; then
    install -m 0755 "$shim_src" /usr/local/bin/containerd-shim-runsc-v1
    # containerd finds shims on PATH; /usr/local/bin comes first, and the image moved Debian's
    # Go shim aside, so nothing else can answer io.containerd.runsc.v1.
    check shim-installed 0 "$(command -v containerd-shim-runsc-v1)"
else
    check shim-installed 1 "no $shim_src in the payload: the runsc handler cannot work"
fi
if [[ $packaged == 0 && -x $PAYLOAD/bin/runsc-guard ]]; then
    install -m 0755 "$PAYLOAD/bin/runsc-guard" /usr/local/bin/runsc-guard
fi

# --- the runsc gates: what this runsc has of the behaviours the shim depends on ---
# runsc-guard version reads them from the real runsc (its --version and, for an undated build,
# runsc features); each suite's runsc has a known answer.
case "$E2E_SUITE" in
    bookworm) want_gates="parent-memory-limit=no update=no expands-flag-ids=no features=no auto-systemd-cgroup=no" ;;
    trixie | sid) want_gates="parent-memory-limit=yes update=no expands-flag-ids=no features=no auto-systemd-cgroup=no" ;;
    # The module build prints VERSION_MISSING; its runsc features lists flags first released in
    # release-20260810.0, so every gate holds.
    upstream | upstream-1.7) want_gates="parent-memory-limit=yes update=yes expands-flag-ids=yes features=yes auto-systemd-cgroup=yes" ;;
    *) want_gates="" ;;
esac
if [[ -n $want_gates && -x $runsc_guard ]]; then
    version_out=$("$runsc_guard" version 2>&1)
    say "runsc-guard version:"
    printf '%s\n' "$version_out" | sed 's/^/    /'
    got_gates=$(awk '$1 == "gate" { v = $4; sub(/:$/, "", v); printf "%s%s=%s", sep, $2, v; sep = " " }' <<<"$version_out")
    check runsc-gates "$([[ $got_gates == "$want_gates" ]] && echo 0 || echo 1)" \
        "got: $got_gates; want: $want_gates"
fi

# --- runsc behind containerd's runc shim, as the incident's cluster ran it ---
# --network=host: runsc 20240729 refuses host-network pods without it; 20221219 knows the flag
# too (checked below), where it changes nothing for host-network pods.
stock_flags=(--network=host)
# E2E_RUNSC_PLATFORM: one runsc platform for every runsc handler of the suite, for trying
# another than runsc's default (ptrace on 0.0~20221219, systrap on 0.0~20240729); the guard does not
# depend on the platform.
runsc_platform=${E2E_RUNSC_PLATFORM:-}
if [[ -n $runsc_platform ]]; then
    stock_flags+=("--platform=$runsc_platform")
    say "runsc platform: $runsc_platform (every runsc handler)"
fi
if [[ $E2E_RUNSC_DEBUG == 1 ]]; then
    stock_flags+=(--debug --debug-log=/var/log/runsc-stock/)
fi
# Captured first: `runsc ... | grep -q` under pipefail fails whenever grep stops reading early.
runsc_flags_text=$( (runsc help run; runsc flags) 2>&1)
if grep -q -- '-network' <<<"$runsc_flags_text"; then
    check runsc-network-flag 0 "runsc $runsc_date knows --network"
else
    check runsc-network-flag 1 "runsc $runsc_date does not list --network in 'runsc flags'"
fi
cat >/usr/local/bin/runsc-stock <<EOF
#!/bin/sh
# runsc as containerd's runc shim would call it for the runsc-stock handler (BinaryName).
exec runsc ${stock_flags[*]} "\$@"
EOF
chmod 0755 /usr/local/bin/runsc-stock
# The bench's stock path as a node with the systemd cgroup driver runs it: runsc told to use
# systemd too (runsc's --systemd-cgroup, what `systemd-cgroup = true` in its config sets).
cat >/usr/local/bin/runsc-stock-systemd <<EOF
#!/bin/sh
# runsc as containerd's runc shim calls it for the runsc-stock-systemd handler (bench only).
exec runsc ${stock_flags[*]} --systemd-cgroup "\$@"
EOF
chmod 0755 /usr/local/bin/runsc-stock-systemd

# --- runsc.toml for the project's shim (runsc handler): guard settings stay at their defaults ---
mkdir -p /etc/containerd /var/log/runsc /var/log/runsc-stock /var/log/runsc-shim
write_runsc_toml() {
    echo '# Written by tests/e2e/guest-suite.sh for the runsc handler.'
    if [[ $E2E_RUNSC_DEBUG == 1 ]]; then
        echo 'log_level = "debug"'
        echo 'log_path = "/var/log/runsc-shim/"'
    elif [[ $E2E_BENCH == 1 ]]; then
        # The bench reads the shim's timing lines (info level) from its log files.
        echo 'log_path = "/var/log/runsc-shim/"'
    fi
    echo '[runsc_config]'
    if [[ -n $runsc_platform ]]; then
        echo "platform = \"$runsc_platform\""
    fi
    # An undated runsc (a module build prints VERSION_MISSING) is a newer one.
    if [[ $runsc_date -gt 20221219 || $runsc_date -eq 0 ]]; then
        echo 'network = "host"'
    fi
    if [[ $E2E_RUNSC_DEBUG == 1 ]]; then
        echo 'debug = "true"'
        echo 'debug-log = "/var/log/runsc/"'
    fi
}
write_runsc_toml >/etc/containerd/runsc.toml
# The runsc-nogroup handler: the same shim and settings with one shim process per container
# (the driver's grouping scenario). A top-level key, so before runsc.toml's first table.
{
    echo '# Written by tests/e2e/guest-suite.sh for the runsc-nogroup handler.'
    echo 'grouping = false'
    grep -v '^#' /etc/containerd/runsc.toml
} >/etc/containerd/runsc-nogroup.toml

# --- gVisor's own shim (upstream suite): the runsc-gvisor handler, as gVisor documents it ---
# Nothing guard-like: runsc's defaults, which since release-20260615.0 turn systemd-cgroup on by
# themselves for a systemd-style cgroupsPath. Host networking as for the other handlers.
gvisor_handler=0
if [[ -x $GVISOR_SHIM ]]; then
    gvisor_handler=1
    mkdir -p /var/log/runsc-gvisor
    {
        echo '# Written by tests/e2e/guest-suite.sh for the runsc-gvisor handler (gVisor'"'"'s shim).'
        echo '[runsc_config]'
        echo 'network = "host"'
        [[ -n $runsc_platform ]] && echo "platform = \"$runsc_platform\""
        if [[ $E2E_RUNSC_DEBUG == 1 ]]; then
            echo 'debug = "true"'
            echo 'debug-log = "/var/log/runsc-gvisor/"'
        fi
    } >/etc/containerd/runsc-gvisor.toml
fi

# --- containerd's configuration: v2 schema for 1.6/1.7, v3 for 2.x ---
containerd_major=${containerd_version%%.*}
if [[ $containerd_major -ge 2 ]]; then
    cat >/etc/containerd/config.toml <<EOF
# Written by tests/e2e/guest-suite.sh (containerd $containerd_version: config version 3).
version = 3

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '$SANDBOX_IMAGE'

[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = 'runc'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    SystemdCgroup = true

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc]
  runtime_type = 'io.containerd.runsc.v1'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc.options]
    TypeUrl = 'io.containerd.runsc.v1.options'
    ConfigPath = '/etc/containerd/runsc.toml'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-stock]
  runtime_type = 'io.containerd.runc.v2'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-stock.options]
    BinaryName = '/usr/local/bin/runsc-stock'
    SystemdCgroup = false

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-nogroup]
  runtime_type = 'io.containerd.runsc.v1'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-nogroup.options]
    TypeUrl = 'io.containerd.runsc.v1.options'
    ConfigPath = '/etc/containerd/runsc-nogroup.toml'
EOF
    if [[ $gvisor_handler == 1 ]]; then
        cat >>/etc/containerd/config.toml <<EOF

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-gvisor]
  runtime_type = 'io.containerd.runsc.v1'
  runtime_path = '$GVISOR_SHIM'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-gvisor.options]
    TypeUrl = 'io.containerd.runsc.v1.options'
    ConfigPath = '/etc/containerd/runsc-gvisor.toml'
EOF
    fi
    if [[ $E2E_BENCH == 1 ]]; then
        cat >>/etc/containerd/config.toml <<EOF

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-stock-systemd]
  runtime_type = 'io.containerd.runc.v2'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-stock-systemd.options]
    BinaryName = '/usr/local/bin/runsc-stock-systemd'
    SystemdCgroup = true
EOF
    fi
else
    cat >/etc/containerd/config.toml <<EOF
# Written by tests/e2e/guest-suite.sh (containerd $containerd_version: config version 2).
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
  runtime_type = "io.containerd.runsc.v1"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
    TypeUrl = "io.containerd.runsc.v1.options"
    ConfigPath = "/etc/containerd/runsc.toml"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-stock]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-stock.options]
    BinaryName = "/usr/local/bin/runsc-stock"
    SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-nogroup]
  runtime_type = "io.containerd.runsc.v1"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-nogroup.options]
    TypeUrl = "io.containerd.runsc.v1.options"
    ConfigPath = "/etc/containerd/runsc-nogroup.toml"
EOF
    if [[ $gvisor_handler == 1 ]]; then
        cat >>/etc/containerd/config.toml <<EOF

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-gvisor]
  runtime_type = "io.containerd.runsc.v1"
  runtime_path = "$GVISOR_SHIM"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-gvisor.options]
    TypeUrl = "io.containerd.runsc.v1.options"
    ConfigPath = "/etc/containerd/runsc-gvisor.toml"
EOF
    fi
    if [[ $E2E_BENCH == 1 ]]; then
        cat >>/etc/containerd/config.toml <<EOF

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-stock-systemd]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-stock-systemd.options]
    BinaryName = "/usr/local/bin/runsc-stock-systemd"
    SystemdCgroup = true
EOF
    fi
fi
# The same node as a guarded one would be configured: without the runsc-stock handler (the
# incident's configuration kept on purpose) and the runsc-nogroup one after it, both last in
# the schemas above. The driver points `runsc-guard doctor --containerd-config` at it while a
# guarded pod runs.
sed '/runtimes[.]runsc-stock\]/,$d' /etc/containerd/config.toml \
    >/etc/containerd/config-guarded-node.toml
# No CNI configuration on purpose: every pod uses host networking. CRI logs that no network
# config was found and reports NetworkReady=false, which a host-network pod does not need.

# --- cgroups, as kubelet leaves them at start-up ---
# Enable every controller the root has in its subtree, and in system.slice: stock runsc without
# --systemd-cgroup puts the sandbox under system.slice, and with only systemd's defaults it fails
# earlier ("write .../system.slice/cgroup.subtree_control: no such file or directory") instead
# of showing the escape the suite is about. The driver enables the pod slices below.
enable_controllers() { # enable_controllers CGROUP_DIR
    local c errs=""
    # cgroup.controllers is one line of space-separated names.
    for c in $(<"$1/cgroup.controllers"); do
        echo "+$c" >"$1/cgroup.subtree_control" 2>/dev/null || errs+=" $c"
    done
    printf '%s' "$errs"
}
errs=$(enable_controllers /sys/fs/cgroup)
errs+=$(enable_controllers /sys/fs/cgroup/system.slice)
check cgroup-controllers "$([[ -z $errs ]] && echo 0 || echo 1)" \
    "root: $(cat /sys/fs/cgroup/cgroup.subtree_control); system.slice: $(cat /sys/fs/cgroup/system.slice/cgroup.subtree_control)${errs:+; could not enable:$errs}"

# --- containerd ---
say "starting containerd $containerd_version"
systemctl restart containerd
ok=1
for _ in $(seq 1 120); do
    if [[ -S $SOCK ]] && ctr --address "$SOCK" version >/dev/null 2>&1; then
        ok=0
        break
    fi
    sleep 0.5
done
check containerd-running "$ok" "$(systemctl is-active containerd) after $((SECONDS - t0))s"
if [[ $ok -ne 0 ]]; then
    exit 1
fi

# --- images ---
import_ok=0
for tar in "$PAYLOAD"/images/*.tar; do
    if ! out=$(ctr -n k8s.io images import "$tar" 2>&1); then
        import_ok=1
        say "import $tar failed: $out"
    fi
done
listed=$(ctr -n k8s.io images ls -q 2>&1)
missing=""
for img in "${IMAGES[@]}"; do
    grep -qxF "$img" <<<"$listed" || missing+=" $img"
done
[[ -n $missing ]] && import_ok=1
check images-imported "$import_ok" "listed: $(tr '\n' ' ' <<<"$listed")${missing:+; missing:$missing}"

# --- smoke: a container through containerd's runc shim, outside CRI ---
out=$(timeout 120 ctr -n k8s.io run --rm localhost/e2e/busybox:1 e2e-smoke-runc /bin/sh -c 'echo hi' 2>&1)
check smoke-runc "$([[ $out == hi ]] && echo 0 || echo 1)" "ctr run with runc printed: $out"

# Informational: stock runsc under the runc shim, so a broken runsc in this VM is told apart from
# a broken shim. It runs in its own network namespace (ctr's default), where --network=host is fine.
out=$(timeout 180 ctr -n k8s.io run --rm --runc-binary /usr/local/bin/runsc-stock \
    localhost/e2e/busybox:1 e2e-smoke-runsc /bin/sh -c 'echo hi' 2>&1)
check smoke-runsc-stock "$([[ $out == hi ]] && echo 0 || echo 1)" "ctr run with runsc printed: $out"

# --- make conformance: critest against this node instead of the driver (conformance/guest.sh) ---
if [[ ${E2E_CONFORMANCE:-0} == 1 ]]; then
    # tests/e2e/conformance.sh adds its part to the payload once run.sh has written the rest.
    for _ in $(seq 1 300); do
        [[ -f $PAYLOAD/conformance/ready ]] && break
        sleep 1
    done
    conformance_rc=1
    if [[ -f $PAYLOAD/conformance/ready ]]; then
        # shellcheck source=conformance/guest.sh
        . "$PAYLOAD/conformance/guest.sh"
    else
        check conformance-payload 1 "no $PAYLOAD/conformance/ready after 300s"
    fi
    exit "$conformance_rc"
fi

# --- make k8s: a Kubernetes node (kubelet, API server, kubectl) instead of the driver ---
if [[ ${E2E_K8S:-0} == 1 ]]; then
    # tests/e2e/k8s.sh adds its part to the payload once run.sh has written the rest.
    for _ in $(seq 1 300); do
        [[ -f $PAYLOAD/k8s-node/ready ]] && break
        sleep 1
    done
    k8s_rc=1
    if [[ -f $PAYLOAD/k8s-node/ready ]]; then
        # shellcheck source=k8s/guest.sh
        . "$PAYLOAD/k8s-node/guest.sh"
    else
        check k8s-payload 1 "no $PAYLOAD/k8s-node/ready after 300s"
    fi
    exit "$k8s_rc"
fi

# --- the CRI driver: one command line, easy to change while the driver is young ---
DRIVER=("$PAYLOAD/bin/e2e-driver" --suite "$E2E_SUITE" --results "$RESULTS/driver" --images localhost/e2e
    --runsc-guard "$runsc_guard")
# gVisor's own shim beside this one: the same incident and a plain pod through it.
[[ $gvisor_handler == 1 ]] && DRIVER+=(--also incident-gvisor --also busybox-exit-gvisor)
# shellcheck disable=SC2206 # E2E_DRIVER_ARGS is a plain word list from run.sh's env
[[ -n $E2E_DRIVER_ARGS ]] && DRIVER+=($E2E_DRIVER_ARGS)
if [[ -x ${DRIVER[0]} ]]; then
    say "running: ${DRIVER[*]}"
    "${DRIVER[@]}"
    rc=$?
    say "driver exited with status $rc"
    if [[ $packaged == 1 ]]; then
        guest_install_remove
        guest_install_daemonset
    fi
    exit "$rc"
fi
say "no driver in the payload (${DRIVER[0]}): pre-checks only"
exit 0
