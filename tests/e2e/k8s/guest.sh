# shellcheck shell=bash disable=SC2034 # k8s_rc: guest-suite.sh exits with it
# Runs INSIDE the e2e guest, sourced by guest-suite.sh when the payload's env says E2E_K8S=1
# (make k8s): once containerd runs, it turns the node into a one-node Kubernetes cluster and runs
# the scenarios of a real kubelet driving this project's shim through the gvisor RuntimeClass.
# Uses guest-suite.sh's say, check, PAYLOAD, RESULTS, SOCK, containerd_major and E2E_RUNSC_DEBUG;
# sets k8s_rc.
#
# Everything runs in this guest and listens on 127.0.0.1 only (checked): etcd, kube-apiserver,
# kube-controller-manager (Deployments, ReplicaSets, Jobs), the kubelet (systemd cgroup driver,
# taken from containerd) and kubectl. No scheduler: the test pods name the node (nodeName). The
# VM has no network device; pods get a private bridge (the CNI plugins, tools/go/cni).
#
# Payload part (added by tests/e2e/k8s.sh):
#   k8s-node/settings              K8S_SCENARIO_TIMEOUT, K8S_START_N
#   k8s-node/sa.key, sa.pub        the service-account signing key pair (made on the host)
#   k8s-node/debs/*.deb            this project's package (make deb)
#   k8s-node/manifests/*.yaml      the scenarios' Deployments and Job
#   upstream/{kubernetes,etcd,cni}/bin   installed over the image by guest-suite.sh (E2E_UPSTREAM)
# Results (k8s/ in the results share):
#   report.md, report.json         a row per scenario, the last line "N passed, N failed"
#   logs/*.log                     each daemon's output, kubectl's answers per scenario
#   versions.txt, memory.txt, timings.txt
#
# No `set -e`, like guest-suite.sh: a failed step is recorded and the next still runs.

K8S_PART=$PAYLOAD/k8s-node
K8S_OUT=$RESULTS/k8s
K8S_LOGS=$K8S_OUT/logs
K8S_ETC=/etc/kubernetes
K8S_VAR=/var/lib/k8s-e2e
NODE=e2e-node
# The node's InternalIP: kubelet refuses a loopback node IP, and the VM has no network device, so
# a dummy interface of this guest carries one. Nothing listens on it: every daemon binds
# 127.0.0.1, and the API server reaches the kubelet by the node's hostname, 127.0.0.1 in /etc/hosts.
NODE_IP=10.254.0.1
KUBECONFIG=$K8S_ETC/admin.kubeconfig
export KUBECONFIG
mkdir -p "$K8S_OUT" "$K8S_LOGS" "$K8S_ETC" "$K8S_VAR"
k8s_rc=1

K8S_SCENARIO_TIMEOUT=420
K8S_START_N=3
# shellcheck disable=SC1091 # written by k8s.sh
[[ -r $K8S_PART/settings ]] && . "$K8S_PART/settings"

k8s_t0=$SECONDS
k8s_timing() { # k8s_timing NAME SECONDS: one line of timings.txt
    printf '%s %s\n' "$1" "$2" >>"$K8S_OUT/timings.txt"
}
: >"$K8S_OUT/timings.txt"

