use super::*;

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("runsc.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn no_options_means_defaults() {
    let (c, src) = decode(None).unwrap();
    assert_eq!(src, ConfigSource::Defaults);
    assert_eq!(c.binary_name, "runsc");
    assert_eq!(c.root, "/run/containerd/runsc");
    assert_eq!(c.guard_mode, GuardMode::Enforce);
    assert_eq!(
        c.runsc_root("k8s.io"),
        PathBuf::from("/run/containerd/runsc/k8s.io")
    );
    let empty = Any::default();
    assert_eq!(decode(Some(&empty)).unwrap().1, ConfigSource::Defaults);
}

#[test]
fn every_key_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        r#"
binary_name = "/usr/bin/runsc"
root = "/run/runsc"
io_uid = 1000
io_gid = 1001
shim_cgroup = "/system.slice/shims"
log_level = "debug"
log_path = "/var/log/runsc/%ID%/shim.log"
grouping = false
enable_hibernate_server = false
guard_mode = "warn"
[runsc_config]
debug = "true"
platform = "ptrace"
systemd-cgroup = true
num-network-channels = 2
"#,
    );
    let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, p.to_str().unwrap(), b"");
    let (c, src) = decode(Some(&any)).unwrap();
    assert_eq!(src, ConfigSource::Path(p.clone()));
    assert_eq!(c.binary_name, "/usr/bin/runsc");
    assert_eq!(c.root, "/run/runsc");
    assert_eq!((c.io_uid, c.io_gid), (1000, 1001));
    assert_eq!(c.shim_cgroup, "/system.slice/shims");
    assert_eq!(c.log_level, "debug");
    assert!(!c.grouping, "grouping = false: one shim per container");
    assert!(
        ShimConfig::default().grouping,
        "one shim per pod by default"
    );
    assert_eq!(c.guard_mode, GuardMode::Warn);
    assert_eq!(c.runsc_config["debug"], "true");
    assert_eq!(c.runsc_config["systemd-cgroup"], "true");
    assert_eq!(c.runsc_config["num-network-channels"], "2");
    assert_eq!(
        c.shim_log_file("abc"),
        Some(PathBuf::from("/var/log/runsc/abc/shim.log"))
    );
}

#[test]
fn config_body_wins_over_reading_the_path() {
    let any = encode_cri_options(
        RUNSC_OPTIONS_TYPE_URL,
        "/nonexistent/runsc.toml",
        b"binary_name = \"/opt/runsc\"\n",
    );
    let (c, src) = decode(Some(&any)).unwrap();
    assert_eq!(c.binary_name, "/opt/runsc");
    assert_eq!(src, ConfigSource::Body("/nonexistent/runsc.toml".into()));
}

#[test]
fn log_path_directory_form() {
    let c = ShimConfig {
        log_path: "/var/log/runsc/".into(),
        ..Default::default()
    };
    assert_eq!(
        c.shim_log_file("x"),
        Some(PathBuf::from("/var/log/runsc/runsc-shim-x.log"))
    );
    assert_eq!(ShimConfig::default().shim_log_file("x"), None);
}

#[test]
fn missing_config_path_names_the_path_and_the_fix() {
    let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, "/nonexistent/runsc.toml", b"");
    let err = decode(Some(&any)).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/runsc.toml"), "{err}");
    assert!(err.contains("ConfigPath"), "{err}");
}

#[test]
fn bad_toml_is_reported_with_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "binary_name = \n");
    let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, p.to_str().unwrap(), b"");
    let err = decode(Some(&any)).unwrap_err().to_string();
    assert!(err.contains("not a valid runsc.toml"), "{err}");
    assert!(err.contains(p.to_str().unwrap()), "{err}");
}

