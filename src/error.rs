//! The library's one error type. Every variant carries what an operator needs to act: the field
//! or file involved and the value found. Mapping to ttrpc status codes happens in exactly one
//! place, `shim::task`.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input from containerd, the bundle or the operator is malformed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },

    /// The runtime options or runsc.toml cannot be used.
    #[error("runtime options: {0}")]
    Options(String),

    /// A file could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A system call on something without a path (a pipe, a descriptor, a terminal, an anonymous
    /// file) failed. `action` says what the shim was doing and with which values; `source` keeps
    /// the errno (`raw_os_error`), so a caller matches on it instead of reading the words.
    #[error("{action}: {source}")]
    Os {
        action: String,
        #[source]
        source: std::io::Error,
    },

    /// A task the shim ran in the background (a blocking call on tokio's pool, a spawned future)
    /// panicked or was cancelled before it could answer. `source` says which
    /// (`is_panic`/`is_cancelled`).
    #[error("{what}: {source}")]
    TaskFailed {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },

    /// A cgroup tree that is not what a cgroup filesystem holds (a symlink, a file of the wrong
    /// kind, a limit that is not one, a cgroup or the filesystem missing). Its paths and
    /// unusable paths from the spec become [`Error::Io`] and [`Error::InvalidArgument`].
    #[error(transparent)]
    Cgroup(crate::cgroup::CgroupError),

    /// A runsc invocation failed, classified where runsc ran ([`RunscFailure`]). `message` is
    /// the last error runsc logged, its stderr, or why it could not run.
    #[error("runsc {command} failed: {message}")]
    Runsc {
        command: String,
        kind: RunscFailure,
        message: String,
    },

    /// The container or process does not exist (or no longer does).
    #[error("{0}: not found")]
    NotFound(String),

    /// The object exists already.
    #[error("{0}: already exists")]
    AlreadyExists(String),

    /// The request is valid but not in this state.
    #[error("{0}")]
    FailedPrecondition(String),

    /// The memory guard refused the sandbox: its bound by the pod cannot be guaranteed.
    #[error("runsc-guard refused container {container_id}: {reason}")]
    GuardRefused {
        container_id: String,
        reason: String,
    },

    /// The RPC is not implemented by this shim.
    #[error("{0} is not implemented")]
    Unimplemented(&'static str),

    /// What has no kind a caller could act on: an internal invariant that broke (encoding the
    /// shim's own data), or a failure told only in words. Each use says why it is this.
    #[error("{0}")]
    Other(String),
}

/// Why a runsc call failed. Decided once, where runsc is called, and matched on everywhere else:
/// reading the words of a message again further up once took "runsc binary ... not found" for
/// "the container is gone" and forgot a sandbox that still ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunscFailure {
    /// The runsc binary is missing or cannot be executed: nothing is known of the container.
    BinaryUnavailable,
    /// runsc did not finish within its time limit: nothing is known of the container.
    TimedOut,
    /// runsc ran and says the container (or its sandbox) does not exist or no longer runs.
    Gone,
    /// runsc ran and failed otherwise, or answered what cannot be read.
    Failed,
}

impl Error {
    pub fn runsc(
        command: impl Into<String>,
        kind: RunscFailure,
        message: impl Into<String>,
    ) -> Self {
        Error::Runsc {
            command: command.into(),
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An OS call without a path failed: a nix `Errno` or an `std::io::Error`, whose raw os
    /// error is kept.
    pub fn os(action: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Os {
            action: action.into(),
            source: source.into(),
        }
    }

    /// A background task ended without answering: it panicked or was cancelled.
    pub fn task_failed(what: impl Into<String>, source: tokio::task::JoinError) -> Self {
        Error::TaskFailed {
            what: what.into(),
            source,
        }
    }

    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The errno of the error's source, as a caller reaches it through `std::error::Error`.
    fn errno_of(e: &Error) -> Option<i32> {
        e.source()?.downcast_ref::<std::io::Error>()?.raw_os_error()
    }

    #[test]
    fn an_os_error_keeps_a_nix_errno_and_names_the_action() {
        let e = Error::os("creating a pipe for stdout", nix::errno::Errno::EMFILE);
        assert_eq!(errno_of(&e), Some(libc::EMFILE));
        let text = e.to_string();
        assert!(text.starts_with("creating a pipe for stdout: "), "{text}");
        assert!(text.contains("Too many open files"), "{text}");
    }

    #[test]
    fn an_os_error_keeps_an_io_errno() {
        let e = Error::os(
            "making fd 7 non-blocking",
            std::io::Error::from_raw_os_error(libc::EBADF),
        );
        assert_eq!(errno_of(&e), Some(libc::EBADF));
        assert!(matches!(&e, Error::Os { action, .. } if action == "making fd 7 non-blocking"));
    }

    #[tokio::test]
    async fn a_failed_task_says_what_it_was_and_that_it_panicked() {
        let join = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let e = Error::task_failed("receiving the terminal", join);
        let text = e.to_string();
        assert!(text.starts_with("receiving the terminal: "), "{text}");
        assert!(text.contains("boom"), "{text}");
        assert!(matches!(&e, Error::TaskFailed { source, .. } if source.is_panic()));
    }

    #[test]
    fn a_cgroup_error_reads_as_before() {
        let inner = crate::cgroup::CgroupError::Missing {
            cgroup: "/kubepods/pod1".into(),
            root: "/sys/fs/cgroup".into(),
        };
        let text = inner.to_string();
        let e = Error::from(inner);
        assert_eq!(e.to_string(), text);
        assert!(matches!(
            e,
            Error::Cgroup(crate::cgroup::CgroupError::Missing { .. })
        ));
    }
}
