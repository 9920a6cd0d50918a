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
    /// The largest normal binary exponent (1023 for f64, 127 for f32).
    const EMAX: i32;
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
    const EMAX: i32 = 1023;
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
    const EMAX: i32 = 127;
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

/// The power of two nearest `1 / amax` (finite `amax > 0`), its exponent clamped to `T`'s
/// normal range `[1 - EMAX, EMAX]` so that it is finite in `T`: data whose largest entry is
/// subnormal scale to below 1 rather than to infinity. Scaling by it is exact.
pub fn pow2_near_inverse<T: Real>(amax: f64) -> f64 {
    let e = -(amax.log2().round() as i32);
    2f64.powi(e.clamp(1 - T::EMAX, T::EMAX))
}

/// The NumPy name of `T` (`"float64"` / `"float32"`), for messages.
pub fn dtype_name<T: Real>() -> &'static str {
    if T::IS_F64 {
        "float64"
    } else {
        "float32"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_near_inverse_stays_finite_in_its_type() {
        assert_eq!(pow2_near_inverse::<f64>(1.0), 1.0);
        assert_eq!(pow2_near_inverse::<f64>(2f64.powi(-300)), 2f64.powi(300));
        // 1e-310 is about 2^-1030: 2^1030 is not a float64, 2^1023 is the clamp
        assert_eq!(pow2_near_inverse::<f64>(1e-310), 2f64.powi(1023));
        assert_eq!(pow2_near_inverse::<f64>(f64::MAX), 2f64.powi(-1022));
        assert_eq!(pow2_near_inverse::<f32>(1e-40), 2f64.powi(127));
        assert!((pow2_near_inverse::<f32>(1e-40) as f32).is_finite());
    }
}