# --- the report: a row per scenario ---
rows=()
rows_json=()
k8s_passed=0
k8s_failed=0
row() { # row NAME OK(0|1) SECONDS DETAIL
    local name=$1 ok=$2 secs=$3 detail=$4 word=PASS
    if [[ $ok -eq 0 ]]; then
        k8s_passed=$((k8s_passed + 1))
    else
        k8s_failed=$((k8s_failed + 1))
        word=FAIL
    fi
    say "$word scenario $name (${secs}s): $detail"
    detail=$(printf '%s' "$detail" | tr '\n\t\r|' '   /')
    rows+=("| $name | $word | $secs | $detail |")
    detail=${detail//\\/\\\\}
    detail=${detail//\"/\\\"}
    rows_json+=("{\"name\":\"$name\",\"ok\":$([[ $ok -eq 0 ]] && echo true || echo false),\"seconds\":$secs,\"detail\":\"$detail\"}")
}
write_report() {
    {
        echo '# Kubernetes node (make k8s)'
        echo
        sed 's/^/    /' "$K8S_OUT/versions.txt" 2>/dev/null
        echo
        echo '| scenario | result | seconds | detail |'
        echo '|---|---|---|---|'
        printf '%s\n' "${rows[@]}"
        echo
        if [[ -s $K8S_OUT/start-times.txt ]]; then
            echo 'Pod start (kubectl apply -> Running, wall clock of kubectl in the guest):'
            echo
            sed 's/^/    /' "$K8S_OUT/start-times.txt"
            echo
        fi
        if [[ -s $K8S_OUT/memory.txt ]]; then
            echo 'Guest memory:'
            echo
            sed 's/^/    /' "$K8S_OUT/memory.txt"
            echo
        fi
        printf '%d passed, %d failed\n' "$k8s_passed" "$k8s_failed"
    } >"$K8S_OUT/report.md"
    local IFS=,
    printf '{"passed":%d,"failed":%d,"scenarios":[%s]}\n' "$k8s_passed" "$k8s_failed" \
        "${rows_json[*]}" >"$K8S_OUT/report.json"
}

# kc ARGS: kubectl, bounded in time (a hung API server must not eat the guest's time).
kc() { timeout 120 kubectl --request-timeout=100s "$@"; }

# spawn NAME COMMAND...: a daemon as a transient systemd unit (k8s-NAME.service), its output
# appended to logs/NAME.log in the results share as it runs, so a guest that dies still left it.
spawn() {
    local name=$1
    shift
    systemd-run --unit="k8s-$name" --collect \
        -p StandardOutput="append:$K8S_LOGS/$name.log" -p StandardError="append:$K8S_LOGS/$name.log" \
        "$@" >/dev/null 2>&1
}

# wait_for SECONDS COMMAND...: run COMMAND every 2 s until it succeeds or SECONDS pass.
wait_for() {
    local limit=$1 start=$SECONDS
    shift
    while ((SECONDS - start < limit)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 2
    done
    return 1
}

# --- the Kubernetes binaries (installed by guest-suite.sh from the payload) ---
missing=""
for b in etcd kube-apiserver kube-controller-manager kubelet kubectl; do
    command -v "$b" >/dev/null || missing+=" $b"
done
check k8s-binaries "$([[ -z $missing ]] && echo 0 || echo 1)" \
    "$(kubelet --version 2>&1), $(etcd --version 2>/dev/null | head -n1)${missing:+; missing:$missing}"
{
    printf 'kubernetes %s\n' "$(kubelet --version 2>&1 | awk '{print $2}')"
    printf 'etcd %s\n' "$(etcd --version 2>/dev/null | awk 'NR == 1 {print $3}')"
    printf 'containerd %s\n' "$(containerd --version 2>/dev/null | awk '{print $3}')"
    printf 'runsc %s\n' "$(runsc --version 2>/dev/null | head -n1)"
    printf 'cni-plugins %s\n' "$(awk 'NR == 1 {sub(/.*@/, "", $2); print $2}' "$PAYLOAD/upstream/cni/VERSIONS" 2>/dev/null)"
    printf 'kernel %s\n' "$(uname -r)"
} >"$K8S_OUT/versions.txt"

# --- the shim the project's way: the .deb, the packaged containerd snippets ---
# guest-suite.sh put the payload's shim and runsc-guard in /usr/local/bin and wrote its own
# runsc.toml: both go, so that containerd finds the package's /usr/bin shim and the package
# installs its runsc.toml (a conffile) as shipped.
rm -f /usr/local/bin/containerd-shim-runsc-v1 /usr/local/bin/runsc-guard /etc/containerd/runsc.toml
printf 'APT::Get::Assume-Yes "true";\nAcquire::Languages "none";\n' >/etc/apt/apt.conf.d/90e2e-k8s
deb=$(find "$K8S_PART/debs" -name 'runsc-guard_*.deb' | head -n1)
rm -rf /tmp/k8s-debs && mkdir -p /tmp/k8s-debs && cp "$deb" /tmp/k8s-debs/
out=$(cd /tmp/k8s-debs && DEBIAN_FRONTEND=noninteractive apt-get install "./${deb##*/}" </dev/null 2>&1)
rc=$?
printf '%s\n' "$out" >"$K8S_LOGS/deb-install.log"
if [[ $rc -ne 0 ]]; then
    # What apt said is in the log; dpkg alone shows whether the package itself installs.
    out=$(dpkg -i "/tmp/k8s-debs/${deb##*/}" 2>&1)
    printf '== apt-get failed (status %s); dpkg -i:\n%s\n' "$rc" "$out" >>"$K8S_LOGS/deb-install.log"
fi
check k8s-deb "$([[ $rc -eq 0 && $(command -v containerd-shim-runsc-v1) == /usr/bin/containerd-shim-runsc-v1 ]] && echo 0 || echo 1)" \
    "apt-get install ./${deb##*/}: status $rc, $(dpkg-query -W -f='${Version}' runsc-guard 2>/dev/null); containerd-shim-runsc-v1 on PATH: $(command -v containerd-shim-runsc-v1)"

# containerd's config: the pinned sandbox image, the CNI bridge, and the handlers from the
# package's own snippets (runc with SystemdCgroup = true, which tells the kubelet its cgroup
# driver; runsc, this shim). The guest suite's extra handlers are left out.
snippets=/usr/share/runsc-guard/containerd
{
    echo '# Written by tests/e2e/k8s/guest.sh: the Kubernetes node (containerd 2.x, config version 3).'
    echo 'version = 3'
    echo
    echo "[plugins.'io.containerd.cri.v1.images'.pinned_images]"
    echo "  sandbox = '$SANDBOX_IMAGE'"
    echo
    echo "[plugins.'io.containerd.cri.v1.runtime'.cni]"
    echo "  bin_dirs = ['/opt/cni/bin']"
    echo "  conf_dir = '/etc/cni/net.d'"
    echo
    grep -v '^version' "$snippets/runc-v3.toml"
    echo
    grep -v '^version' "$snippets/runsc-v3.toml"
    # gVisor's own shim beside this one, for the start times only (guest-suite.sh installed it
    # where only this handler's runtime_path names it), with runsc's defaults.
    if [[ -x $GVISOR_SHIM ]]; then
        echo
        echo "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-gvisor]"
        echo "  runtime_type = 'io.containerd.runsc.v1'"
        echo "  runtime_path = '$GVISOR_SHIM'"
        echo "  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc-gvisor.options]"
        echo "    TypeUrl = 'io.containerd.runsc.v1.options'"
        echo "    ConfigPath = '/etc/containerd/runsc-gvisor.toml'"
    fi
} >/etc/containerd/config.toml
printf '# Written by tests/e2e/k8s/guest.sh: runsc defaults for gVisor'"'"'s shim.\n[runsc_config]\n' \
    >/etc/containerd/runsc-gvisor.toml
cp /etc/containerd/config.toml "$K8S_OUT/containerd-config.toml"
cp /etc/containerd/runsc.toml "$K8S_OUT/runsc.toml" 2>/dev/null

# --- CNI: a private bridge on this guest ---
mkdir -p /opt/cni/bin /etc/cni/net.d
cni_errs=""
for f in "$PAYLOAD"/upstream/cni/bin/cni-*; do
    install -m 0755 "$f" "/opt/cni/bin/${f##*/cni-}" || cni_errs+=" ${f##*/}"
done
cat >/etc/cni/net.d/10-k8s.conflist <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "k8s-e2e",
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
        "routes": [{ "dst": "10.88.0.0/16" }]
      }
    }
  ]
}
EOF
check k8s-cni "$([[ -z $cni_errs && -x /opt/cni/bin/bridge && -x /opt/cni/bin/loopback ]] && echo 0 || echo 1)" \
    "$(cd /opt/cni/bin && echo *)${cni_errs:+; failed:$cni_errs}"