#[test]
fn wrong_types_name_the_key() {
    let err = ShimConfig::from_toml("io_uid = \"root\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("io_uid"), "{err}");
    let err = ShimConfig::from_toml("[runsc_config]\nnet = [1]\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("runsc_config.net"), "{err}");
    let err = ShimConfig::from_toml("guard_mode = \"strict\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("guard_mode") || err.contains("strict"),
        "{err}"
    );
    let err = ShimConfig::from_toml("root = \"relative\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("root"), "{err}");
    let err = ShimConfig::from_toml("[runsc_config]\n\"--debug\" = \"true\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("--debug"), "{err}");
}

#[test]
fn unknown_keys_are_kept_not_fatal() {
    let c = ShimConfig::from_toml("some_future_key = 1\n", "t").unwrap();
    assert_eq!(c.unknown_keys(), vec!["some_future_key"]);
}

#[test]
fn wrong_type_url_is_refused() {
    let any = encode_cri_options("io.containerd.runc.v1.options", "/etc/runsc.toml", b"");
    let err = decode(Some(&any)).unwrap_err().to_string();
    assert!(err.contains("io.containerd.runc.v1.options"), "{err}");
    assert!(err.contains(RUNSC_OPTIONS_TYPE_URL), "{err}");
}

#[test]
fn unknown_any_type_is_refused() {
    let any = Any {
        type_url: "example.com/Other".into(),
        value: vec![1, 2],
        ..Default::default()
    };
    let err = decode(Some(&any)).unwrap_err().to_string();
    assert!(err.contains("example.com/Other"), "{err}");
}

#[test]
fn old_cri_options_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "root = \"/run/r\"\n");
    let o = CriOptionsV14 {
        type_url: RUNSC_OPTIONS_TYPE_URL.into(),
        config_path: p.to_str().unwrap().into(),
        ..Default::default()
    };
    let any = Any {
        type_url: format!("type.googleapis.com/{CRI_OPTIONS_V14}"),
        value: o.write_to_bytes().unwrap(),
        ..Default::default()
    };
    assert_eq!(decode(Some(&any)).unwrap().0.root, "/run/r");
}

#[test]
fn runc_options_map_onto_the_config() {
    let o = RuncOptions {
        binary_name: "/usr/local/bin/runsc".into(),
        systemd_cgroup: true,
        io_uid: 7,
        ..Default::default()
    };
    let any = Any {
        type_url: format!("containerd.{}", &RUNC_OPTIONS["containerd.".len()..]),
        value: o.write_to_bytes().unwrap(),
        ..Default::default()
    };
    let (c, src) = decode(Some(&any)).unwrap();
    assert_eq!(src, ConfigSource::RuncOptions);
    assert_eq!(c.binary_name, "/usr/local/bin/runsc");
    assert_eq!(c.io_uid, 7);
    assert_eq!(c.runsc_config["systemd-cgroup"], "true");
}

#[test]
fn relative_config_path_is_refused() {
    let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, "runsc.toml", b"");
    let err = decode(Some(&any)).unwrap_err().to_string();
    assert!(err.contains("ConfigPath"), "{err}");
}

#[test]
fn a_fifo_config_path_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("runsc.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(
            ShimConfig::from_file(&path)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        );
    });
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("reading a FIFO ConfigPath blocked")
        .unwrap_err();
    assert!(
        err.contains("FIFO") && err.contains("regular file"),
        "{err}"
    );
    assert!(err.contains(fifo.to_str().unwrap()), "{err}");
}

#[test]
fn a_device_or_directory_config_path_is_refused() {
    let err = ShimConfig::from_file(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/dev/zero") && err.contains("a device"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = ShimConfig::from_file(dir.path()).unwrap_err().to_string();
    assert!(err.contains("a directory"), "{err}");
}

#[test]
fn a_config_path_over_the_size_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("# {}\n", "x".repeat(MAX_CONFIG_SIZE as usize));
    let p = write(dir.path(), &text);
    let err = ShimConfig::from_file(&p).unwrap_err().to_string();
    assert!(err.contains("larger than"), "{err}");
    // Just under the cap is read.
    let p = write(dir.path(), &format!("#{}\n", "x".repeat(1000)));
    ShimConfig::from_file(&p).unwrap();
}

