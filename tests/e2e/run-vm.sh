#!/bin/bash
# Boots one suite's guest image with qemu, non-interactively and bounded in time:
#   run-vm.sh SUITE PAYLOAD_DIR RESULTS_DIR
# The guest (e2e-guest.service) mounts PAYLOAD_DIR read-only (9p tag "payload") and RESULTS_DIR
# read-write (tag "results"), runs PAYLOAD_DIR/guest-suite.sh and powers off. The guest suite
# writes RESULTS_DIR/guest-done when it has finished; without it this script fails and shows the
# end of the serial console log (RESULTS_DIR/serial.log).
#
# Environment:
#   E2E_VM_TIMEOUT   seconds before qemu is killed (default 1500: well above a normal run)
#   E2E_VM_MEMORY    guest memory in MiB (default 4096)
#   E2E_VM_CPUS      vCPUs (default 2; the machines have 2 cores)
#   E2E_ACCEL        kvm | tcg to override the detection
#   E2E_VM_CPU       qemu -cpu model under tcg (default max)
#   E2E_IMAGE_DIR    boot this image directory instead of build-image.sh's (cached) one
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[[ $# -eq 3 ]] || e2e_die "usage: $0 SUITE PAYLOAD_DIR RESULTS_DIR"
suite=$1
e2e_check_suite "$suite"
[[ -f $2/guest-suite.sh ]] || e2e_die "payload $2 has no guest-suite.sh"
payload=$(cd "$2" && pwd)
mkdir -p "$3"
results=$(cd "$3" && pwd)
command -v qemu-system-x86_64 >/dev/null ||
    e2e_die "qemu-system-x86_64 is missing: run tests/e2e/install-deps.sh"

timeout_s=${E2E_VM_TIMEOUT:-1500}
memory=${E2E_VM_MEMORY:-4096}
cpus=${E2E_VM_CPUS:-2}

image=${E2E_IMAGE_DIR:-}
if [[ -z $image ]]; then
    image=$("$here/image/build-image.sh" "$suite")
fi
for f in disk.raw vmlinuz initrd.img; do
    [[ -s $image/$f ]] || e2e_die "image $image has no $f"
done

# KVM only when it is real hardware virtualisation. On PVM hosts (/dev/kvm backed by the kvm_pvm
# module, no vmx/svm in cpuinfo) qemu aborts with -cpu host/max and a stock Debian kernel hangs
# with other models: PVM needs PVM-enabled guest kernels. Software emulation works everywhere.
choose_accel() {
    if [[ -n ${E2E_ACCEL:-} ]]; then
        printf '%s\n' "$E2E_ACCEL"
    elif [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] && [[ ! -e /sys/module/kvm_pvm ]] &&
        grep -qwE 'vmx|svm' /proc/cpuinfo; then
        printf 'kvm\n'
    else
        printf 'tcg\n'
    fi
}
accel=$(choose_accel)
case "$accel" in
    kvm) accel_args=(-accel kvm -cpu host) ;;
    tcg) accel_args=(-accel "tcg,thread=multi" -cpu "${E2E_VM_CPU:-max}") ;;
    *) e2e_die "E2E_ACCEL=$accel: expected kvm or tcg" ;;
esac
why=""
[[ -e /sys/module/kvm_pvm ]] && why=" (kvm is PVM here)"
[[ -c /dev/kvm ]] || why=" (no /dev/kvm)"
e2e_log "vm $suite: accelerator $accel$why, ${cpus} vCPUs, ${memory} MiB, timeout ${timeout_s}s"

# A stale marker from an earlier run must not pass for this one.
rm -f "$results/guest-done"
serial=$results/serial.log
: >"$serial"

# console=ttyS0: everything the guest prints (kernel, systemd, the suite) lands in serial.log.
# panic=1 with -no-reboot: a kernel panic ends qemu at once instead of waiting for the timeout.
# mitigations=off: the guest is a throw-away test machine and emulation is slow enough already.
# fsck.mode=skip: every boot starts from the same clean image (snapshot=on).
cmdline="console=ttyS0 root=/dev/vda rw rootfstype=ext4 systemd.unified_cgroup_hierarchy=1"
cmdline+=" panic=1 quiet loglevel=4 mitigations=off fsck.mode=skip"

qemu=(qemu-system-x86_64 -name "e2e-$suite" -machine pc "${accel_args[@]}"
    -smp "$cpus" -m "$memory"
    -nodefaults -no-user-config -display none -vga none -monitor none -parallel none
    -serial "file:$serial" -no-reboot -nic none
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$cmdline"
    # snapshot=on: guest writes go to a temporary overlay; the cached image stays pristine.
    -drive "file=$image/disk.raw,format=raw,if=virtio,snapshot=on"
    -virtfs "local,path=$payload,mount_tag=payload,security_model=none,readonly=on"
    -virtfs "local,path=$results,mount_tag=results,security_model=none")

qemu_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
stop_qemu() {
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        e2e_log "vm $suite: stopping qemu (pid $qemu_pid)"
        kill -TERM "$qemu_pid" 2>/dev/null || true
        sleep 2
        kill -KILL "$qemu_pid" 2>/dev/null || true
    fi
}
# Whatever ends this script (error, Ctrl-C, CI's kill) also ends the VM.
trap stop_qemu EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One VM at a time on this machine: under TCG a guest takes both cores, and two at once would
# only make both slow enough to time out. Another checkout's run waits here for its turn.
vm_lock=${E2E_VM_LOCK:-/run/lock/runsc-guard-e2e-vm.lock}
exec 8>"$vm_lock"
if ! flock -n 8; then
    e2e_log "vm $suite: waiting for another e2e VM on this machine ($vm_lock)"
    flock 8
fi

start=$SECONDS
# No stdin: CI has none, and qemu must never wait for a terminal.
timeout --kill-after=15 "$timeout_s" "${qemu[@]}" </dev/null >"$results/qemu.out" 2>&1 &
qemu_pid=$!
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=""
elapsed=$((SECONDS - start))
printf 'accel %s\nboot_to_poweroff_s %s\nqemu_status %s\n' "$accel" "$elapsed" "$rc" >"$results/vm.txt"

if [[ -f $results/guest-done ]]; then
    e2e_log "vm $suite: guest finished in ${elapsed}s (boot to poweroff)"
    exit 0
fi

if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    e2e_log "vm $suite: TIMED OUT after ${elapsed}s (E2E_VM_TIMEOUT=$timeout_s)"
else
    e2e_log "vm $suite: qemu exited with status $rc after ${elapsed}s"
fi
e2e_log "vm $suite: the guest never wrote guest-done; qemu said:"
tail -n 20 "$results/qemu.out" >&2 || true
e2e_log "vm $suite: last lines of $serial:"
tail -n 80 "$serial" >&2 || true
exit 1
