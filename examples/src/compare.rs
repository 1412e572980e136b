//! An image comparator with an in/out parameter: the client sends a `MyInfo`, the service reads
//! it, writes its own values into it, and the client sees them in its variable after the call.
//! In the trait that is an `&mut MyInfo` parameter; no pointer into the other process's memory
//! is involved: the value goes to the service and its new value comes back with the result.

use serde::{Deserialize, Serialize};

/// A colour reading: what the client sends and the service writes back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MyInfo {
    /// Red channel reading.
    pub red: f64,
    /// Blue channel reading.
    pub blue: f64,
}

/// The comparator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The readings are close.
    Similar,
    /// The readings differ.
    Different,
}

/// The comparator's interface.
#[lpc::service]
pub trait Compare {
    /// Compares the client's reading with the service's reference, then writes the reference
    /// into `info`.
    fn compare_image(&self, info: &mut MyInfo) -> Verdict;
}

/// The comparator the service runs, with its reference reading (red 2.0, blue 1.0 by default).
pub struct Comparator {
    /// The reference reading.
    pub reference: MyInfo,
}

impl Default for Comparator {
    fn default() -> Self {
        Comparator {
            reference: MyInfo {
                red: 2.0,
                blue: 1.0,
            },
        }
    }
}

impl Compare for Comparator {
    fn compare_image(&self, info: &mut MyInfo) -> Verdict {
        println!(
            "service: client sent red={:.2}, blue={:.2}",
            info.red, info.blue
        );
        let close = (info.red - self.reference.red).abs() < 0.5
            && (info.blue - self.reference.blue).abs() < 0.5;
        *info = self.reference;
        if close {
            Verdict::Similar
        } else {
            Verdict::Different
        }
    }
}
