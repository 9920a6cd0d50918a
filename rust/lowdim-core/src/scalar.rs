//! The real scalar types the kernels are generic over.
use faer::traits::RealField;

/// `f32` or `f64`.
pub trait Real: RealField + Copy + Send + Sync + std::fmt::Debug + 'static {
    /// Machine epsilon as `f64`.
    const EPS: f64;
    /// Whether the type is `f64` (used to skip conversions on the f64 path).
    const IS_F64: bool;
    /// Magnitudes of intermediate products inside `[SAFE_LO, SAFE_HI]` neither underflow nor
    /// overflow in the kernels (squares are accumulated in f64); outside it the operator is
    /// rescaled by a power of two first.
    const SAFE_LO: f64;
    const SAFE_HI: f64;
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
    /// `self * a + b`, fused (a single rounding) where the CPU has FMA.
    fn mul_add_(self, a: Self, b: Self) -> Self;
}

impl Real for f64 {
    const EPS: f64 = f64::EPSILON;
    const IS_F64: bool = true;
    const SAFE_LO: f64 = 3.872591914849318e-121; // 2^-400
    const SAFE_HI: f64 = 2.5822498780869086e120; // 2^400
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn mul_add_(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

impl Real for f32 {
    const EPS: f64 = f32::EPSILON as f64;
    const IS_F64: bool = false;
    const SAFE_LO: f64 = 8.673617379884035e-19; // 2^-60
    const SAFE_HI: f64 = 1.152921504606847e18; // 2^60
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn mul_add_(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}
