//! Measures faer's GEMM on the shapes a randomized SVD uses (A: m x n row-major, Q: n x l).
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use std::time::Instant;

fn main() {
    let (m, n, l) = (8000usize, 4000usize, 60usize);
    let a_data: Vec<f64> = (0..m * n).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    // Row-major A, as numpy hands it over: a col-major view of the transpose.
    let a = MatRef::from_row_major_slice(&a_data, m, n);
    let q = Mat::<f64>::from_fn(n, l, |i, j| ((i + 3 * j) % 17) as f64);
    let y0 = Mat::<f64>::from_fn(m, l, |i, j| ((i + 3 * j) % 13) as f64);
    let par = Par::rayon(0);
    for _ in 0..3 {
        let mut y = Mat::<f64>::zeros(m, l);
        let t = Instant::now();
        matmul(y.as_mut(), Accum::Replace, a, q.as_ref(), 1.0, par);
        let dt = t.elapsed().as_secs_f64();
        let mut z = Mat::<f64>::zeros(n, l);
        let t2 = Instant::now();
        matmul(z.as_mut(), Accum::Replace, a.transpose(), y0.as_ref(), 1.0, par);
        let dt2 = t2.elapsed().as_secs_f64();
        let gf = 2.0 * (m * n * l) as f64 / 1e9;
        println!("A@Q {:.4}s {:.1} GF/s   A^T@Y {:.4}s {:.1} GF/s", dt, gf / dt, dt2, gf / dt2);
    }
    let af: Vec<f32> = a_data.iter().map(|&x| x as f32).collect();
    let a = MatRef::from_row_major_slice(&af, m, n);
    let q = Mat::<f32>::from_fn(n, l, |i, j| ((i + 3 * j) % 17) as f32);
    let y0 = Mat::<f32>::from_fn(m, l, |i, j| ((i + 3 * j) % 13) as f32);
    for _ in 0..3 {
        let mut y = Mat::<f32>::zeros(m, l);
        let t = Instant::now();
        matmul(y.as_mut(), Accum::Replace, a, q.as_ref(), 1.0, par);
        let dt = t.elapsed().as_secs_f64();
        let mut z = Mat::<f32>::zeros(n, l);
        let t2 = Instant::now();
        matmul(z.as_mut(), Accum::Replace, a.transpose(), y0.as_ref(), 1.0, par);
        let dt2 = t2.elapsed().as_secs_f64();
        let gf = 2.0 * (m * n * l) as f64 / 1e9;
        println!("f32 A@Q {:.4}s {:.1} GF/s   A^T@Y {:.4}s {:.1} GF/s", dt, gf / dt, dt2, gf / dt2);
    }
}
