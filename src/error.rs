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

    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
