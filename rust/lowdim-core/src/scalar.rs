//! The real scalar types the kernels are generic over.
use faer::traits::RealField;

/// `f32` or `f64`.
pub trait Real: RealField + Copy + Send + Sync + std::fmt::Debug + 'static {
    /// Machine epsilon as `f64`.
    const EPS: f64;
    /// Whether the type is `f64` (used to skip conversions on the f64 path).
    const IS_F64: bool;
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
}

impl Real for f64 {
    const EPS: f64 = f64::EPSILON;
    const IS_F64: bool = true;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
}

impl Real for f32 {
    const EPS: f64 = f32::EPSILON as f64;
    const IS_F64: bool = false;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}
