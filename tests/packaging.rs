//! packaging/: the files an operator installs from, checked as the tools that read them read
//! them: the containerd snippets by the doctor's containerd parser, runsc.toml by the shim's,
//! the .deb's metadata against the files it names, and the installer script run against a
//! fixture node. The Kubernetes manifests are validated against Kubernetes' schema in
//! tests/manifests.rs; here, what the schema cannot say: names and quantities the API checks
//! by code, the handler, and how the manifests, the script and the image fit together.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use runsc_guard::doctor::containerd::{self, HandlerKind};
use runsc_guard::options::ShimConfig;
use serde_norway::Value;

/// The tests that run programs take turns: a stand-in being written while another test forks
/// cannot be executed (ETXTBSY).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {}", path.join(".")))
}

/// A Kubernetes quantity as the API accepts it (the forms these manifests use).
fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"].contains(&suffix)
}

/// A DNS-1123 label (metadata.name, container and volume names).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn the_containerd_snippets_define_the_runsc_handler() {
    for (file, version) in [
        ("packaging/containerd/runsc-v2.toml", 2),
        ("packaging/containerd/runsc-v3.toml", 3),
    ] {
        let config = containerd::parse(&read(file), &repo(file)).unwrap();
        assert_eq!(config.version, version, "{file}");
        let [handler] = &config.handlers[..] else {
            panic!("{file}: {:?}", config.handlers)
        };
        assert_eq!(handler.name, "runsc", "{file}");
        assert_eq!(handler.kind, HandlerKind::RunscShim, "{file}");
        assert_eq!(
            handler.type_url.as_deref(),
            Some(runsc_guard::options::RUNSC_OPTIONS_TYPE_URL),
            "{file}"
        );
        assert_eq!(
            handler.config_path.as_deref(),
            Some("/etc/containerd/runsc.toml"),
            "{file}"
        );
    }
}

#[test]
fn runsc_toml_documents_every_key_and_its_examples_parse() {
    let text = read("packaging/runsc.toml");
    let config = ShimConfig::from_toml(&text, "packaging/runsc.toml").unwrap();
    assert_eq!(
        config,
        ShimConfig::default(),
        "the file only documents defaults"
    );

    // Every key the shim knows is in the file.
    let known = toml::Value::try_from(ShimConfig::default()).unwrap();
    for key in known.as_table().unwrap().keys() {
        let documented = text.lines().any(|l| {
            let l = l.trim_start_matches('#');
            l.starts_with(&format!("{key} =")) || l.starts_with(&format!("[{key}]"))
        });
        assert!(documented, "packaging/runsc.toml does not document {key}");
    }

    // Uncommented, every example is a value the shim accepts.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let examples = ShimConfig::from_toml(&uncommented, "uncommented runsc.toml").unwrap();
    assert!(
        examples.unknown_keys().is_empty(),
        "{:?}",
        examples.unknown_keys()
    );
    assert_eq!(examples.runsc_config["platform"], "systrap");
    assert_eq!(examples.log_path, "/var/log/runsc/%ID%/shim.log");
}

#[test]
fn the_runtime_class_matches_the_handler() {
    let rc = yaml("packaging/k8s/runtimeclass.yaml");
    assert_eq!(str_at(&rc, &["apiVersion"]), "node.k8s.io/v1");
    assert_eq!(str_at(&rc, &["kind"]), "RuntimeClass");
    assert!(is_dns_label(str_at(&rc, &["metadata", "name"])));
    // handler must be the containerd runtime's name.
    assert_eq!(str_at(&rc, &["handler"]), "runsc");
    let pod_fixed = rc["overhead"]["podFixed"].as_mapping().unwrap();
    assert!(pod_fixed.contains_key("memory"));
    for (resource, quantity) in pod_fixed {
        let q = quantity.as_str().unwrap();
        assert!(is_quantity(q), "{resource:?}: {q:?}");
    }
    // It schedules pods only where the installer runs.
    let ds = yaml("packaging/k8s/installer.yaml");
    assert_eq!(
        rc["scheduling"]["nodeSelector"],
        ds["spec"]["template"]["spec"]["nodeSelector"]
    );
}

