//! tests/e2e/install-deps.sh's apt step with stand-ins for apt-get and apt-cache: a package apt
//! would remove to resolve a version conflict (the host's newer qemu-utils against the archive's
//! qemu-system-x86) is replaced by the archive's matching version, said in the log, and never
//! removed silently; when no such version exists, nothing is installed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One test at a time: a stand-in being written while another test forks cannot be executed
/// (ETXTBSY).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const QEMU: &str = "1:7.2+dfsg-7+deb12u18";
const NEWER: &str = "1:9.1.2+ds-1~bpo12+1";

struct Apt {
    dir: tempfile::TempDir,
}

impl Apt {
    /// apt-get and apt-cache stand-ins. `conflict`: simulating qemu-system-x86 without a
    /// qemu-utils pin removes the installed newer qemu-utils. `matching`: the archive has a
    /// qemu-utils of qemu-system-x86's version.
    fn new(conflict: bool, matching: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let script = |name: &str, body: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let remove = if conflict {
            format!("echo 'Remv qemu-utils [{NEWER}]'")
        } else {
            ":".to_string()
        };
        script(
            "apt-get",
            format!(
                r#"echo "$*" >> {log}
case " $* " in
  *" -s "*)
    case " $* " in
      *" qemu-utils="*) echo "Inst qemu-utils [{NEWER}] ({QEMU} Debian:12/stable [amd64])" ;;
      *) {remove} ;;
    esac
    echo "Inst qemu-system-x86 ({QEMU} Debian:12/stable [amd64])" ;;
esac
exit 0"#,
                log = log.display()
            ),
        );
        let archive_utils = if matching {
            QEMU
        } else {
            "1:7.2+dfsg-7+deb12u15"
        };
        script(
            "apt-cache",
            format!(
                r#"case "$1 $2" in
  "policy qemu-system-x86") printf 'qemu-system-x86:\n  Installed: (none)\n  Candidate: {QEMU}\n' ;;
  "policy "*) printf '%s:\n  Installed: (none)\n  Candidate: 1.0\n' "$2" ;;
  "madison qemu-utils") printf ' qemu-utils | {NEWER} | somewhere bookworm-backports/main amd64 Packages\n qemu-utils | {archive_utils} | somewhere bookworm/main amd64 Packages\n' ;;
esac
exit 0"#
            ),
        );
        Apt { dir }
    }

    fn install(&self, packages: &[&str]) -> Output {
        let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
        Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; . "$1/lib.sh"; . "$1/apt-install.sh"; shift; apt_install_keeping "$@""#)
            .arg("bash")
            .arg(&e2e)
            .args(packages)
            .env("APT_GET", self.dir.path().join("apt-get"))
            .env("APT_CACHE", self.dir.path().join("apt-cache"))
            .output()
            .unwrap()
    }

    /// The apt-get calls that were not simulations.
    fn real_installs(&self) -> Vec<String> {
        std::fs::read_to_string(self.calls())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.split(' ').any(|w| w == "-s"))
            .map(str::to_string)
            .collect()
    }

    fn calls(&self) -> PathBuf {
        self.dir.path().join("calls")
    }
}

#[test]
fn a_package_apt_would_remove_is_replaced_and_said() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let apt = Apt::new(true, true);
    let out = apt.install(&["qemu-system-x86", "debootstrap"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let installs = apt.real_installs();
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert!(
        installs[0].contains(&format!("qemu-utils={QEMU}"))
            && installs[0].contains("--allow-downgrades"),
        "{}",
        installs[0]
    );
    assert!(
        log.contains(&format!("replacing qemu-utils {NEWER} with {QEMU}")),
        "{log}"
    );
    assert!(
        log.contains("apt would otherwise remove qemu-utils"),
        "{log}"
    );
    assert!(log.contains("was replaced by"), "{log}");
}

#[test]
fn an_unavoidable_removal_installs_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let apt = Apt::new(true, false);
    let out = apt.install(&["qemu-system-x86"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(apt.real_installs().is_empty(), "{:?}", apt.real_installs());
    assert!(
        log.contains(&format!("would remove qemu-utils {NEWER}")),
        "{log}"
    );
    assert!(log.contains("nothing was installed"), "{log}");
}

#[test]
fn without_a_conflict_it_is_a_plain_install() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let apt = Apt::new(false, true);
    let out = apt.install(&["qemu-system-x86"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installs = apt.real_installs();
    assert_eq!(installs.len(), 1);
    assert!(
        !installs[0].contains("--allow-downgrades"),
        "{}",
        installs[0]
    );
    assert!(!installs[0].contains("qemu-utils"), "{}", installs[0]);
}
