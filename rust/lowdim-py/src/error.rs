//! Core errors and panics -> Python exceptions, and the one way kernels are entered.
use lowdim_core::Error;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `InvalidArgument`/`NonFinite` -> `ValueError`, `LinAlg` -> `numpy.linalg.LinAlgError`.
pub fn to_pyerr(e: Error) -> PyErr {
    match e {
        Error::InvalidArgument(s) | Error::NonFinite(s) => PyValueError::new_err(s),
        Error::Rescale => PyRuntimeError::new_err("lowdim internal error: unhandled rescale"),
        Error::LinAlg(s) => Python::attach(|py| {
            match py
                .import("numpy.linalg")
                .and_then(|m| m.getattr("LinAlgError"))
                .and_then(|t| t.cast_into::<PyType>().map_err(PyErr::from))
            {
                Ok(ty) => PyErr::from_type(ty, s),
                Err(_) => PyRuntimeError::new_err(s),
            }
        }),
    }
}

/// Runs a core kernel with the GIL released, inside lowdim's thread pool, turning a panic
/// into a `RuntimeError` instead of letting it unwind into Python.
pub fn run<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce(faer::Par) -> lowdim_core::Result<R> + Send,
{
    let res = py.detach(move || {
        lowdim_core::threads::install(move |par| catch_unwind(AssertUnwindSafe(move || f(par))))
    });
    match res {
        Ok(r) => r.map_err(to_pyerr),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "lowdim internal error (this is a bug, please report it): {msg}"
            )))
        }
    }
}
