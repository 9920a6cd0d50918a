//! Bindings of `lowdim_core::tucker`: N-d arrays cross as pointer + shape + element strides.
use crate::convert::{dense_view, is_f32, to_numpy};
use crate::error::{run, run_with_progress};
use lowdim_core::tucker::{
    self as kernel, Method, ModeSvd, Params, RandParams, Ranks, Tensor, TensorRef,
};
use lowdim_core::Real;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{
    Element, IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArray2, PyReadonlyArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

/// A zero-copy view of an N-d NumPy array.
fn tensor_view<'a, T: Element + Real>(
    a: &'a PyReadonlyArrayDyn<'_, T>,
) -> PyResult<TensorRef<'a, T>> {
    crate::convert::check_strides(a.strides(), std::mem::size_of::<T>())?;
    let v = a.as_array();
    // SAFETY: ndarray's view describes valid memory for its shape and element strides (whole
    // elements, checked), and the read-only borrow keeps it alive and unaliased
    // by writers for 'a.
    unsafe { TensorRef::from_raw_parts(v.as_ptr(), v.shape(), v.strides()) }
        .map_err(crate::error::to_pyerr)
}

/// An owned C-ordered tensor as a NumPy array (the buffer is moved, not copied).
fn to_numpy_nd<'py, T: Element>(py: Python<'py>, t: Tensor<T>) -> PyResult<Bound<'py, PyAny>> {
    let a = ArrayD::from_shape_vec(IxDyn(&t.shape), t.data)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py).into_any())
}

fn method(s: &str) -> PyResult<Method> {
    Ok(match s {
        "hosvd" => Method::Hosvd,
        "sthosvd" => Method::Sthosvd,
        "hooi" => Method::Hooi,
        _ => return Err(PyValueError::new_err(format!("unknown method {s:?}"))),
    })
}

fn mode_svd(s: &str) -> PyResult<ModeSvd> {
    Ok(match s {
        "auto" => ModeSvd::Auto,
        "gram" => ModeSvd::Gram,
        "lq" => ModeSvd::Lq,
        "randomized" => ModeSvd::Randomized,
        _ => return Err(PyValueError::new_err(format!("unknown svd {s:?}"))),
    })
}

fn tucker_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    ranks: Ranks,
    params: Params,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let held = x.extract::<PyReadonlyArrayDyn<'py, T>>()?;
    let view = tensor_view(&held)?;
    let out = run_with_progress(py, progress, move |par, hook| {
        kernel::tucker_with_progress(&view, &ranks, &params, par, hook)
    })?;
    let factors = PyList::empty(py);
    for f in &out.factors {
        factors.append(to_numpy(py, f.as_ref(), false))?;
    }
    let core = to_numpy_nd(py, out.core)?;
    (
        core,
        factors,
        out.modes,
        out.rel_error,
        out.norm,
        out.n_iter,
        out.solvers,
        out.order,
    )
        .into_pyobject(py)
}

/// tucker(x, ranks, tol, method, modes, mode_order, svd, n_iter_max, hooi_tol, seed,
/// n_oversamples, n_power_iter, progress)
/// -> (core, factors, modes, certified rel. error, ||X||, n_iter, solvers, order);
/// `progress(done, total)` is called between modes / sweeps (None: no calls).
#[pyfunction]
#[pyo3(signature = (x, ranks, tol, method_name, modes, mode_order, svd, n_iter_max, hooi_tol, seed, n_oversamples=10, n_power_iter=1, progress=None))]
#[allow(clippy::too_many_arguments)]
fn tucker<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    ranks: Option<Vec<usize>>,
    tol: Option<f64>,
    method_name: &str,
    modes: Option<Vec<usize>>,
    mode_order: Option<Vec<usize>>,
    svd: &str,
    n_iter_max: usize,
    hooi_tol: f64,
    seed: u64,
    n_oversamples: usize,
    n_power_iter: usize,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let progress = progress.filter(|p| !p.is_none());
    let ranks = match (ranks, tol) {
        (Some(r), None) => Ranks::Fixed(r),
        (None, Some(t)) => Ranks::Tol(t),
        _ => return Err(PyValueError::new_err("give exactly one of rank and tol")),
    };
    let params = Params {
        method: method(method_name)?,
        modes,
        mode_order,
        svd: mode_svd(svd)?,
        n_iter_max,
        hooi_tol,
        rand: RandParams {
            n_oversamples,
            n_power_iter,
            seed,
        },
    };
    if is_f32(x)? {
        tucker_typed::<f32>(py, x, ranks, params, progress)
    } else {
        tucker_typed::<f64>(py, x, ranks, params, progress)
    }
}

