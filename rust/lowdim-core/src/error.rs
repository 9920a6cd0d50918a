//! The one error type of the core; the bindings map each variant to a Python exception.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument is out of its domain (maps to `ValueError`).
    InvalidArgument(String),
    /// The input holds NaN or infinity (maps to `ValueError`).
    NonFinite(String),
    /// A dense factorization did not converge (maps to `numpy.linalg.LinAlgError`).
    LinAlg(String),
    /// The progress hook asked to stop (see [`crate::progress`]); the bindings turn it into
    /// the exception the hook raised (e.g. `KeyboardInterrupt`).
    Interrupted,
    /// Internal: intermediate magnitudes left the safe range; the entry point rescales the
    /// operator and retries. Never returned by a public function.
    #[doc(hidden)]
    Rescale,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(s) | Error::NonFinite(s) | Error::LinAlg(s) => f.write_str(s),
            Error::Rescale => f.write_str("internal: rescaling needed"),
            Error::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidArgument`].
pub fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::InvalidArgument(msg.into()))
}
