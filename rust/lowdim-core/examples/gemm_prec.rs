use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
fn main() {
    let (m, n, l) = (8000usize, 4000usize, 60usize);
    let a64: Vec<f64> = lowdim_core::rng::gaussian::<f64>(m * n, 1, 5, 0, 0, Par::rayon(2)).col(0).iter().copied().collect();
    let a32: Vec<f32> = a64.iter().map(|&x| x as f32).collect();
    let a64: Vec<f64> = a32.iter().map(|&x| x as f64).collect();
    let a32v = MatRef::from_row_major_slice(&a32, m, n);
    let a64v = MatRef::from_row_major_slice(&a64, m, n);
    for (name, big) in [("gauss", false), ("L-like", true)] {
        let x64 = Mat::<f64>::from_fn(n, l, |i, j| {
            let g = ((i * 31 + j * 17) % 97) as f64 / 97.0 - 0.5;
            if big { if i < j { 0.0 } else if i == j { 1.0 } else { g * 1.9 } } else { g }
        });
        let x32 = Mat::<f32>::from_fn(n, l, |i, j| x64[(i, j)] as f32);
        let x64 = Mat::<f64>::from_fn(n, l, |i, j| x32[(i, j)] as f64);
        let mut y32 = Mat::<f32>::zeros(m, l);
        let mut y64 = Mat::<f64>::zeros(m, l);
        for par in [Par::Seq, Par::rayon(2)] {
            matmul(y32.as_mut(), Accum::Replace, a32v, x32.as_ref(), 1.0, par);
            matmul(y64.as_mut(), Accum::Replace, a64v, x64.as_ref(), 1.0, par);
            let mut e = 0.0f64; let mut nn = 0.0f64;
            for j in 0..l { for i in 0..m { e = e.max((y32[(i,j)] as f64 - y64[(i,j)]).abs()); nn = nn.max(y64[(i,j)].abs()); } }
            // also A^T y
            let mut z32 = Mat::<f32>::zeros(n, l);
            let mut z64 = Mat::<f64>::zeros(n, l);
            let y32c = Mat::<f32>::from_fn(m, l, |i, j| y32[(i, j)]);
            let y64c = Mat::<f64>::from_fn(m, l, |i, j| y32[(i, j)] as f64);
            matmul(z32.as_mut(), Accum::Replace, a32v.transpose(), y32c.as_ref(), 1.0, par);
            matmul(z64.as_mut(), Accum::Replace, a64v.transpose(), y64c.as_ref(), 1.0, par);
            let mut e2 = 0.0f64; let mut n2 = 0.0f64;
            for j in 0..l { for i in 0..n { e2 = e2.max((z32[(i,j)] as f64 - z64[(i,j)]).abs()); n2 = n2.max(z64[(i,j)].abs()); } }
            println!("{name} {par:?}: A x rel err {:e}   A^T y rel err {:e}", e / nn, e2 / n2);
        }
    }
}
