//! EnSC: elastic-net self-representation with the ORGEN oracle-guided active-set solver.
use super::lsr::{block_mu, point_f64, ridge_block, ridge_factor};
use super::{block_view, by_blocks, check_count, dot_ff, keep_top, normalize, scan, Points};
use super::{max_abs, push_above, Scratch, SparseRows, TopK};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sweeps of coordinate descent per subproblem, at most.
const MAX_SWEEPS: usize = 20_000;
/// Sweeps over the nonzeros between two attempts of the exact sign-fixed solve.
const POLISH_EVERY: usize = 8;

/// EnSC: for every unit-norm point `x_j`, the elastic net over the other points,
///
/// `min_c tau*||c||_1 + (1-tau)/2*||c||_2^2 + alpha_j/2*||x_j - sum_{i != j} c_i x_i||^2`.
///
/// Gamma contract: let `mu_j = max_{i != j} |<x_i, x_j>|`. For `tau > 0`,
/// `alpha_0 = tau / mu_j` is the smallest alpha for which `c = 0` is NOT optimal; we use
/// `alpha_j = gamma * alpha_0` (`gamma > 1` needed for a nonzero solution; typical 5..500,
/// default 50). For `tau = 0` (pure ridge / least squares, every alpha > 0 gives nonzero `c`)
/// we use `alpha_j = gamma / mu_j`. `tau` in `[0, 1]`; `tau = 1` is SSC (lasso). A point with
/// `mu_j = 0` (zero, or orthogonal to all others) gets an empty row.
///
/// Solver (`tau > 0`): ORGEN (You, Li, Robinson & Vidal, CVPR 2016). The active set `T`
/// starts with the `support_size` points most coherent with `x_j` (capped at `N - 1`); the
/// subproblem on `T` is solved exactly (to rounding) by feature-sign search on the f64 Gram of
/// `T` (warm-started; Gram columns computed only for coefficients that become nonzero; a
/// singular sign-fixed system, `tau = 1` with more active points than their span, is crossed
/// by a step along its null direction, see `feature_sign`). If that search fails
/// (rounding), coordinate descent takes over, stopped when the largest coefficient change
/// is `<= tol` times the largest coefficient and then polished by solving the sign-fixed
/// linear system, kept when it satisfies the optimality conditions; the oracle point
/// `delta = alpha_j (x_j - X_T c_T)` is correlated with all points (one GEMM per round for
/// a block of points) and every `i` with
/// `|<x_i, delta>| > tau` (plus a rounding slack) may enter. The next `T` holds the nonzero
/// coefficients, then the most violating points, then the previous zero members, at most
/// `support_size` in all; when more than 80% of it is nonzero, `support_size` grows by 10%.
/// The rounds stop when no point violates the condition or after `max_iter` rounds.
///
/// Points whose unit-norm rows are identical are solved once (see `first_copies`).
///
/// `tau = 0`: the dense ridge solution in closed form (Sherman-Morrison on the
/// eigendecomposition of the smaller Gram matrix, `X^T X` (`D x D`) or, when `N < D`,
/// `X X^T` (`N x N`), as in [`super::lsr`]). Finally each row keeps its
/// `n_nonzero` entries of largest `|c_i|` (ties: smallest index).
#[allow(clippy::too_many_arguments)]
pub fn ensc<T: Real>(
    x: MatRef<'_, T>,
    gamma: f64,
    tau: f64,
    n_nonzero: usize,
    support_size: usize,
    max_iter: usize,
    tol: f64,
    par: Par,
    progress: &dyn Progress,
) -> Result<SparseRows<T>> {
    check_count(n_nonzero, "n_nonzero")?;
    check_count(support_size, "support_size")?;
    check_count(max_iter, "max_iter")?;
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "gamma must be a finite number > 0, got {gamma}"
        )));
    }
    if !(0.0..=1.0).contains(&tau) {
        return Err(Error::InvalidArgument(format!(
            "tau must be in [0, 1], got {tau}"
        )));
    }
    if !(tol.is_finite() && tol > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "tol must be a finite number > 0, got {tol}"
        )));
    }
    let pts = normalize(x, par)?;
    if tau == 0.0 {
        let f = ridge_factor(&pts, par)?;
        let rows = by_blocks(pts.n, par, progress, |r0, m| {
            let lambdas: Vec<Option<f64>> = block_mu(&pts, r0, m)
                .into_iter()
                .map(|mu| (mu != 0.0).then(|| mu / gamma))
                .collect();
            ridge_block(&pts, &f, r0, &lambdas, n_nonzero)
        });
        return Ok(SparseRows::from_rows(rows?));
    }
    let cfg = Cfg {
        gamma,
        tau,
        n_nonzero,
        support_size: support_size.min(pts.n - 1),
        max_iter,
        tol,
    };
    let rounds = AtomicUsize::new(0);
    let first = first_copies(&pts);
    let rows = by_blocks(pts.n, par, progress, |r0, m| {
        orgen_block(&pts, r0, m, &cfg, &rounds, &first)
    })?;
    let mut out = SparseRows::from_rows(copied_rows(rows, &first));
    // a maximum over points: independent of the thread count and of the block order
    out.n_iter = rounds.load(Ordering::Relaxed);
    Ok(out)
}

