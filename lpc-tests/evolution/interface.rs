//! The interfaces of the evolution tests, written once and compiled twice: by
//! `lpc-evolution-v1` (without the `v2` feature) and `lpc-evolution-v2` (whose default feature
//! `v2` is on). Items marked `#[cfg(feature = "v2")]` or `#[cfg(not(feature = "v2"))]` are where
//! the two builds differ; everything else is the same source. Each kind of change has its own
//! interface, served under its own name by [`serve_all`], so that each result is isolated.
//!
//! `#[lpc::service]` refuses `#[cfg]` on a single method (the macro describes the interface
//! when it runs), so where the builds differ in their methods, the whole trait is written
//! twice, each copy under its cfg. Types, fields and variants take `#[cfg]` as usual.
//!
//! `docs/evolution.md` says which change gives which result; `lpc-tests/tests/evolution.rs`
//! runs the service of one build in its own process against the client of the other.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Which build this is: `"v1"` or `"v2"`.
pub const BUILD: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };

/// The service names [`serve_all`] binds, one per interface.
pub const NAMES: [&str; 7] = [
    "reorder",
    "rename",
    "retype",
    "add-variant",
    "add-method",
    "remove-method",
    "changes",
];

/// Case 1: the fields of a struct reordered (`red, blue` in v1, `blue, red` in v2). postcard
/// writes fields by position, without names: the same bytes would decode with `red` and
/// `blue` swapped.
pub mod reorder {
    use super::*;

    /// A colour, in and out.
    #[cfg(not(feature = "v2"))]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct MyInfo {
        /// Red.
        pub red: f64,
        /// Blue.
        pub blue: f64,
        /// Set by the service.
        pub note: String,
    }

    /// A colour, in and out (v2: `blue` first).
    #[cfg(feature = "v2")]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct MyInfo {
        /// Blue.
        pub blue: f64,
        /// Red.
        pub red: f64,
        /// Set by the service.
        pub note: String,
    }

    /// Uses `MyInfo` as an in/out parameter.
    #[lpc::service]
    pub trait Reorder {
        /// Sets `info.note` to what the service received (`"red 1 blue 2"`); returns whether
        /// red is more than blue.
        fn compare(&self, info: &mut MyInfo) -> bool;
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
        /// How many `compare` calls this service has executed.
        fn compared(&self) -> u64;
    }

    /// Serves [`Reorder`].
    #[derive(Default)]
    pub struct ReorderService {
        compared: AtomicU64,
    }

    impl Reorder for ReorderService {
        fn compare(&self, info: &mut MyInfo) -> bool {
            self.compared.fetch_add(1, Ordering::SeqCst);
            info.note = format!("red {} blue {}", info.red, info.blue);
            info.red > info.blue
        }
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
        fn compared(&self) -> u64 {
            self.compared.load(Ordering::SeqCst)
        }
    }
}

/// Case 2: a field renamed (`height` in v1, `depth` in v2).
pub mod rename {
    use super::*;

    /// Two lengths.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Size {
        /// Width.
        pub width: u32,
        /// Height.
        #[cfg(not(feature = "v2"))]
        pub height: u32,
        /// Depth (was `height`).
        #[cfg(feature = "v2")]
        pub depth: u32,
    }

    impl Size {
        /// The second length (`height`).
        #[cfg(not(feature = "v2"))]
        pub fn second(&self) -> u32 {
            self.height
        }

        /// The second length (`depth`).
        #[cfg(feature = "v2")]
        pub fn second(&self) -> u32 {
            self.depth
        }
    }

    /// Takes a `Size`.
    #[lpc::service]
    pub trait Rename {
        /// `width * second`.
        fn area(&self, size: Size) -> u64;
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
    }

    /// Serves [`Rename`].
    pub struct RenameService;

    impl Rename for RenameService {
        fn area(&self, size: Size) -> u64 {
            u64::from(size.width) * u64::from(size.second())
        }
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
    }
}

/// Case 3: the types of fields changed: `Reading::value` `f64` → `f32` (a parameter),
/// `Totals::count` `u32` → `u64` (a result).
pub mod retype {
    use super::*;

    /// `Reading::value`'s type.
    #[cfg(not(feature = "v2"))]
    pub type Value = f64;
    /// `Reading::value`'s type.
    #[cfg(feature = "v2")]
    pub type Value = f32;

    /// `Totals::count`'s type.
    #[cfg(not(feature = "v2"))]
    pub type Count = u32;
    /// `Totals::count`'s type.
    #[cfg(feature = "v2")]
    pub type Count = u64;

