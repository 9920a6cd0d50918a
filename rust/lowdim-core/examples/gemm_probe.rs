//! Measures faer's GEMM on the shapes a randomized SVD uses (A: m x n row-major, X: n x l),
//! in the layouts the kernels can choose between. `cargo run --release --example gemm_probe`
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use std::time::Instant;

fn best(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn run<T: lowdim_core::Real>(name: &str) {
    let (m, n, l) = (8000usize, 4000usize, 60usize);
    let data: Vec<T> = (0..m * n)
        .map(|i| T::from_f64(((i * 7919) % 1000) as f64 / 1000.0))
        .collect();
    let a = MatRef::from_row_major_slice(&data, m, n);
    let x = Mat::<T>::from_fn(n, l, |i, j| T::from_f64(((i + 3 * j) % 17) as f64));
    let y = Mat::<T>::from_fn(m, l, |i, j| T::from_f64(((i + 3 * j) % 13) as f64));
    let par = Par::rayon(0);
    let one = T::from_f64(1.0);
    let gf = 2.0 * (m * n * l) as f64 / 1e9;
    let mut out = Mat::<T>::zeros(m, l);
    let t1 = best(|| matmul(out.as_mut(), Accum::Replace, a, x.as_ref(), one, par));
    let mut outt = Mat::<T>::zeros(l, m);
    let t2 = best(|| {
        matmul(
            outt.as_mut(),
            Accum::Replace,
            x.transpose(),
            a.transpose(),
            one,
            par,
        )
    });
    let mut z = Mat::<T>::zeros(n, l);
    let t3 = best(|| {
        matmul(
            z.as_mut(),
            Accum::Replace,
            a.transpose(),
            y.as_ref(),
            one,
            par,
        )
    });
    let mut zt = Mat::<T>::zeros(l, n);
    let t4 = best(|| matmul(zt.as_mut(), Accum::Replace, y.transpose(), a, one, par));
    println!(
        "{name}: A X {:.1} GF/s | (X^T A^T)^T {:.1} | A^T Y {:.1} | (Y^T A)^T {:.1}",
        gf / t1,
        gf / t2,
        gf / t3,
        gf / t4
    );
}

fn main() {
    run::<f64>("f64");
    run::<f32>("f32");
}
