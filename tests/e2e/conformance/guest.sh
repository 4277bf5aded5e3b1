# shellcheck shell=bash disable=SC2034 # conformance_rc: guest-suite.sh exits with it
# Runs INSIDE the e2e guest, sourced by guest-suite.sh when the payload's env says
# E2E_CONFORMANCE=1 (make conformance): once containerd runs with the suite's handlers, it turns
# the node into one critest can drive, runs critest once per runtime handler and leaves the
# JUnit reports in the results share. Uses guest-suite.sh's say, check, PAYLOAD, RESULTS, SOCK,
# containerd_major, runsc_platform and E2E_RUNSC_DEBUG; sets conformance_rc.
#
# Payload part (added by tests/e2e/conformance.sh):
#   conformance/settings        CONFORMANCE_HANDLERS, _LIMIT, _SEED, _FOCUS, _SKIP
#   conformance/registry/       distribution's storage with critest's images (build-registry.py)
#   conformance/debs/*.deb      nftables (portmap's backend) and apparmor, from the suite's archive
#   upstream/{cri-tools,distribution,cni}/bin   critest and crictl, the registry, the CNI plugins
# Results (conformance/ in the results share):
#   junit-HANDLER.xml, critest-HANDLER.log, runs.txt ("HANDLER SECONDS STATUS" per run), versions.txt
#
# No `set -e`, like guest-suite.sh: a failed step is recorded and the next still runs.

CONF=$PAYLOAD/conformance
CONF_OUT=$RESULTS/conformance
REGISTRY_ADDR=127.0.0.1:5000
# critest's images come from these registries; containerd reaches all three through the mirror.
MIRRORED_REGISTRIES=(registry.k8s.io k8s.gcr.io gcr.io)
mkdir -p "$CONF_OUT"
conformance_rc=1

CONFORMANCE_HANDLERS=runsc
CONFORMANCE_LIMIT=2400
CONFORMANCE_SEED=1
CONFORMANCE_FOCUS=""
CONFORMANCE_SKIP=""
# shellcheck disable=SC1091 # written by conformance.sh
. "$CONF/settings"

# crictl and critest both read it (critest's --config default).
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\n' "$SOCK" "$SOCK" >/etc/crictl.yaml

# --- Debian packages the node lacks: nft for portmap, apparmor as Debian nodes have it ---
debs=$CONF/debs/${E2E_IMAGE_SUITE:-$E2E_SUITE}
out=$(dpkg -i "$debs"/*.deb 2>&1)
rc=$?
check conformance-debs "$rc" "$(cd "$debs" && echo *.deb); $(tail -n 1 <<<"$out")"

# --- CNI: critest's pods have their own network namespace ---
# A private bridge on this guest only (the VM has no network device); the plugins are the
# payload's cni-* builds under their CNI names.
mkdir -p /opt/cni/bin /etc/cni/net.d
cni_errs=""
for f in "$PAYLOAD"/upstream/cni/bin/cni-*; do
    install -m 0755 "$f" "/opt/cni/bin/${f##*/cni-}" || cni_errs+=" ${f##*/}"
done
cat >/etc/cni/net.d/10-conformance.conflist <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "conformance",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "backend": "nftables", "capabilities": { "portMappings": true } }
  ]
}
EOF
check conformance-cni "$([[ -z $cni_errs && -x /opt/cni/bin/bridge ]] && echo 0 || echo 1)" \
    "$(cd /opt/cni/bin && echo *)${cni_errs:+; failed:$cni_errs}"

# --- the image registry, on loopback, serving the payload's storage ---
rm -rf /var/lib/conformance-registry
cp -a "$CONF/registry" /var/lib/conformance-registry
cat >/etc/conformance-registry.yml <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/conformance-registry
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
# OTEL_TRACES_EXPORTER=none: no tracing collector to send to.
systemd-run --unit=conformance-registry --setenv=OTEL_TRACES_EXPORTER=none \
    "$(command -v registry)" serve /etc/conformance-registry.yml >/dev/null 2>&1
