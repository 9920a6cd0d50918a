//! lowdim's thread pool.
//!
//! Kernels run inside [`install`], which uses a pool owned by lowdim (not rayon's global one,
//! which can be sized only once per process). Its size comes from [`set_num_threads`], else
//! from the environment variable `LOWDIM_NUM_THREADS`, else from the number of CPUs.
use faer::Par;
use std::sync::{Arc, RwLock};

/// The pool and the process it was built in: a child made by `fork()` inherits the pool but
/// not its threads (only the forking thread survives a fork), so a pool from another
/// process is replaced before use (a kernel in a forked child waited forever for workers
/// that do not exist: `multiprocessing` with the "fork" start method, `os.fork`).
struct Owned {
    pid: u32,
    pool: Arc<rayon::ThreadPool>,
}

static POOL: RwLock<Option<Owned>> = RwLock::new(None);

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
    let pid = std::process::id();
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if p.pid == pid {
            return p.pool.clone();
        }
    }
    let mut guard = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_ref() {
        if p.pid == pid {
            return p.pool.clone();
        }
    }
    let n = match guard.take() {
        // inherited through fork: same size; the old pool is leaked, not dropped (its
        // registry would signal threads that do not exist in this process)
        Some(old) => {
            let n = old.pool.current_num_threads();
            std::mem::forget(old);
            n
        }
        None => default_threads(),
    };
    // a count the system cannot start (LOWDIM_NUM_THREADS=100000): one thread per CPU, as
    // for an unset variable, rather than a single thread
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let p = build(n)
        .or_else(|_| build(cpus))
        .or_else(|_| build(1))
        .expect("a one-thread pool can always be built");
    *guard = Some(Owned {
        pid,
        pool: p.clone(),
    });
    p
}

/// Sets the number of threads every later kernel uses (`n >= 1`).
pub fn set_num_threads(n: usize) -> crate::Result<()> {
    if n == 0 {
        return crate::error::invalid("the number of threads must be >= 1");
    }
    let pool = build(n)?;
    let pid = std::process::id();
    let old = POOL
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .replace(Owned { pid, pool });
    if let Some(old) = old {
        if old.pid != pid {
            std::mem::forget(old); // a pool inherited through fork (see `Owned`)
        }
    }
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

/// Whether the calling thread is a worker of a rayon pool (lowdim's, when a kernel's progress
/// callback calls lowdim again): a kernel started there runs on it directly, since a helper
/// thread waiting for a free worker would wait forever once every worker is such a caller.
pub fn in_pool_thread() -> bool {
    rayon::current_thread_index().is_some()
}

/// Whether `par` allows more than one thread.
pub fn is_parallel(par: Par) -> bool {
    !matches!(par, Par::Seq)
}