    /// A measurement.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Reading {
        /// The value.
        pub value: Value,
        /// How many times it was seen.
        pub times: u32,
    }

    /// What the service has recorded.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Totals {
        /// Readings recorded.
        pub count: Count,
    }

    /// Takes a `Reading`, returns `Totals`.
    #[lpc::service]
    pub trait Retype {
        /// Records a reading; returns `value * times`.
        fn record(&self, reading: Reading) -> f64;
        /// The readings recorded so far.
        fn totals(&self) -> Totals;
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
    }

    /// Serves [`Retype`].
    #[derive(Default)]
    pub struct RetypeService {
        count: AtomicU32,
    }

    // `Value` and `Count` are `f64` and `u32` in one build: the conversions are no-ops there.
    #[allow(clippy::useless_conversion)]
    impl Retype for RetypeService {
        fn record(&self, reading: Reading) -> f64 {
            self.count.fetch_add(1, Ordering::SeqCst);
            f64::from(reading.value) * f64::from(reading.times)
        }
        fn totals(&self) -> Totals {
            Totals {
                count: Count::from(self.count.load(Ordering::SeqCst)),
            }
        }
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
    }
}

/// Case 4: a variant added to an enum the service returns (`Stopped`, in v2).
pub mod add_variant {
    use super::*;

    /// What the service is doing.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Status {
        /// Nothing.
        Idle,
        /// This many calls.
        Busy(u32),
        /// Stopped, with an exit code (v2 only).
        #[cfg(feature = "v2")]
        Stopped {
            /// The exit code.
            code: i32,
        },
    }

    /// Returns a `Status`.
    #[lpc::service]
    pub trait AddVariant {
        /// `Idle` (v1), `Stopped { code: 3 }` (v2).
        fn status(&self) -> Status;
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
    }

    /// Serves [`AddVariant`].
    pub struct AddVariantService;

    impl AddVariant for AddVariantService {
        #[cfg(not(feature = "v2"))]
        fn status(&self) -> Status {
            Status::Idle
        }
        #[cfg(feature = "v2")]
        fn status(&self) -> Status {
            Status::Stopped { code: 3 }
        }
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
    }
}

/// Case 5: a method added (`mul`, in v2).
pub mod add_method {
    /// v1: `add` and `ping`.
    #[cfg(not(feature = "v2"))]
    #[lpc::service]
    pub trait AddMethod {
        /// `a + b`.
        fn add(&self, a: i64, b: i64) -> i64;
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
    }

    /// v2: `add`, `ping` and the new `mul`.
    #[cfg(feature = "v2")]
    #[lpc::service]
    pub trait AddMethod {
        /// `a + b`.
        fn add(&self, a: i64, b: i64) -> i64;
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
        /// `a * b` (new in v2).
        fn mul(&self, a: i64, b: i64) -> i64;
    }

    /// Serves [`AddMethod`].
    pub struct AddMethodService;

    impl AddMethod for AddMethodService {
        fn add(&self, a: i64, b: i64) -> i64 {
            a + b
        }
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
        #[cfg(feature = "v2")]
        fn mul(&self, a: i64, b: i64) -> i64 {
            a * b
        }
    }
}

/// Case 6: a method removed (`legacy`, gone in v2).
pub mod remove_method {
    /// v1: `ping` and `legacy`.
    #[cfg(not(feature = "v2"))]
    #[lpc::service]
    pub trait RemoveMethod {
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
        /// `"legacy"` (removed in v2).
        fn legacy(&self) -> String;
    }

    /// v2: `ping` only.
    #[cfg(feature = "v2")]
    #[lpc::service]
    pub trait RemoveMethod {
        /// `x + 1`.
        fn ping(&self, x: u32) -> u32;
    }

    /// Serves [`RemoveMethod`].
    pub struct RemoveMethodService;

    impl RemoveMethod for RemoveMethodService {
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
        #[cfg(not(feature = "v2"))]
        fn legacy(&self) -> String {
            "legacy".into()
        }
    }
}

/// Every other change, one method each (the comparison is per method, so with
/// `allow_mismatched_methods` each method's result is seen on its own): some are refused, some
/// are compatible, one is not caught.
pub mod changes {
    use super::*;

