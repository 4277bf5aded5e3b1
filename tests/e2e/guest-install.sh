# shellcheck shell=bash
# Sourced by guest-suite.sh INSIDE the e2e guest (it uses that script's `check`, `say`, $PAYLOAD,
# $RESULTS and $E2E_SUITE). The packaged install, tried the way an operator would try it:
#
#   guest_install_readme   on the freshly booted node, before the suite configures anything: the
#                          shell commands of README.md's "Install on a node", taken from the README
#                          text itself (a README that drifts from what works fails here), with the
#                          .deb that run.sh built with `make deb`; then `runsc-guard doctor` and
#                          one guarded pod (incident-guard) on the node as the README left it,
#                          while every containerd-shim-runsc-v1 containerd starts is recorded.
#   guest_install_packaged whether the package is installed: the suite then runs all its
#                          scenarios through the packaged /usr/bin binaries.
#   guest_install_remove   after the suite: `dpkg -r`, then `dpkg --purge`, each leaving
#                          containerd's own configuration as it was.
#   guest_install_daemonset then the DaemonSet's installer script on the bare node (HOST_ROOT=/):
#                          the copy, a second run that changes nothing, and the doctor loop's
#                          JSON lines and readiness file.
#
# Payload: README.md, debs/runsc-guard_*.deb, guest-install.sh (this file), bin/e2e-driver,
# k8s/installer.sh and k8s/runsc.toml (packaging/).
# What it found goes to guest-checks.json (check names install-*) and $RESULTS/install/.

INSTALL_RESULTS=$RESULTS/install
PACKAGE=runsc-guard

# The node's containerd configuration as a list of checksums, to show nothing of it changed.
containerd_config_sums() {
    find /etc/containerd -type f ! -name runsc.toml ! -name config-guarded-node.toml \
        -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
}

# readme_section TITLE: the lines of README.md's "## TITLE" section.
readme_section() {
    awk -v title="## $1" '
        $0 == title { on = 1; next }
        on && /^## / { exit }
        on { print }
    ' "$PAYLOAD/README.md"
}