/// A ConfigPath pointing at the wrong file must not copy that file into containerd's log.
#[test]
fn errors_name_the_line_and_never_quote_the_file() {
    let secret = "hunter2SECRET";
    let cases = [
        format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        format!("password={secret}\n"),
        format!("token = \"{secret}\"\ntoken = \"{secret}\"\n"),
        format!("[{secret}\n"),
        format!("# a comment\nio_uid = \"{secret}\"\n"),
        format!("guard_mode = \"{secret}\"\n"),
        format!("binary_name = [\"{secret}\"]\n"),
        format!("[runsc_config]\nplatform = [\"{secret}\"]\n"),
        format!("{secret} = \"x\"\n{secret}x = \"\n"),
    ];
    for text in &cases {
        let err = ShimConfig::from_toml(text, "ConfigPath /etc/shadow")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRET"), "the error quotes the file: {err}");
        assert!(err.contains("line "), "the error names the line: {err}");
        assert!(err.contains("/etc/shadow"), "{err}");
    }
    let err = ShimConfig::from_toml(&cases[4], "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("io_uid") && err.contains("line 2"), "{err}");
    let err = ShimConfig::from_toml(&cases[5], "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("guard_mode") && err.contains("\"enforce\""),
        "{err}"
    );
    let err = ShimConfig::from_toml(&cases[7], "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("runsc_config.platform") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn flags_the_shim_owns_are_refused_by_name() {
    for key in ["root", "log", "log-format", "log-fd"] {
        let text = format!("root = \"/run/r\"\n[runsc_config]\n{key} = \"/x\"\n");
        let err = ShimConfig::from_toml(&text, "t").unwrap_err().to_string();
        assert!(err.contains(&format!("runsc_config.{key} ")), "{err}");
        assert!(
            err.contains("line 3") && err.contains("set by the shim"),
            "{err}"
        );
    }
    // debug-log is the operator's (the shim only expands %ID% in it).
    ShimConfig::from_toml("[runsc_config]\ndebug-log = \"/var/log/%ID%/\"\n", "t").unwrap();
}

#[test]
fn flags_that_would_not_be_one_argument_are_refused() {
    let bad = [
        "\"a\\tb\" = \"1\"",
        "\"a\\u0000b\" = \"1\"",
        "\"a\\nb\" = \"1\"",
        "\"a=b\" = \"1\"",
        "\"-debug\" = \"1\"",
        "\"a b\" = \"1\"",
        "\"\" = \"1\"",
        "platform = \"ptrace\\tx\"",
        "platform = \"ptrace\\u0000\"",
        "platform = \"ptrace\\n--root=/tmp\"",
    ];
    for entry in bad {
        let text = format!("[runsc_config]\n{entry}\n");
        let err = ShimConfig::from_toml(&text, "t").unwrap_err().to_string();
        assert!(
            err.contains("runsc_config.") && err.contains("line 2"),
            "{entry}: {err}"
        );
        assert!(!err.contains('\0') && !err.contains('\t'), "{err:?}");
    }
    let ok = ShimConfig::from_toml(
        "[runsc_config]\nTESTONLY-unsafe-nonroot = true\nnet-raw = \"true\"\noverlay2 = \"root:self\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(ok.runsc_config["overlay2"], "root:self");
}

#[test]
fn runc_options_pass_the_same_checks() {
    let o = RuncOptions {
        root: "relative/root".into(),
        ..Default::default()
    };
    let any = Any {
        type_url: RUNC_OPTIONS.to_string(),
        value: o.write_to_bytes().unwrap(),
        ..Default::default()
    };
    let err = decode(Some(&any)).unwrap_err().to_string();
    assert!(
        err.contains("root") && err.contains("relative/root"),
        "{err}"
    );
    assert!(err.contains("absolute"), "{err}");
}