/// For every point, the first point whose unit-norm row is bitwise identical to its own
/// (itself when there is none; zero rows are their own).
///
/// Identical points `j` and `r` pose the same elastic net up to swapping the indices `j` and
/// `r` (each excludes itself and keeps the other), so only the first of a group is solved and
/// the others take its row with those two indices swapped ([`copied_rows`]). Without this, a
/// group of `g` copies cost `g` solves whose active sets all grow to the `g - 1` other copies
/// (the elastic net spreads its weight evenly over identical atoms): 300 copies among 1500
/// points took half a minute, for one problem solved 300 times. O(N D) work and N entries.
fn first_copies<T: Real>(pts: &Points<T>) -> Vec<usize> {
    use std::collections::HashMap;
    let same = |a: &[T], b: &[T]| {
        a.iter()
            .zip(b)
            .all(|(u, v)| u.to_f64().to_bits() == v.to_f64().to_bits())
    };
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut first: Vec<usize> = (0..pts.n).collect();
    for (i, f) in first.iter_mut().enumerate() {
        if pts.is_zero(i) {
            continue;
        }
        let row = pts.row(i);
        let h = row.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h.rotate_left(5) ^ v.to_f64().to_bits()).wrapping_mul(0x517c_c1b7_2722_0a95)
        });
        let group = seen.entry(h).or_default();
        match group.iter().find(|&&r| same(pts.row(r), row)) {
            Some(&r) => *f = r,
            None => group.push(i),
        }
    }
    first
}

/// The rows of the copies (`first[j] != j`, left empty by [`orgen_block`]): the row of their
/// first point with the indices `j` and `first[j]` swapped.
fn copied_rows<T: Copy>(mut rows: Vec<Vec<(usize, T)>>, first: &[usize]) -> Vec<Vec<(usize, T)>> {
    for (j, &r) in first.iter().enumerate() {
        if r != j {
            let mut row: Vec<(usize, T)> = rows[r]
                .iter()
                .map(|&(i, v)| (if i == j { r } else { i }, v))
                .collect();
            row.sort_unstable_by_key(|e| e.0);
            rows[j] = row;
        }
    }
    rows
}

struct Cfg {
    gamma: f64,
    tau: f64,
    n_nonzero: usize,
    support_size: usize,
    max_iter: usize,
    tol: f64,
}

/// One point's active-set state.
struct Point {
    j: usize,
    x: Vec<f64>,
    alpha: f64,
    /// Active set, ascending.
    t: Vec<usize>,
    /// Coefficients on `t`.
    c: Vec<f64>,
    /// Current support size.
    ss: usize,
    delta: Vec<f64>,
    done: bool,
}

fn orgen_block<T: Real>(
    pts: &Points<T>,
    r0: usize,
    m: usize,
    cfg: &Cfg,
    rounds: &AtomicUsize,
    first: &[usize],
) -> Vec<Vec<(usize, T)>> {
    let d = pts.d;
    let tau = cfg.tau;
    // Round 0: coherences with the points themselves give mu_j and the initial active sets.
    let mut mu = vec![0.0f64; m];
    let mut tops: Vec<TopK> = (0..m).map(|_| TopK::new(cfg.support_size, 0.0)).collect();
    let mut scratch = Scratch::new();
    let mut pos = Vec::new();
    scan(block_view(pts, r0, m), pts, &mut scratch, |r, c0, vals| {
        let j = r0 + r;
        if j >= c0 && j < c0 + vals.len() {
            vals[j - c0] = T::from_f64(0.0);
        }
        mu[r] = mu[r].max(max_abs(vals).to_f64());
        push_above(vals, c0, &mut tops[r], &mut pos, |_| false);
    });
    let mut ps: Vec<Point> = tops
        .into_iter()
        .enumerate()
        .map(|(r, top)| {
            let j = r0 + r;
            let mut t: Vec<usize> = top.finish().into_iter().map(|p| p.1).collect();
            t.sort_unstable();
            let nt = t.len();
            Point {
                j,
                x: point_f64(pts, j),
                alpha: if mu[r] > 0.0 {
                    cfg.gamma * tau / mu[r]
                } else {
                    0.0
                },
                t,
                c: vec![0.0; nt],
                ss: cfg.support_size,
                delta: vec![0.0; d],
                // copies of an earlier point are not solved (see `first_copies`)
                done: mu[r] == 0.0 || first[j] != j,
            }
        })
        .collect();
    let slack_rel = 2.0 * (d as f64).sqrt() * T::EPS;
    let mut lhs: Vec<T> = Vec::with_capacity(m * d);
    let mut active: Vec<usize> = Vec::with_capacity(m);
    for round in 0..cfg.max_iter {
        active.clear();
        for (r, p) in ps.iter_mut().enumerate() {
            if p.done {
                continue;
            }
            solve_subproblem(pts, p, tau, cfg.tol);
            if round + 1 == cfg.max_iter {
                p.done = true;
            } else {
                active.push(r);
            }
        }
        rounds.fetch_max(round + 1, Ordering::Relaxed);
        if active.is_empty() {
            break;
        }
        lhs.clear();
        let mut viol: Vec<TopK> = Vec::with_capacity(active.len());
        for &r in &active {
            let p = &mut ps[r];
            lhs.extend(p.delta.iter().map(|&v| T::from_f64(v)));
            let nact = p.c.iter().filter(|&&v| v != 0.0).count();
            if nact as f64 > 0.8 * p.ss as f64 {
                let grown = (nact.max(p.ss) as f64 * 1.1).round() as usize;
                p.ss = grown.min(pts.n - 1);
            }
            let room = p.ss.saturating_sub(nact).max(1);
            let dn = dot_ff(&p.delta, &p.delta).sqrt();
            viol.push(TopK::new(room, tau * (1.0 + 1e-10) + slack_rel * dn));
        }
        scan(
            MatRef::from_row_major_slice(&lhs, active.len(), d),
            pts,
            &mut scratch,
            |q, c0, vals| {
                let p = &ps[active[q]];
                push_above(vals, c0, &mut viol[q], &mut pos, |i| {
                    i == p.j || p.t.binary_search(&i).is_ok()
                });
            },
        );
        for (q, top) in viol.into_iter().enumerate() {
            let p = &mut ps[active[q]];
            let added: Vec<usize> = top.finish().into_iter().map(|e| e.1).collect();
            if added.is_empty() {
                p.done = true;
                continue;
            }
            // Nonzeros, then the violators, then former zero members while there is room.
            let mut nt: Vec<(usize, f64)> = Vec::with_capacity(p.ss.max(p.t.len()));
            nt.extend(
                p.t.iter()
                    .zip(&p.c)
                    .filter(|e| *e.1 != 0.0)
                    .map(|(&i, &v)| (i, v)),
            );
            nt.extend(added.iter().map(|&i| (i, 0.0)));
            let room = p.ss.saturating_sub(nt.len());
            nt.extend(
                p.t.iter()
                    .zip(&p.c)
                    .filter(|e| *e.1 == 0.0)
                    .take(room)
                    .map(|(&i, _)| (i, 0.0)),
            );
            nt.sort_unstable_by_key(|e| e.0);
            p.t = nt.iter().map(|e| e.0).collect();
            p.c = nt.iter().map(|e| e.1).collect();
        }
    }
    ps.into_iter()
        .map(|p| {
            let row: Vec<(usize, f64)> = p.t.iter().copied().zip(p.c.iter().copied()).collect();
            keep_top::<T>(row, cfg.n_nonzero)
        })
        .collect()
}

