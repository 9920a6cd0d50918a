use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::lu::partial_pivoting::factor::{lu_in_place, lu_in_place_scratch};
use faer::{Mat, Par};
use lowdim_core::Real;
fn lu<T: Real>(y0: &Mat<T>) -> (Mat<T>, Vec<usize>) {
    let (m, l) = y0.shape();
    let mut y = y0.clone();
    let mut perm = vec![0usize; m];
    let mut pinv = vec![0usize; m];
    let mut mem = MemBuffer::new(lu_in_place_scratch::<usize, T>(m, l, Par::Seq, Default::default()));
    lu_in_place(y.as_mut(), &mut perm, &mut pinv, Par::Seq, MemStack::new(&mut mem), Default::default());
    (y, perm)
}
fn main() {
    let (m, n, r, l) = (8000usize, 4000usize, 400usize, 60usize);
    let par = Par::rayon(2);
    let u0 = lowdim_core::rng::gaussian::<f64>(m, r, 1, 0, 0, par).qr().compute_thin_Q();
    let v0 = lowdim_core::rng::gaussian::<f64>(n, r, 2, 0, 0, par).qr().compute_thin_Q();
    let us = Mat::<f64>::from_fn(m, r, |i, j| u0[(i, j)] / (1.0 + j as f64).powf(1.5));
    let a = &us * v0.transpose();
    let om = lowdim_core::rng::gaussian::<f64>(n, l, 0, 0, 0, par);
    let y64 = &a * &om;
    let y32 = Mat::<f32>::from_fn(m, l, |i, j| y64[(i, j)] as f32);
    let y64 = Mat::<f64>::from_fn(m, l, |i, j| y32[(i, j)] as f64);
    let (l64, p64) = lu(&y64);
    let (l32, p32) = lu(&y32);
    let same = p64.iter().zip(&p32).take(l).filter(|(a, b)| a == b).count();
    println!("pivots equal among first {l}: {same}");
    for j in [0, 1, 5, 10, 20, 40, 59] {
        let mut e = 0.0f64; let mut mx = 0.0f64;
        for i in j + 1..m { e = e.max((l64[(i, j)] - l32[(i, j)] as f64).abs()); mx = mx.max(l64[(i, j)].abs()); }
        println!("col {j}: max|L64-L32| {e:e}  max|L| {mx}  U_jj64 {:e} U_jj32 {:e}", l64[(j, j)], l32[(j, j)]);
    }
}
