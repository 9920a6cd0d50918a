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
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Keeps the iteration count of a finished kernel (the CSR triple does not carry it).
fn record<T>(
    r: &AtomicUsize,
    s: lowdim_core::Result<SparseRows<T>>,
) -> lowdim_core::Result<SparseRows<T>> {
    if let Ok(s) = &s {
        r.store(s.n_iter, Ordering::Relaxed);
    }
    s
}

/// ensc(X, gamma, tau, n_nonzero, support_size, max_iter, tol)
///     -> (indptr, indices, data, n_iter)  (n_iter: the most active-set rounds of any point)
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
    let rounds = AtomicUsize::new(0);
    let r = &rounds;
    let (a, b, c) = dispatch(
        py,
        x,
        move |v, par| {
            record(
                r,
                selfexpr::ensc(v, gamma, tau, n_nonzero, support_size, max_iter, tol, par),
            )
        },
        move |v, par| {
            record(
                r,
                selfexpr::ensc(v, gamma, tau, n_nonzero, support_size, max_iter, tol, par),
            )
        },
    )?
    .extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)>()?;
    let n_iter = rounds.load(Ordering::Relaxed);
    (a, b, c, n_iter).into_pyobject(py)
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
