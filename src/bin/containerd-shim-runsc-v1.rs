//! containerd-shim-runsc-v1: gVisor's containerd shim, with every sandbox bounded by its pod.

#![warn(clippy::too_many_lines)]

use std::io::Write;

use runsc_guard::shim::{info, service::Service, startup, RUNTIME_ID};

fn main() {
    startup::mark("exec");
    // containerd-shim 0.11 parses but does not act on -v and -info: answer them here, before
    // anything starts (and without a tokio runtime).
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |names: &[&str]| args.iter().any(|a| names.contains(&a.as_str()));
    if flag(&["-v", "--v", "-version", "--version"]) {
        print!("{}", info::version_text());
        return;
    }
    if flag(&["-info", "--info"]) {
        let options = runsc_guard::shim::service::read_stdin_options().flatten();
        let bytes = info::encode(&info::runtime_info(options.as_ref()));
        let _ = std::io::stdout().write_all(&bytes);
        return;
    }
    // A shim per pod must stay cheap, and it mostly waits (on runsc, on containerd, on
    // stdio): one thread runs every task. Each worker thread of a multi-thread runtime costs its
    // stack and a malloc arena; the daemon never blocks its thread (mounts, the console's fd
    // and file-system calls go to the blocking pool, runsc runs as child processes).
    one_malloc_arena();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(containerd_shim::asynchronous::run::<Service>(
        RUNTIME_ID, None,
    ));
}

/// glibc gives each thread that allocates an arena of its own (up to 8 per core), which the
/// blocking pool's threads would each leave behind holding freed memory. The daemon allocates
/// little and rarely from two threads at once: one arena serves it.
fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a malloc parameter; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
