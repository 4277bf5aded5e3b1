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

    /// A runsc invocation failed. `message` is the last error runsc logged, or its stderr.
    #[error("runsc {command} failed: {message}")]
    Runsc { command: String, message: String },

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

impl Error {
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