#[inline]
fn soft(z: f64, t: f64) -> f64 {
    if z > t {
        z - t
    } else if z < -t {
        z + t
    } else {
        0.0
    }
}

/// Solves the elastic net on the active set of `p` (warm start `p.c`) and sets `p.delta`.
fn solve_subproblem<T: Real>(pts: &Points<T>, p: &mut Point, tau: f64, tol: f64) {
    let nt = p.t.len();
    let alpha = p.alpha;
    let b: Vec<f64> = p.t.iter().map(|&i| pts.dot(i, &p.x)).collect();
    let diag: Vec<f64> = p.t.iter().map(|&i| pts.sq[i]).collect();
    let d = pts.d;
    // The members' points in f64, one contiguous `nt x d` array.
    let mut xs: Vec<f64> = Vec::with_capacity(nt * d);
    for &i in &p.t {
        xs.extend(pts.row(i).iter().map(|v| v.to_f64()));
    }
    // The Gram matrix of T by one small GEMM; its columns are copied out when a coefficient
    // first becomes nonzero.
    let xv = MatRef::from_row_major_slice(&xs, nt, d);
    let mut gm = Mat::<f64>::zeros(nt, nt);
    matmul(
        gm.as_mut(),
        Accum::Replace,
        xv,
        xv.transpose(),
        1.0,
        Par::Seq,
    );
    let mut cols: Vec<Option<Vec<f64>>> = vec![None; nt];
    let col = |cols: &mut Vec<Option<Vec<f64>>>, k: usize| {
        if cols[k].is_none() {
            cols[k] = Some(gram_col(&gm, k));
        }
    };
    let mut gc = vec![0.0f64; nt];
    for k in 0..nt {
        if p.c[k] != 0.0 {
            col(&mut cols, k);
            let ck = p.c[k];
            for (g, v) in gc.iter_mut().zip(cols[k].as_ref().expect("set")) {
                *g += ck * v;
            }
        }
    }
    let c = &mut p.c;
    #[cfg(test)]
    let skip_fs = tests::FORCE_CD.with(|f| f.get());
    #[cfg(not(test))]
    let skip_fs = false;
    let xsq = dot_ff(&p.x, &p.x);
    let exact_fs = !skip_fs && feature_sign(&gm, &b, &mut cols, c, alpha, tau, xsq);
    if !exact_fs {
        gc.iter_mut().for_each(|g| *g = 0.0);
        for k in 0..nt {
            if c[k] != 0.0 {
                col(&mut cols, k);
                let ck = c[k];
                for (g, v) in gc.iter_mut().zip(cols[k].as_ref().expect("set")) {
                    *g += ck * v;
                }
            }
        }
    }
    let sweep =
        |only_nonzero: bool, c: &mut [f64], cols: &mut Vec<Option<Vec<f64>>>, gc: &mut [f64]| {
            let (mut maxd, mut maxc) = (0.0f64, 0.0f64);
            for k in 0..nt {
                if only_nonzero && c[k] == 0.0 {
                    continue;
                }
                let g = b[k] - gc[k] + diag[k] * c[k];
                let new = soft(alpha * g, tau) / (alpha * diag[k] + 1.0 - tau);
                let dl = new - c[k];
                if dl != 0.0 {
                    col(cols, k);
                    for (gv, v) in gc.iter_mut().zip(cols[k].as_ref().expect("set")) {
                        *gv += dl * v;
                    }
                    c[k] = new;
                }
                maxd = maxd.max(dl.abs());
                maxc = maxc.max(new.abs());
            }
            maxd <= tol * maxc
        };
    // Full sweeps alternate with a few sweeps over the nonzeros; after each round the
    // sign-fixed system is tried, which ends the descent with the exact solution as soon as
    // the support is right (coordinate descent alone converges slowly on coherent points).
    let mut sweeps = if exact_fs { MAX_SWEEPS } else { 0 };
    let mut exact = exact_fs;
    while sweeps < MAX_SWEEPS {
        sweeps += 1;
        if sweep(false, c, &mut cols, &mut gc) {
            break;
        }
        for _ in 0..POLISH_EVERY {
            sweeps += 1;
            if sweep(true, c, &mut cols, &mut gc) {
                break;
            }
        }
        if polish(&b, &cols, c, alpha, tau) {
            exact = true;
            break;
        }
    }
    if !exact {
        polish(&b, &cols, c, alpha, tau);
    }
    let mut r = p.x.clone();
    for (k, &ck) in c.iter().enumerate() {
        if ck != 0.0 {
            for (rv, xv) in r.iter_mut().zip(&xs[k * d..(k + 1) * d]) {
                *rv -= ck * xv;
            }
        }
    }
    for (dv, rv) in p.delta.iter_mut().zip(&r) {
        *dv = alpha * rv;
    }
}

