# shellcheck shell=bash
# Shared helpers for the e2e host scripts. Sourced, never executed.
#
# Nothing here names a package-archive host or a path of a particular machine: the mirror is read
# from the host's apt sources at run time and every path is relative to the checkout or the cache.

# The suites the VM suite knows. Each is a Debian suite name debootstrap understands, except
# `upstream`: a trixie guest whose containerd, runc and runsc (and gVisor's own shim, as a second
# handler) are the Go module builds pinned in tools/go (tools/go/build.sh), not Debian's; and
# `upstream-1.7`, the same with the newest containerd 1.7 instead of 2.x.
E2E_SUITES_ALL=(bookworm trixie sid upstream upstream-1.7)
# What `make test` and a bare run.sh run; upstream-1.7 is asked for by name.
E2E_SUITES_DEFAULT=(bookworm trixie sid upstream)

# The Debian suite whose image a suite boots: its own, or trixie's for `upstream`.
e2e_image_suite() {
    case "$1" in
        upstream | upstream-1.7) printf 'trixie\n' ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# The tools/go components a suite installs over its image's packages (none for Debian's suites).
# A conformance run (E2E_CONFORMANCE=1, tests/e2e/conformance.sh) adds critest's on every suite,
# a Kubernetes node run (E2E_K8S=1) Kubernetes'.
e2e_upstream_components() {
    case "$1" in
        upstream) printf '%s\n' gvisor containerd runc ;;
        upstream-1.7) printf '%s\n' gvisor containerd-1.7 runc ;;
    esac
    if [[ ${E2E_CONFORMANCE:-0} == 1 ]]; then
        printf '%s\n' cri-tools distribution cni
    fi
    # A Kubernetes node run (E2E_K8S=1, tests/e2e/k8s.sh) adds the control plane, the kubelet,
    # kubectl and the CNI plugins.
    if [[ ${E2E_K8S:-0} == 1 ]]; then
        printf '%s\n' kubernetes etcd cni
    fi
}

e2e_log() { printf 'e2e: %s\n' "$*" >&2; }
e2e_die() { printf 'e2e: error: %s\n' "$*" >&2; exit 1; }

# Root of the checkout, from this file's location (tests/e2e/lib.sh).
e2e_repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); }

# The cache lives outside the checkout on purpose: CI clones into a new folder on the same machine
# and must find the images a previous run built.
e2e_cache_dir() {
    printf '%s/e2e\n' "${RUNSC_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runsc-guard}"
}

e2e_check_suite() {
    local s
    for s in "${E2E_SUITES_ALL[@]}"; do
        [[ $1 == "$s" ]] && return 0
    done
    e2e_die "unknown suite '$1': expected one of ${E2E_SUITES_ALL[*]}"
}

# Prints "TYPE URI SUITE COMPONENTS..." for every enabled source of the host's apt configuration,
# reading both the one-line format (sources.list, *.list) and deb822 (*.sources). Only the files
# apt itself reads count: "foo.list.disabled" and the like are skipped. E2E_APT_DIR (default
# /etc/apt) exists so the parser can be tried on sample files.
e2e_apt_sources() {
    local f files=() dir=${E2E_APT_DIR:-/etc/apt}
    [[ -f $dir/sources.list ]] && files+=("$dir/sources.list")
    for f in "$dir"/sources.list.d/*.list "$dir"/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    for f in "${files[@]}"; do
        if [[ $f == *.sources ]]; then
            # deb822: stanzas separated by blank lines; field names are case-insensitive;
            # continuation lines start with white space; "Enabled: no" switches a stanza off.
            awk '
                function flush() {
                    if (types != "" && uris != "" && suites != "" && tolower(enabled) != "no") {
                        nt = split(types, t, " "); nu = split(uris, u, " "); ns = split(suites, s, " ")
                        for (i = 1; i <= nt; i++) for (j = 1; j <= nu; j++) for (k = 1; k <= ns; k++)
                            print t[i], u[j], s[k], comps
                    }
                    types = uris = suites = comps = enabled = ""; last = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v)
                           if (last == "types") types = types " " v
                           else if (last == "uris") uris = uris " " v
                           else if (last == "suites") suites = suites " " v
                           else if (last == "components") comps = comps " " v
                           next }
                {
                    key = tolower($0); sub(/:.*/, "", key)
                    v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
                    last = key
                    if (key == "types") types = v
                    else if (key == "uris") uris = v
                    else if (key == "suites") suites = v
                    else if (key == "components") comps = v
                    else if (key == "enabled") enabled = v
                }
                END { flush() }
            ' "$f"
        else
            # One-line: "deb [options] uri suite component...". Options may hold spaces inside [].
            sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk 'NF >= 3 && ($1 == "deb" || $1 == "deb-src") {
                line = $1 " " $2 " " $3; for (i = 4; i <= NF; i++) line = line " " $i; print line }'
        fi
    done
}

# The Debian archive to debootstrap from: the first "deb" source whose suite is a plain Debian
# release of the host (its codename, or a name like stable/testing/unstable) with component main.
# That skips -security/-updates pockets and third-party repositories. E2E_MIRROR overrides.
e2e_debian_mirror() {
    if [[ -n ${E2E_MIRROR:-} ]]; then
        printf '%s\n' "$E2E_MIRROR"
        return 0
    fi
    local codename=""
    # shellcheck disable=SC1091 # the host's os-release, read for its codename only
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    local type uri suite comps
    while read -r type uri suite comps; do
        [[ $type == deb ]] || continue
        [[ " $comps " == *" main "* ]] || continue
        case "$suite" in
            "$codename" | stable | testing | unstable | sid | oldstable | bookworm | trixie | forky | bullseye)
                printf '%s\n' "${uri%/}"
                return 0
                ;;
        esac
    done < <(e2e_apt_sources)
    return 1
}

# Runs run.sh for SUITE... in a session of its own and, once run.sh has written its payload
# (guest-suite.sh is the last file it puts there, before the first VM boots), copies the guest
# part PART into it as PAYLOAD/NAME: how `make conformance` and `make k8s` give the guest their
# scripts without run.sh knowing them. run.sh's stdout (its report, which counts the CRI driver
# these runs do not start) goes to OUT/run-report.txt; its progress (stderr) shows. Waits until
# every process of that session is gone (a VM outlives a run.sh killed on its own); an interrupt
# ends the session too. Sets e2e_run_rc to run.sh's status and returns 1 if the part never made it
# into the payload.
e2e_run_with_part() {
    local out=$1 payload=$2 part=$3 name=$4
    shift 4
    local run_pid added=0
    setsid "$(dirname "${BASH_SOURCE[0]}")/run.sh" "$@" >"$out/run-report.txt" &
    run_pid=$!
    # shellcheck disable=SC2064 # the pid is this run's, fixed now
    trap "kill -TERM -- -$run_pid 2>/dev/null; exit 130" INT TERM
    while kill -0 "$run_pid" 2>/dev/null || pgrep -g "$run_pid" >/dev/null; do
        if [[ $added == 0 && -f $payload/guest-suite.sh ]]; then
            rm -rf "$payload/$name.tmp"
            cp -a "$part" "$payload/$name.tmp"
            mv "$payload/$name.tmp" "$payload/$name"
            added=1
            e2e_log "added the guest part to the payload"
        fi
        sleep 1
    done
    e2e_run_rc=0
    wait "$run_pid" || e2e_run_rc=$?
    if [[ $added == 0 ]]; then
        e2e_log "run.sh ended (status $e2e_run_rc) before its payload was complete: see $out/run-report.txt"
        return 1
    fi
}