    /// Two numbers (v2 calls it `Couple`, same fields).
    #[cfg(not(feature = "v2"))]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Pair {
        /// First.
        pub a: u32,
        /// Second.
        pub b: u32,
    }

    /// `Pair` renamed, same fields.
    #[cfg(feature = "v2")]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Couple {
        /// First.
        pub a: u32,
        /// Second.
        pub b: u32,
    }

    /// One field in v1; v2 adds `b`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Grown {
        /// Always there.
        pub a: u32,
        /// New in v2.
        #[cfg(feature = "v2")]
        pub b: u32,
    }

    /// Two fields in v1; v2 removes `b`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Shrunk {
        /// Always there.
        pub a: u32,
        /// Gone in v2.
        #[cfg(not(feature = "v2"))]
        pub b: u32,
    }

    /// An application error (v2's `error_changed` returns it instead of a `String`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Refused {
        /// Why, as a number.
        pub code: u32,
    }

    /// A length in metres, as a newtype (v2's `wrapped` takes it instead of an `f64`).
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct Meters(pub f64);

    /// A point.
    #[cfg(not(feature = "v2"))]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Spot {
        /// Across.
        pub x: i32,
        /// Up.
        pub y: i32,
    }

    /// `Spot` renamed in Rust, type and field, with `#[serde(rename)]` keeping the names that
    /// cross.
    #[cfg(feature = "v2")]
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename = "Spot")]
    pub struct Place {
        /// Across.
        pub x: i32,
        /// Up (was `y`).
        #[serde(rename = "y")]
        pub height: i32,
    }

    /// v1.
    #[cfg(not(feature = "v2"))]
    #[lpc::service]
    pub trait Changes {
        /// `x + 1` (unchanged).
        fn ping(&self, x: u32) -> u32;
        /// v2 takes a second parameter.
        fn param_added(&self, a: u32) -> u32;
        /// v2 drops the second parameter.
        fn param_removed(&self, a: u32, b: u32) -> u32;
        /// v2 takes them the other way round.
        fn params_reordered(&self, count: u32, label: String) -> String;
        /// v2 swaps them (same types): `num / den`.
        fn params_swapped(&self, num: i64, den: i64) -> i64;
        /// v2 names it `y`: `x * 2`.
        fn param_renamed(&self, x: u32) -> u32;
        /// v2 returns an `i64`.
        fn result_changed(&self) -> u32;
        /// v2 returns `Result<u32, Refused>`.
        fn error_changed(&self, x: u32) -> Result<u32, String>;
        /// v2 returns `Result<u32, String>`.
        fn now_fallible(&self, x: u32) -> u32;
        /// v2 takes a `Couple` (same fields).
        fn type_renamed(&self, p: Pair) -> u32;
        /// v2's `Grown` has a field more.
        fn field_added(&self, g: Grown) -> u32;
        /// v2's `Shrunk` has a field less.
        fn field_removed(&self, s: Shrunk) -> u32;
        /// v2 takes an `Option<u32>`.
        fn now_optional(&self, x: u32) -> u32;
        /// v2 takes a `Meters(f64)`.
        fn wrapped(&self, m: f64) -> f64;
        /// v2 takes a `&str`: the length of `s`.
        fn borrowed(&self, s: String) -> u64;
        /// v2 takes a `Place`, serde-renamed to `Spot`: `x - y`.
        fn serde_renamed(&self, p: Spot) -> i32;
        /// v2 calls it `greeting`.
        fn hello(&self) -> String;
    }

    /// v2.
    #[cfg(feature = "v2")]
    #[lpc::service]
    pub trait Changes {
        /// `x + 1` (unchanged).
        fn ping(&self, x: u32) -> u32;
        /// Takes a second parameter now.
        fn param_added(&self, a: u32, b: u32) -> u32;
        /// The second parameter is gone.
        fn param_removed(&self, a: u32) -> u32;
        /// The other way round.
        fn params_reordered(&self, label: String, count: u32) -> String;
        /// Swapped (same types): `num / den`.
        fn params_swapped(&self, den: i64, num: i64) -> i64;
        /// Renamed: `y * 2`.
        fn param_renamed(&self, y: u32) -> u32;
        /// An `i64` now.
        fn result_changed(&self) -> i64;
        /// Another error type.
        fn error_changed(&self, x: u32) -> Result<u32, Refused>;
        /// Can fail now.
        fn now_fallible(&self, x: u32) -> Result<u32, String>;
        /// `Pair` is called `Couple` now.
        fn type_renamed(&self, p: Couple) -> u32;
        /// `Grown` has a field more.
        fn field_added(&self, g: Grown) -> u32;
        /// `Shrunk` has a field less.
        fn field_removed(&self, s: Shrunk) -> u32;
        /// Optional now.
        fn now_optional(&self, x: Option<u32>) -> u32;
        /// A newtype now.
        fn wrapped(&self, m: Meters) -> f64;
        /// Borrowed now: the length of `s`.
        fn borrowed(&self, s: &str) -> u64;
        /// `Spot` is `Place` in Rust, `Spot` on the wire: `x - y`.
        fn serde_renamed(&self, p: Place) -> i32;
        /// Was `hello`.
        fn greeting(&self) -> String;
    }

    /// Serves [`Changes`].
    pub struct ChangesService;

    #[cfg(not(feature = "v2"))]
    impl Changes for ChangesService {
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
        fn param_added(&self, a: u32) -> u32 {
            a
        }
        fn param_removed(&self, a: u32, b: u32) -> u32 {
            a + b
        }
        fn params_reordered(&self, count: u32, label: String) -> String {
            format!("{count} {label}")
        }
        fn params_swapped(&self, num: i64, den: i64) -> i64 {
            num / den
        }
        fn param_renamed(&self, x: u32) -> u32 {
            x * 2
        }
        fn result_changed(&self) -> u32 {
            1
        }
        fn error_changed(&self, x: u32) -> Result<u32, String> {
            Ok(x)
        }
        fn now_fallible(&self, x: u32) -> u32 {
            x
        }
        fn type_renamed(&self, p: Pair) -> u32 {
            p.a + p.b
        }
        fn field_added(&self, g: Grown) -> u32 {
            g.a
        }
        fn field_removed(&self, s: Shrunk) -> u32 {
            s.a + s.b
        }
        fn now_optional(&self, x: u32) -> u32 {
            x
        }
        fn wrapped(&self, m: f64) -> f64 {
            m
        }
        fn borrowed(&self, s: String) -> u64 {
            s.len() as u64
        }
        fn serde_renamed(&self, p: Spot) -> i32 {
            p.x - p.y
        }
        fn hello(&self) -> String {
            "hello".into()
        }
    }

    #[cfg(feature = "v2")]
    impl Changes for ChangesService {
        fn ping(&self, x: u32) -> u32 {
            x + 1
        }
        fn param_added(&self, a: u32, b: u32) -> u32 {
            a + b
        }
        fn param_removed(&self, a: u32) -> u32 {
            a
        }
        fn params_reordered(&self, label: String, count: u32) -> String {
            format!("{count} {label}")
        }
        fn params_swapped(&self, den: i64, num: i64) -> i64 {
            num / den
        }
        fn param_renamed(&self, y: u32) -> u32 {
            y * 2
        }
        fn result_changed(&self) -> i64 {
            1
        }
        fn error_changed(&self, x: u32) -> Result<u32, Refused> {
            Ok(x)
        }
        fn now_fallible(&self, x: u32) -> Result<u32, String> {
            Ok(x)
        }
        fn type_renamed(&self, p: Couple) -> u32 {
            p.a + p.b
        }
        fn field_added(&self, g: Grown) -> u32 {
            g.a + g.b
        }
        fn field_removed(&self, s: Shrunk) -> u32 {
            s.a
        }
        fn now_optional(&self, x: Option<u32>) -> u32 {
            x.unwrap_or(0)
        }
        fn wrapped(&self, m: Meters) -> f64 {
            m.0
        }
        fn borrowed(&self, s: &str) -> u64 {
            s.len() as u64
        }
        fn serde_renamed(&self, p: Place) -> i32 {
            p.x - p.height
        }
        fn greeting(&self) -> String {
            "hello".into()
        }
    }
}

