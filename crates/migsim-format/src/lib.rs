//! QEMU migration streams with the **fixed-ram** layout (QEMU 9+:
//! `mapped-ram`): what a VMM needs to write a save file QEMU 10 loads, and
//! to read, check and extract QEMU's own.
//!
//! * [`caps`]: which capabilities, parameters and transports go together,
//!   with QEMU 10.0.2's rules and messages, and the destination's check of
//!   a stream's validated capabilities.
//! * [`writer`]: [`MigrationWriter`], one stream framing with either
//!   [`Layout`]: sequential records, or every page at a fixed offset.
//! * [`reader`]: [`load`] and [`inspect`], a strict loader that treats
//!   every length and offset in a file as hostile and names each fault
//!   ([`LoadError`]); pages go to a [`RamSink`].
//! * [`extract`]: one RAMBlock's memory out of a file.
//! * [`durable`]: the opt-in durable save ([`Durability`]): syncs in an
//!   order that survives power loss, and the completion mark;
//!   [`integrity`]: the opt-in trailer of per-chunk CRC-32s.
//! * The byte layout, one module each: [`stream`] (framing), [`ram`] (RAM
//!   records), [`fixed_ram`] (the per-block header), [`bitmap`], [`vmdesc`]
//!   (the JSON trailer), [`wire`] (primitive encodings); [`io`] is the file
//!   abstraction ([`MigFile`], [`DiskFile`] with O_DIRECT).
//!
//! It knows nothing of simulation, seeds or oracles; a test harness can
//! make the writer deliberately wrong through [`SaveHooks`] (the `()`
//! default costs nothing).
#![warn(missing_docs)]

pub mod bitmap;
pub mod caps;
pub mod container;
pub mod durable;
pub mod error;
pub mod extract;
pub mod fifo;
pub mod fixed_ram;
pub mod hooks;
pub mod integrity;
pub mod io;
pub mod layout;
pub(crate) mod parallel;
pub mod ram;
pub mod reader;
pub mod stream;
pub mod vmdesc;
pub mod wire;
pub mod writer;

pub use caps::{Capabilities, Capability, CapsError, MigrationConfig, Parameters, Profile};
pub use container::{Container, StreamStart, find_stream};
pub use durable::Durability;
pub use error::{LoadError, SaveError};
pub use extract::{ExtractError, extract};
pub use hooks::SaveHooks;
pub use io::{DiskFile, MigFile};
pub use layout::Layout;
pub use ram::PAGE_SIZE;
pub use reader::{ClearBitPages, LoadOptions, RamSink, StreamInfo, inspect, load, load_ram};
pub use stream::SectionKind;
pub use writer::{DeviceState, MigrationWriter, PageSource, RamBlockDesc};
