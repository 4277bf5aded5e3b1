//! Terminals: the console socket runsc sends a pty master to, and the copies between that master
//! and containerd's fifos.
//!
//! With `--console-socket`, runsc makes the pty pair itself (the replica becomes the process'
//! stdio) and sends the master over the unix socket as SCM_RIGHTS, as runc does. The shim copies
//! the master to the stdout fifo and the stdin fifo to the master, sets the window size on it
//! (ResizePty) and, when containerd closes stdin, writes the terminal's VEOF so the process reads
//! end of input, as containerd's runc shim does.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixListener;

use crate::error::{Error, Result};
use crate::shim::io::{self, StdioCopies, StdioPaths};

/// How long runsc may take to send the master once it has been asked to.
pub const RECEIVE_LIMIT: Duration = Duration::from_secs(10);

/// A unix socket runsc sends a pty master to (`--console-socket`). Its directory is private to
/// the shim and removed with it.
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ConsoleSocket {
    /// Listens in a new directory under the temp dir: a socket path must fit in 108 bytes, and a
    /// bundle path may not.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("runsc-guard-pty")
            .tempdir()
            .map_err(|e| Error::os("creating a directory for the console socket", e))?;
        let path = dir.path().join("pty.sock");
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::io("listening on the console socket", &path, e))?;
        Ok(ConsoleSocket {
            listener,
            path,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `call` (the runsc call that sends the master) and takes the master meanwhile. A
    /// failed call is its own error, without waiting for a master that will not come.
    pub async fn receive_during<T>(
        self,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<(T, Pty)> {
        let receiving = tokio::spawn(self.receive(RECEIVE_LIMIT));
        match call.await {
            Ok(value) => {
                let pty = receiving
                    .await
                    .map_err(|e| Error::task_failed("receiving the terminal", e))??;
                Ok((value, pty))
            }
            Err(e) => {
                receiving.abort();
                Err(e)
            }
        }
    }

    /// The pty master runsc sent, waiting at most `limit` for it.
    pub async fn receive(self, limit: Duration) -> Result<Pty> {
        let (stream, _) = tokio::time::timeout(limit, self.listener.accept())
            .await
            .map_err(|_| {
                Error::io(
                    "waiting for runsc's terminal on the console socket",
                    &self.path,
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("runsc sent no terminal within {limit:?}"),
                    ),
                )
            })?
            .map_err(|e| Error::io("accepting on the console socket", &self.path, e))?;
        let stream = stream
            .into_std()
            .map_err(|e| Error::io("using the console socket", &self.path, e))?;
        stream
            .set_nonblocking(false)
            .map_err(|e| Error::io("using the console socket", &self.path, e))?;
        stream
            .set_read_timeout(Some(limit))
            .map_err(|e| Error::io("using the console socket", &self.path, e))?;
        let path = self.path.clone();
        let fd = tokio::task::spawn_blocking(move || receive_fd(&stream))
            .await
            .map_err(|e| Error::task_failed("receiving the terminal", e))?
            .map_err(|e| Error::io("receiving the terminal from", &path, e))?;
        Pty::new(fd)
    }
}

/// Reads one message and takes the first file descriptor it carries.
fn receive_fd(stream: &std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            fds.extend(received);
        }
    }
    let mut owned = fds
        .into_iter()
        // SAFETY: the kernel just installed these descriptors for this process; nobody else
        // owns them.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    owned.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the message on the console socket carried no file descriptor",
        )
    })
}

/// A pty master.
#[derive(Clone)]
pub struct Pty {
    master: Arc<AsyncFd<OwnedFd>>,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pty({})", self.master.get_ref().as_raw_fd())
    }
}

impl Pty {
    pub fn new(master: OwnedFd) -> Result<Self> {
        let master = io::nonblocking(master)?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged until it is dropped, which
        // happens only with the AsyncFd.
        let master = unsafe { AsyncFd::register(master) }
            .map_err(|e| Error::os("watching the terminal", e))?;
        Ok(Pty {
            master: Arc::new(master),
        })
    }

