//! What a running service tells about itself: identity, interface, clients and per-method
//! statistics. Fetched with [`crate::query`]; shown by `lpc list` and `lpc monitor`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::interface::InterfaceInfo;

/// A service's answer to [`crate::query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The service name.
    pub service: String,
    /// The service's process id, as the asker's PID namespace numbers it: [`crate::query`]
    /// puts here what the kernel says about the process that accepted its connection, not what
    /// the service claims. `None` when the service runs in a PID namespace the asker cannot
    /// see.
    #[serde(with = "pid_or_zero")]
    pub pid: Option<u32>,
    /// The user it runs as (a uid on Unix, a SID on Windows); from the kernel too.
    pub user: String,
    /// How long the service has been serving.
    pub uptime: Duration,
    /// Its interface.
    pub interface: InterfaceInfo,
    /// Connections open now that the asker may see (may exceed `clients.len()`, which is
    /// capped): all of them for the service's own user, only its own for another user.
    pub connections: u64,
    /// The connected clients the asker may see (at most [`MAX_LISTED_CLIENTS`]): every client
    /// when the asker runs as the service's user; otherwise only the asker's user's own.
    pub clients: Vec<ClientInfo>,
    /// Per-method statistics since the service started, in interface order. They count every
    /// client's calls, whoever asks (they name no process).
    pub methods: Vec<MethodStats>,
    /// Calls whose method id the service did not know.
    pub unknown_calls: u64,
    /// The events the service emits (`#[lpc::events]`), with their shapes, if any.
    pub events: Option<InterfaceInfo>,
    /// The subscribers to them the asker may see (at most [`MAX_LISTED_CLIENTS`]), with what
    /// each received and missed.
    pub subscribers: Vec<SubscriberInfo>,
}

/// At most this many clients are listed in a [`ServiceInfo`].
pub const MAX_LISTED_CLIENTS: usize = 256;

/// One connected client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Process id (from the kernel, at connect), as the service's PID namespace numbers it:
    /// `None` when the client runs in a PID namespace the service cannot see.
    #[serde(with = "pid_or_zero")]
    pub pid: Option<u32>,
    /// The user it runs as (a uid on Unix, a SID on Windows).
    pub user: String,
    /// Its primary group (Unix).
    pub gid: Option<u32>,
    /// The process name (`/proc/<pid>/comm` at connect), if known (empty otherwise). The
    /// client chose it: show it escaped.
    pub process: String,
    /// How long it has been connected.
    pub connected_for: Duration,
    /// Calls it has made.
    pub calls: u64,
}

/// One subscriber to a service's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberInfo {
    /// Process id (from the kernel, at connect), `None` if unknown.
    #[serde(with = "pid_or_zero")]
    pub pid: Option<u32>,
    /// The user it runs as.
    pub user: String,
    /// The events it asked for (`None`: all).
    pub events: Option<Vec<String>>,
    /// Its ring's size in bytes.
    pub ring: u64,
    /// What happens when its ring is full: `drop-oldest`, `drop-newest` or `disconnect`.
    pub policy: String,
    /// Events written into its ring.
    pub delivered: u64,
    /// Events it missed (dropped for it).
    pub dropped: u64,
}

/// A pid that may be unknown, as 0 on the wire (as `SO_PEERCRED` reports an unknown one, and
/// as every pid crossed before it could be unknown: the encoding is unchanged).
mod pid_or_zero {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(pid: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(pid.unwrap_or(0))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Ok(Some(u32::deserialize(d)?).filter(|&pid| pid != 0))
    }
}

/// Statistics of one method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodStats {
    /// The method name.
    pub name: String,
    /// Calls served.
    pub calls: u64,
    /// Calls that failed in the service (panic, bad arguments, result too large or not
    /// encodable). Application errors (`Err` of a `Result` method) are successful calls.
    pub errors: u64,
    /// Service-side duration of a sample of calls.
    pub latency: LatencyHistogram,
}

/// Number of buckets of a [`LatencyHistogram`].
pub const LATENCY_BUCKETS: usize = 40;

/// A histogram of durations in power-of-two buckets: bucket `i` counts durations in
/// `[2^i, 2^(i+1))` nanoseconds (bucket 0 also holds zero).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// The counts, one per bucket.
    pub buckets: Vec<u64>,
}

impl LatencyHistogram {
    /// The bucket of a duration of `ns` nanoseconds.
    pub fn bucket_of(ns: u64) -> usize {
        (63 - ns.max(1).leading_zeros() as usize).min(LATENCY_BUCKETS - 1)
    }

    /// Number of samples (saturating: a peer's histogram may hold any counts).
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |sum, &n| sum.saturating_add(n))
    }

    /// The duration below which a fraction `p` (0 to 1) of the samples fall, as the upper
    /// bound of the bucket that holds it (so within a factor of 2 above the true value).
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * p.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen >= rank {
                return Some(Duration::from_nanos(1u64 << (i + 1).min(63)));
            }
        }
        None
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a = a.saturating_add(*b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown pid crosses as 0, the encoding every pid had before it could be unknown.
    #[test]
    fn an_unknown_pid_crosses_as_zero() {
        let client = |pid| ClientInfo {
            pid,
            user: "0".into(),
            gid: Some(0),
            process: String::new(),
            connected_for: Duration::ZERO,
            calls: 0,
        };
        let plain = |pid: u32| (pid, "0", Some(0u32), "", Duration::ZERO, 0u64);
        for pid in [None, Some(1), Some(4_000_000)] {
            let bytes = postcard::to_stdvec(&client(pid)).unwrap();
            let before = postcard::to_stdvec(&plain(pid.unwrap_or(0))).unwrap();
            assert_eq!(bytes, before);
            let back: ClientInfo = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back.pid, pid);
        }
    }

    #[test]
    fn percentiles_come_from_bucket_bounds() {
        let mut h = LatencyHistogram {
            buckets: vec![0; LATENCY_BUCKETS],
        };
        for ns in [100u64, 150, 200, 5000] {
            h.buckets[LatencyHistogram::bucket_of(ns)] += 1;
        }
        assert_eq!(LatencyHistogram::bucket_of(0), 0);
        assert_eq!(LatencyHistogram::bucket_of(1), 0);
        assert_eq!(LatencyHistogram::bucket_of(1024), 10);
        assert_eq!(h.count(), 4);
        assert_eq!(h.percentile(0.5), Some(Duration::from_nanos(256)));
        assert_eq!(h.percentile(1.0), Some(Duration::from_nanos(8192)));
        assert_eq!(LatencyHistogram::default().percentile(0.5), None);
    }
}