#[test]
fn the_installer_daemonset_fits_the_script_and_the_image() {
    let ds = yaml("packaging/k8s/installer.yaml");
    assert_eq!(str_at(&ds, &["apiVersion"]), "apps/v1");
    assert_eq!(str_at(&ds, &["kind"]), "DaemonSet");
    assert!(is_dns_label(str_at(&ds, &["metadata", "name"])));
    assert!(is_dns_label(str_at(&ds, &["metadata", "namespace"])));
    // The API rejects a selector that does not match the template's labels.
    let selector = ds["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    let labels = ds["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            labels.get(k),
            Some(v),
            "selector {k:?} not in the template's labels"
        );
    }
    let pod = &ds["spec"]["template"]["spec"];
    let volumes: BTreeSet<&str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| {
            let path = str_at(v, &["hostPath", "path"]);
            assert!(path.starts_with('/'), "{path}");
            str_at(v, &["name"])
        })
        .collect();
    let version = env!("CARGO_PKG_VERSION");
    let script = read("packaging/k8s/installer.sh");
    let mut commands = Vec::new();
    for list in ["initContainers", "containers"] {
        for c in pod[list].as_sequence().unwrap() {
            assert!(is_dns_label(str_at(c, &["name"])));
            let image = str_at(c, &["image"]);
            assert_eq!(
                image,
                format!("runsc-guard-installer:{version}"),
                "the image is tagged with the package's version"
            );
            for m in c["volumeMounts"].as_sequence().unwrap() {
                let name = str_at(m, &["name"]);
                assert!(volumes.contains(name), "volumeMount {name} has no volume");
                assert!(str_at(m, &["mountPath"]).starts_with("/host"));
            }
            let command: Vec<&str> = c["command"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert_eq!(command[0], "/opt/runsc-guard/installer.sh");
            commands.push((list, command[1].to_string()));
        }
    }
    assert_eq!(
        commands,
        [
            ("initContainers", "install".to_string()),
            ("containers", "watch".to_string())
        ]
    );
    // The readiness probe looks at the file the script keeps.
    let probe = &pod["containers"][0]["readinessProbe"]["exec"]["command"];
    let ready = probe[2].as_str().unwrap();
    assert!(
        script.contains(&format!("READY_FILE=${{READY_FILE:-{ready}}}")),
        "{ready}"
    );
    // The doctor's mount of the node is read-only.
    let doctor_mount = &pod["containers"][0]["volumeMounts"][0];
    assert_eq!(doctor_mount["readOnly"], Value::Bool(true));
    // The Dockerfile puts the script where the manifest runs it.
    let dockerfile = read("packaging/k8s/Dockerfile");
    assert!(dockerfile.contains("/opt/runsc-guard/installer.sh"));
    assert!(dockerfile.contains("/opt/runsc-guard/bin/"));
}