/// Feature-sign search (Lee, Battle, Raina & Ng 2006) for
/// `min 1/2 c^T H c - alpha b^T c + tau ||c||_1`, `H = alpha G + (1 - tau) I`, warm-started
/// from `c`: activate the zero coordinate of largest violation, solve the sign-fixed system on
/// the active set, line-search to the best sign change. Exact when it returns true; false
/// (with a `c` no worse than before) sends the caller to coordinate descent.
///
/// Two guards for sign-fixed systems that are singular (`tau = 1` with more active points
/// than their span), as in the array-API kernel (`python/lowdim/_xp_ensc.py`):
/// * The objective equals `tau |c|_1 + (1 - tau)/2 |c|^2 + alpha/2 |x - X c|^2 - alpha/2 |x|^2`
///   (`xsq = |x|^2`), so it is at least `tau |c|_1 + (1 - tau)/2 |c|^2 - alpha/2 |x|^2`; the
///   line search clamps it to that bound. A system singular only to rounding yields a step of
///   about `1e16`, whose quadratic form evaluated in floating point can come out hugely
///   negative and pass for a descent: clamped, it is the huge value it really is.
/// * When the system of an entering coordinate `k` is singular (its Cholesky row fails) or its
///   solution gives no descent, the objective is linear along the null direction `z` of the
///   system (`z_k = 1`, the rest `-L^{-T} l` from the factor `L` of the previous active set
///   and the failed row `l`) and decreases when `c_k` moves along its sign: step until the
///   first nonzero coordinate reaches 0 (it leaves, the next system is smaller).
#[allow(clippy::too_many_arguments)]
fn feature_sign(
    gm: &Mat<f64>,
    b: &[f64],
    cols: &mut [Option<Vec<f64>>],
    c: &mut [f64],
    alpha: f64,
    tau: f64,
    xsq: f64,
) -> bool {
    let nt = c.len();
    let ensure = |cols: &mut [Option<Vec<f64>>], k: usize| {
        if cols[k].is_none() {
            cols[k] = Some(gram_col(gm, k));
        }
    };
    let mut act: Vec<usize> = (0..nt).filter(|&k| c[k] != 0.0).collect();
    let mut th: Vec<f64> = c.iter().map(|v| v.signum()).collect();
    for &k in &act {
        ensure(cols, k);
    }
    let mut gc = vec![0.0f64; nt];
    let mut chol = IncChol::default();
    let scale = alpha * b.iter().fold(0.0f64, |m, v| m.max(v.abs())) + tau;
    let kkt_tol = 1e-11 * scale;
    let floor = 0.5 * alpha * xsq;
    // The objective on the active set (a function of the active coefficients only), clamped
    // to its lower bound (see above).
    let obj = |act: &[usize], v: &[f64], cols: &[Option<Vec<f64>>]| -> f64 {
        let (mut f, mut lb) = (0.0, -floor);
        for (a, &ka) in act.iter().enumerate() {
            let ca = cols[ka].as_ref().expect("active columns are set");
            let mut hv = (1.0 - tau) * v[a];
            for (bb, &kb) in act.iter().enumerate() {
                hv += alpha * ca[kb] * v[bb];
            }
            f += 0.5 * v[a] * hv - alpha * b[ka] * v[a] + tau * v[a].abs();
            lb += tau * v[a].abs() + 0.5 * (1.0 - tau) * v[a] * v[a];
        }
        f.max(lb)
    };
    for _ in 0..(4 * nt + 64) {
        gc.iter_mut().for_each(|g| *g = 0.0);
        for &k in &act {
            let ck = c[k];
            for (g, v) in gc.iter_mut().zip(cols[k].as_ref().expect("set")) {
                *g += ck * v;
            }
        }
        let nz_ok = act.iter().all(|&k| {
            (alpha * (gc[k] - b[k]) + (1.0 - tau) * c[k] + tau * c[k].signum()).abs() <= kkt_tol
        });
        let mut entered = false;
        if nz_ok {
            let mut worst = (tau + kkt_tol, usize::MAX, 0.0);
            for k in 0..nt {
                if c[k] == 0.0 {
                    let g = alpha * (gc[k] - b[k]);
                    if g.abs() > worst.0 {
                        worst = (g.abs(), k, g);
                    }
                }
            }
            if worst.1 == usize::MAX {
                return true;
            }
            let k = worst.1;
            th[k] = -worst.2.signum();
            ensure(cols, k);
            act.push(k);
            entered = true;
        }
        let na = act.len();
        // The sign-fixed system on the active set: H_AA y = alpha b_A - tau theta_A, with the
        // Cholesky factor of H_AA extended row by row as coordinates enter (rebuilt only
        // after some leave). A failed row of the entering coordinate (the last one) is kept
        // for the null direction.
        let mut failed: Option<Vec<f64>> = None;
        while chol.len() < na {
            let ka = act[chol.len()];
            let ca = cols[ka].as_ref().expect("set");
            let row: Vec<f64> = act[..chol.len()].iter().map(|&kb| alpha * ca[kb]).collect();
            if let Err(l) = chol.push(&row, alpha * ca[ka] + 1.0 - tau) {
                if entered && chol.len() + 1 == na {
                    failed = Some(l);
                    break;
                }
                return false;
            }
        }
        let cur: Vec<f64> = act.iter().map(|&k| c[k]).collect();
        let f0 = obj(&act, &cur, cols);
        let mut v = vec![0.0f64; na];
        let mut stepped = false;
        if failed.is_none() {
            let mut y: Vec<f64> = act.iter().map(|&k| alpha * b[k] - tau * th[k]).collect();
            chol.solve(&mut y);
            let mut ts: Vec<f64> = vec![1.0];
            for (&ca, &ya) in cur.iter().zip(&y) {
                if ca != 0.0 && ya.signum() != ca.signum() {
                    let t = ca / (ca - ya);
                    if t > 0.0 && t < 1.0 {
                        ts.push(t);
                    }
                }
            }
            let mut best = (f0, -1.0f64);
            for &t in &ts {
                for a in 0..na {
                    v[a] = cur[a] + t * (y[a] - cur[a]);
                }
                let f = obj(&act, &v, cols);
                if f < best.0 {
                    best = (f, t);
                }
            }
            if best.1 >= 0.0 {
                let t = best.1;
                for (a, &k) in act.iter().enumerate() {
                    let mut nv = cur[a] + t * (y[a] - cur[a]);
                    if cur[a] != 0.0
                        && y[a].signum() != cur[a].signum()
                        && cur[a] / (cur[a] - y[a]) == t
                    {
                        nv = 0.0;
                    }
                    c[k] = nv;
                }
                stepped = true;
            }
        }
        if !stepped {
            // No decrease (rounding, a wrong activation, or a singular system): the null
            // step when a coordinate entered, otherwise leave it to coordinate descent.
            if !entered {
                return false;
            }
            let l = failed.unwrap_or_else(|| chol.row(na - 1)[..na - 1].to_vec());
            let Some((z, leave)) = null_step(&chol, l, &cur, th[act[na - 1]]) else {
                return false;
            };
            for a in 0..na {
                v[a] = if a == leave.0 {
                    0.0
                } else {
                    cur[a] + leave.1 * z[a]
                };
            }
            if obj(&act, &v, cols) >= f0 {
                return false;
            }
            for (&k, &va) in act.iter().zip(&v) {
                c[k] = va;
            }
        }
        let before = act.len();
        act.retain(|&k| c[k] != 0.0);
        if act.len() != before {
            chol.clear();
        }
        for &k in &act {
            th[k] = c[k].signum();
        }
    }
    false
}

