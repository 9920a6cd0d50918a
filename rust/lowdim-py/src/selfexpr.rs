//! Bindings of `lowdim_core::selfexpr`: each function takes a 2-D float32/float64 array of
//! points (rows, any strides, no copy) and returns the CSR triple
//! `(indptr int64, indices int64, data)` of the `N x N` representation matrix.
use crate::convert::{dense_view, is_f32};
use crate::error::run;
use lowdim_core::selfexpr::{self, SparseRows};
use lowdim_core::Real;
use numpy::{Element, IntoPyArray, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn csr<'py, T: Element>(py: Python<'py>, s: SparseRows<T>) -> PyResult<Bound<'py, PyTuple>> {
    (
        s.indptr.into_pyarray(py),
        s.indices.into_pyarray(py),
        s.data.into_pyarray(py),
    )
        .into_pyobject(py)
}

/// Runs `f` on the typed view of `x` (float32 or float64) and returns the CSR triple.
fn dispatch<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    f32k: impl FnOnce(faer::MatRef<'_, f32>, faer::Par) -> lowdim_core::Result<SparseRows<f32>> + Send,
    f64k: impl FnOnce(faer::MatRef<'_, f64>, faer::Par) -> lowdim_core::Result<SparseRows<f64>> + Send,
) -> PyResult<Bound<'py, PyTuple>> {
    fn typed<'py, T: Real + Element>(
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        k: impl FnOnce(faer::MatRef<'_, T>, faer::Par) -> lowdim_core::Result<SparseRows<T>> + Send,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let a = x.extract::<PyReadonlyArray2<'py, T>>()?;
        let v = dense_view(&a);
        let out = run(py, move |par| k(v, par))?;
        csr(py, out)
    }
    if is_f32(x)? {
        typed::<f32>(py, x, f32k)
    } else {
        typed::<f64>(py, x, f64k)
    }
}

/// ssc_omp(X, n_nonzero, tol) -> (indptr, indices, data)
#[pyfunction]
fn ssc_omp<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_nonzero: usize,
    tol: f64,
) -> PyResult<Bound<'py, PyTuple>> {
    dispatch(
        py,
        x,
        move |v, par| selfexpr::ssc_omp(v, n_nonzero, tol, par),
        move |v, par| selfexpr::ssc_omp(v, n_nonzero, tol, par),
    )
}

/// ensc(X, gamma, tau, n_nonzero, support_size, max_iter, tol) -> (indptr, indices, data)
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn ensc<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    gamma: f64,
    tau: f64,
    n_nonzero: usize,
    support_size: usize,
    max_iter: usize,
    tol: f64,
) -> PyResult<Bound<'py, PyTuple>> {
    dispatch(
        py,
        x,
        move |v, par| selfexpr::ensc(v, gamma, tau, n_nonzero, support_size, max_iter, tol, par),
        move |v, par| selfexpr::ensc(v, gamma, tau, n_nonzero, support_size, max_iter, tol, par),
    )
}

/// lsr(X, gamma, n_nonzero) -> (indptr, indices, data)
#[pyfunction]
fn lsr<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    gamma: f64,
    n_nonzero: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    dispatch(
        py,
        x,
        move |v, par| selfexpr::lsr(v, gamma, n_nonzero, par),
        move |v, par| selfexpr::lsr(v, gamma, n_nonzero, par),
    )
}

/// tsc(X, n_neighbors) -> (indptr, indices, data)
#[pyfunction]
fn tsc<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_neighbors: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    dispatch(
        py,
        x,
        move |v, par| selfexpr::tsc(v, n_neighbors, par),
        move |v, par| selfexpr::tsc(v, n_neighbors, par),
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ssc_omp, m)?)?;
    m.add_function(wrap_pyfunction!(ensc, m)?)?;
    m.add_function(wrap_pyfunction!(lsr, m)?)?;
    m.add_function(wrap_pyfunction!(tsc, m)?)?;
    Ok(())
}
