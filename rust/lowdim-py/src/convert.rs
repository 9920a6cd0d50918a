//! NumPy <-> faer without copies on the way in.
//!
//! An operand is either a 2-D float array (any strides, including negative ones and
//! Fortran order) or a CSR triple passed as the tuple `(data, indices, indptr, nrows, ncols)`.
use faer::MatRef;
use lowdim_core::linop::{Centered, DenseOp, LinOp};
use lowdim_core::sparse::{CsrOp, CsrRef};
use lowdim_core::{Real, Result};
use numpy::ndarray::{Array2, ShapeBuilder};
use numpy::{
    Element, IntoPyArray, PyArray2, PyArrayDescrMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A TypeError unless every byte stride is a whole number of elements. rust-numpy turns byte
/// strides into element strides by an integer division, so the float field of a packed record
/// (9-byte strides) was read at the wrong addresses: garbage, silently. A base address that
/// is not a multiple of the element size (chunks a Dask worker received sit at whatever
/// offset their frame had) is read as it is, as before: x86-64 and aarch64 load unaligned
/// floats, and faer's kernels use unaligned vector loads; copying such chunks would cost a
/// copy of the data per pass. The public NumPy API copies misaligned inputs first anyway
/// (`_validation._native`).
pub fn check_strides(byte_strides: &[isize], item: usize) -> PyResult<()> {
    if byte_strides.iter().all(|s| s % item as isize == 0) {
        Ok(())
    } else {
        Err(PyTypeError::new_err(
            "array strides are not a whole number of items (e.g. a field of a packed record \
             array); pass a copy, e.g. numpy.ascontiguousarray(a)",
        ))
    }
}

/// A zero-copy view of a 2-D NumPy array (strides in elements, possibly negative); a
/// TypeError for strides that are not whole elements (see [`check_strides`]).
pub fn dense_view<'a, T: Element>(a: &'a PyReadonlyArray2<'_, T>) -> PyResult<MatRef<'a, T>> {
    check_strides(a.strides(), std::mem::size_of::<T>())?;
    let v = a.as_array();
    let s = v.strides();
    // SAFETY: ndarray's view describes valid memory for its shape and element strides (exact:
    // the byte strides are whole elements), and the read-only borrow keeps it alive and
    // unaliased by writers for 'a.
    Ok(unsafe { MatRef::from_raw_parts(v.as_ptr(), v.nrows(), v.ncols(), s[0], s[1]) })
}

/// The NumPy arrays behind an operand, borrowed read-only for the duration of a call.
pub enum Held<'py, T: Element> {
    Dense(PyReadonlyArray2<'py, T>),
    Csr32(
        PyReadonlyArray1<'py, T>,
        PyReadonlyArray1<'py, i32>,
        PyReadonlyArray1<'py, i32>,
        usize,
        usize,
    ),
    Csr64(
        PyReadonlyArray1<'py, T>,
        PyReadonlyArray1<'py, i64>,
        PyReadonlyArray1<'py, i64>,
        usize,
        usize,
    ),
}

/// Plain views of a [`Held`] operand, which can cross into a GIL-free kernel.
#[derive(Clone, Copy)]
pub enum Source<'a, T> {
    Dense(MatRef<'a, T>),
    Csr32(&'a [T], &'a [i32], &'a [i32], usize, usize),
    Csr64(&'a [T], &'a [i64], &'a [i64], usize, usize),
}

fn slice<'a, E: Element>(a: &'a PyReadonlyArray1<'_, E>, what: &str) -> PyResult<&'a [E]> {
    a.as_slice()
        .map_err(|_| PyTypeError::new_err(format!("CSR {what} must be a contiguous 1-D array")))
}

impl<'py, T: Element> Held<'py, T> {
    pub fn extract(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(t) = obj.cast::<PyTuple>() {
            let data = t.get_item(0)?.extract::<PyReadonlyArray1<'py, T>>()?;
            let (nrows, ncols) = (t.get_item(3)?.extract()?, t.get_item(4)?.extract()?);
            if let (Ok(i), Ok(p)) = (
                t.get_item(1)?.extract::<PyReadonlyArray1<'py, i32>>(),
                t.get_item(2)?.extract::<PyReadonlyArray1<'py, i32>>(),
            ) {
                return Ok(Held::Csr32(data, i, p, nrows, ncols));
            }
            let i = t.get_item(1)?.extract::<PyReadonlyArray1<'py, i64>>()?;
            let p = t.get_item(2)?.extract::<PyReadonlyArray1<'py, i64>>()?;
            return Ok(Held::Csr64(data, i, p, nrows, ncols));
        }
        Ok(Held::Dense(obj.extract::<PyReadonlyArray2<'py, T>>()?))
    }

    pub fn source(&self) -> PyResult<Source<'_, T>> {
        Ok(match self {
            Held::Dense(a) => Source::Dense(dense_view(a)?),
            Held::Csr32(d, i, p, m, n) => Source::Csr32(
                slice(d, "data")?,
                slice(i, "indices")?,
                slice(p, "indptr")?,
                *m,
                *n,
            ),
            Held::Csr64(d, i, p, m, n) => Source::Csr64(
                slice(d, "data")?,
                slice(i, "indices")?,
                slice(p, "indptr")?,
                *m,
                *n,
            ),
        })
    }
}

/// Whether the operand (array, or CSR tuple by its data) holds float32.
pub fn is_f32(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let arr = match obj.cast::<PyTuple>() {
        Ok(t) => t.get_item(0)?,
        Err(_) => obj.clone(),
    };
    let dt = arr.cast::<numpy::PyUntypedArray>()?.dtype();
    Ok(dt.is_equiv_to(&numpy::dtype::<f32>(arr.py())))
}

/// Builds the operator for `src` (optionally centred by `mu`) and runs `f` on it. CSR
/// structure is validated here, inside the GIL-free region.
pub fn with_linop<T: Real, R>(
    src: Source<'_, T>,
    mu: Option<&[T]>,
    f: impl FnOnce(&dyn LinOp<T>) -> Result<R>,
) -> Result<R> {
    fn centred<T: Real, R>(
        op: &dyn LinOp<T>,
        mu: Option<&[T]>,
        f: impl FnOnce(&dyn LinOp<T>) -> Result<R>,
    ) -> Result<R> {
        match mu {
            None => f(op),
            Some(mu) => {
                if mu.len() != op.ncols() {
                    return lowdim_core::error::invalid(
                        "the centring vector must have one value per column",
                    );
                }
                f(&Centered { inner: op, mu })
            }
        }
    }
    match src {
        Source::Dense(a) => centred(&DenseOp { a }, mu, f),
        Source::Csr32(d, i, p, m, n) => centred(&CsrOp::new(CsrRef::new(m, n, p, i, d)?), mu, f),
        Source::Csr64(d, i, p, m, n) => centred(&CsrOp::new(CsrRef::new(m, n, p, i, d)?), mu, f),
    }
}

/// A faer matrix as a new NumPy array, copied column by column (memcpy speed): Fortran-ordered
/// `m`, or C-ordered `m^T` when `transpose` (the row-major layout of `Vh = V^T`).
pub fn to_numpy<'py, T: Element + Copy>(
    py: Python<'py>,
    m: MatRef<'_, T>,
    transpose: bool,
) -> Bound<'py, PyArray2<T>> {
    let (r, c) = m.shape();
    let mut v = Vec::with_capacity(r * c);
    for j in 0..c {
        match m.col(j).try_as_col_major() {
            Some(col) => v.extend_from_slice(col.as_slice()),
            None => v.extend((0..r).map(|i| m[(i, j)])),
        }
    }
    let arr = if transpose {
        Array2::from_shape_vec((c, r), v)
    } else {
        Array2::from_shape_vec((r, c).f(), v)
    };
    arr.expect("the buffer holds exactly r * c values")
        .into_pyarray(py)
}
