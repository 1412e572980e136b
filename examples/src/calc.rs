//! A calculator service.

/// The calculator's interface.
#[lpc::service]
pub trait Calc {
    /// Adds two numbers (wrapping on overflow).
    fn add(&self, a: i32, b: i32) -> i32;
}

/// The calculator the service runs.
pub struct Calculator;

impl Calc for Calculator {
    fn add(&self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}
