//! Pure-Rust numeric kernels of lowdim.
//!
//! Every kernel is generic over `f32`/`f64` ([`scalar::Real`]) and works on faer views, so
//! NumPy memory can be handed over without copies. Nothing here knows about Python.
//!
//! * [`svd`]: randomized SVD (fixed rank and adaptive rank), Gram + eigh path, error estimate.
//! * [`linop`]: the linear operators the SVD kernels consume (dense, transposed, centred).
//! * [`sparse`]: CSR views, validation, transpose and the CSR x dense kernels.
//! * [`progress`]: the progress / interruption hook long kernels call between steps.
//! * [`rng`]: the counter-based Gaussian generator (results depend on the seed only).
//! * [`threads`]: lowdim's own thread pool (`set_num_threads`, `LOWDIM_NUM_THREADS`).
//! * [`tucker`]: HOSVD, ST-HOSVD, HOOI on strided N-d tensors; n-mode products.

pub mod error;
pub mod linop;
pub mod progress;
pub mod rng;
pub mod scalar;
pub mod sparse;
pub mod svd;
pub mod threads;
pub mod tucker;

pub use error::{Error, Result};
pub use scalar::Real;