systemctl restart containerd
cri_ok=1
for _ in $(seq 1 120); do
    if ctr plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" {print $NF}' | grep -qx ok; then
        cri_ok=0
        break
    fi
    sleep 1
done
containerd config dump >"$K8S_OUT/containerd-config-dump.toml" 2>&1
check k8s-containerd "$cri_ok" "containerd restarted with the package's snippets: CRI $([[ $cri_ok -eq 0 ]] && echo ok || echo 'not ok')"

# --- the node's address (see NODE_IP) and name ---
ip link add k8s-node0 type dummy 2>/dev/null || ip link add k8s-node0 type bridge 2>/dev/null
ip addr add "$NODE_IP/32" dev k8s-node0 2>/dev/null
ip link set k8s-node0 up 2>/dev/null
grep -q " $NODE\$" /etc/hosts || printf '127.0.0.1 %s\n' "$NODE" >>/etc/hosts
check k8s-node-ip "$(ip -4 addr show dev k8s-node0 2>/dev/null | grep -q "$NODE_IP" && echo 0 || echo 1)" \
    "$(ip -br addr show dev k8s-node0 2>&1); $NODE is $(getent hosts "$NODE" | awk '{print $1}')"

# --- credentials: a static token per client; the API server signs service-account tokens ---
# A single test node inside a VM with no network: one token each for the admin (kubectl), the
# kubelet and the controller manager, and AlwaysAllow authorization (no RBAC to set up). Never
# a production setup.
new_token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
admin_token=$(new_token)
kubelet_token=$(new_token)
kcm_token=$(new_token)
install -m 0600 "$K8S_PART/sa.key" "$K8S_ETC/sa.key"
install -m 0644 "$K8S_PART/sa.pub" "$K8S_ETC/sa.pub"
{
    printf '%s,admin,admin,"system:masters"\n' "$admin_token"
    printf '%s,system:node:%s,kubelet,"system:nodes"\n' "$kubelet_token" "$NODE"
    printf '%s,system:kube-controller-manager,kcm\n' "$kcm_token"
} >"$K8S_ETC/tokens.csv"
chmod 0600 "$K8S_ETC/tokens.csv"
write_kubeconfig() { # write_kubeconfig FILE TOKEN
    # insecure-skip-tls-verify: the API server signs its own serving certificate at start
    # (--cert-dir), after this file is written; everything is on this guest's loopback.
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: https://127.0.0.1:6443
      insecure-skip-tls-verify: true
users:
  - name: user
    user:
      token: $2
contexts:
  - name: e2e
    context:
      cluster: e2e
      user: user
current-context: e2e
EOF
    chmod 0600 "$1"
}
write_kubeconfig "$K8S_ETC/admin.kubeconfig" "$admin_token"
write_kubeconfig "$K8S_ETC/kubelet.kubeconfig" "$kubelet_token"
write_kubeconfig "$K8S_ETC/controller-manager.kubeconfig" "$kcm_token"

