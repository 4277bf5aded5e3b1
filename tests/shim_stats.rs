//! Stats as containerd's `task.Metrics` asks for them: cgroup v2 metrics (the fixture host is
//! unified) from the host cgroup that holds the sandbox, with the container's own figures from
//! `runsc events --stats`.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::api::StatsRequest;
use containerd_shim_protos::cgroups_v2::metrics::Metrics;
use containerd_shim_protos::protobuf::Message;
use fake_runsc::{EVENT_CPU_NS, EVENT_MEMORY_USAGE, EVENT_PIDS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_come_from_the_sandbox_cgroup_and_runsc() {
    if skip_unless_root("stats_come_from_the_sandbox_cgroup_and_runsc") {
        return;
    }
    let env = TestEnv::new("stats").await;
    // A unified host where the sandbox's cgroup exists with its figures.
    let cgroup_root = env.path("node/cgroup");
    let proc_root = env.path("node/proc");
    let leaf = "stats-pod/stats-s1";
    let write = |rel: &str, text: &str| {
        let path = cgroup_root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("cgroup.controllers", "cpu memory pids\n");
    write(&format!("{leaf}/memory.current"), "104857600\n");
    write(&format!("{leaf}/memory.max"), "268435456\n");
    write(
        &format!("{leaf}/memory.stat"),
        "anon 73400320\nfile 31457280\n",
    );
    write(
        &format!("{leaf}/cpu.stat"),
        "usage_usec 900000\nuser_usec 600000\nsystem_usec 300000\nnr_periods 10\nnr_throttled 2\nthrottled_usec 500\n",
    );
    write(&format!("{leaf}/pids.current"), "12\n");
    std::fs::create_dir_all(&proc_root).unwrap();
    let vars = [
        (CGROUP_ROOT_ENV, cgroup_root.clone().into_os_string()),
        (PROC_ROOT_ENV, proc_root.into_os_string()),
    ];
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("stats-s1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .cgroups_path(&format!("/{leaf}"))
        .build();
    let shim = env.start_shim_with(&bundle, &vars, &[]).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);

    let req = StatsRequest {
        id: bundle.id.clone(),
        ..Default::default()
    };
    let resp = shim.ok("Stats", shim.client.stats(ctx(), &req).await);
    let any = resp.stats.into_option().expect("Stats returns metrics");
    assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
    let m = Metrics::parse_from_bytes(&any.value).unwrap();
    assert_eq!(
        m.cpu.usage_usec,
        EVENT_CPU_NS / 1000,
        "the container's CPU, from runsc"
    );
    assert_eq!(
        m.memory.usage, EVENT_MEMORY_USAGE,
        "memory usage, from runsc"
    );
    assert_eq!(m.pids.current, EVENT_PIDS, "pids, from runsc");
    assert_eq!(
        m.memory.usage_limit, 268435456,
        "the limit of the sandbox's cgroup"
    );
    assert_eq!(m.cpu.nr_throttled, 2, "throttling of the sandbox's cgroup");
    assert_eq!(m.memory.anon, 73400320);
    let calls = env.calls();
    assert!(
        calls.contains(&env.argv(&bundle, &["events", "--stats", &bundle.id])),
        "{}",
        env.show(&calls)
    );

    shim.ok("Kill", shim.kill(9, false).await);
    shim.ok("Wait", shim.wait().await);
    // A stopped container's cgroup figures are still there; runsc has none.
    let resp = shim.ok("Stats (stopped)", shim.client.stats(ctx(), &req).await);
    let m = Metrics::parse_from_bytes(&resp.stats.value).unwrap();
    assert_eq!(
        m.memory.usage, 104857600,
        "the cgroup's figure once runsc has none"
    );
    shim.ok("Delete", shim.delete().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}