reg_status=""
for _ in $(seq 1 60); do
    # No curl in the guest: bash's /dev/tcp speaks enough HTTP for the API check.
    if { exec 3<>"/dev/tcp/${REGISTRY_ADDR%:*}/${REGISTRY_ADDR#*:}"; } 2>/dev/null; then
        printf 'GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n' "$REGISTRY_ADDR" >&3
        read -r reg_status <&3
        exec 3>&-
        [[ $reg_status == *" 200 "* ]] && break
    fi
    sleep 1
done
check conformance-registry "$([[ $reg_status == *" 200 "* ]] && echo 0 || echo 1)" \
    "registry $(registry --version 2>/dev/null | awk '{print $3}') on $REGISTRY_ADDR: ${reg_status%$'\r'}; $(wc -l <"$CONF/registry/images.txt") image references"

# --- containerd: the mirrors, CNI, and production-like runsc settings ---
for host in "${MIRRORED_REGISTRIES[@]}"; do
    mkdir -p "/etc/containerd/certs.d/$host"
    cat >"/etc/containerd/certs.d/$host/hosts.toml" <<EOF
server = "https://$host"

[host."http://$REGISTRY_ADDR"]
  capabilities = ["pull", "resolve"]
EOF
done
# shellcheck disable=SC2154 # guest-suite.sh's, from containerd --version
if [[ $containerd_major -ge 2 ]]; then
    cat >>/etc/containerd/config.toml <<'EOF'

# Added by tests/e2e/conformance/guest.sh.
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d'

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['/opt/cni/bin']
  conf_dir = '/etc/cni/net.d'
EOF
else
    cat >>/etc/containerd/config.toml <<'EOF'

# Added by tests/e2e/conformance/guest.sh.
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
EOF
fi
# critest's pods have their own network namespace: no network = "host", which the suite's other
# runs need for their host-network pods. The same runsc settings for gVisor's shim and this one.
write_conformance_runsc_toml() { # HANDLER
    echo "# Written by tests/e2e/conformance/guest.sh for the $1 handler (conformance run)."
    if [[ $E2E_RUNSC_DEBUG == 1 ]]; then
        [[ $1 == runsc ]] && printf 'log_level = "debug"\nlog_path = "/var/log/runsc-shim/"\n'
    fi
    echo '[runsc_config]'
    [[ -n $runsc_platform ]] && echo "platform = \"$runsc_platform\""
    if [[ $E2E_RUNSC_DEBUG == 1 ]]; then
        echo 'debug = "true"'
        [[ $1 == runsc ]] && echo 'debug-log = "/var/log/runsc/"'
        [[ $1 == runsc-gvisor ]] && echo 'debug-log = "/var/log/runsc-gvisor/"'
    fi
    return 0
}
write_conformance_runsc_toml runsc >/etc/containerd/runsc.toml
[[ -f /etc/containerd/runsc-gvisor.toml ]] &&
    write_conformance_runsc_toml runsc-gvisor >/etc/containerd/runsc-gvisor.toml

systemctl restart containerd
cri_ok=1
for _ in $(seq 1 120); do
    conditions=$(crictl info -o go-template --template '{{range .status.conditions}}{{.type}}={{.status}} {{end}}' 2>/dev/null)
    # NetworkReady turns true once CRI has loaded the CNI configuration.
    if [[ $conditions == *RuntimeReady=true* && $conditions == *NetworkReady=true* ]]; then
        cri_ok=0
        break
    fi
    sleep 1
done
check conformance-cri-ready "$cri_ok" "containerd restarted; CRI conditions: ${conditions:-none}"

# One pull through the mirror, so a broken registry shows here and not as 40 failing specs.
pull_out=$(timeout 300 crictl pull registry.k8s.io/e2e-test-images/busybox:1.29-2 2>&1)
pull_rc=$?
crictl rmi registry.k8s.io/e2e-test-images/busybox:1.29-2 >/dev/null 2>&1
check conformance-pull "$pull_rc" "crictl pull registry.k8s.io/e2e-test-images/busybox:1.29-2: $pull_out"

