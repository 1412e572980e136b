//! A calculator service.

use serde::{Deserialize, Serialize};

/// Why a calculation failed: an application error, carried to the caller unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CalcError {
    /// Division by zero.
    DivisionByZero,
    /// The result does not fit in an `i32`.
    Overflow,
}

/// The calculator's interface.
#[lpc::service]
pub trait Calc {
    /// Adds two numbers (wrapping on overflow).
    fn add(&self, a: i32, b: i32) -> i32;
    /// Divides `a` by `b`, or says why it cannot.
    fn checked_div(&self, a: i32, b: i32) -> Result<i32, CalcError>;
    /// The sum of `values` (wrapping on overflow).
    fn sum(&self, values: &[i64]) -> i64;
}

/// The calculator the service runs.
pub struct Calculator;

impl Calc for Calculator {
    fn add(&self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn checked_div(&self, a: i32, b: i32) -> Result<i32, CalcError> {
        match b {
            0 => Err(CalcError::DivisionByZero),
            _ => a.checked_div(b).ok_or(CalcError::Overflow),
        }
    }

    fn sum(&self, values: &[i64]) -> i64 {
        // Wrapping, like `add`: a plain `sum()` panics on overflow in debug builds (the
        // fuzzer found it).
        values.iter().fold(0i64, |sum, &v| sum.wrapping_add(v))
    }
}
