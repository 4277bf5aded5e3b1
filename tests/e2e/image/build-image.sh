#!/bin/bash
# Builds (or finds in the cache) the Debian guest image for one e2e suite:
#   build-image.sh SUITE            SUITE: bookworm | trixie | sid
#   build-image.sh --cached SUITE   only report a cached image (exit 1 if there is none)
# Prints the image directory on stdout (everything else goes to stderr). It holds:
#   disk.raw     raw ext4 root filesystem (sparse), booted read-only via qemu snapshot=on
#   vmlinuz      the guest kernel, booted directly with -kernel
#   initrd.img   its initramfs (virtio_blk and ext4 are modules in Debian's kernel)
#   versions.txt the versions of the packages the suite is about (containerd, runsc, runc, ...)
#
# Images are cached under $RUNSC_GUARD_CACHE (default $XDG_CACHE_HOME/runsc-guard, or
# ~/.cache/runsc-guard) in e2e/images/<suite>-<hash>/, where the hash covers this script, the
# package list and the files baked into the guest. A changed builder gives a new directory; an
# unchanged one reuses the old image, also from another checkout on the same machine.
# E2E_IMAGE_REBUILD=1 forces a rebuild; E2E_IMAGE_SIZE (default 3G) sets the disk size.
#
# Needs root (debootstrap, chroot file ownership), debootstrap and mkfs.ext4 >= 1.43 (for -d).
# No loop devices or mounts: the filesystem is made straight from the root directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

# --cached: only say whether this builder's image is in the cache (exit 0 and print its
# directory) or not (exit 1), without building; run.sh uses it to know if it needs the archive.
only_cached=0
if [[ ${1:-} == --cached ]]; then
    only_cached=1
    shift
