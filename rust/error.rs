//! The one conversion of errors into Python exceptions: core errors become `peakrec.errors`
//! classes (`InvalidInputError` subclasses `ValueError`), PyO3's own errors pass through. Every
//! binding returns [`Result`], so `?` converts both with `From`.

use peakrec_core::CoreError;
use pyo3::PyErr;

pyo3::import_exception!(peakrec.errors, InvalidInputError);
pyo3::import_exception!(peakrec.errors, NotFoundError);

/// An error of a binding: from the core, or raised by PyO3 while converting arguments.
pub enum Error {
    Core(CoreError),
    Py(PyErr),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<CoreError> for Error {
    fn from(err: CoreError) -> Self {
        Error::Core(err)
    }
}

impl From<PyErr> for Error {
    fn from(err: PyErr) -> Self {
        Error::Py(err)
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        match err {
            Error::Core(CoreError::InvalidInput(m)) => InvalidInputError::new_err(m),
            Error::Core(CoreError::NotFound(m)) => NotFoundError::new_err(m),
            Error::Py(err) => err,
        }
    }
}

/// The caller's input is wrong: `InvalidInputError(message)`.
pub fn invalid(message: impl Into<String>) -> Error {
    Error::Core(CoreError::InvalidInput(message.into()))
}
