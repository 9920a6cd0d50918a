//! TSC: thresholding subspace clustering (Heckel & Boelcskei).
use super::{block_view, by_blocks, check_count, normalize, push_above, scan, Scratch};
use super::{SparseRows, TopK};
use crate::progress::Progress;
use crate::Real;
use crate::Result;
use faer::{MatRef, Par};

/// Thresholding: row `j` keeps the `q = n_neighbors` points `i != j` of largest `|<x_i, x_j>|`
/// (unit-norm points; ties: smallest index), each with the value
/// `exp(-2 * acos(min(1, |<x_i, x_j>|)))`. `q` is capped at `N - 1`; a zero point gets an
/// empty row.
pub fn tsc<T: Real>(
    x: MatRef<'_, T>,
    n_neighbors: usize,
    par: Par,
    progress: &dyn Progress,
) -> Result<SparseRows<T>> {
    check_count(n_neighbors, "n_neighbors")?;
    let pts = normalize(x, par)?;
    let q = n_neighbors.min(pts.n - 1);
    let rows = by_blocks(pts.n, par, progress, |r0, m| {
        let mut tops: Vec<TopK> = (0..m).map(|_| TopK::new(q, -1.0)).collect();
        let mut scratch = Scratch::new();
        let mut pos = Vec::new();
        scan(
            block_view(&pts, r0, m),
            &pts,
            &mut scratch,
            |r, c0, vals| {
                let j = r0 + r;
                if pts.is_zero(j) {
                    return;
                }
                push_above(vals, c0, &mut tops[r], &mut pos, |i| i == j);
            },
        );
        tops.into_iter()
            .map(|t| {
                let mut row: Vec<(usize, T)> = t
                    .finish()
                    .into_iter()
                    .map(|(a, i)| (i, T::from_f64((-2.0 * a.min(1.0).acos()).exp())))
                    .collect();
                row.sort_unstable_by_key(|p| p.0);
                row
            })
            .collect()
    });
    Ok(SparseRows::from_rows(rows?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::SILENT;

    #[test]
    fn matches_brute_force() {
        let x = faer::Mat::<f64>::from_fn(23, 4, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let out = tsc(x.as_ref(), 3, Par::Seq, &SILENT).unwrap();
        let nrm: Vec<f64> = (0..23)
            .map(|i| (0..4).map(|k| x[(i, k)] * x[(i, k)]).sum::<f64>().sqrt())
            .collect();
        for j in 0..23 {
            let mut c: Vec<(f64, usize)> = (0..23)
                .filter(|&i| i != j)
                .map(|i| {
                    let g: f64 = (0..4).map(|k| x[(i, k)] * x[(j, k)]).sum();
                    ((g / (nrm[i] * nrm[j])).abs(), i)
                })
                .collect();
            c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let (idx, _) = out.row(j);
            let got: Vec<usize> = idx.iter().map(|&i| i as usize).collect();
            // Near-ties may swap with rounding; compare the sets of values instead of indices.
            let mut want: Vec<usize> = c[..3].iter().map(|p| p.1).collect();
            want.sort();
            if got != want {
                let kth = c[2].0;
                for &i in &got {
                    assert!(c.iter().find(|p| p.1 == i).unwrap().0 >= kth - 1e-12);
                }
            }
        }
    }
}