/// The null direction of the sign-fixed system whose last row (the entering coordinate, of
/// sign `th_k`) failed: `z = th_k [-L^{-T} l; 1]` with `L` the factor of the other rows and
/// `l` the failed row's `L^{-1} h` (then `H z = [0; th_k (diag - |l|^2)]`, zero to rounding),
/// and the step to the first nonzero of `cur` that `z` drives to 0: `(z, (its position, the
/// step length))`. None when no coordinate reaches 0 or `z` is not finite.
fn null_step(
    chol: &IncChol,
    mut l: Vec<f64>,
    cur: &[f64],
    th_k: f64,
) -> Option<(Vec<f64>, (usize, f64))> {
    let m = l.len();
    chol.solve_upper(m, &mut l);
    let mut z: Vec<f64> = l.iter().map(|v| -th_k * v).collect();
    z.push(th_k);
    if !z.iter().all(|v| v.is_finite()) {
        return None;
    }
    let mut leave: Option<(usize, f64)> = None;
    for (a, (&ca, &za)) in cur.iter().zip(&z).enumerate() {
        if ca != 0.0 && ca * za < 0.0 {
            let s = -ca / za;
            if leave.is_none_or(|(_, best)| s < best) {
                leave = Some((a, s));
            }
        }
    }
    leave.map(|lv| (z, lv))
}

