//! The product: the QEMU migration stream codec with its two RAM layouts
//! (sequential and fixed-ram), and the reader. Knows nothing of
//! simulation, seeds or oracles.

pub mod bitmap;
pub mod error;
pub mod fixed_ram;
pub mod io;
pub mod ram;
pub mod reader;
pub mod stream;
pub mod vmdesc;
pub mod wire;
pub mod writer;

pub use error::{LoadError, SaveError};
