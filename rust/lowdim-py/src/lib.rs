//! PyO3 bindings of lowdim-core: the `lowdim._lowdim` extension module.
//!
//! Thin by design: convert NumPy memory to faer views (no copies), release the GIL, run the
//! core kernel inside lowdim's thread pool, convert the result back. Validation of user-facing
//! arguments (dtypes, shapes, defaults) happens in the Python layer; the core re-checks what
//! memory safety depends on.
use pyo3::prelude::*;

mod blocks;
mod convert;
mod error;
mod selfexpr;
mod spectral;
mod svd;
mod tucker;

#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    lowdim_core::threads::set_num_threads(n).map_err(error::to_pyerr)
}

#[pyfunction]
fn get_num_threads() -> usize {
    lowdim_core::threads::get_num_threads()
}

#[pymodule]
fn _lowdim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    svd::register(m)?;
    selfexpr::register(m)?;
    spectral::register(m)?;
    tucker::register(m)?;
    blocks::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
