//! Core errors and panics -> Python exceptions, and the one way kernels are entered.
use lowdim_core::progress::Progress;
use lowdim_core::Error;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// `InvalidArgument`/`NonFinite` -> `ValueError`, `LinAlg` -> `numpy.linalg.LinAlgError`.
pub fn to_pyerr(e: Error) -> PyErr {
    match e {
        Error::InvalidArgument(s) | Error::NonFinite(s) => PyValueError::new_err(s),
        Error::Rescale => PyRuntimeError::new_err("lowdim internal error: unhandled rescale"),
        Error::Interrupted => PyKeyboardInterrupt::new_err("interrupted"),
        Error::LinAlg(s) => Python::attach(|py| {
            match py
                .import("numpy.linalg")
                .and_then(|m| m.getattr("LinAlgError"))
                .and_then(|t| t.cast_into::<PyType>().map_err(PyErr::from))
            {
                Ok(ty) => PyErr::from_type(ty, s),
                Err(_) => PyRuntimeError::new_err(s),
            }
        }),
    }
}

/// Runs a core kernel with the GIL released, inside lowdim's thread pool, turning a panic
/// into a `RuntimeError` instead of letting it unwind into Python.
pub fn run<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce(faer::Par) -> lowdim_core::Result<R> + Send,
{
    let res = py.detach(move || {
        lowdim_core::threads::install(move |par| catch_unwind(AssertUnwindSafe(move || f(par))))
    });
    finish(res)
}

type Caught<R> = std::thread::Result<lowdim_core::Result<R>>;

fn finish<R>(res: Caught<R>) -> PyResult<R> {
    match res {
        Ok(r) => r.map_err(to_pyerr),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "lowdim internal error (this is a bug, please report it): {msg}"
            )))
        }
    }
}

/// The core's progress hook for one kernel run: calls the Python callback `cb(done, total)`
/// (GIL re-acquired briefly) and stops the kernel once anything has raised, either the callback
/// or a signal handler run by the waiting thread (Ctrl-C -> `KeyboardInterrupt`).
struct Hook {
    cb: Option<Py<PyAny>>,
    abort: AtomicBool,
    err: Mutex<Option<PyErr>>,
}

impl Hook {
    fn fail(&self, e: PyErr) {
        let mut slot = self.err.lock().unwrap_or_else(|e| e.into_inner());
        // The first exception wins (a later one is a consequence of stopping).
        if slot.is_none() {
            *slot = Some(e);
        }
        self.abort.store(true, Ordering::SeqCst);
    }
}

impl Progress for Hook {
    fn update(&self, done: usize, total: usize) -> bool {
        if self.abort.load(Ordering::SeqCst) {
            return false;
        }
        if let Some(cb) = &self.cb {
            if let Err(e) = Python::attach(|py| cb.call1(py, (done, total)).map(drop)) {
                self.fail(e);
                return false;
            }
        }
        !self.abort.load(Ordering::SeqCst)
    }
}

/// How often the calling thread runs Python's signal handlers while a kernel works.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Like [`run`], for long kernels that take a progress hook: `progress` (a Python callable or
/// None) is called as `progress(done, total)` between the kernel's steps, and the calling
/// thread, which Python delivers signals to, wakes every 50 ms to run the signal handlers, so
/// Ctrl-C stops the kernel at its next step with `KeyboardInterrupt`. An exception raised by
/// the callback also stops the kernel and is re-raised as is.
pub fn run_with_progress<R, F>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    f: F,
) -> PyResult<R>
where
    R: Send,
    F: FnOnce(faer::Par, &dyn Progress) -> lowdim_core::Result<R> + Send,
{
    let hook = Hook {
        cb: progress.map(|p| p.clone().unbind()),
        abort: AtomicBool::new(false),
        err: Mutex::new(None),
    };
    let res: Caught<R> = if lowdim_core::threads::in_pool_thread() {
        // called from a progress callback of a running kernel (on one of its workers):
        // run here, in the pool, without the helper thread and its signal polling (the
        // helper waited for a free worker, which never came once every worker was such a
        // callback waiting for it)
        py.detach(|| {
            let hook = &hook;
            lowdim_core::threads::install(move |par| {
                catch_unwind(AssertUnwindSafe(move || f(par, hook)))
            })
        })
    } else {
        py.detach(|| {
            std::thread::scope(|s| {
                let (tx, rx) = mpsc::channel();
                let hook = &hook;
                s.spawn(move || {
                    let r = lowdim_core::threads::install(move |par| {
                        catch_unwind(AssertUnwindSafe(move || f(par, hook)))
                    });
                    let _ = tx.send(r);
                });
                loop {
                    match rx.recv_timeout(SIGNAL_POLL) {
                        Ok(r) => return r,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                hook.fail(e);
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            return Err(Box::new("the kernel thread ended without a result")
                                as Box<dyn std::any::Any + Send>)
                        }
                    }
                }
            })
        })
    };
    // An exception raised while the kernel ran (callback or signal handler) is re-raised even
    // when the kernel finished before it could stop: a consumed Ctrl-C must not get lost.
    let stored = hook.err.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(e) = stored {
        return Err(e);
    }
    finish(res)
}