/// Column `k` of the Gram matrix.
fn gram_col(gm: &Mat<f64>, k: usize) -> Vec<f64> {
    let c = gm.col(k);
    (0..c.nrows()).map(|i| c[i]).collect()
}

/// A lower Cholesky factor grown one row at a time.
#[derive(Default)]
struct IncChol {
    rows: Vec<Vec<f64>>,
}

impl IncChol {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn clear(&mut self) {
        self.rows.clear();
    }
    /// Row `a` of the factor (`a + 1` entries).
    fn row(&self, a: usize) -> &[f64] {
        &self.rows[a]
    }
    /// Appends the row `[h, diag]` of the matrix; if it is not numerically SPD, leaves the
    /// factor as it was and returns `L^{-1} h` (the failed row's off-diagonal part).
    fn push(&mut self, h: &[f64], diag: f64) -> std::result::Result<(), Vec<f64>> {
        let mut l = Vec::with_capacity(h.len() + 1);
        for (a, &ha) in h.iter().enumerate() {
            let ra = &self.rows[a];
            l.push((ha - dot_ff(&ra[..a], &l[..a])) / ra[a]);
        }
        let d2 = diag - dot_ff(&l, &l);
        if d2.is_nan() || d2 <= 0.0 {
            return Err(l);
        }
        l.push(d2.sqrt());
        self.rows.push(l);
        Ok(())
    }
    /// Solves `L_m^T y = r` in place, `L_m` the leading `m x m` block of the factor.
    fn solve_upper(&self, m: usize, y: &mut [f64]) {
        for a in (0..m).rev() {
            let mut v = y[a];
            for (row, yk) in self.rows[a + 1..m].iter().zip(&y[a + 1..m]) {
                v -= row[a] * yk;
            }
            y[a] = v / self.rows[a][a];
        }
    }
    /// Solves `L L^T y = r` in place.
    fn solve(&self, y: &mut [f64]) {
        let n = self.rows.len();
        for a in 0..n {
            let ra = &self.rows[a];
            y[a] = (y[a] - dot_ff(&ra[..a], &y[..a])) / ra[a];
        }
        self.solve_upper(n, y);
    }
}

/// Solves `H y = r` in place for symmetric positive definite `H` (lower triangle, row-major
/// `n x n`, overwritten by its Cholesky factor); false if `H` is not numerically SPD.
fn cholesky_solve(h: &mut [f64], n: usize, y: &mut [f64]) -> bool {
    for a in 0..n {
        for bb in 0..=a {
            let mut v = h[a * n + bb];
            for k in 0..bb {
                v -= h[a * n + k] * h[bb * n + k];
            }
            if a == bb {
                if v.is_nan() || v <= 0.0 {
                    return false;
                }
                h[a * n + a] = v.sqrt();
            } else {
                h[a * n + bb] = v / h[bb * n + bb];
            }
        }
    }
    for a in 0..n {
        let mut v = y[a];
        for k in 0..a {
            v -= h[a * n + k] * y[k];
        }
        y[a] = v / h[a * n + a];
    }
    for a in (0..n).rev() {
        let mut v = y[a];
        for k in a + 1..n {
            v -= h[k * n + a] * y[k];
        }
        y[a] = v / h[a * n + a];
    }
    true
}