    /// ResizePty: the window size, in characters.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let size = libc::winsize {
            ws_row: clamp(height),
            ws_col: clamp(width),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which lives for the call.
        let rc = unsafe {
            libc::ioctl(
                self.master.get_ref().as_raw_fd(),
                libc::TIOCSWINSZ,
                &size as *const libc::winsize,
            )
        };
        if rc != 0 {
            return Err(Error::os(
                format!("setting the terminal size to {width}x{height}"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// The terminal's end-of-input character (VEOF, ^D unless the process changed it).
    fn veof(&self) -> u8 {
        nix::sys::termios::tcgetattr(self.master.get_ref().as_fd())
            .map(|t| t.control_chars[nix::sys::termios::SpecialCharacterIndices::VEOF as usize])
            .unwrap_or(4)
    }

    /// Starts copying: the master to the stdout fifo, the stdin fifo to the master. A terminal
    /// has one output; a stderr fifo is left alone, as containerd's shims leave it.
    pub fn copy(&self, paths: &StdioPaths) -> Result<StdioCopies> {
        let mut outputs = Vec::new();
        if !paths.stdout.is_empty() {
            let fifo = io::open_fifo_writer(Path::new(&paths.stdout))?;
            outputs.push(tokio::spawn(io::copy(
                PtyIo(self.master.clone()),
                fifo,
                paths.stdout.clone(),
            )));
        }
        let stdin = if paths.stdin.is_empty() {
            None
        } else {
            let fifo = io::open_fifo_reader(Path::new(&paths.stdin))?;
            Some(io::spawn_stdin_copy(
                fifo,
                PtyIo(self.master.clone()),
                Some(self.veof()),
                paths.stdin.clone(),
            ))
        };
        Ok(StdioCopies::new(stdin, outputs))
    }
}

fn clamp(v: u32) -> u16 {
    v.min(u32::from(u16::MAX)) as u16
}

/// Reading and writing a pty master through tokio.
struct PtyIo(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for PtyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref(), unfilled).map_err(std::io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Every replica is closed: the process and runsc are gone, the output has ended.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(std::io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::IoSlice;
    use tokio::io::AsyncReadExt;

    /// What runsc does with `--console-socket`: a pty pair, the master sent over the socket.
    #[tokio::test]
    async fn the_master_arrives_and_resizes_the_replica() {
        let socket = ConsoleSocket::new().unwrap();
        assert!(socket.path().as_os_str().len() < 108);
        let pair = nix::pty::openpty(None, None).unwrap();
        let client = std::os::unix::net::UnixStream::connect(socket.path()).unwrap();
        let fds = [pair.master.as_raw_fd()];
        sendmsg::<()>(
            client.as_raw_fd(),
            &[IoSlice::new(b"/dev/pts/x")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(pair.master);
        let pty = socket.receive(RECEIVE_LIMIT).await.unwrap();
        pty.resize(120, 40).unwrap();
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize into the pointer.
        let rc = unsafe { libc::ioctl(pair.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
        assert_eq!(pty.veof(), 4);
        // Output written to the replica is read from the master; EOF once the replica closes.
        nix::unistd::write(&pair.slave, b"hi\r\n").unwrap();
        drop(pair.slave);
        let mut out = Vec::new();
        PtyIo(pty.master.clone())
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&out).contains("hi"), "{out:?}");
    }

    #[tokio::test]
    async fn no_terminal_in_time_is_a_clear_error() {
        let socket = ConsoleSocket::new().unwrap();
        let path = socket.path().to_path_buf();
        let err = socket.receive(Duration::from_millis(50)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sent no terminal"), "{text}");
        assert!(text.contains(&*path.to_string_lossy()), "{text}");
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::TimedOut),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_resize_keeps_its_errno() {
        // A pipe is no terminal: TIOCSWINSZ fails with ENOTTY.
        let (read, _write) = nix::unistd::pipe().unwrap();
        let pty = Pty::new(read).unwrap();
        let err = pty.resize(80, 24).unwrap_err();
        assert!(err.to_string().contains("80x24"), "{err}");
        let Error::Os { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source.raw_os_error(), Some(libc::ENOTTY), "{err}");
    }
}