# --- the control plane ---
t=$SECONDS
spawn etcd etcd --name e2e --data-dir "$K8S_VAR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e2e=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
etcd_ok=1
wait_for 180 etcdctl --endpoints http://127.0.0.1:2379 endpoint health && etcd_ok=0
check k8s-etcd "$etcd_ok" "etcd on 127.0.0.1:2379 healthy after $((SECONDS - t))s"
k8s_timing etcd-healthy "$((SECONDS - t))"

t=$SECONDS
spawn apiserver kube-apiserver --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=127.0.0.1 --secure-port=6443 --advertise-address="$NODE_IP" \
    --cert-dir="$K8S_VAR/apiserver" --token-auth-file="$K8S_ETC/tokens.csv" \
    --authorization-mode=AlwaysAllow --allow-privileged=true \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$K8S_ETC/sa.pub" --service-account-signing-key-file="$K8S_ETC/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --kubelet-preferred-address-types=Hostname \
    --endpoint-reconciler-type=none --profiling=false --v=1
api_ok=1
wait_for 420 kc get --raw /readyz && api_ok=0
check k8s-apiserver "$api_ok" "kube-apiserver on 127.0.0.1:6443 ready after $((SECONDS - t))s: $(kc get --raw '/readyz' 2>&1 | tail -n 1)"
k8s_timing apiserver-ready "$((SECONDS - t))"

t=$SECONDS
spawn controller-manager kube-controller-manager --kubeconfig="$K8S_ETC/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file="$K8S_ETC/sa.key" \
    --root-ca-file="$K8S_VAR/apiserver/apiserver.crt" \
    --controllers=deployment-controller,replicaset-controller,job-controller,serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,namespace-controller,pod-garbage-collector-controller,node-lifecycle-controller,root-ca-certificate-publisher-controller \
    --v=1

# --- the kubelet: systemd cgroup driver (from containerd: runc's SystemdCgroup = true) ---
mkdir -p /var/lib/kubelet
cat >"$K8S_ETC/kubelet.yaml" <<EOF
# Written by tests/e2e/k8s/guest.sh. No cgroupDriver: kubelet 1.37 takes it from containerd.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://$SOCK
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
failSwapOn: false
resolvConf: ""
# Under software emulation a sandbox's boot and teardown take seconds.
runtimeRequestTimeout: 10m
# A small test disk (3 GB image) and 4 GiB of memory: evict only when really out.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
t=$SECONDS
spawn kubelet kubelet --config="$K8S_ETC/kubelet.yaml" --kubeconfig="$K8S_ETC/kubelet.kubeconfig" \
    --hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