/// Replaces `c` by the exact solution of the sign-fixed system on its support when that
/// solution keeps the signs and satisfies the optimality conditions on the whole active set
/// (returns whether it did).
fn polish(b: &[f64], cols: &[Option<Vec<f64>>], c: &mut [f64], alpha: f64, tau: f64) -> bool {
    let s: Vec<usize> = (0..c.len()).filter(|&k| c[k] != 0.0).collect();
    let ns = s.len();
    if ns == 0 {
        return false;
    }
    // H = alpha * G_SS + (1 - tau) I.
    let mut h = vec![0.0f64; ns * ns];
    for (a, &ka) in s.iter().enumerate() {
        let ca = cols[ka]
            .as_ref()
            .expect("nonzero coefficients have Gram columns");
        for (bb, &kb) in s.iter().enumerate() {
            h[a * ns + bb] = alpha * ca[kb];
        }
        h[a * ns + a] += 1.0 - tau;
    }
    let mut y: Vec<f64> = s
        .iter()
        .map(|&k| alpha * b[k] - tau * c[k].signum())
        .collect();
    if !cholesky_solve(&mut h, ns, &mut y) {
        return false;
    }
    if s.iter()
        .zip(&y)
        .any(|(&k, &v)| v.signum() != c[k].signum() || v == 0.0)
    {
        return false;
    }
    // Zero members: |alpha (b_k - sum_s G_ks y_s)| <= tau.
    let slack = tau * 1e-9 + 1e-12;
    for k in 0..c.len() {
        if c[k] != 0.0 {
            continue;
        }
        let mut g = b[k];
        for (&ks, &v) in s.iter().zip(&y) {
            g -= cols[ks].as_ref().expect("set")[k] * v;
        }
        if (alpha * g).abs() > tau + slack {
            return false;
        }
    }
    for (&k, &v) in s.iter().zip(&y) {
        c[k] = v;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::testutil::union;
    use super::*;
    use crate::progress::SILENT;

    /// `ensc` with support size 10, 40 rounds and tol 1e-8, run on one thread and on two:
    /// the results must be identical (they do not depend on the thread count).
    fn ensc_any_threads(
        x: MatRef<'_, f64>,
        gamma: f64,
        tau: f64,
        n_nonzero: usize,
    ) -> SparseRows<f64> {
        let run = |par| ensc(x, gamma, tau, n_nonzero, 10, 40, 1e-8, par, &SILENT).unwrap();
        let out = run(Par::Seq);
        assert_eq!(out, run(Par::rayon(2)));
        out
    }

    #[test]
    fn subspace_preserving_and_deterministic() {
        let (x, lab) = union(4, 3, 30, 30, 3);
        let out = ensc_any_threads(x.as_ref(), 50.0, 0.9, 50);
        for j in 0..x.nrows() {
            let (idx, val) = out.row(j);
            assert!(!idx.is_empty());
            for (&i, &v) in idx.iter().zip(val) {
                assert!(lab[i as usize] == lab[j] || v.abs() < 1e-10, "{j} {i} {v}");
            }
        }
    }

    /// `tau = 0` on wide data (`N < D`, the dual route of `lsr.rs`) is the ridge with exclusion
    /// of self and `lambda_j = mu_j / gamma`, solved densely; thread-count independent.
    #[test]
    fn wide_tau0_is_the_dense_ridge() {
        use faer::linalg::solvers::Solve;
        let (x, _) = union(3, 4, 200, 6, 5);
        let (n, d) = x.shape();
        assert!(n < d);
        let gamma = 10.0;
        let out = ensc_any_threads(x.as_ref(), gamma, 0.0, n);
        let pts = normalize(x.as_ref(), Par::Seq).unwrap();
        for j in 0..n {
            let others: Vec<usize> = (0..n).filter(|&i| i != j).collect();
            let a = Mat::<f64>::from_fn(d, n - 1, |e, t| pts.row(others[t])[e]);
            let xj = Mat::<f64>::from_fn(d, 1, |e, _| pts.row(j)[e]);
            let cor = a.transpose() * &xj;
            let mu = (0..n - 1).map(|t| cor[(t, 0)].abs()).fold(0.0, f64::max);
            let h =
                a.transpose() * &a + Mat::<f64>::identity(n - 1, n - 1) * faer::Scale(mu / gamma);
            let want = h.partial_piv_lu().solve(cor);
            let (idx, val) = out.row(j);
            assert_eq!(idx.len(), n - 1);
            for (&i, &v) in idx.iter().zip(val) {
                let t = others.iter().position(|&o| o == i as usize).unwrap();
                let w = want[(t, 0)];
                assert!((v - w).abs() < 1e-10 * (1.0 + w.abs()), "{j} {i}: {v} {w}");
            }
        }
    }

    thread_local! {
        /// Skips feature-sign search (tests the coordinate-descent fallback).
        pub(super) static FORCE_CD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn optimality_conditions_hold() {
        check_optimality();
    }

    #[test]
    fn coordinate_descent_fallback_is_optimal() {
        FORCE_CD.with(|f| f.set(true));
        check_optimality();
        FORCE_CD.with(|f| f.set(false));
    }

    fn check_optimality() {
        // Full active set (support_size >= N - 1): check the KKT conditions directly.
        let (x, _) = union(3, 4, 10, 12, 5);
        let n = x.nrows();
        let (gamma, tau) = (20.0, 0.7);
        let out = ensc(x.as_ref(), gamma, tau, n, n, 40, 1e-12, Par::Seq, &SILENT).unwrap();
        assert!(kkt_violation(x.as_ref(), &out, gamma, tau) < 1e-9);
    }

    /// The largest violation of the optimality conditions of the rows of `out` (all their
    /// coefficients kept): `alpha <x_i, r> = tau sign(c_i) + (1 - tau) c_i` on the nonzeros,
    /// `|alpha <x_i, r>| <= tau` elsewhere, `r = x_j - sum_i c_i x_i`, unit-norm points.
    fn kkt_violation(x: MatRef<'_, f64>, out: &SparseRows<f64>, gamma: f64, tau: f64) -> f64 {
        let n = x.nrows();
        let pts = normalize(x, Par::Seq).unwrap();
        let mut worst = 0.0f64;
        for j in 0..n {
            let xj = point_f64(&pts, j);
            let mu = (0..n)
                .filter(|&i| i != j)
                .map(|i| pts.dot(i, &xj).abs())
                .fold(0.0, f64::max);
            let alpha = gamma * tau / mu;
            let (idx, val) = out.row(j);
            let mut r = xj.clone();
            for (&i, &v) in idx.iter().zip(val) {
                for (rk, xk) in r.iter_mut().zip(pts.row(i as usize)) {
                    *rk -= v * xk;
                }
            }
            for i in (0..n).filter(|&i| i != j) {
                let g = alpha * pts.dot(i, &r);
                let e = match idx.iter().position(|&k| k as usize == i) {
                    Some(p) => {
                        let v = val[p];
                        (g - tau * v.signum() - (1.0 - tau) * v).abs()
                    }
                    None => g.abs() - tau,
                };
                worst = worst.max(e);
            }
        }
        worst
    }

    /// Copies of a point (groups of 2 to 12 identical rows, plus a copy at another scale,
    /// which normalizes to the same row only up to rounding) take the row of the first of
    /// their group with the two indices swapped; that is their optimum too.
    #[test]
    fn copies_are_solved_once_and_optimal() {
        let (base, _) = union(3, 4, 10, 12, 5);
        let n0 = base.nrows();
        let src: Vec<usize> = (0..n0).chain([3; 11]).chain([7, 20, 20, 30]).collect();
        let mut x = Mat::<f64>::from_fn(src.len(), base.ncols(), |i, k| base[(src[i], k)]);
        let scaled = src.len() - 1;
        for k in 0..x.ncols() {
            x[(scaled, k)] *= 3.0;
        }
        let n = x.nrows();
        let first = first_copies(&normalize(x.as_ref(), Par::Seq).unwrap());
        for (i, &f) in first.iter().enumerate() {
            if i == scaled {
                assert!(f == i || f == src[i], "scaled copy: {f}");
            } else {
                assert_eq!(f, src[i], "point {i}");
            }
        }
        let (gamma, tau) = (20.0, 0.7);
        let out = ensc(x.as_ref(), gamma, tau, n, n, 40, 1e-12, Par::Seq, &SILENT).unwrap();
        assert!(kkt_violation(x.as_ref(), &out, gamma, tau) < 1e-9);
        let row = |j: usize| -> Vec<(usize, f64)> {
            let (idx, val) = out.row(j);
            idx.iter()
                .map(|&i| i as usize)
                .zip(val.iter().copied())
                .collect()
        };
        for (j, &r) in first.iter().enumerate().filter(|(j, r)| *j != **r) {
            let mut want: Vec<(usize, f64)> = row(r)
                .into_iter()
                .map(|(i, v)| (if i == j { r } else { i }, v))
                .collect();
            want.sort_by_key(|e| e.0);
            assert_eq!(row(j), want, "copy {j} of {r}");
        }
        // the elastic net spreads its weight evenly over identical atoms
        let on_copies: Vec<f64> = row(3)
            .into_iter()
            .filter(|&(i, _)| src[i] == 3)
            .map(|e| e.1)
            .collect();
        assert_eq!(on_copies.len(), 11);
        let hi = on_copies.iter().copied().fold(f64::MIN, f64::max);
        let lo = on_copies.iter().copied().fold(f64::MAX, f64::min);
        assert!(lo > 0.0 && hi - lo <= 1e-10 * hi, "{on_copies:?}");
    }

    /// `union(k, dim, d, per, seed)` plus Gaussian-like noise of norm about `noise` (a sum of
    /// uniforms, deterministic).
    fn noisy_union(k: usize, dim: usize, d: usize, per: usize, noise: f64, seed: u64) -> Mat<f64> {
        let (mut x, _) = union(k, dim, d, per, seed);
        let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let sd = noise / (d as f64).sqrt();
        for p in 0..x.nrows() {
            for r in 0..d {
                let g: f64 = (0..12).map(|_| rnd()).sum();
                x[(p, r)] += sd * g;
            }
        }
        x
    }

    #[test]
    fn singular_lasso_subproblems_are_optimal() {
        // tau = 1 (no ridge term) with active sets larger than the ambient dimension: the
        // sign-fixed systems are singular (or singular to rounding). The unclamped line search
        // took steps of 1e16 there (coefficients of 1e14 in the result); the clamped one and
        // the null-direction step reach the optimum.
        let cases = [
            // (k, dim, d, per, noise, seed, gamma, support_size)
            (4, 2, 8, 30, 0.3, 18, 200.0, 7),
            (4, 5, 6, 33, 1e-3, 5, 200.0, 7),
            (4, 2, 5, 20, 0.3, 3, 500.0, 10),
            (3, 4, 20, 40, 0.0, 1, 50.0, 30),
        ];
        for (k, dim, d, per, noise, seed, gamma, support) in cases {
            let x = noisy_union(k, dim, d, per, noise, seed);
            let n = x.nrows();
            for force_cd in [false, true] {
                FORCE_CD.with(|f| f.set(force_cd));
                let out = ensc(
                    x.as_ref(),
                    gamma,
                    1.0,
                    n,
                    support,
                    40,
                    1e-6,
                    Par::Seq,
                    &SILENT,
                );
                FORCE_CD.with(|f| f.set(false));
                let out = out.unwrap();
                let big = (0..n)
                    .flat_map(|j| out.row(j).1.to_vec())
                    .fold(0.0f64, |m, v| m.max(v.abs()));
                let kkt = kkt_violation(x.as_ref(), &out, gamma, 1.0);
                let case = (k, dim, d, per, noise, seed, force_cd);
                // The coordinate-descent fallback alone stops short of the optimum here (a
                // KKT violation of about 1e-3 at tol = 1e-6): only bounded.
                assert!(big < 10.0, "{case:?}: |c| up to {big}");
                if !force_cd {
                    assert!(out.n_iter < 40, "{case:?}: {} rounds", out.n_iter);
                    assert!(kkt < 1e-8, "{case:?}: KKT violated by {kkt}");
                }
            }
        }
    }
}
