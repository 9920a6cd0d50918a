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
//! * [`selfexpr`]: self-expressive models for subspace clustering (SSC-OMP, EnSC, LSR, TSC).
//! * [`kmeans`]: k-means (greedy k-means++ seeding, Lloyd, restarts).
//! * [`spectral`]: spectral embedding (Chebyshev-filtered subspace iteration) and clustering.
//! * [`subspaces`]: K-subspaces (linear subspaces, k-subspaces++ seeding, restarts).
//! * [`tucker`]: HOSVD, ST-HOSVD, HOOI on strided N-d tensors; n-mode products.

pub mod error;
pub mod kmeans;
pub mod linop;
pub mod progress;
pub mod rng;
pub mod scalar;
pub mod selfexpr;
pub mod sparse;
pub mod spectral;
pub mod subspaces;
pub mod svd;
pub mod threads;
pub mod tucker;

pub use error::{Error, Result};
pub use scalar::Real;
