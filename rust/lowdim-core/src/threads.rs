//! lowdim's thread pool.
//!
//! Kernels run inside [`install`], which uses a pool owned by lowdim (not rayon's global one,
//! which can be sized only once per process). Its size comes from [`set_num_threads`], else
//! from the environment variable `LOWDIM_NUM_THREADS`, else from the number of CPUs.
use faer::Par;
use std::sync::{Arc, RwLock};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

fn default_threads() -> usize {
    if let Ok(v) = std::env::var("LOWDIM_NUM_THREADS") {
        if let Ok(n) = v.trim().parse::<usize>() {
            if n > 0 {
                return n;
            }
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn build(n: usize) -> crate::Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("lowdim-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| crate::Error::InvalidArgument(format!("cannot start {n} threads: {e}")))
}

fn pool() -> Arc<rayon::ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut guard = POOL.write().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let p = build(default_threads())
            .or_else(|_| build(1))
            .expect("a one-thread pool can always be built");
        *guard = Some(p);
    }
    guard.as_ref().expect("set above").clone()
}

/// Sets the number of threads every later kernel uses (`n >= 1`).
pub fn set_num_threads(n: usize) -> crate::Result<()> {
    if n == 0 {
        return crate::error::invalid("the number of threads must be >= 1");
    }
    let p = build(n)?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    Ok(())
}

/// The number of threads kernels use.
pub fn get_num_threads() -> usize {
    pool().current_num_threads()
}

/// Runs `f` inside lowdim's pool, handing it the matching faer parallelism.
pub fn install<R: Send>(f: impl FnOnce(Par) -> R + Send) -> R {
    let p = pool();
    let n = p.current_num_threads();
    p.install(|| f(if n <= 1 { Par::Seq } else { Par::rayon(n) }))
}

/// Whether `par` allows more than one thread.
pub fn is_parallel(par: Par) -> bool {
    !matches!(par, Par::Seq)
}