node_ready() {
    [[ $(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
ready=1
wait_for 420 node_ready && ready=0
check k8s-node-ready "$ready" "node $NODE Ready after $((SECONDS - t))s: $(kc get node -o wide 2>&1 | tail -n +2)"
k8s_timing node-ready "$((SECONDS - t))"
kc get --raw "/api/v1/nodes/$NODE/proxy/configz" >"$K8S_OUT/kubelet-configz.json" 2>&1
# The driver the kubelet took from containerd shows in its log and in the QoS slices it made.
driver=$(grep -o 'cgroup driver setting received from the CRI runtime.*' "$K8S_LOGS/kubelet.log" | head -n1)
check k8s-cgroup-driver "$([[ -d /sys/fs/cgroup/kubepods.slice && ! -d /sys/fs/cgroup/kubepods ]] && echo 0 || echo 1)" \
    "kubepods.slice $([[ -d /sys/fs/cgroup/kubepods.slice ]] && echo present || echo ABSENT) (systemd driver); kubelet: ${driver:-no 'received from the CRI runtime' line}; cgroup $(stat -fc %T /sys/fs/cgroup)"

# Nothing listens outside the guest's loopback.
ss -Htlnp >"$K8S_OUT/listeners.txt" 2>&1
outside=$(awk '{print $4}' "$K8S_OUT/listeners.txt" | grep -vE '^(127\.[0-9.]+|\[::1\]|\[::ffff:127\.[0-9.]+\]):[0-9]+$')
check k8s-loopback-only "$([[ -z $outside ]] && echo 0 || echo 1)" \
    "$(wc -l <"$K8S_OUT/listeners.txt") TCP listeners$([[ -n $outside ]] && echo ", NOT on loopback: $(tr '\n' ' ' <<<"$outside")")"

# --- the control plane's memory: each unit's cgroup and its processes' RSS ---
k8s_memory() { # k8s_memory WHEN: a block of memory.txt
    local u cur rss pid total_cur=0 total_rss=0
    printf '%s (MiB: unit memory.current / process RSS)\n' "$1"
    for u in etcd apiserver controller-manager kubelet; do
        cur=$(systemctl show -p MemoryCurrent --value "k8s-$u.service" 2>/dev/null)
        [[ $cur =~ ^[0-9]+$ ]] || cur=0
        pid=$(systemctl show -p MainPID --value "k8s-$u.service" 2>/dev/null)
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
        rss=${rss:-0}
        total_cur=$((total_cur + cur))
        total_rss=$((total_rss + rss))
        printf '  %-20s %6d / %6d\n' "$u" "$((cur / 1048576))" "$((rss / 1024))"
    done
    printf '  %-20s %6d / %6d\n' total "$((total_cur / 1048576))" "$((total_rss / 1024))"
    awk '/^MemTotal:|^MemAvailable:/ {printf "  guest %-14s %6d\n", $1, $2 / 1024}' /proc/meminfo
}
k8s_memory "control plane and kubelet, node Ready, no pods" >"$K8S_OUT/memory.txt"

# --- the RuntimeClass the project ships, and the node label it selects ---
rc_file=/usr/share/runsc-guard/k8s/runtimeclass.yaml
out=$(kc label node "$NODE" runsc-guard/enabled=true --overwrite 2>&1 && kc apply -f "$rc_file" 2>&1)
rc=$?
handler=$(kc get runtimeclass gvisor -o jsonpath='{.handler}' 2>/dev/null)
check k8s-runtimeclass "$([[ $rc -eq 0 && $handler == runsc ]] && grep -q 'runtimes.runsc\]' /etc/containerd/config.toml && echo 0 || echo 1)" \
    "kubectl apply -f $rc_file: $(tr '\n' ' ' <<<"$out"); handler '$handler' (containerd's runtimes.runsc)"

# gVisor's own shim gets a RuntimeClass of its own (start times only).
if [[ -x $GVISOR_SHIM ]]; then
    printf 'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: gvisor-upstream\nhandler: runsc-gvisor\n' |
        kc apply -f - >/dev/null 2>&1
fi

# The default service account, which the API server wants before it admits a pod.
wait_for 120 kc get serviceaccount default >/dev/null

control_plane_ok=$((etcd_ok + api_ok + ready))
k8s_timing setup-total "$((SECONDS - k8s_t0))"

# ======================= the scenarios =======================

# pod_json SELECTOR: the pods' JSON (kubectl get pods -l SELECTOR -o json).
pod_json() { kc get pods -l "$1" -o json 2>/dev/null; }

# jq is not in the guest: python3 is not either; kubectl's jsonpath does the reading.
pod_field() { # pod_field SELECTOR JSONPATH: of the first pod
    kc get pods -l "$1" -o jsonpath="{.items[0]$2}" 2>/dev/null
}

# sandbox_ids UID: the pod's sandbox containers in containerd (CRI labels them), one a line: the
# running one and the dead ones the kubelet keeps until it collects them.
sandbox_ids() {
    ctr -n k8s.io containers ls -q "labels.\"io.kubernetes.pod.uid\"==\"$1\",labels.\"io.cri-containerd.kind\"==\"sandbox\"" 2>/dev/null
}

# runsc_sampler FILE: every second, each runsc process (runsc, runsc-sandbox, runsc-gofer) as
# "pid name cgroup argv..." appended to FILE, until killed. Under gVisor an OOM kill ends the
# pod's whole sandbox and the kubelet makes a new one, so a sandbox may live only seconds; the
# sampler sees it whatever the scenario's kubectl calls are doing.
runsc_sampler() {
    local pid argv name cg
    while :; do
        pgrep -a -f '(^|/)runsc(-sandbox|-gofer)? ' | while read -r pid argv; do
            name=${argv%% *}
            name=${name##*/}
            cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null)
            # Gone between pgrep and here: nothing to say where it was.
            [[ -n $cg ]] || continue
            printf '%s %s %s %s\n' "$pid" "$name" "$cg" "$argv"
        done >>"$1"
        sleep 1
    done
}

# The incident's Deployment under one handler; for gvisor also where its sandbox sits.
incident() { # incident HANDLER(gvisor|runc)
    local h=$1 name=incident-$1 start=$SECONDS uid="" sid="" procs="" total="" slice="" smax=""
    local reason="" code="" restarts=0 ready_node="" errs="" t_run="" log=$K8S_LOGS/$name.log oom_at=""
    local changed eaten
    local out sampler="" samples=$K8S_LOGS/$name-runsc-samples.txt
    if [[ $h == gvisor ]]; then
        : >"$samples"
        runsc_sampler "$samples" &
        sampler=$!
    fi
    out=$(kc apply -f "$K8S_PART/manifests/$name.yaml" 2>&1) || errs+=" apply: $out;"
    while ((SECONDS - start < K8S_SCENARIO_TIMEOUT)); do
        uid=$(pod_field "app=$name" '.metadata.uid')
        [[ -z $t_run && $(pod_field "app=$name" '.status.containerStatuses[0].state.running.startedAt') != "" ]] &&
            t_run=$((SECONDS - start))
        reason=$(pod_field "app=$name" '.status.containerStatuses[0].lastState.terminated.reason')
        code=$(pod_field "app=$name" '.status.containerStatuses[0].lastState.terminated.exitCode')
        restarts=$(pod_field "app=$name" '.status.containerStatuses[0].restartCount')
        if [[ -n $uid && -z $slice ]]; then
            slice=$(find /sys/fs/cgroup/kubepods.slice -maxdepth 2 -type d -name "*pod${uid//-/_}.slice" | head -n1)
            smax=$(cat "$slice/memory.max" 2>/dev/null)
        fi
        if [[ $reason == OOMKilled && ${restarts:-0} -ge 1 ]]; then
            # gvisor: until the sandbox's processes were seen too, for at most a minute more.
            [[ $h == runc ]] && break
            [[ -s $samples ]] && grep -q ' runsc-sandbox ' "$samples" && break
            oom_at=${oom_at:-$SECONDS}
            ((SECONDS - oom_at > 60)) && break
        fi
        sleep 3
    done
    local took=$((SECONDS - start))
    if [[ -n $sampler ]]; then
        kill "$sampler" 2>/dev/null
        wait "$sampler" 2>/dev/null
        # The pod's sandboxes, as containerd still lists them, and every process that named one.
        local sids sid_re matched=""
        sids=$(sandbox_ids "$uid")
        sid=$(head -n1 <<<"$sids")
        sid_re=$(paste -sd'|' <<<"$sids")
        if [[ -n $sid_re ]]; then
            # Every sample (the whole time), and each process once.
            matched=$(grep -E " ($sid_re)( |\$)| --?[a-z-]+=[^ ]*($sid_re)" "$samples" | cut -d' ' -f1-3)
            procs=$(awk '!seen[$1]++' <<<"$matched")
            # --total-memory of each runsc-sandbox seen, as "value" lines.
            total=$(grep -E " ($sid_re)( |\$)" "$samples" | awk '$2 == "runsc-sandbox" && !seen[$1]++' |
                grep -oE -- '--?total-memory[= ][0-9]+' | grep -oE '[0-9]+$' | sort -u | paste -sd' ')
        fi
    fi
    {
        echo "== kubectl get pod (after ${took}s)"
        kc get pods -l "app=$name" -o wide 2>&1
        echo "== kubectl describe pod"
        kc describe pods -l "app=$name" 2>&1
        echo "== the pod's sandboxes: $(tr '\n' ' ' <<<"${sids:-}") and their processes (pid name cgroup)"
        printf '%s\n' "$procs"
        echo "== pod slice $slice memory.max $smax"
    } >"$log"
    # How often the kubelet made the pod a new sandbox, and how far the eater got last time.
    changed=$(kc get events --field-selector "involvedObject.uid=$uid,reason=SandboxChanged" \
        -o jsonpath='{.items[0].count}' 2>/dev/null)
    eaten=$(kc logs "deployment/$name" --previous 2>/dev/null | grep -E '^(eaten|done) ' | tail -n 1)
    ready_node=$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
    local ok=0 detail
    [[ $reason == OOMKilled && $code == 137 && ${restarts:-0} -ge 1 ]] || ok=1
    [[ $ready_node == True ]] || ok=1
    [[ -n $errs ]] && ok=1
    detail="last state $reason exit ${code:-?}, restarts ${restarts:-?}, new sandboxes (SandboxChanged) ${changed:-0}; the eater's last line before: ${eaten:-none}; node Ready=$ready_node; first Running after ${t_run:-?}s; pod slice ${slice#/sys/fs/cgroup} memory.max $smax"
    if [[ $h == gvisor ]]; then
        local outside gofers_outside want_slice="pod${uid//-/_}.slice"
        # Each sample of each runsc-sandbox in the pod's slice; where the gofers sat is told too.
        # runsc commands the shim runs (create, wait, events) sit with the shim and are left out.
        outside=$(awk -v s="$want_slice" '$2 == "runsc-sandbox" && index($3, s) == 0 && !seen[$1]++ {print $2 "(" $1 ") in " $3}' <<<"$matched")
        gofers_outside=$(awk -v s="$want_slice" '$2 == "runsc-gofer" && index($3, s) == 0 && !seen[$1]++ {print $2 "(" $1 ") in " $3}' <<<"$matched")
        [[ -n $procs && -z $outside ]] || ok=1
        [[ $total == 268435456 ]] || ok=1
        [[ $procs == *" runsc-sandbox "* ]] || ok=1
        detail+="; $(wc -l <<<"$sids") sandbox(es) listed, processes seen: $(awk '$2 != "runsc" {print $2}' <<<"$procs" | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}') over $(wc -l <<<"$matched") samples, runsc-sandbox $([[ -n $outside ]] && echo "OUTSIDE the pod's slice: $outside" || echo "always in the pod's slice"), runsc-gofer $([[ -n $gofers_outside ]] && echo "outside it: $gofers_outside" || echo "in it too"); runsc-sandbox --total-memory=${total:-?} (want 268435456)"
        [[ $procs == *" runsc-sandbox "* ]] || detail+="; no runsc-sandbox of the pod's sandboxes was seen ($(wc -l <"$samples") samples)"
    fi
    detail+="${errs:+; errors:$errs}"
    row "incident-$h" "$ok" "$took" "$detail"
    kc get pods -l "app=$name" -o yaml >"$K8S_LOGS/$name-pod.yaml" 2>&1
    kc delete deployment "$name" --wait=true --timeout=180s >/dev/null 2>&1
    wait_for 180 bash -c "[[ -z \$(kubectl get pods -l app=$name -o name 2>/dev/null) ]]"
}

# A plain pod that sleeps: the start time and kubectl exec.
# HANDLER: runc (containerd's default), gvisor (this shim's RuntimeClass) or gvisor-shim (gVisor's).
sleeper_manifest() { # sleeper_manifest NAME HANDLER
    local class=""
    case $2 in
        gvisor) class=gvisor ;;
        gvisor-shim) class=gvisor-upstream ;;
    esac
    cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  labels:
    app: sleeper
spec:
${class:+  runtimeClassName: $class}
  nodeName: $NODE
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  containers:
    - name: sleeper
      image: localhost/e2e/busybox:1
      imagePullPolicy: Never
      command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
      resources:
        limits:
          memory: 64Mi
EOF
}

# pod_start NAME HANDLER: seconds from kubectl apply to the pod Running (kubectl wait).
pod_start() {
    local s=$SECONDS ms0 ms1
    ms0=$(date +%s%N)
    sleeper_manifest "$1" "$2" | kc apply -f - >/dev/null 2>&1 || return 1
    timeout 320 kubectl wait --for=jsonpath='{.status.phase}'=Running "pod/$1" --timeout=300s >/dev/null 2>&1 || return 1
    ms1=$(date +%s%N)
    printf '%d.%03d' "$(((ms1 - ms0) / 1000000000))" "$(((ms1 - ms0) / 1000000 % 1000))"
    return $((SECONDS - s > 330))
}

run_scenarios() {
    local h i s secs list ok detail start
    # (a), (b): the incident, under this shim and under runc.
    incident gvisor
    incident runc

    # Start times, K8S_START_N pods per handler one after the other (the first also warms up).
    : >"$K8S_OUT/start-times.txt"
    local handlers=(runc gvisor)
    [[ -x $GVISOR_SHIM ]] && handlers+=(gvisor-shim)
    for h in "${handlers[@]}"; do
        start=$SECONDS
        list=""
        ok=0
        for i in $(seq 1 "$K8S_START_N"); do
            if secs=$(pod_start "start-$h-$i" "$h"); then
                list+=" $secs"
            else
                list+=" failed"
                ok=1
            fi
            # All but the last are deleted at once; the last stays for kubectl exec.
            [[ $i -lt $K8S_START_N ]] && kc delete pod "start-$h-$i" --wait=true --timeout=180s >/dev/null 2>&1
        done
        printf '%-11s %s (s, kubectl apply -> Running, %s pods one after another)\n' "$h" "${list# }" "$K8S_START_N" \
            >>"$K8S_OUT/start-times.txt"
        row "start-$h" "$ok" "$((SECONDS - start))" "kubectl apply -> Running:${list} s"
    done

    # (d) kubectl exec into the gVisor pod.
    start=$SECONDS
    s=start-gvisor-$K8S_START_N
    detail=$(kc exec "$s" -- echo hi 2>&1)
    row exec-gvisor "$([[ $detail == hi ]] && echo 0 || echo 1)" "$((SECONDS - start))" \
        "kubectl exec $s -- echo hi printed: $detail"

    # (c) a Job whose container exits 3.
    start=$SECONDS
    kc apply -f "$K8S_PART/manifests/job-exit3.yaml" >/dev/null 2>&1
    job_done() { [[ -n $(pod_field app=exit3-gvisor '.status.containerStatuses[0].state.terminated.exitCode') ]]; }
    wait_for "$K8S_SCENARIO_TIMEOUT" job_done
    local code failed_n
    code=$(pod_field app=exit3-gvisor '.status.containerStatuses[0].state.terminated.exitCode')
    wait_for 60 bash -c "[[ \$(kubectl get job exit3-gvisor -o jsonpath='{.status.failed}') == 1 ]]"
    failed_n=$(kc get job exit3-gvisor -o jsonpath='{.status.failed}' 2>/dev/null)
    kc get pods -l app=exit3-gvisor -o yaml >"$K8S_LOGS/exit3-gvisor-pod.yaml" 2>&1
    kc logs -l app=exit3-gvisor >"$K8S_LOGS/exit3-gvisor.log" 2>&1
    row job-exit-code "$([[ $code == 3 && $failed_n == 1 ]] && echo 0 || echo 1)" "$((SECONDS - start))" \
        "the pod's container exit code ${code:-none}, the Job's status.failed ${failed_n:-none}, logs: $(head -c 100 "$K8S_LOGS/exit3-gvisor.log" | tr '\n' ' ')"

    k8s_memory "with the last start-* pod of each handler and the Job" >>"$K8S_OUT/memory.txt"

    # (e) kubectl delete of everything: nothing may be left of any pod.
    start=$SECONDS
    kc delete job exit3-gvisor --wait=true --timeout=180s >/dev/null 2>&1
    kc delete deployments,pods --all --wait=true --timeout=300s >/dev/null 2>&1
    # What is left in runsc's root of the namespace. Not null-netns: runsc (2026) pins one empty
    # network namespace there for every sandbox's gofer to join, by design shared by the node's
    # sandboxes and kept while the root is (runsc/specutils NullNetNSFilename).
    runsc_state_left() {
        find /run/containerd/runsc/k8s.io -mindepth 1 -maxdepth 1 ! -name null-netns -printf '%f\n' 2>/dev/null
    }
    # Mounts of pods (rootfs, /dev/shm, runsc's) and the shims' sockets.
    pod_mounts_left() {
        awk '$2 ~ "^/run/containerd/(io[.]containerd|runsc)" && $2 !~ "/null-netns$" {print $2}' /proc/mounts
    }
    shim_sockets_left() { find /run/containerd/s -type s 2>/dev/null; }
    node_clean() {
        [[ -z $(kubectl get pods -o name 2>/dev/null) ]] || return 1
        [[ -z $(pgrep -f '(^|/)(runsc|runsc-sandbox|runsc-gofer|containerd-shim-runsc-v1|containerd-shim-runc-v2)( |$)') ]] || return 1
        [[ -z $(runsc_state_left) && -z $(pod_mounts_left) && -z $(shim_sockets_left) ]] || return 1
        [[ -z $(find /sys/fs/cgroup/kubepods.slice -mindepth 1 -maxdepth 2 -type d -name '*-pod*.slice' 2>/dev/null) ]] || return 1
    }
    wait_for 150 node_clean
    local left=""
    [[ -n $(kc get pods -o name 2>/dev/null) ]] && left+=" pods: $(kc get pods -o name | tr '\n' ' ');"
    local p
    p=$(pgrep -af '(^|/)(runsc|runsc-sandbox|runsc-gofer|containerd-shim-runsc-v1|containerd-shim-runc-v2)( |$)' | cut -c1-120 | tr '\n' ';')
    [[ -n $p ]] && left+=" processes: $p"
    p=$(runsc_state_left | tr '\n' ' ')
    [[ -n $p ]] && left+=" runsc state: $p;"
    p=$(pod_mounts_left | tr '\n' ' ')
    [[ -n $p ]] && left+=" mounts: $p;"
    p=""
    local socket owner
    for socket in $(shim_sockets_left); do
        # Whose: containerd logs "connecting to shim ID" with the socket's address.
        owner=$(journalctl -u containerd --no-pager 2>/dev/null | grep -F "unix://$socket" |
            grep -oE 'connecting to shim [0-9a-f]+' | head -n1 | awk '{print $4}')
        p+=" ${socket##*/} (shim of ${owner:-an unknown id}$(grep -rlF "${owner:-none}" "$K8S_LOGS"/incident-*.log 2>/dev/null | sed 's|.*/| named in |'))"
    done
    [[ -n $p ]] && left+=" shim sockets:$p;"
    p=$(find /sys/fs/cgroup/kubepods.slice -mindepth 1 -maxdepth 2 -type d -name '*-pod*.slice' 2>/dev/null | tr '\n' ' ')
    [[ -n $p ]] && left+=" pod cgroups: $p;"
    local shared=""
    [[ -e /run/containerd/runsc/k8s.io/null-netns ]] && shared=" (runsc's shared null-netns pin stays, as designed)"
    row delete-all-clean "$([[ -z $left ]] && echo 0 || echo 1)" "$((SECONDS - start))" \
        "after kubectl delete of every pod: ${left:-no pods, no runsc or shim (runsc, runc) processes, no runsc state under /run/containerd/runsc/k8s.io$shared, no pod mounts, no shim sockets, no pod cgroups}"
}

scenarios=(incident-gvisor incident-runc start-runc start-gvisor start-gvisor-shim exec-gvisor job-exit-code delete-all-clean)
if [[ $control_plane_ok -eq 0 ]]; then
    run_scenarios
else
    for s in "${scenarios[@]}"; do
        row "$s" 1 0 "not run: the cluster did not come up (see the k8s-* pre-checks)"
    done
fi
k8s_memory "at the end, no pods" >>"$K8S_OUT/memory.txt"
k8s_timing total "$((SECONDS - k8s_t0))"
write_report
cat "$K8S_OUT/report.md"

# The daemons' journals beside their output, and the node as the kubelet saw it.
kc get nodes -o yaml >"$K8S_LOGS/node.yaml" 2>&1
kc get events -A --sort-by=.lastTimestamp >"$K8S_LOGS/events.txt" 2>&1
for u in etcd apiserver controller-manager kubelet; do
    systemctl stop "k8s-$u.service" >/dev/null 2>&1
done
[[ $k8s_failed -eq 0 && $control_plane_ok -eq 0 ]] && k8s_rc=0
