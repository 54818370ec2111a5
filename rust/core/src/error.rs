use thiserror::Error;

/// Every error the core reports. The Python bindings map each variant to one `peakrec.errors` class.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// The caller's input is wrong (bad shape, bad value, out of range).
    #[error("{0}")]
    InvalidInput(String),
    /// An id or row that does not exist.
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T> = std::result::Result<T, CoreError>;

pub fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::InvalidInput(message.into())
}