fi
[[ $# -eq 1 ]] || e2e_die "usage: $0 [--cached] SUITE (one of ${E2E_SUITES_ALL[*]})"
suite=$1
e2e_check_suite "$suite"
# A suite that runs other builds over a Debian suite's packages (upstream) boots that suite's
# image: the binaries come with the payload at boot, so the image stays shared and cached.
image_suite=$(e2e_image_suite "$suite")
if [[ $image_suite != "$suite" ]]; then
    if [[ $only_cached -eq 1 ]]; then
        exec "$here/build-image.sh" --cached "$image_suite"
    fi
    exec "$here/build-image.sh" "$image_suite"
fi

# Whose runsc build the image runs. sid's runsc 0.0~20240729.0-7+b1 is the same gVisor release as
# trixie's 0.0~20240729.0-4+b7, rebuilt with Go 1.26 (trixie's with Go 1.24). gVisor ties its
# sentry to the Go runtime's internals release by release, and that build's sentry panics in a
# few sandbox boots of every run ("running on goroutine N (task goroutine for kernel.Task ... is
# 0)"), often in every retry of one scenario, whichever the kernel; trixie's build of the same
# release never has. So the sid node (containerd 2.x, systemd, the rest of sid) runs trixie's
# runsc package, taken from the packages the trixie image was built from; E2E_SID_RUNSC=sid keeps
# sid's own.
runsc_from=$suite
if [[ $suite == sid ]]; then
    runsc_from=${E2E_SID_RUNSC:-trixie}
    e2e_check_suite "$runsc_from"
fi

# Everything that decides what the image contains. The mirror and the day are not in it: a cached
# sid image keeps the packages it was built with until the builder changes (or a forced rebuild).
image_inputs=("$here/build-image.sh" "$here/packages.txt" "$here/guest/e2e-guest.service"
    "$here/guest/e2e-guest-boot")
hash=$( (printf 'suite=%s size=%s runsc=%s\n' "$suite" "${E2E_IMAGE_SIZE:-3G}" "$runsc_from"; cat "${image_inputs[@]}") |
    sha256sum | cut -c1-16)

cache=$(e2e_cache_dir)
images=$cache/images
final=$images/$suite-$hash

image_complete() {
    [[ -s $1/disk.raw && -s $1/vmlinuz && -s $1/initrd.img && -s $1/versions.txt ]]
}

if [[ $only_cached -eq 1 ]]; then
    image_complete "$final" || exit 1
    printf '%s\n' "$final"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || e2e_die "building a guest image needs root (debootstrap)"
command -v debootstrap >/dev/null || e2e_die "debootstrap is missing: run tests/e2e/install-deps.sh"
command -v mkfs.ext4 >/dev/null || e2e_die "mkfs.ext4 is missing: run tests/e2e/install-deps.sh"
mkdir -p "$images"

# One builder per suite at a time: a second run of the same suite waits and then reuses.
exec 9>"$images/.$suite.lock"
flock 9

if [[ ${E2E_IMAGE_REBUILD:-0} != 1 ]] && image_complete "$final"; then
    e2e_log "image $suite: cached at $final"
    printf '%s\n' "$final"
    exit 0
fi

# The other suite's runsc comes from the .debs its own image build keeps: build (or find) that
# image first.
if [[ $runsc_from != "$suite" ]]; then
    "$here/build-image.sh" "$runsc_from" >/dev/null ||
        e2e_die "image $suite: building the $runsc_from image (for its runsc) failed"
    mapfile -t runsc_debs < <(find "$cache/debs/$runsc_from" -maxdepth 1 -name 'runsc_*_amd64.deb' \
        -printf '%f\n' | sort -V)
    [[ ${#runsc_debs[@]} -ge 1 ]] ||
        e2e_die "image $suite: no runsc .deb in $cache/debs/$runsc_from (rebuild that image: E2E_IMAGE_REBUILD=1 SUITES=$runsc_from make e2e)"
    runsc_deb=$cache/debs/$runsc_from/${runsc_debs[-1]}
fi

mirror=$(e2e_debian_mirror) ||
    e2e_die "no Debian archive in the host's apt sources (/etc/apt/sources.list*): set E2E_MIRROR"
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$here/packages.txt")

# Build beside the final directory (same filesystem, so the rename is atomic) under a name that
# image_complete() never looks at; only a complete image is renamed into place.
work=$(mktemp -d "$images/.build-$suite-$hash.XXXXXX")
root=$work/root

# debootstrap mounts /proc and /sys inside the root; if it is interrupted they may still be
# mounted, and `rm -rf` through a mounted /sys or /proc must never happen. Unmount everything
# under the work directory (deepest first), then remove it without crossing filesystems.
cleanup() {
    local mnt
    if [[ -d $work ]]; then
        while read -r mnt; do
            umount -l "$mnt" 2>/dev/null || true
        done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT

start=$SECONDS
e2e_log "image $suite: building in $work from $mirror (${#packages[@]} extra packages)"

# Downloaded .debs are kept per suite so a rebuild after a builder change does not download the
# whole system again. debootstrap checks them against the Release file it fetches anyway.
debs=$cache/debs/$suite
mkdir -p "$debs"

# The host's keyring verifies the Release files of bookworm, trixie and sid alike.
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || e2e_die "missing $keyring: apt-get install debian-archive-keyring"

packages_csv=$(IFS=,; printf '%s' "${packages[*]}")
# The kernel depends on "dracut | initramfs-tools | ...": debootstrap takes the first alternative,
# and from forky on dracut exists, conflicting with the initramfs-tools this image configures.
if ! debootstrap --variant=minbase --merged-usr --components=main \
    --keyring="$keyring" --cache-dir="$debs" --include="$packages_csv" \
    --exclude=dracut,dracut-core \
    "$suite" "$root" "$mirror" >"$work/debootstrap.out" 2>&1; then
    # The work directory goes away on exit: keep debootstrap's own log where a person finds it.
    failed_log=$images/$suite-debootstrap-failed.log
    cat "$work/debootstrap.out" "$root/debootstrap/debootstrap.log" >"$failed_log" 2>/dev/null || true
    grep -v 'with same version already installed' "$failed_log" | tail -n 40 >&2
    e2e_die "image $suite: debootstrap failed (whole log: $failed_log)"
fi
e2e_log "image $suite: debootstrap done after $((SECONDS - start))s"

# --- another suite's runsc build in place of the suite's own (see runsc_from) ---
if [[ $runsc_from != "$suite" ]]; then
    cp "$runsc_deb" "$root/tmp/"
    # A static Go binary: dpkg replaces the suite's package (a downgrade) without asking apt.
    if ! chroot "$root" dpkg -i "/tmp/${runsc_deb##*/}" >"$work/runsc.out" 2>&1; then
        cat "$work/runsc.out" >&2
        e2e_die "image $suite: installing $runsc_from's runsc (${runsc_deb##*/}) failed"
    fi
    rm -f "$root/tmp/${runsc_deb##*/}"
    e2e_log "image $suite: runsc from $runsc_from (${runsc_deb##*/})"
fi

# --- guest configuration: plain files, no chroot needed ---
printf 'e2e-%s\n' "$suite" >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\te2e-%s\n::1\tlocalhost ip6-localhost\n' "$suite" >"$root/etc/hosts"
# The root device is fixed by qemu (-drive if=virtio is /dev/vda). No fsck: every boot starts
# from the same clean image (snapshot=on), so a check would only cost time.
printf '/dev/vda\t/\text4\trw,noatime\t0\t0\n' >"$root/etc/fstab"
# The guest suite checks it booted the image of the suite it was built for.
printf '%s\n' "$suite" >"$root/etc/e2e-suite"

install -m 0755 "$here/guest/e2e-guest-boot" "$root/usr/local/sbin/e2e-guest-boot"
install -m 0644 "$here/guest/e2e-guest.service" "$root/etc/systemd/system/e2e-guest.service"
mkdir -p "$root/mnt/payload" "$root/mnt/results"

# A fixed machine id: without one systemd treats the boot as a first boot and
# systemd-firstboot may prompt on the console for a locale, and wait for ever.
systemd-machine-id-setup --root="$root" >/dev/null 2>&1 ||
    tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"

# Enable the suite unit. containerd is disabled: the guest suite writes its config first and
# starts it itself, which saves a start and a restart per boot. Nobody logs in: no gettys.
systemctl --root="$root" --quiet enable e2e-guest.service
systemctl --root="$root" --quiet disable containerd.service
# Masking a unit the image does not have is fine: it only writes the /dev/null link.
systemctl --root="$root" --quiet mask getty.target systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer

# Debian's runsc package ships gVisor's own Go shim as /usr/bin/containerd-shim-runsc-v1. Move it
# aside in the image so that only the project's shim (installed by the guest suite into
# /usr/local/bin) can ever answer runtime type io.containerd.runsc.v1.
if [[ -e $root/usr/bin/containerd-shim-runsc-v1 ]]; then
    mv "$root/usr/bin/containerd-shim-runsc-v1" "$root/usr/bin/containerd-shim-runsc-v1.gvisor"
fi

# A small initramfs. The suite's default generator makes a generic one (36 MiB with
# initramfs-tools on bookworm, 41 MiB with dracut on sid), and unpacking it and probing every
# storage driver costs about 10 s per boot under software emulation. The guest only needs virtio
# to find /dev/vda and ext4 to mount it. The kernel package brings whichever generator the suite
# prefers (initramfs-tools up to trixie, dracut later); both are handled.
kver=$(find "$root/usr/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -n1)
[[ -n $kver ]] || e2e_die "image $suite: no kernel modules in the chroot"
# Nothing in the guest wants KVM (runsc uses ptrace), but -cpu max shows the guest svm/vmx and
# udev would load the modules on every boot.
printf 'blacklist kvm_amd\nblacklist kvm_intel\nblacklist kvm\n' >"$root/etc/modprobe.d/e2e-no-kvm.conf"
if [[ -x $root/usr/bin/dracut ]]; then
    mkdir -p "$root/etc/dracut.conf.d"
    cat >"$root/etc/dracut.conf.d/e2e-small.conf" <<'EOF'
# tests/e2e: only what a qemu guest with a virtio root disk needs.
hostonly="no"
drivers="virtio_pci virtio_blk ext4"
omit_dracutmodules+=" nvdimm resume lunmask hwdb terminfo kernel-modules-extra virtiofs qemu "
EOF
    initramfs_cmd=(dracut --force --kver "$kver" "/boot/initrd.img-$kver")
elif [[ -x $root/usr/sbin/update-initramfs ]]; then
    printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/e2e-small.conf"
    printf '%s\n' virtio_pci virtio_blk ext4 >>"$root/etc/initramfs-tools/modules"
    initramfs_cmd=(update-initramfs -u -k "$kver")
else
    e2e_die "image $suite: neither dracut nor initramfs-tools in the chroot"
fi
# Both generators read /proc (dracut fails without it); cleanup() unmounts it if this is cut short.
mount -t proc proc "$root/proc"
if ! chroot "$root" "${initramfs_cmd[@]}" >"$work/initramfs.out" 2>&1; then
    umount "$root/proc"
    cat "$work/initramfs.out" >&2
    e2e_die "image $suite: ${initramfs_cmd[*]} failed in the chroot"
fi
umount "$root/proc"

# --- kernel and initrd out of the chroot's /boot ---
kernels=("$root"/boot/vmlinuz-*)
initrds=("$root"/boot/initrd.img-*)
[[ ${#kernels[@]} -eq 1 && -f ${kernels[0]} ]] || e2e_die "image $suite: expected one kernel in /boot, got: ${kernels[*]}"
[[ ${#initrds[@]} -eq 1 && -f ${initrds[0]} ]] || e2e_die "image $suite: expected one initrd in /boot, got: ${initrds[*]}"
cp "${kernels[0]}" "$work/vmlinuz"
cp "${initrds[0]}" "$work/initrd.img"

# What this image is about, for the reports.
{
    printf 'suite %s\nbuilt %s\nhash %s\n' "$suite" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$hash"
    printf 'kernel %s\n' "${kernels[0]##*/vmlinuz-}"
    dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Package} ${Version}\n' \
        containerd runc runsc systemd "linux-image-$kver"
} >"$work/versions.txt"

# Nothing in the guest ever runs apt: drop the package cache and lists to keep the image small.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/debootstrap"

# Any mount left under the root would be copied into the filesystem (or fail the copy).
if awk -v r="$root/" 'index($5, r) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    e2e_die "image $suite: something is still mounted under $root"
fi

e2e_log "image $suite: making the ext4 filesystem"
# -d copies the tree with owners and modes; the file is created sparse at the given size.
# Its chatter goes to stderr: this script's stdout carries only the image directory.
mkfs.ext4 -q -F -L e2e-root -m 0 -d "$root" "$work/disk.raw" "${E2E_IMAGE_SIZE:-3G}" >&2

rm -rf --one-file-system "$root"
rm -f "$work/debootstrap.out" "$work/initramfs.out" "$images/$suite-debootstrap-failed.log"

# Publish atomically. A forced rebuild replaces the old directory of the same hash.
if [[ -e $final ]]; then
    rm -rf --one-file-system "$final"
fi
chmod 0755 "$work"
mv "$work" "$final"
trap - EXIT

# Keep the two newest images of this suite (another checkout may still use the previous one);
# older ones only take disk space.
mapfile -t old < <(find "$images" -mindepth 1 -maxdepth 1 -type d -name "$suite-*" -printf '%T@ %p\n' |
    sort -rn | awk 'NR > 2 { print $2 }')
for dir in "${old[@]}"; do
    e2e_log "image $suite: removing old image $dir"
    rm -rf --one-file-system "$dir"
done

e2e_log "image $suite: built in $((SECONDS - start))s: $(du -sh --apparent-size "$final/disk.raw" | cut -f1) disk, $(du -sh "$final/disk.raw" | cut -f1) used"
printf '%s\n' "$final"
