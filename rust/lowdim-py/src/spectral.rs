//! Bindings of the clustering kernels: `lowdim_core::{kmeans, spectral, subspaces}`.
//!
//! Labels come back as int64 arrays; f32 input gives f32 centers, vectors and bases.
use crate::convert::{dense_view, is_f32, to_numpy, Held, Source};
use crate::error::{run, run_with_progress};
use lowdim_core::sparse::{CsrRef, SpIndex};
use lowdim_core::{Real, Result};
use numpy::{Element, IntoPyArray, PyReadonlyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Runs `f` on the validated CSR view of a `(data, indices, indptr, nrows, ncols)` source.
fn with_csr<T: Real, R>(
    src: Source<'_, T>,
    f: impl FnOnce(CsrView<'_, T>) -> Result<R>,
) -> Result<R> {
    match src {
        Source::Csr32(d, i, p, m, n) => f(CsrView::I32(CsrRef::new(m, n, p, i, d)?)),
        Source::Csr64(d, i, p, m, n) => f(CsrView::I64(CsrRef::new(m, n, p, i, d)?)),
        Source::Dense(_) => unreachable!("rejected before the kernel runs"),
    }
}

enum CsrView<'a, T> {
    I32(CsrRef<'a, T, i32>),
    I64(CsrRef<'a, T, i64>),
}

fn csr_source<'a, 'py, T: Real + Element>(held: &'a Held<'py, T>) -> PyResult<Source<'a, T>> {
    let src = held.source()?;
    if matches!(src, Source::Dense(_)) {
        return Err(PyTypeError::new_err(
            "the affinity must be a CSR tuple (data, indices, indptr, nrows, ncols)",
        ));
    }
    Ok(src)
}

fn embedding_typed<'py, T: Real + Element>(
    py: Python<'py>,
    csr: &Bound<'py, PyAny>,
    n_components: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    fn go<T: Real, I: SpIndex>(
        w: CsrRef<'_, T, I>,
        k: usize,
        seed: u64,
        par: faer::Par,
    ) -> Result<(Vec<f64>, faer::Mat<T>)> {
        lowdim_core::spectral::spectral_embedding(w, k, seed, par)
    }
    let held = Held::<T>::extract(csr)?;
    let src = csr_source(&held)?;
    let (vals, vecs) = run(py, move |par| {
        with_csr(src, |w| match w {
            CsrView::I32(w) => go(w, n_components, seed, par),
            CsrView::I64(w) => go(w, n_components, seed, par),
        })
    })?;
    let v = to_numpy(py, vecs.as_ref(), false);
    (vals.into_pyarray(py), v).into_pyobject(py)
}

/// spectral_embedding(csr, n_components, seed) -> (eigenvalues f64 descending, vectors (N, k))
#[pyfunction]
fn spectral_embedding<'py>(
    py: Python<'py>,
    csr: &Bound<'py, PyAny>,
    n_components: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    if is_f32(csr)? {
        embedding_typed::<f32>(py, csr, n_components, seed)
    } else {
        embedding_typed::<f64>(py, csr, n_components, seed)
    }
}

fn clustering_typed<'py, T: Real + Element>(
    py: Python<'py>,
    csr: &Bound<'py, PyAny>,
    n_clusters: Option<usize>,
    max_clusters: usize,
    n_init: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    let held = Held::<T>::extract(csr)?;
    let src = csr_source(&held)?;
    // no callback: the hook only lets Ctrl-C stop the eigensolver and k-means
    let (labels, vals, k) = run_with_progress(py, None, move |par, stop| {
        with_csr(src, |w| match w {
            CsrView::I32(w) => lowdim_core::spectral::spectral_clustering_with_progress(
                w,
                n_clusters,
                max_clusters,
                n_init,
                seed,
                par,
                stop,
            ),
            CsrView::I64(w) => lowdim_core::spectral::spectral_clustering_with_progress(
                w,
                n_clusters,
                max_clusters,
                n_init,
                seed,
                par,
                stop,
            ),
        })
    })?;
    (
        labels_i64(&labels).into_pyarray(py),
        vals.into_pyarray(py),
        k,
    )
        .into_pyobject(py)
}

/// spectral_clustering(csr, n_clusters (0 = estimate by the eigengap), max_clusters, n_init,
/// seed) -> (labels int64, eigenvalues f64 descending, n_clusters)
#[pyfunction]
fn spectral_clustering<'py>(
    py: Python<'py>,
    csr: &Bound<'py, PyAny>,
    n_clusters: usize,
    max_clusters: usize,
    n_init: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    let k = (n_clusters > 0).then_some(n_clusters);
    if is_f32(csr)? {
        clustering_typed::<f32>(py, csr, k, max_clusters, n_init, seed)
    } else {
        clustering_typed::<f64>(py, csr, k, max_clusters, n_init, seed)
    }
}

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
    let xv = dense_view(&arr)?;
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

fn k_subspaces_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    k: usize,
    dim: usize,
    n_init: usize,
    max_iter: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    let arr = x.extract::<PyReadonlyArray2<'py, T>>()?;
    let xv = dense_view(&arr)?;
    // no callback: the hook only lets Ctrl-C stop the iterations
    let res = run_with_progress(py, None, move |par, stop| {
        lowdim_core::subspaces::k_subspaces_with_progress(
            xv, k, dim, n_init, max_iter, seed, par, stop,
        )
    })?;
    let (labels, bases, obj) = (res.labels, res.bases, res.objective);
    let d = xv.ncols();
    let mut buf = Vec::with_capacity(k * d * dim);
    for u in &bases {
        for i in 0..d {
            for j in 0..dim {
                buf.push(u[(i, j)]);
            }
        }
    }
    let b = numpy::ndarray::Array3::from_shape_vec((k, d, dim), buf)
        .expect("the buffer holds exactly K * D * dim values")
        .into_pyarray(py);
    (labels_i64(&labels).into_pyarray(py), b, obj, res.n_iter).into_pyobject(py)
}

/// k_subspaces(X, n_clusters, dim, n_init, max_iter, seed) -> (labels int64, bases (K, D, dim),
/// objective, n_iter)
#[pyfunction]
fn k_subspaces<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_clusters: usize,
    dim: usize,
    n_init: usize,
    max_iter: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    if is_f32(x)? {
        k_subspaces_typed::<f32>(py, x, n_clusters, dim, n_init, max_iter, seed)
    } else {
        k_subspaces_typed::<f64>(py, x, n_clusters, dim, n_init, max_iter, seed)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kmeans, m)?)?;
    m.add_function(wrap_pyfunction!(spectral_embedding, m)?)?;
    m.add_function(wrap_pyfunction!(spectral_clustering, m)?)?;
    m.add_function(wrap_pyfunction!(k_subspaces, m)?)?;
    Ok(())
}