/// The output array: the caller's `out` (C-contiguous, right dtype and shape, checked in
/// Python and here), else a new zeroed NumPy array (NumPy's allocator asks for huge pages,
/// so the first touch of a large result is cheap).
fn output<'py, T: Element>(
    py: Python<'py>,
    shape: &[usize],
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    match out {
        Some(o) => {
            let a = o.cast::<PyArrayDyn<T>>()?.clone();
            if a.shape() != shape || !a.is_c_contiguous() {
                return Err(PyValueError::new_err(format!(
                    "out must be a C-contiguous array of shape {shape:?}"
                )));
            }
            Ok(a)
        }
        None => Ok(PyArrayDyn::<T>::zeros(py, IxDyn(shape), false)),
    }
}

fn to_tensor_typed<'py, T: Real + Element>(
    py: Python<'py>,
    core: &Bound<'py, PyAny>,
    factors: &Bound<'py, PyList>,
    modes: Vec<usize>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let held = core.extract::<PyReadonlyArrayDyn<'py, T>>()?;
    let fs: Vec<PyReadonlyArray2<'py, T>> = factors
        .iter()
        .map(|f| f.extract())
        .collect::<PyResult<_>>()?;
    let view = tensor_view(&held)?;
    let refs: Vec<_> = fs.iter().map(dense_view).collect::<PyResult<_>>()?;
    let shape = kernel::tucker_shape(&view, &refs, &modes).map_err(crate::error::to_pyerr)?;
    let arr = output::<T>(py, &shape, out)?;
    {
        let mut rw = arr.try_readwrite()?;
        let dst = rw
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("out must be C-contiguous"))?;
        run(py, move |par| {
            kernel::tucker_to_tensor_into(&view, &refs, &modes, dst, par)
        })?;
    }
    Ok(arr.into_any())
}

/// tucker_to_tensor(core, factors, modes, out=None) -> core x_{modes[i]} factors[i] ...
#[pyfunction]
#[pyo3(signature = (core, factors, modes, out=None))]
fn tucker_to_tensor<'py>(
    py: Python<'py>,
    core: &Bound<'py, PyAny>,
    factors: &Bound<'py, PyList>,
    modes: Vec<usize>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if is_f32(core)? {
        to_tensor_typed::<f32>(py, core, factors, modes, out)
    } else {
        to_tensor_typed::<f64>(py, core, factors, modes, out)
    }
}

fn mode_product_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    m: &Bound<'py, PyAny>,
    mode: usize,
    transpose: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let held = x.extract::<PyReadonlyArrayDyn<'py, T>>()?;
    let mh = m.extract::<PyReadonlyArray2<'py, T>>()?;
    let view = tensor_view(&held)?;
    let mv = dense_view(&mh)?;
    let mv = if transpose { mv.transpose() } else { mv };
    let shape = kernel::ttm_shape(&view, mode, mv).map_err(crate::error::to_pyerr)?;
    let arr = output::<T>(py, &shape, out)?;
    {
        let mut rw = arr.try_readwrite()?;
        let dst = rw
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("out must be C-contiguous"))?;
        run(py, move |par| kernel::ttm_into(&view, mode, mv, dst, par))?;
    }
    Ok(arr.into_any())
}

/// mode_product(x, m, mode, transpose, out=None) -> x x_mode m (or m^T)
#[pyfunction]
#[pyo3(signature = (x, m, mode, transpose, out=None))]
fn mode_product<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    m: &Bound<'py, PyAny>,
    mode: usize,
    transpose: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if is_f32(x)? {
        mode_product_typed::<f32>(py, x, m, mode, transpose, out)
    } else {
        mode_product_typed::<f64>(py, x, m, mode, transpose, out)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tucker, m)?)?;
    m.add_function(wrap_pyfunction!(tucker_to_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(mode_product, m)?)?;
    Ok(())
}
