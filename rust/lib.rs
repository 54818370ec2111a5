//! `peakrec._core`: PyO3 bindings only. Each function converts its arguments, releases the GIL
//! around the work in `peakrec_core`, and returns errors as `error::Error`, which `From` turns
//! into `peakrec.errors` exceptions.
//!
//! The module declares no `gil_used = false`: the hashing bindings read Python lists in place and
//! rely on the GIL to keep them unchanged meanwhile, which free-threaded Python does not promise.

// Freed pages are reused instead of returned to the OS: fresh pages cost a fault each, which
// dominates batch calls on virtual machines.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod error;
mod py_ann;
mod py_hashing;
mod py_pipeline;
mod py_text;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py_hashing::register(m)?;
    py_text::register(m)?;
    py_pipeline::register(m)?;
    py_ann::register(m)?;
    Ok(())
}