#[test]
fn the_deb_metadata_names_files_that_exist() {
    let _serial = serial();
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let mut destinations = Vec::new();
    let mut binaries = Vec::new();
    for asset in deb["assets"].as_array().unwrap() {
        let (src, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        if let Some(bin) = src.strip_prefix("target/release/") {
            binaries.push(bin.to_string());
        } else {
            assert!(repo(src).is_file(), "asset {src} does not exist");
        }
        let dest = if dest.ends_with('/') {
            format!(
                "/{dest}{}",
                Path::new(src).file_name().unwrap().to_str().unwrap()
            )
        } else {
            format!("/{dest}")
        };
        destinations.push(dest);
    }
    binaries.sort();
    assert_eq!(binaries, ["containerd-shim-runsc-v1", "runsc-guard"]);
    for conffile in deb["conf-files"].as_array().unwrap() {
        assert!(
            destinations.contains(&conffile.as_str().unwrap().to_string()),
            "{conffile}"
        );
    }
    assert_eq!(deb["provides"].as_str(), Some("containerd-shim-runsc-v1"));
    assert_eq!(deb["conflicts"].as_str(), Some("containerd-shim-runsc-v1"));
    assert!(deb["replaces"].as_str().unwrap().starts_with("runsc"));
    // Each maintainer script is valid sh and executable; none edits containerd's config.
    let dir = deb["maintainer-scripts"].as_str().unwrap();
    for script in ["preinst", "postinst", "postrm"] {
        let path = repo(dir).join(script);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", path.display());
        let ok = Command::new("sh").arg("-n").arg(&path).status().unwrap();
        assert!(ok.success(), "{} is not valid sh", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(
                !(line.contains("config.toml")
                    && (line.contains('>') || line.contains("sed") || line.contains("cp "))),
                "{script} writes containerd's config: {line}"
            );
            let command = line.trim_start();
            assert!(
                !["systemctl", "invoke-rc.d", "deb-systemd-invoke", "service "]
                    .iter()
                    .any(|c| command.starts_with(c)),
                "{script} restarts something: {line}"
            );
        }
    }
    // A man page for each binary, naming every runsc-guard command.
    let man = read("packaging/man/runsc-guard.8");
    for command in ["doctor", "plan", "show", "version"] {
        assert!(
            man.contains(&format!(".B {command}")),
            "runsc-guard.8 lacks {command}"
        );
    }
    assert!(repo("packaging/man/containerd-shim-runsc-v1.8").is_file());
}

/// A node's / for the installer: the directories the DaemonSet mounts, and a cgroup tree and
/// /proc for the doctor.
struct HostRoot {
    dir: tempfile::TempDir,
    src: tempfile::TempDir,
}

impl HostRoot {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["usr/local/bin", "etc/containerd", "sys/fs/cgroup", "proc/1"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(
            dir.path().join("sys/fs/cgroup/cgroup.controllers"),
            "memory\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("proc/1/comm"), "systemd\n").unwrap();
        let src = tempfile::tempdir().unwrap();
        for (name, bin) in [
            (
                "containerd-shim-runsc-v1",
                env!("CARGO_BIN_EXE_containerd-shim-runsc-v1"),
            ),
            ("runsc-guard", env!("CARGO_BIN_EXE_runsc-guard")),
        ] {
            std::os::unix::fs::symlink(bin, src.path().join(name)).unwrap();
        }
        HostRoot { dir, src }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn installer(&self, mode: &str, ready: &Path) -> std::process::Output {
        let args = format!(
            "--containerd-config {} --cgroup-root {} --proc {}",
            self.path("etc/containerd/config.toml").display(),
            self.path("sys/fs/cgroup").display(),
            self.path("proc").display()
        );
        Command::new("sh")
            .arg(repo("packaging/k8s/installer.sh"))
            .arg(mode)
            .env("HOST_ROOT", self.dir.path())
            .env("SRC_DIR", self.src.path())
            .env("EXAMPLE_TOML", repo("packaging/runsc.toml"))
            .env("READY_FILE", ready)
            .env("DOCTOR_ARGS", args)
            .env("CHROOT", "0")
            .env("ONCE", "1")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }
}

#[test]
fn the_installer_script_installs_and_reports() {
    let _serial = serial();
    let host = HostRoot::new();
    let ready = host.path("ready");
    let out = host.installer("install", &ready);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for bin in ["containerd-shim-runsc-v1", "runsc-guard"] {
        let installed = host.path("usr/local/bin").join(bin);
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{bin}");
        assert!(
            log.contains(&format!("installed /usr/local/bin/{bin}")),
            "{log}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(host.path("etc/containerd/runsc.toml")).unwrap(),
        read("packaging/runsc.toml")
    );
    assert!(
        !host.path("etc/containerd/config.toml").exists(),
        "containerd's config is not the installer's"
    );

    // Again: nothing to do, and an operator's runsc.toml is left alone.
    std::fs::write(
        host.path("etc/containerd/runsc.toml"),
        "guard_mode = \"warn\"\n",
    )
    .unwrap();
    let out = host.installer("install", &ready);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("/usr/local/bin/runsc-guard is up to date"),
        "{log}"
    );
    assert!(log.contains("left as it is"), "{log}");
    assert_eq!(
        std::fs::read_to_string(host.path("etc/containerd/runsc.toml")).unwrap(),
        "guard_mode = \"warn\"\n"
    );

    // A node with nothing set up yet: warnings only, so the pod is ready; one JSON line.
    let out = host.installer("watch", &ready);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["status"], "warn");
    assert!(ready.exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("doctor: warnings (exit 1)"));

    // A containerd config that does not parse is a failure: not ready.
    std::fs::write(
        host.path("etc/containerd/config.toml"),
        "version = 2\n[plugins\n",
    )
    .unwrap();
    let out = host.installer("watch", &ready);
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "fail");
    assert!(!ready.exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("doctor: FAILURES (exit 2)"));
}

#[test]
fn the_installer_script_refuses_a_missing_mount() {
    let _serial = serial();
    let host = HostRoot::new();
    std::fs::remove_dir(host.path("usr/local/bin")).unwrap();
    let out = host.installer("install", &host.path("ready"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mount the node's /usr/local/bin"));
    let out = host.installer("frobnicate", &host.path("ready"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: installer.sh install|watch"));
}

#[test]
fn the_maintainer_scripts_divert_gvisors_shim_and_give_it_back() {
    let _serial = serial();
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("calls");
    let fake = bin.path().join("dpkg-divert");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |script: &str, args: &[&str]| {
        let out = Command::new("sh")
            .arg(repo("packaging/debian").join(script))
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{script} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    let divert =
        "--divert /usr/bin/containerd-shim-runsc-v1.gvisor /usr/bin/containerd-shim-runsc-v1";

    run("preinst", &["install"]);
    assert_eq!(
        calls(),
        format!("--package runsc-guard --add --rename {divert}\n")
    );
    let message = run("postinst", &["configure", ""]);
    assert!(
        message.contains("containerd's config was not changed"),
        "{message}"
    );
    assert!(message.contains("runsc-guard doctor"), "{message}");
    // An aborted upgrade keeps the old version's diversion; a removal gives the path back.
    std::fs::remove_file(&log).unwrap();
    run("postrm", &["abort-upgrade", "0.0.9-1"]);
    run("postrm", &["upgrade", "0.1.1-1"]);
    assert_eq!(calls(), "");
    run("postrm", &["remove"]);
    assert_eq!(
        calls(),
        format!("--package runsc-guard --remove --rename {divert}\n")
    );
}

/// README's "Install on a node" commands as the VM suite takes them from the text
/// (tests/e2e/guest-install.sh): the .deb they install is the one `make deb` builds from this
/// checkout, and the snippet they append to containerd's config is one the package ships.
#[test]
fn the_readme_install_steps_name_what_the_package_ships() {
    let _serial = serial();
    let out = Command::new("bash")
        .arg("-c")
        .arg(". tests/e2e/guest-install.sh && readme_blocks sh")
        .current_dir(repo(""))
        .env("PAYLOAD", repo(""))
        .env("RESULTS", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<&str> = text.lines().collect();
    let deb = format!("./runsc-guard_{}-1_amd64.deb", env!("CARGO_PKG_VERSION"));
    assert!(commands.contains(&"make deb"), "{commands:?}");
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("apt-get install ") && c.split(' ').any(|w| w == deb)),
        "no `apt-get install ... {deb}` in {commands:?}"
    );
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let shipped: Vec<String> = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
            let name = Path::new(src).file_name().unwrap().to_str().unwrap();
            format!("/{dest}{}", if dest.ends_with('/') { name } else { "" })
        })
        .collect();
    let appends: Vec<&&str> = commands
        .iter()
        .filter(|c| c.contains("/usr/share/runsc-guard/containerd/"))
        .collect();
    let mut snippets = Vec::new();
    for append in &appends {
        let snippet = append
            .split(' ')
            .find(|w| w.starts_with("/usr/share/runsc-guard/"))
            .unwrap();
        assert!(
            shipped.iter().any(|s| s == snippet),
            "{snippet} is not in the package: {shipped:?}"
        );
        // Appended to config.toml itself: containerd 1.x lets an imported file replace
        // config.toml's whole CRI section.
        assert!(
            append.ends_with(">>/etc/containerd/config.toml"),
            "{append}"
        );
        snippets.push(snippet.rsplit('/').next().unwrap());
    }
    // runc first: containerd 1.x's CRI does not start on a config that names runsc but no runc.
    assert_eq!(snippets, ["runc-v2.toml", "runsc-v2.toml"], "{commands:?}");
    assert!(
        commands.contains(&"systemctl restart containerd"),
        "{commands:?}"
    );
}

/// The README's step 2 on Debian's own config.toml: runc's snippet, then runsc's, appended
/// without their version lines, make a config with both runtimes and runc on systemd's driver
/// (without runc, containerd 1.x starts no CRI plugin).
#[test]
fn the_snippets_appended_to_a_bare_config_name_runc_and_runsc() {
    for (version, base) in [
        (
            2,
            "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n",
        ),
        (3, "version = 3\n"),
    ] {
        let mut text = base.to_string();
        for snippet in ["runc", "runsc"] {
            let file = format!("packaging/containerd/{snippet}-v{version}.toml");
            for line in read(&file).lines().filter(|l| !l.starts_with("version")) {
                text.push_str(line);
                text.push('\n');
            }
        }
        let config = containerd::parse(&text, Path::new("/etc/containerd/config.toml"))
            .unwrap_or_else(|e| panic!("version {version}: {e}\n{text}"));
        assert_eq!(config.version, version);
        assert_eq!(config.runtime_names, ["runc", "runsc"], "version {version}");
        assert_eq!(config.default_systemd_cgroup, Some(true), "version {version}");
        assert_eq!(config.handlers.len(), 1, "version {version}");
        assert_eq!(config.handlers[0].name, "runsc");
    }
}
