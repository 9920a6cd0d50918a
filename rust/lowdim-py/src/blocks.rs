//! Per-block kernels for the Dask backend (`python/lowdim/_dask.py`): each Dask task runs one
//! of these on its chunk. They are the core's own kernels, exposed block by block.
use crate::convert::{dense_view, is_f32, to_numpy};
use crate::error::run;
use lowdim_core::tucker::{self as kernel, TensorRef};
use lowdim_core::Real;
use numpy::{Element, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn gram_apply_typed<'py, T: Real + Element>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let ah = a.extract::<PyReadonlyArray2<'py, T>>()?;
    let xh = x.extract::<PyReadonlyArray2<'py, T>>()?;
    let (av, xv) = (dense_view(&ah)?, dense_view(&xh)?);
    if av.ncols() != xv.nrows() {
        return Err(PyValueError::new_err(format!(
            "gram_apply: a has {} columns but x has {} rows",
            av.ncols(),
            xv.nrows()
        )));
    }
    let z = run(py, move |par| Ok(lowdim_core::svd::gram_apply(av, xv, par)))?;
    Ok(to_numpy(py, z.as_ref(), false).into_any())
}

/// gram_apply(a, x) -> a^T (a x), reading each row block of `a` once (the fused pass of the
/// randomized SVD). `a` and `x` must have the same dtype (float32 or float64).
#[pyfunction]
fn gram_apply<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if is_f32(a)? {
        gram_apply_typed::<f32>(py, a, x)
    } else {
        gram_apply_typed::<f64>(py, a, x)
    }
}

/// gram_apply_f32(a, x, scale) -> (s a)^T ((s a) x) in float32 for a float64 `a` and a
/// float32 `x` (`s = scale`, a power of two with |s a| <= 1): the mixed-precision fused pass,
/// rounding each row block of `a` to float32 in cache (no float32 copy of `a`).
#[pyfunction]
fn gram_apply_f32<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f64>,
    x: PyReadonlyArray2<'py, f32>,
    scale: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let (av, xv) = (dense_view(&a)?, dense_view(&x)?);
    if av.ncols() != xv.nrows() {
        return Err(PyValueError::new_err(format!(
            "gram_apply_f32: a has {} columns but x has {} rows",
            av.ncols(),
            xv.nrows()
        )));
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(PyValueError::new_err(format!(
            "gram_apply_f32: scale must be a positive finite number, got {scale}"
        )));
    }
    let z = run(py, move |par| {
        Ok(lowdim_core::svd::gram_apply_f32(av, xv, scale, par))
    })?;
    Ok(to_numpy(py, z.as_ref(), false).into_any())
}

fn matmul_typed<'py, T: Real + Element>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    trans: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let ah = a.extract::<PyReadonlyArray2<'py, T>>()?;
    let xh = x.extract::<PyReadonlyArray2<'py, T>>()?;
    let (av, xv) = (dense_view(&ah)?, dense_view(&xh)?);
    let inner = if trans { av.nrows() } else { av.ncols() };
    if inner != xv.nrows() {
        return Err(PyValueError::new_err(format!(
            "block_matmul: the block has {inner} {} but x has {} rows",
            if trans { "rows" } else { "columns" },
            xv.nrows()
        )));
    }
    let z = run(py, move |par| {
        Ok(if trans {
            lowdim_core::svd::rows_apply_t(av, xv, par)
        } else {
            lowdim_core::svd::rows_apply(av, xv, par)
        })
    })?;
    Ok(to_numpy(py, z.as_ref(), false).into_any())
}

/// block_matmul(a, x, trans) -> a^T x if trans else a x, both of one dtype (float32 or
/// float64), any strides: faer GEMMs over L2-sized row blocks of `a` on lowdim's threads
/// (the single products of the Dask passes).
#[pyfunction]
fn block_matmul<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    trans: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if is_f32(a)? {
        matmul_typed::<f32>(py, a, x, trans)
    } else {
        matmul_typed::<f64>(py, a, x, trans)
    }
}

fn max_abs_typed<'py, T: Real + Element>(py: Python<'py>, a: &Bound<'py, PyAny>) -> PyResult<f64> {
    let ah = a.extract::<PyReadonlyArray2<'py, T>>()?;
    let av = dense_view(&ah)?;
    run(py, move |par| {
        Ok(lowdim_core::linop::dense_max_abs(av, par))
    })
}

/// max_abs(a) -> the largest magnitude of a 2-D float32/float64 array (NaN if it holds a NaN
/// or an infinity), one streaming pass along its contiguous direction.
#[pyfunction]
fn max_abs<'py>(py: Python<'py>, a: &Bound<'py, PyAny>) -> PyResult<f64> {
    if is_f32(a)? {
        max_abs_typed::<f32>(py, a)
    } else {
        max_abs_typed::<f64>(py, a)
    }
}

fn qr_q_typed<'py, T: Real + Element>(
    py: Python<'py>,
    z: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let zh = z.extract::<PyReadonlyArray2<'py, T>>()?;
    let zv = dense_view(&zh)?;
    let q = run(py, move |_| Ok(lowdim_core::svd::thin_q(zv)))?;
    Ok(to_numpy(py, q.as_ref(), false).into_any())
}

/// qr_q(z) -> the thin Q of a Householder QR of `z` (float32 or float64, same dtype out),
/// computed in float64: the per-pass orthonormalization of the Dask route.
#[pyfunction]
fn qr_q<'py>(py: Python<'py>, z: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if is_f32(z)? {
        qr_q_typed::<f32>(py, z)
    } else {
        qr_q_typed::<f64>(py, z)
    }
}

fn mode_gram_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    mode: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let held = x.extract::<PyReadonlyArrayDyn<'py, T>>()?;
    crate::convert::check_strides(held.strides(), std::mem::size_of::<T>())?;
    let v = held.as_array();
    // SAFETY: ndarray's view describes valid memory for its shape and element strides, and
    // the read-only borrow keeps it alive and unaliased by writers for the call.
    let view = unsafe { TensorRef::from_raw_parts(v.as_ptr(), v.shape(), v.strides()) }
        .map_err(crate::error::to_pyerr)?;
    let g = run(py, move |par| kernel::gram(&view, mode, par))?;
    Ok(to_numpy(py, g.as_ref(), false).into_any())
}

/// mode_gram(x, mode) -> X_(mode) X_(mode)^T in float64 (any strides, float32 or float64).
#[pyfunction]
fn mode_gram<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    mode: usize,
) -> PyResult<Bound<'py, PyAny>> {
    if is_f32(x)? {
        mode_gram_typed::<f32>(py, x, mode)
    } else {
        mode_gram_typed::<f64>(py, x, mode)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gram_apply, m)?)?;
    m.add_function(wrap_pyfunction!(mode_gram, m)?)?;
    m.add_function(wrap_pyfunction!(gram_apply_f32, m)?)?;
    m.add_function(wrap_pyfunction!(block_matmul, m)?)?;
    m.add_function(wrap_pyfunction!(max_abs, m)?)?;
    m.add_function(wrap_pyfunction!(qr_q, m)?)?;
    Ok(())
}
