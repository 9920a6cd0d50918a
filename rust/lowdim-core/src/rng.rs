//! Counter-based Gaussian test matrices.
//!
//! Entry `(i, j)` of the matrix for a `seed` is a pure function of `(seed, i, j)`: column `j`
//! is ChaCha8 stream `j` keyed by the seed, and rows `2p` and `2p + 1` are the Box-Muller pair
//! made from the four 32-bit words at position `4p` of that stream. So the result depends on
//! the seed only (not on the thread count or on how the matrix is split into blocks), and any
//! block of rows and columns can be generated on its own, e.g. by a Dask worker.
use crate::scalar::Real;
use faer::{Mat, Par};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use rayon::prelude::*;

#[inline]
fn unit_open(x: u64) -> f64 {
    // 53 random bits mapped into (0, 1]: never 0, so ln() is finite.
    ((x >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
}

/// Fills `out` with rows `row0..row0 + out.len()` of column `col` of the seeded Gaussian matrix.
pub fn gaussian_column<T: Real>(seed: u64, col: u64, row0: usize, out: &mut [T]) {
    if out.is_empty() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(col);
    let first_pair = row0 / 2;
    rng.set_word_pos(4 * first_pair as u128);
    let mut i = row0;
    let end = row0 + out.len();
    let mut k = 0;
    while i < end {
        let u1 = unit_open(rng.next_u64());
        let u2 = unit_open(rng.next_u64());
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        let pair = [r * c, r * s];
        let start = i % 2;
        for z in pair.iter().skip(start) {
            if i >= end {
                break;
            }
            out[k] = T::from_f64(*z);
            k += 1;
            i += 1;
        }
    }
}

/// The `nrows x ncols` block at `(row0, col0)` of the seeded Gaussian matrix.
pub fn gaussian<T: Real>(
    nrows: usize,
    ncols: usize,
    seed: u64,
    row0: usize,
    col0: usize,
    par: Par,
) -> Mat<T> {
    let mut buf = vec![T::from_f64(0.0); nrows * ncols];
    if nrows > 0 {
        let fill =
            |(j, col): (usize, &mut [T])| gaussian_column(seed, (col0 + j) as u64, row0, col);
        if crate::threads::is_parallel(par) {
            buf.par_chunks_mut(nrows).enumerate().for_each(fill);
        } else {
            buf.chunks_mut(nrows).enumerate().for_each(fill);
        }
    }
    Mat::from_fn(nrows, ncols, |i, j| buf[j * nrows + i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_agree_with_whole_matrix() {
        let whole = gaussian::<f64>(37, 5, 42, 0, 0, Par::Seq);
        let block = gaussian::<f64>(20, 3, 42, 11, 2, Par::rayon(2));
        for i in 0..20 {
            for j in 0..3 {
                assert_eq!(whole[(11 + i, 2 + j)], block[(i, j)]);
            }
        }
        let other = gaussian::<f64>(37, 5, 43, 0, 0, Par::Seq);
        assert_ne!(whole[(0, 0)], other[(0, 0)]);
    }

    #[test]
    fn moments_are_standard_normal() {
        let g = gaussian::<f64>(20000, 4, 7, 0, 0, Par::Seq);
        for j in 0..4 {
            let col: Vec<f64> = (0..20000).map(|i| g[(i, j)]).collect();
            let mean = col.iter().sum::<f64>() / 20000.0;
            let var = col.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 20000.0;
            assert!(mean.abs() < 0.03, "mean {mean}");
            assert!((var - 1.0).abs() < 0.05, "var {var}");
        }
    }
}
