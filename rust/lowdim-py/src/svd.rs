//! Bindings of `lowdim_core::svd`.
use crate::convert::{is_f32, to_numpy, with_linop, Held};
use crate::error::{run, run_with_progress};
use lowdim_core::svd::{self, Normalizer, Params, Solver, SvdOut, TolParams};
use lowdim_core::Real;
use numpy::{Element, IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn normalizer(s: &str) -> PyResult<Normalizer> {
    Ok(match s {
        "auto" => Normalizer::Auto,
        "none" => Normalizer::None,
        "LU" | "lu" => Normalizer::Lu,
        "QR" | "qr" => Normalizer::Qr,
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown power_iteration_normalizer {s:?}"
            )))
        }
    })
}

fn solver(s: &str) -> PyResult<Solver> {
    Ok(match s {
        "auto" => Solver::Auto,
        "randomized" => Solver::Randomized,
        "gram" => Solver::Gram,
        _ => return Err(PyValueError::new_err(format!("unknown solver {s:?}"))),
    })
}

fn extract_vector<'py, T: Real + Element>(
    v: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    v.extract::<PyReadonlyArray1<'py, T>>()
}

fn contiguous<'a, T: Real + Element>(
    v: &'a PyReadonlyArray1<'_, T>,
    name: &str,
) -> PyResult<&'a [T]> {
    v.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a contiguous 1-D array")))
}

/// Settings of one `rsvd` call, as received from Python.
#[derive(Clone, Copy)]
struct Config {
    k: Option<usize>,
    tol: Option<f64>,
    params: Params,
    block_size: usize,
}

fn rsvd_typed<'py, T: Real + Element>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    center: Option<&Bound<'py, PyAny>>,
    cfg: Config,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let held = Held::<T>::extract(a)?;
    let src = held.source()?;
    let mu = center.map(extract_vector::<T>).transpose()?;
    let mu = mu.as_ref().map(|m| contiguous(m, "center")).transpose()?;
    let out: SvdOut<T> = run_with_progress(py, progress, move |par, hook| {
        with_linop(src, mu, |op| match (cfg.k, cfg.tol) {
            (Some(k), None) => svd::rsvd_with_progress(op, k, &cfg.params, par, hook),
            (None, Some(tol)) => {
                let tp = TolParams {
                    n_iter: cfg.params.n_iter,
                    block_size: cfg.block_size,
                    seed: cfg.params.seed,
                    max_rank: None,
                };
                svd::rsvd_tol_with_progress(op, tol, &tp, par, hook)
            }
            _ => lowdim_core::error::invalid("give exactly one of k and tol"),
        })
    })?;
    let u = to_numpy(py, out.u.as_ref(), false);
    let vh = to_numpy(py, out.v.as_ref(), true);
    let s = out.s.clone().into_pyarray(py);
    (u, s, vh, out.rel_error, out.solver).into_pyobject(py)
}

/// rsvd(a, k, tol, n_oversamples, n_iter, normalizer, seed, solver, block_size, center,
/// progress, power_f32) -> (U, S, Vh, rel_error or None, solver used); `progress(done,
/// total)` is called between steps (None: no calls; Ctrl-C works either way); `power_f32`:
/// float32 power iterations for dense float64 input (see `Params::power_f32`).
#[pyfunction]
#[pyo3(signature = (a, k, tol, n_oversamples, n_iter, power_iteration_normalizer, seed, solver_name, block_size, center=None, progress=None, power_f32=false))]
#[allow(clippy::too_many_arguments)]
fn rsvd<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    k: Option<usize>,
    tol: Option<f64>,
    n_oversamples: usize,
    n_iter: Option<usize>,
    power_iteration_normalizer: &str,
    seed: u64,
    solver_name: &str,
    block_size: usize,
    center: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
    power_f32: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let progress = progress.filter(|p| !p.is_none());
    let cfg = Config {
        k,
        tol,
        params: Params {
            n_oversamples,
            n_iter,
            normalizer: normalizer(power_iteration_normalizer)?,
            seed,
            solver: solver(solver_name)?,
            power_f32,
        },
        block_size,
    };
    if is_f32(a)? {
        rsvd_typed::<f32>(py, a, center, cfg, progress)
    } else {
        rsvd_typed::<f64>(py, a, center, cfg, progress)
    }
}

#[allow(clippy::too_many_arguments)]
fn svd_error_typed<'py, T: Real + Element>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    s: &Bound<'py, PyAny>,
    vh: &Bound<'py, PyAny>,
    n_iter: usize,
    seed: u64,
    center: Option<&Bound<'py, PyAny>>,
) -> PyResult<f64> {
    let held = Held::<T>::extract(a)?;
    let src = held.source()?;
    let u = u.extract::<PyReadonlyArray2<'py, T>>()?;
    let vh = vh.extract::<PyReadonlyArray2<'py, T>>()?;
    let s = extract_vector::<T>(s)?;
    let s = contiguous(&s, "S")?;
    let mu = center.map(extract_vector::<T>).transpose()?;
    let mu = mu.as_ref().map(|m| contiguous(m, "center")).transpose()?;
    let (uv, vv) = (
        crate::convert::dense_view(&u)?,
        crate::convert::dense_view(&vh)?.transpose(),
    );
    run(py, move |par| {
        with_linop(src, mu, |op| {
            svd::svd_error(op, uv, s, vv, n_iter, seed, par)
        })
    })
}

/// svd_error(a, U, S, Vh, n_iter, seed, center) -> estimate of ||A - U diag(S) Vh||_2
#[pyfunction]
#[pyo3(signature = (a, u, s, vh, n_iter, seed, center=None))]
#[allow(clippy::too_many_arguments)]
fn svd_error<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    s: &Bound<'py, PyAny>,
    vh: &Bound<'py, PyAny>,
    n_iter: usize,
    seed: u64,
    center: Option<&Bound<'py, PyAny>>,
) -> PyResult<f64> {
    if is_f32(a)? {
        svd_error_typed::<f32>(py, a, u, s, vh, n_iter, seed, center)
    } else {
        svd_error_typed::<f64>(py, a, u, s, vh, n_iter, seed, center)
    }
}

/// gaussian(nrows, ncols, seed, row0, col0, float32) -> the block at (row0, col0) of the
/// seeded Gaussian test matrix (the same numbers the kernels use).
#[pyfunction]
#[pyo3(signature = (nrows, ncols, seed, row0=0, col0=0, float32=false))]
fn gaussian<'py>(
    py: Python<'py>,
    nrows: usize,
    ncols: usize,
    seed: u64,
    row0: usize,
    col0: usize,
    float32: bool,
) -> PyResult<Bound<'py, PyAny>> {
    fn make<'py, T: Real + Element>(
        py: Python<'py>,
        r: usize,
        c: usize,
        seed: u64,
        r0: usize,
        c0: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let g = run(py, move |par| {
            Ok(lowdim_core::rng::gaussian::<T>(r, c, seed, r0, c0, par))
        })?;
        Ok(to_numpy(py, g.as_ref(), false).into_any())
    }
    if float32 {
        make::<f32>(py, nrows, ncols, seed, row0, col0)
    } else {
        make::<f64>(py, nrows, ncols, seed, row0, col0)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rsvd, m)?)?;
    m.add_function(wrap_pyfunction!(svd_error, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian, m)?)?;
    Ok(())
}