/// Binds every name of [`NAMES`] in `$LPC_RUNTIME_DIR` (or the default runtime directory),
/// each with its interface served on a thread of its own, prints `ready <build> <pid>` once
/// clients can connect to all of them, and serves until the process is killed.
pub fn serve_all() -> Result<(), lpc::Error> {
    use add_method::{AddMethodServer, AddMethodService};
    use add_variant::{AddVariantServer, AddVariantService};
    use changes::{ChangesServer, ChangesService};
    use remove_method::{RemoveMethodServer, RemoveMethodService};
    use rename::{RenameServer, RenameService};
    use reorder::{ReorderServer, ReorderService};
    use retype::{RetypeServer, RetypeService};

    let bind = |name: &str| lpc::Server::bind(name);
    let _handles = [
        bind(NAMES[0])?.spawn(ReorderServer::new(ReorderService::default()))?,
        bind(NAMES[1])?.spawn(RenameServer::new(RenameService))?,
        bind(NAMES[2])?.spawn(RetypeServer::new(RetypeService::default()))?,
        bind(NAMES[3])?.spawn(AddVariantServer::new(AddVariantService))?,
        bind(NAMES[4])?.spawn(AddMethodServer::new(AddMethodService))?,
        bind(NAMES[5])?.spawn(RemoveMethodServer::new(RemoveMethodService))?,
        bind(NAMES[6])?.spawn(ChangesServer::new(ChangesService))?,
    ];
    println!("ready {BUILD} {}", std::process::id());
    loop {
        std::thread::park();
    }
}