# readme_blocks LANG: the lines of that section's ```LANG code blocks, comments and blank lines
# dropped, one command per line.
readme_blocks() {
    readme_section "Install on a node" | awk -v lang="$1" '
        /^```/ { if (on) { on = 0 } else if ($0 == "```" lang) { on = 1 }; next }
        on {
            sub(/[ \t]+#.*$/, ""); sub(/^#.*$/, "")
            if ($0 !~ /^[ \t]*$/) print
        }
    '
}

# shim_watch FILE: every second, the executable of each running containerd-shim-runsc-v1
# (what containerd really started), appended to FILE; runs until killed.
shim_watch() {
    local d exe
    while :; do
        for d in /proc/[0-9]*; do
            exe=$(readlink "$d/exe" 2>/dev/null) || continue
            [[ ${exe##*/} == containerd-shim-runsc-v1 ]] && printf '%s\n' "$exe" >>"$1"
        done
        sleep 1
    done
}

wait_containerd() {
    local _
    for _ in $(seq 1 120); do
        ctr version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

guest_install_readme() {
    [[ $E2E_SUITE == bookworm ]] || return 1
    mkdir -p "$INSTALL_RESULTS"
    local t=$SECONDS debs=/tmp/e2e-install deb rc out line ran=() skipped=()
    # The node's own config, as Debian ships it, plus what this guest cannot do without: the pods'
    # sandbox image is the local one (no registry here). Not the README's step.
    sed -i "/^ *\[plugins.\"io.containerd.grpc.v1.cri\"\]\$/a\\    sandbox_image = \"$SANDBOX_IMAGE\"" \
        /etc/containerd/config.toml
    local sums_before sums_after=""
    sums_before=$(containerd_config_sums)
    mkdir -p "$debs" /var/log/runsc /var/log/runsc-stock
    cp "$PAYLOAD"/debs/*.deb "$debs/" 2>/dev/null
    if ! compgen -G "$debs/*.deb" >/dev/null; then
        check install-deb-built 1 "no .deb in the payload (run.sh builds it with make deb)"
        return 1
    fi
    say "the README's 'Install on a node', step by step, with $(cd "$debs" && echo *.deb)"
    # The guest has no network: apt may only use what is installed and the local .deb.
    # Assume-Yes stands for the operator who answers apt's question.
    printf 'APT::Get::Assume-Yes "true";\nAcquire::Languages "none";\n' \
        >/etc/apt/apt.conf.d/90e2e-install

    # Step 1 (and 2's sh block): every command of the section's sh blocks, in order. `make deb`
    # ran on the host (run.sh); kubectl needs a cluster the guest does not have (the manifests
    # are validated against Kubernetes' schema by tests/manifests.rs, and checked against the
    # script by tests/packaging.rs).
    local cmds
    cmds=$(readme_blocks sh)
    printf '%s\n' "$cmds" >"$INSTALL_RESULTS/readme-commands.txt"
    rc=0
    while IFS= read -r line; do
        case $line in
            "make deb"*)
                skipped+=("$line (host)")
                continue
                ;;
            kubectl*)
                skipped+=("$line (no cluster)")
                continue
                ;;
        esac
        ran+=("$line")
        say "README: $line"
        if ! out=$(cd "$debs" && DEBIAN_FRONTEND=noninteractive bash -c "$line" </dev/null 2>&1); then
            rc=1
            check install-readme-steps 1 "'$line' failed: $(tail -n 5 <<<"$out")"
            break
        fi
        printf '$ %s\n%s\n' "$line" "$out" >>"$INSTALL_RESULTS/readme-steps.log"
        # The package's own scripts have run: containerd's files must be as they were.
        [[ $line == "apt-get install "* && -z $sums_after ]] && sums_after=$(containerd_config_sums)
    done <<<"$cmds"
    [[ $rc -eq 0 ]] || return 1
    if ! guest_install_packaged; then
        check install-readme-steps 1 "ran ${#ran[@]} command(s) but $PACKAGE is not installed: does the README still install the .deb?"
        return 1
    fi

    # What the package put where: both binaries in /usr/bin, the conffile, the man pages.
    local missing=""
    for f in /usr/bin/containerd-shim-runsc-v1 /usr/bin/runsc-guard /etc/containerd/runsc.toml \
        /usr/share/runsc-guard/containerd/runsc-v2.toml /usr/share/runsc-guard/k8s/runtimeclass.yaml \
        /usr/share/man/man8/runsc-guard.8.gz /usr/share/man/man8/containerd-shim-runsc-v1.8.gz; do
        dpkg -S "$f" 2>/dev/null | grep -q "^$PACKAGE:" || missing+=" $f"
    done
    local conffiles
    conffiles=$(dpkg-query -W -f='${Conffiles}' "$PACKAGE" | awk '{print $1}' | tr '\n' ' ')
    [[ $conffiles == *"/etc/containerd/runsc.toml"* ]] || missing+=" conffile:/etc/containerd/runsc.toml"
    check install-deb-files "$([[ -z $missing ]] && echo 0 || echo 1)" \
        "dpkg -i of $(cd "$debs" && echo *.deb): $(dpkg-query -W -f='${Version}' "$PACKAGE"); conffiles: $conffiles${missing:+; not from the package:$missing}"
    check install-postinst-hands-off "$([[ $sums_before == "$sums_after" ]] && echo 0 || echo 1)" \
        "containerd's config files before and after the install: $([[ $sums_before == "$sums_after" ]] && echo unchanged || diff <(echo "$sums_before") <(echo "$sums_after") | tr '\n' ' ')"

    # The restart is the README's own command; wait for containerd to answer.
    if ! wait_containerd; then
        check install-readme-steps 1 "containerd did not come back with the README's config: $(journalctl -u containerd -n 5 --no-pager | tr '\n' ' ')"
        return 1
    fi
    cp /etc/containerd/config.toml "$INSTALL_RESULTS/config.toml"
    check install-readme-steps 0 "ran: $(printf '[%s] ' "${ran[@]}")skipped: $(printf '[%s] ' "${skipped[@]}")in $((SECONDS - t))s"

    # What containerd made of it: the runsc handler, and config.toml's own CRI settings kept.
    local dump lost=""
    dump=$(containerd config dump 2>&1)
    printf '%s\n' "$dump" >"$INSTALL_RESULTS/config-dump.toml"
    grep -qF "runtimes.runsc]" <<<"$dump" || lost+=" the runsc handler"
    grep -q 'runtime_type = "io.containerd.runsc.v1"' <<<"$dump" || lost+=" its runtime_type"
    grep -qF 'ConfigPath = "/etc/containerd/runsc.toml"' <<<"$dump" || lost+=" its ConfigPath"
    grep -qF "sandbox_image = \"$SANDBOX_IMAGE\"" <<<"$dump" || lost+=" config.toml's sandbox_image"
    grep -qF 'bin_dir = "/usr/lib/cni"' <<<"$dump" || lost+=" config.toml's cni.bin_dir"
    ctr plugins ls >"$INSTALL_RESULTS/ctr-plugins.txt" 2>&1
    [[ $(awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" {print $NF}' "$INSTALL_RESULTS/ctr-plugins.txt") == ok ]] ||
        lost+=" a running CRI plugin ($(journalctl -u containerd --no-pager | grep -o 'failed to load plugin io.containerd.grpc.v1.cri.*' | tail -n 1))"
    check install-containerd-config "$([[ -z $lost ]] && echo 0 || echo 1)" \
        "containerd config dump after the README's steps: $([[ -n $lost ]] && echo "missing:$lost" || echo "the runsc handler and config.toml's own CRI settings")"

    # containerd resolves io.containerd.runsc.v1 on its own PATH: only the packaged shim is there.
    local cpid path_dirs found="" dir
    cpid=$(systemctl show -p MainPID --value containerd)
    path_dirs=$(tr '\0' '\n' <"/proc/$cpid/environ" | sed -n 's/^PATH=//p')
    path_dirs=${path_dirs:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
    IFS=: read -r -a dirs <<<"$path_dirs"
    for dir in "${dirs[@]}"; do
        [[ -x $dir/containerd-shim-runsc-v1 ]] && found+=" $(readlink -f "$dir/containerd-shim-runsc-v1")"
    done
    # /bin and /sbin are /usr's on a merged-/usr system: one file, found twice.
    found=$(tr ' ' '\n' <<<"$found" | sed '/^$/d' | sort -u | tr '\n' ' ')
    found=${found% }
    check install-shim-on-path "$([[ $found == /usr/bin/containerd-shim-runsc-v1 ]] && echo 0 || echo 1)" \
        "containerd's PATH $path_dirs has containerd-shim-runsc-v1 at: ${found:-nowhere}"

    # Step 4, as written: the doctor on the node the README just configured, no pod yet.
    local doctor_rc
    runsc-guard doctor >"$INSTALL_RESULTS/doctor-after-install.txt" 2>&1
    doctor_rc=$?
    check install-doctor "$([[ $doctor_rc -eq 0 ]] && echo 0 || echo 1)" \
        "runsc-guard doctor after the README's steps exited $doctor_rc: $(head -n 1 "$INSTALL_RESULTS/doctor-after-install.txt")$([[ $doctor_rc -ne 0 ]] && grep -E '^(FAIL|warn) ' "$INSTALL_RESULTS/doctor-after-install.txt" | tr -s ' ' | tr '\n' ';')"

    # A guarded pod on this node: incident-guard (bounded by its 256 MiB slice, the doctor clean
    # while it runs), through whatever shim containerd starts, which is recorded.
    for tar in "$PAYLOAD"/images/*.tar; do
        ctr -n k8s.io images import "$tar" >/dev/null 2>&1 || say "import $tar failed"
    done
    cp /etc/containerd/config.toml /etc/containerd/config-guarded-node.toml
    : >"$INSTALL_RESULTS/shims-seen.txt"
    shim_watch "$INSTALL_RESULTS/shims-seen.txt" &
    local watcher=$!
    "$PAYLOAD/bin/e2e-driver" --suite "$E2E_SUITE" --results "$INSTALL_RESULTS/driver" \
        --images localhost/e2e --scenario incident-guard --runsc-guard /usr/bin/runsc-guard \
        >"$INSTALL_RESULTS/driver.log" 2>&1
    kill "$watcher" 2>/dev/null
    wait "$watcher" 2>/dev/null
    local seen summary
    seen=$(sort -u "$INSTALL_RESULTS/shims-seen.txt" | tr '\n' ' ')
    check install-shim-packaged "$([[ ${seen% } == /usr/bin/containerd-shim-runsc-v1 ]] && echo 0 || echo 1)" \
        "the containerd-shim-runsc-v1 containerd ran: ${seen:-none seen}"
    summary=$(tr -d ' \n' <"$INSTALL_RESULTS/driver/summary.json" 2>/dev/null)
    check install-pod-bounded "$([[ $summary == *'"passed":1'* && $summary == *'"failed":0'* ]] && echo 0 || echo 1)" \
        "incident-guard on the README's node: $(tail -n 2 "$INSTALL_RESULTS/driver.log" | tr '\n' ' ')"
    rm -f /etc/containerd/config-guarded-node.toml
    say "the README's install took $((SECONDS - t))s with its pod"
    return 0
}

guest_install_packaged() {
    dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q 'install ok installed'
}

guest_install_remove() {
    local sums_before sums status
    sums_before=$(containerd_config_sums)
    # -r: the binaries go, the conffile stays (its edits are the operator's).
    dpkg -r "$PACKAGE" >"$INSTALL_RESULTS/dpkg-remove.log" 2>&1
    local rc=$? left=""
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PACKAGE" 2>/dev/null)
    for f in /usr/bin/containerd-shim-runsc-v1 /usr/bin/runsc-guard /usr/share/runsc-guard; do
        [[ -e $f ]] && left+=" $f"
    done
    sums=$(containerd_config_sums)
    check install-dpkg-remove "$([[ $rc -eq 0 && ${status% } == rc && -z $left && -f /etc/containerd/runsc.toml && $sums == "$sums_before" ]] && echo 0 || echo 1)" \
        "dpkg -r exited $rc, status '$status'${left:+, left:$left}; runsc.toml (conffile) $([[ -f /etc/containerd/runsc.toml ]] && echo kept || echo GONE); containerd's config $([[ $sums == "$sums_before" ]] && echo unchanged || echo CHANGED)"
    # --purge: the conffile goes too, containerd's files still stay as they are.
    dpkg --purge "$PACKAGE" >"$INSTALL_RESULTS/dpkg-purge.log" 2>&1
    rc=$?
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PACKAGE" 2>/dev/null)
    sums=$(containerd_config_sums)
    local diverted
    diverted=$(dpkg-divert --list "$PACKAGE" 2>/dev/null)
    check install-dpkg-purge "$([[ $rc -eq 0 && -z ${status// /} && ! -e /etc/containerd/runsc.toml && -z $diverted && $sums == "$sums_before" ]] && echo 0 || echo 1)" \
        "dpkg --purge exited $rc, status '${status:-not installed}'; runsc.toml $([[ -e /etc/containerd/runsc.toml ]] && echo LEFT || echo removed); diversions: ${diverted:-none}; containerd's config $([[ $sums == "$sums_before" ]] && echo unchanged || echo CHANGED): $(ls /etc/containerd | tr '\n' ' ')"
}

# json_lines FILE: how many lines of FILE are one whole JSON object each.
json_lines() {
    grep -c '^{.*}$' "$1" 2>/dev/null
}

# The DaemonSet's installer script (packaging/k8s/installer.sh) on this node, after the package is
# purged: HOST_ROOT=/ is the node's / as the init container's hostPath mounts give it, the
# payload's binaries stand for the image's.
guest_install_daemonset() {
    local inst=$PAYLOAD/k8s/installer.sh d=$INSTALL_RESULTS/daemonset
    [[ -r $inst ]] || {
        check install-daemonset 1 "no k8s/installer.sh in the payload"
        return
    }
    mkdir -p "$d"
    local ready=/tmp/e2e-runsc-guard-ready
    local env=(HOST_ROOT=/ SRC_DIR="$PAYLOAD/bin" EXAMPLE_TOML="$PAYLOAD/k8s/runsc.toml"
        READY_FILE="$ready")
    local rc bad="" bin first second
    env "${env[@]}" sh "$inst" install >"$d/install-1.out" 2>"$d/install-1.log"
    rc=$?
    for bin in containerd-shim-runsc-v1 runsc-guard; do
        cmp -s "$PAYLOAD/bin/$bin" "/usr/local/bin/$bin" || bad+=" $bin:not-copied"
        [[ $(stat -c %a "/usr/local/bin/$bin" 2>/dev/null) == 755 ]] || bad+=" $bin:mode"
    done
    cmp -s "$PAYLOAD/k8s/runsc.toml" /etc/containerd/runsc.toml || bad+=" runsc.toml:not-installed"
    check install-daemonset-copy "$([[ $rc -eq 0 && -z $bad ]] && echo 0 || echo 1)" \
        "installer.sh install with HOST_ROOT=/ exited $rc${bad:+;$bad}: $(tr '\n' ';' <"$d/install-1.log")"
    first=$(stat -c '%i %Y' /usr/local/bin/containerd-shim-runsc-v1 /usr/local/bin/runsc-guard \
        /etc/containerd/runsc.toml 2>&1 | tr '\n' ' ')
    env "${env[@]}" sh "$inst" install >"$d/install-2.out" 2>"$d/install-2.log"
    rc=$?
    second=$(stat -c '%i %Y' /usr/local/bin/containerd-shim-runsc-v1 /usr/local/bin/runsc-guard \
        /etc/containerd/runsc.toml 2>&1 | tr '\n' ' ')
    local same=0
    [[ $rc -eq 0 && $first == "$second" ]] || same=1
    [[ $(grep -c 'is up to date' "$d/install-2.log") -eq 2 ]] || same=1
    grep -q 'left as it is' "$d/install-2.log" || same=1
    check install-daemonset-idempotent "$same" \
        "second run exited $rc, files (inode mtime) $([[ $first == "$second" ]] && echo unchanged || echo "changed: $first -> $second"): $(tr '\n' ';' <"$d/install-2.log")"

    # The doctor container's loop, once: with a containerd config that does not parse a failure,
    # so not ready; on the guarded node's config, ready.
    local status
    printf 'version = 2\n[plugins\n' >/tmp/e2e-broken-config.toml
    env "${env[@]}" ONCE=1 DOCTOR_ARGS="--containerd-config /tmp/e2e-broken-config.toml" \
        sh "$inst" watch >"$d/watch-incident.out" 2>"$d/watch-incident.log"
    status=$?
    check install-daemonset-watch-fails "$([[ $status -eq 2 && ! -e $ready && $(json_lines "$d/watch-incident.out") -eq 1 && $(wc -l <"$d/watch-incident.out") -eq 1 ]] && grep -qE '"status": ?"fail"' "$d/watch-incident.out" && grep -q 'doctor: FAILURES (exit 2)' "$d/watch-incident.log" && echo 0 || echo 1)" \
        "watch (chroot /) with a containerd config that does not parse: exit $status, ready file $([[ -e $ready ]] && echo present || echo absent), $(json_lines "$d/watch-incident.out") JSON line(s); $(tail -n 1 "$d/watch-incident.log")"
    env "${env[@]}" ONCE=1 DOCTOR_ARGS="--containerd-config /etc/containerd/config-guarded-node.toml" \
        sh "$inst" watch >"$d/watch-guarded.out" 2>"$d/watch-guarded.log"
    status=$?
    check install-daemonset-watch-ready "$([[ $status -le 1 && -e $ready && $(json_lines "$d/watch-guarded.out") -eq 1 ]] && echo 0 || echo 1)" \
        "watch on the guarded node's config: exit $status, ready file $([[ -e $ready ]] && echo present || echo absent); $(tail -n 1 "$d/watch-guarded.log")"
    # The loop itself: an audit every INTERVAL seconds, one JSON line each. Watched until the
    # second audit is out (one audit can take seconds under emulation on a loaded host), at most
    # 120 s: what is checked is that the loop goes on, not how fast.
    env "${env[@]}" INTERVAL=1 sh "$inst" watch >"$d/watch-loop.out" 2>"$d/watch-loop.log" &
    local loop=$! waited=0 n=0
    while ((waited < 120)); do
        sleep 1
        waited=$((waited + 1))
        n=$(json_lines "$d/watch-loop.out")
        ((n >= 2)) && break
    done
    kill "$loop" 2>/dev/null
    wait "$loop" 2>/dev/null
    n=$(json_lines "$d/watch-loop.out")
    check install-daemonset-loop "$([[ $n -ge 2 && $n -eq $(wc -l <"$d/watch-loop.out") ]] && echo 0 || echo 1)" \
        "watch with INTERVAL=1 for ${waited}s: $n audits, each one JSON line; $(grep -c 'doctor:' "$d/watch-loop.log") summary line(s) on stderr"
    rm -f "$ready"
}
