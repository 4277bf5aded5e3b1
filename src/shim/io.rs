//! The container's stdio: pipes owned by `io_uid`/`io_gid` handed to runsc, and copies between
//! them and the fifos containerd opened, as gVisor's shim does.
//!
//! Pipes (not the fifos themselves) go to runsc so their owner can be set for the container, and
//! so the shim knows when output is drained: a copy ends when the last writer (the sandbox) closes
//! its end.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::warn;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{fchown, pipe2, Gid, Uid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::runsc::ProcessIo;

/// Where containerd wants the container's stdio. Empty paths mean /dev/null.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Running copies between the pipes (or a terminal) and the fifos.
#[derive(Debug, Default)]
pub struct StdioCopies {
    stdin: Option<StdinCopy>,
    outputs: Vec<JoinHandle<()>>,
}

/// The copy from the stdin fifo, and how to tell it the input has ended.
#[derive(Debug)]
pub(crate) struct StdinCopy {
    close: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl StdioCopies {
    pub(crate) fn new(stdin: Option<StdinCopy>, outputs: Vec<JoinHandle<()>>) -> Self {
        StdioCopies { stdin, outputs }
    }

    /// Stops feeding stdin once what containerd already wrote is copied: the process sees EOF
    /// (CloseIO).
    pub fn close_stdin(&mut self) {
        if let Some(copy) = self.stdin.take() {
            // The copy ends by itself; a copy already ended has nothing left to do.
            let _ = copy.close.send(());
            drop(copy.task);
        }
    }

    /// Waits up to `limit` for the output copies to drain, then stops them all.
    pub async fn finish(mut self, limit: Duration) {
        self.close_stdin();
        let mut outputs = std::mem::take(&mut self.outputs);
        let drained = tokio::time::timeout(limit, async {
            for task in outputs.iter_mut() {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            warn!("container output was not drained within {limit:?}; closing it");
        }
        for task in outputs {
            task.abort();
        }
    }
}

impl Drop for StdioCopies {
    fn drop(&mut self) {
        if let Some(copy) = self.stdin.take() {
            copy.task.abort();
        }
        for task in self.outputs.drain(..) {
            task.abort();
        }
    }
}

/// Creates the pipes for `paths` and starts copying. Returns the ends for runsc and the copies.
pub fn open(paths: &StdioPaths, uid: u32, gid: u32) -> Result<(ProcessIo, StdioCopies)> {
    if paths.terminal {
        return Err(Error::Unimplemented("a terminal (tty) for the container"));
    }
    let mut io = ProcessIo::default();
    let mut copies = StdioCopies::default();
    if !paths.stdin.is_empty() {
        let (read, write) = owned_pipe(uid, gid)?;
        let fifo = open_fifo_reader(Path::new(&paths.stdin))?;
        let sender = pipe::Sender::from_owned_fd(nonblocking(write)?)
            .map_err(|e| Error::io("using the stdin pipe for", &paths.stdin, e))?;
        copies.stdin = Some(spawn_stdin_copy(fifo, sender, None, paths.stdin.clone()));
        io.stdin = Some(read);
    }
    for (path, slot) in [
        (&paths.stdout, &mut io.stdout),
        (&paths.stderr, &mut io.stderr),
    ] {
        if path.is_empty() {
            continue;
        }
        let (read, write) = owned_pipe(uid, gid)?;
        let fifo = open_fifo_writer(Path::new(path))?;
        let receiver = pipe::Receiver::from_owned_fd(nonblocking(read)?)
            .map_err(|e| Error::io("using the output pipe for", path, e))?;
        copies
            .outputs
            .push(tokio::spawn(copy(receiver, fifo, path.clone())));
        *slot = Some(write);
    }
    Ok((io, copies))
}

fn owned_pipe(uid: u32, gid: u32) -> Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os("creating a pipe", e))?;
    for fd in [&read, &write] {
        fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(|e| {
            Error::os(
                format!("setting the stdio pipe owner to io_uid {uid}/io_gid {gid}"),
                e,
            )
        })?;
    }
    Ok((read, write))
}

/// The shim's own end of a pipe becomes non-blocking for tokio; the end runsc gets stays blocking.
pub(crate) fn nonblocking(fd: OwnedFd) -> Result<OwnedFd> {
    let flags = fcntl(&fd, FcntlArg::F_GETFL)
        .map_err(|e| Error::os(format!("reading flags of fd {}", fd.as_raw_fd()), e))?;
    fcntl(
        &fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::os(format!("making fd {} non-blocking", fd.as_raw_fd()), e))?;
    Ok(fd)
}

// Both fifo ends are opened read-write: opening never blocks on containerd, and stdin reaches EOF
// only through CloseIO, which is how containerd says the input has ended.
pub(crate) fn open_fifo_reader(path: &Path) -> Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(path)
        .map_err(|e| Error::io("opening the stdin fifo", PathBuf::from(path), e))
}

pub(crate) fn open_fifo_writer(path: &Path) -> Result<pipe::Sender> {
    pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map_err(|e| Error::io("opening the output fifo", PathBuf::from(path), e))
}

/// Copies the stdin fifo into `to` until CloseIO; then what is already in the fifo, and then
/// `eof` (a terminal's VEOF, so the line discipline reports end of input) or, without one, the
/// end of `to`, which the process reads as EOF.
pub(crate) fn spawn_stdin_copy<W>(
    mut from: pipe::Receiver,
    mut to: W,
    eof: Option<u8>,
    what: String,
) -> StdinCopy
where
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (close, mut closed) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                biased;
                _ = &mut closed => break,
                read = from.read(&mut buf) => match read {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Err(e) = to.write_all(&buf[..n]).await {
                            log::debug!("copying stdin for {what} stopped: {e}");
                            return;
                        }
                    }
                    Err(e) => {
                        log::debug!("reading stdin for {what} stopped: {e}");
                        return;
                    }
                },
            }
        }
        // The fifo is ours too (opened read-write), so it never reports EOF: read what is there.
        while let Ok(n) = from.try_read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        if let Some(c) = eof {
            let _ = to.write_all(&[c]).await;
        }
        let _ = to.flush().await;
    });
    StdinCopy { close, task }
}

pub(crate) async fn copy<R, W>(mut from: R, mut to: W, what: String)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = tokio::io::copy(&mut from, &mut to).await {
        // The reader went away (containerd restarted or the pod is gone): nothing to do but stop.
        log::debug!("copying stdio for {what} stopped: {e}");
    }
}
