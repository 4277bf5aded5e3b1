# shellcheck shell=bash
# apt_install_keeping PKG...: `apt-get install` that never removes a package without a word.
# Sourced by install-deps.sh, never executed; needs lib.sh's e2e_log and e2e_die.
#
# Why: when the host has a newer build of a package than the archive's (qemu-utils from
# backports or a PPA, say) and the archive's qemu-system-x86 needs the matching older one, apt
# resolves the conflict by removing the newer package, and `apt-get install -y` does it silently.
# So apt is asked first (`-s`); for every package it would remove, the version the archive has
# for the same release as the packages asked for (same version string: one source package) is
# installed in its place with --allow-downgrades, and the log says what was replaced and why. A
# removal that cannot be avoided that way stops the install with the command that shows it.
#
# APT_GET and APT_CACHE name the programs (default apt-get, apt-cache), so the logic can be tried
# with stand-ins.

# The version of $1 in the archive that equals the candidate of one of the packages $2...,
# printed; fails when there is none.
apt_matching_version() {
    local name=$1 pkg candidate available
    shift
    local -a candidates=()
    for pkg in "$@"; do
        candidate=$("${APT_CACHE:-apt-cache}" policy "${pkg%%=*}" 2>/dev/null |
            sed -n 's/^ *Candidate: *//p' | head -n1)
        [[ -n $candidate && $candidate != "(none)" ]] && candidates+=("$candidate")
    done
    while read -r available; do
        for candidate in "${candidates[@]}"; do
            if [[ $available == "$candidate" ]]; then
                printf '%s\n' "$available"
                return 0
            fi
        done
    done < <("${APT_CACHE:-apt-cache}" madison "$name" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
    return 1
}

apt_install_keeping() {
    local -a pkgs=("$@") pins=() removals=() replaced=()
    local sim round line name installed version
    for round in 1 2 3; do
        sim=$(DEBIAN_FRONTEND=noninteractive "${APT_GET:-apt-get}" install -s -y -q \
            --no-install-recommends --allow-downgrades "${pkgs[@]}" "${pins[@]}" 2>&1) ||
            e2e_die "install-deps: apt cannot install ${pkgs[*]}: $sim"
        # "Remv qemu-utils [1:9.1.2+ds-1~bpo12+1]"
        mapfile -t removals < <(sed -n 's/^Remv \([^ ]*\) \[\([^]]*\)\].*/\1 \2/p' <<<"$sim")
        [[ ${#removals[@]} -eq 0 ]] && break
        if [[ $round -eq 3 ]]; then
            e2e_die "install-deps: installing ${pkgs[*]} would still remove ${removals[*]}; nothing was installed. See why with: apt-get install -s ${pkgs[*]} ${pins[*]}"
        fi
        for line in "${removals[@]}"; do
            name=${line%% *}
            installed=${line#* }
            version=$(apt_matching_version "$name" "${pkgs[@]}") ||
                e2e_die "install-deps: installing ${pkgs[*]} from the archive would remove $name $installed (apt resolves their version conflict by removal), and the archive has no $name of the same version to put in its place; nothing was installed. Install them yourself (apt-get install -s ${pkgs[*]} shows the conflict), or remove $name first if you do not need it"
            pins+=("$name=$version")
            replaced+=("$name $installed $version")
        done
    done
    local r old new
    for r in "${replaced[@]}"; do
        read -r name old new <<<"$r"
        e2e_log "install-deps: replacing $name $old with $new, the archive's build of the same release: the archive's ${pkgs[*]} needs it, and apt would otherwise remove $name"
    done
    local -a downgrade=()
    [[ ${#pins[@]} -gt 0 ]] && downgrade=(--allow-downgrades)
    DEBIAN_FRONTEND=noninteractive "${APT_GET:-apt-get}" install -y -q --no-install-recommends \
        "${downgrade[@]}" "${pkgs[@]}" "${pins[@]}" >&2
    for r in "${replaced[@]}"; do
        read -r name old new <<<"$r"
        e2e_log "install-deps: $name $old was replaced by $new (not removed); the newer one conflicts with what was installed, so it can come back only without them"
    done
}
