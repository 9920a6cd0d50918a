//! Progress reports and cooperative interruption for long kernels.
//!
//! A kernel that runs for a while takes a `&dyn Progress` and calls [`report`] between its
//! steps (power iterations, adaptive blocks, Tucker modes, HOOI sweeps, ...) with the steps
//! done so far and the expected total. The hook returns `false` to stop the kernel, which then
//! returns [`Error::Interrupted`] at once. Calls come from the thread that runs the kernel (a
//! lowdim pool thread), never from inside a parallel loop, and a kernel calls it a bounded
//! number of times (at most a few hundred per run), so the hook may be slow-ish (the Python
//! bindings re-acquire the GIL in it).
//!
//! Kernels that have no caller interested in progress pass [`SILENT`]. To add progress to a new
//! kernel: give it a `_with_progress` variant taking `progress: &dyn Progress`, call
//! `report(progress, done, total)?` between steps, and keep the plain function as a call of
//! the variant with `&SILENT`.
//!
//! `done` never decreases within one run of a kernel, except that a kernel that restarts
//! internally (the SVD's rescaling retry on data near underflow or overflow) starts over from 0.
//! `total` may change when the kernel learns more (an early stop reports `done == total`).
use crate::error::{Error, Result};

/// Receives `(done, total)` between steps of a kernel; returning `false` aborts the kernel
/// with [`Error::Interrupted`].
pub trait Progress: Sync {
    fn update(&self, done: usize, total: usize) -> bool;
}

impl<F: Fn(usize, usize) -> bool + Sync> Progress for F {
    fn update(&self, done: usize, total: usize) -> bool {
        self(done, total)
    }
}

/// The hook that ignores reports and never aborts.
pub struct Silent;

impl Progress for Silent {
    fn update(&self, _done: usize, _total: usize) -> bool {
        true
    }
}

/// A [`Silent`] instance to pass as `&SILENT`.
pub static SILENT: Silent = Silent;

/// Reports `done` of `total` steps; `Err(Error::Interrupted)` when the hook asks to stop.
#[inline]
pub fn report(progress: &dyn Progress, done: usize, total: usize) -> Result<()> {
    if progress.update(done, total) {
        Ok(())
    } else {
        Err(Error::Interrupted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn closures_are_hooks_and_false_interrupts() {
        let calls = AtomicUsize::new(0);
        let hook = |d: usize, _t: usize| {
            calls.fetch_add(1, Ordering::Relaxed);
            d < 2
        };
        assert_eq!(report(&hook, 1, 3), Ok(()));
        assert_eq!(report(&hook, 2, 3), Err(Error::Interrupted));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(report(&SILENT, 5, 3), Ok(()));
    }
}
