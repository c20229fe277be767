//! [`Layout`]: how a stream places RAM pages, sequential records or
//! fixed offsets (QEMU's `mapped-ram`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a stream places RAM pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// PAGE and ZERO records in the RAM sections; a page sent again is
    /// appended again.
    Sequential,
    /// Each page at a fixed offset of its block's page area, a bitmap per
    /// block (QEMU 9+: `mapped-ram`).
    FixedRam,
}

impl Layout {
    /// Both layouts, sequential first.
    pub const ALL: [Layout; 2] = [Layout::Sequential, Layout::FixedRam];

    /// `sequential` or `fixed-ram`, as in scenario files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Sequential => "sequential",
            Layout::FixedRam => "fixed-ram",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown layout {s:?} (sequential, fixed-ram)"))
    }
}