{
    # critest and crictl built from the module say "unknown" themselves: their module's version.
    printf 'critest %s\n' "$(awk '$1 == "critest" {sub(/.*@/, "", $2); print $2}' "$PAYLOAD/upstream/cri-tools/VERSIONS")"
    printf 'registry %s\n' "$(registry --version 2>/dev/null | awk '{print $3}')"
    printf 'cni-plugins %s\n' "$(awk 'NR == 1 {sub(/.*@/, "", $2); print $2}' "$PAYLOAD/upstream/cni/VERSIONS")"
    printf 'nftables %s\n' "$(nft --version 2>/dev/null)"
    printf 'apparmor %s\n' "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)"
    printf 'handlers %s\n' "$CONFORMANCE_HANDLERS"
    printf 'seed %s\nfocus %s\nskip %s\nlimit_s %s\n' "$CONFORMANCE_SEED" "$CONFORMANCE_FOCUS" \
        "$CONFORMANCE_SKIP" "$CONFORMANCE_LIMIT"
} >"$CONF_OUT/versions.txt"

# --- critest, once per handler, the same specs in the same order ---
# Everything a run pulled or left behind goes before the next, so each starts from the same node.
conformance_clean() {
    local ids
    crictl rmp --force --all >/dev/null 2>&1
    ids=$(crictl images 2>/dev/null | awk 'NR > 1 && ($1 ~ /^(registry\.k8s\.io|k8s\.gcr\.io|gcr\.io)\//) {print $3}' | sort -u)
    # shellcheck disable=SC2086 # one word per image id
    [[ -n $ids ]] && crictl rmi $ids >/dev/null 2>&1
    return 0
}

read -r -a handlers <<<"$CONFORMANCE_HANDLERS"
conformance_rc=0
: >"$CONF_OUT/runs.txt"
for i in "${!handlers[@]}"; do
    h=${handlers[$i]}
    conformance_clean
    # Whatever time the guest has left is shared by the handlers still to run, 3 minutes kept
    # for the log collection; CONFORMANCE_LIMIT caps each.
    left=$(((${E2E_GUEST_TIMEOUT:-100000} - SECONDS - 180) / (${#handlers[@]} - i)))
    limit=$((left < CONFORMANCE_LIMIT ? left : CONFORMANCE_LIMIT))
    if [[ $limit -lt 120 ]]; then
        check "conformance-$h" 1 "not run: ${limit}s left of the guest's time"
        conformance_rc=1
        continue
    fi
    # No --parallel: 1 is critest's default, and naming the flag at all trips Ginkgo's check
    # against go test's -parallel ("Ginkgo detected configuration issues"), which ends the run.
    args=(--runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --runtime-handler "$h"
        --ginkgo.seed "$CONFORMANCE_SEED" --ginkgo.timeout "${limit}s"
        --ginkgo.no-color --ginkgo.junit-report "$CONF_OUT/junit-$h.xml")
    [[ -n $CONFORMANCE_FOCUS ]] && args+=(--ginkgo.focus "$CONFORMANCE_FOCUS")
    [[ -n $CONFORMANCE_SKIP ]] && args+=(--ginkgo.skip "$CONFORMANCE_SKIP")
    say "critest for handler $h (at most ${limit}s): critest ${args[*]}"
    start=$SECONDS
    # ginkgo's own timeout ends the run with a report; the outer one only catches a hang.
    (cd /tmp && timeout --signal=INT --kill-after=60 $((limit + 120)) critest "${args[@]}") \
        >"$CONF_OUT/critest-$h.log" 2>&1
    rc=$?
    took=$((SECONDS - start))
    printf '%s %s %s\n' "$h" "$took" "$rc" >>"$CONF_OUT/runs.txt"
    summary=$(grep -E '^(Ran [0-9]+ of [0-9]+ Specs|(SUCCESS|FAIL)! --)' "$CONF_OUT/critest-$h.log" | tr '\n' ' ')
    say "critest for handler $h: status $rc after ${took}s: $summary"
    if [[ -s $CONF_OUT/junit-$h.xml ]]; then
        # A spec that fails is a result, not a broken run: the host's report shows each.
        check "conformance-$h" 0 "critest ran in ${took}s (status $rc): $summary"
    else
        check "conformance-$h" 1 "critest wrote no JUnit report (status $rc after ${took}s); see critest-$h.log"
        conformance_rc=1
    fi
done
conformance_clean
systemctl stop conformance-registry >/dev/null 2>&1
journalctl --no-pager -u conformance-registry >"$CONF_OUT/registry.log" 2>&1
