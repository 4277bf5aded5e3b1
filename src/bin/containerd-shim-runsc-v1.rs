//! containerd-shim-runsc-v1: gVisor's containerd shim, with every sandbox bounded by its pod.

#![warn(clippy::too_many_lines)]

use std::io::Write;

use runsc_guard::shim::{info, service::Service, RUNTIME_ID};

fn main() {
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
    // A shim per pod must stay cheap: two workers, as kata's runtime-rs does.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(containerd_shim::asynchronous::run::<Service>(
        RUNTIME_ID, None,
    ));
}
