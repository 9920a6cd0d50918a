//! Bindings of the clustering kernels: `lowdim_core::{kmeans, spectral, subspaces}`.
use crate::convert::{dense_view, is_f32, to_numpy};
use crate::error::run;
use lowdim_core::Real;
use numpy::{Element, IntoPyArray, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn labels_i64(l: &[usize]) -> Vec<i64> {
    l.iter().map(|&v| v as i64).collect()
}

fn kmeans_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    k: usize,
    n_init: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    let arr = x.extract::<PyReadonlyArray2<'py, T>>()?;
    let xv = dense_view(&arr);
    let (labels, centers, inertia) = run(py, move |par| {
        lowdim_core::kmeans::kmeans(xv, k, n_init, max_iter, tol, seed, par)
    })?;
    let l = labels_i64(&labels).into_pyarray(py);
    let c = to_numpy(py, centers.as_ref(), false);
    (l, c, inertia).into_pyobject(py)
}

/// kmeans(X, n_clusters, n_init, max_iter, tol, seed) -> (labels int64, centers (k, D), inertia)
#[pyfunction]
fn kmeans<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_clusters: usize,
    n_init: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    if is_f32(x)? {
        kmeans_typed::<f32>(py, x, n_clusters, n_init, max_iter, tol, seed)
    } else {
        kmeans_typed::<f64>(py, x, n_clusters, n_init, max_iter, tol, seed)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kmeans, m)?)?;
    Ok(())
}
