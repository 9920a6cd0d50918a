//! Bindings of `lowdim_core::selfexpr`: each function takes a 2-D float32/float64 array of
//! points (rows, any strides, no copy) and returns the CSR triple
//! `(indptr int64, indices int64, data)` of the `N x N` representation matrix.
use crate::convert::{dense_view, is_f32};
use crate::error::run_with_progress;
use lowdim_core::progress::Progress;
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

/// A kernel on the typed view of the points, with lowdim's parallelism and a progress hook.
type Kernel<'a, T> = dyn FnOnce(faer::MatRef<'_, T>, faer::Par, &dyn Progress) -> lowdim_core::Result<SparseRows<T>>
    + Send
    + 'a;

/// Runs the kernel on the typed view of `x` (float32 or float64) and returns the CSR triple.
/// `progress(done, total)` (a callable or None) hears the blocks of points done; Ctrl-C stops
/// the kernel at its next block.
fn dispatch<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    progress: Option<&Bound<'py, PyAny>>,
    f32k: Box<Kernel<'_, f32>>,
    f64k: Box<Kernel<'_, f64>>,
) -> PyResult<Bound<'py, PyTuple>> {
    fn typed<'py, T: Real + Element>(
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        progress: Option<&Bound<'py, PyAny>>,
        k: Box<Kernel<'_, T>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let a = x.extract::<PyReadonlyArray2<'py, T>>()?;
        let v = dense_view(&a)?;
        let progress = progress.filter(|p| !p.is_none());
        let out = run_with_progress(py, progress, move |par, hook| k(v, par, hook))?;
        csr(py, out)
    }
    if is_f32(x)? {
        typed::<f32>(py, x, progress, f32k)
    } else {
        typed::<f64>(py, x, progress, f64k)
    }
}

/// ssc_omp(X, n_nonzero, tol, progress=None) -> (indptr, indices, data)
#[pyfunction]
#[pyo3(signature = (x, n_nonzero, tol, progress=None))]
fn ssc_omp<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_nonzero: usize,
    tol: f64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    dispatch(
        py,
        x,
        progress,
        Box::new(move |v, par, h| selfexpr::ssc_omp(v, n_nonzero, tol, par, h)),
        Box::new(move |v, par, h| selfexpr::ssc_omp(v, n_nonzero, tol, par, h)),
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

/// ensc(X, gamma, tau, n_nonzero, support_size, max_iter, tol, progress=None)
///     -> (indptr, indices, data, n_iter)  (n_iter: the most active-set rounds of any point)
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (x, gamma, tau, n_nonzero, support_size, max_iter, tol, progress=None))]
fn ensc<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    gamma: f64,
    tau: f64,
    n_nonzero: usize,
    support_size: usize,
    max_iter: usize,
    tol: f64,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let rounds = AtomicUsize::new(0);
    let r = &rounds;
    let (a, b, c) = dispatch(
        py,
        x,
        progress,
        Box::new(move |v, par, h| {
            let s = selfexpr::ensc(
                v,
                gamma,
                tau,
                n_nonzero,
                support_size,
                max_iter,
                tol,
                par,
                h,
            );
            record(r, s)
        }),
        Box::new(move |v, par, h| {
            let s = selfexpr::ensc(
                v,
                gamma,
                tau,
                n_nonzero,
                support_size,
                max_iter,
                tol,
                par,
                h,
            );
            record(r, s)
        }),
    )?
    .extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)>()?;
    let n_iter = rounds.load(Ordering::Relaxed);
    (a, b, c, n_iter).into_pyobject(py)
}

/// lsr(X, gamma, n_nonzero, progress=None) -> (indptr, indices, data)
#[pyfunction]
#[pyo3(signature = (x, gamma, n_nonzero, progress=None))]
fn lsr<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    gamma: f64,
    n_nonzero: usize,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    dispatch(
        py,
        x,
        progress,
        Box::new(move |v, par, h| selfexpr::lsr(v, gamma, n_nonzero, par, h)),
        Box::new(move |v, par, h| selfexpr::lsr(v, gamma, n_nonzero, par, h)),
    )
}

/// tsc(X, n_neighbors, progress=None) -> (indptr, indices, data)
#[pyfunction]
#[pyo3(signature = (x, n_neighbors, progress=None))]
fn tsc<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_neighbors: usize,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    dispatch(
        py,
        x,
        progress,
        Box::new(move |v, par, h| selfexpr::tsc(v, n_neighbors, par, h)),
        Box::new(move |v, par, h| selfexpr::tsc(v, n_neighbors, par, h)),
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ssc_omp, m)?)?;
    m.add_function(wrap_pyfunction!(ensc, m)?)?;
    m.add_function(wrap_pyfunction!(lsr, m)?)?;
    m.add_function(wrap_pyfunction!(tsc, m)?)?;
    Ok(())
}
