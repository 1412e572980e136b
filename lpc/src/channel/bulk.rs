//! The bulk buffers of a connection: ours (created here, lent to the peer) and the peer's
//! (mapped on first sight). See `shm::bulk` for the memory rules and `crate::loan` for the
//! public type.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use super::{Channel, ChannelError, MAX_BULK_BUFFERS};
use crate::shm::bulk::{BulkBuffer, BulkClaim, PeerBulk};
use crate::shm::layout::Side;
use crate::shm::Region;
use crate::sys::SharedMemory;
use crate::wire::handshake::Message;

/// Smallest bulk buffer (one page).
const MIN_BULK: usize = 4096;

#[derive(Default)]
pub(crate) struct BulkTable {
    ours: Mutex<Vec<Arc<BulkBuffer>>>,
    theirs: Mutex<HashMap<u32, Arc<PeerBulk>>>,
    /// What both sets cost the service's budget, given back when the connection ends.
    charges: Mutex<Vec<super::budget::Charge>>,
}

impl BulkTable {
    fn keep(&self, charge: Option<super::budget::Charge>) {
        if let Some(charge) = charge {
            self.charges
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(charge);
        }
    }
}

impl Channel {
    /// Claims one of our bulk buffers with room for `len` bytes, creating (and announcing) a
    /// new one if none is free.
    pub(crate) fn bulk_claim(&self, len: usize) -> Result<BulkClaim, ChannelError> {
        let mut ours = self.bulk.ours.lock().unwrap_or_else(|p| p.into_inner());
        // The smallest free buffer that fits (no allocation: this runs once per loan).
        let mut best: Option<BulkClaim> = None;
        for buffer in ours.iter().filter(|b| b.capacity() >= len) {
            if best
                .as_ref()
                .is_some_and(|c| c.buffer().capacity() <= buffer.capacity())
            {
                continue;
            }
            if let Some(claim) = buffer.try_claim() {
                best = Some(claim); // dropping the previous best releases it
            }
        }
        if let Some(claim) = best {
            return Ok(claim);
        }
        if ours.len() >= MAX_BULK_BUFFERS {
            return Err(ChannelError::Io(io::Error::other(format!(
                "all {MAX_BULK_BUFFERS} bulk buffers of this connection are in use: drop some loans"
            ))));
        }
        let id = ours.len() as u32;
        let size = len.max(MIN_BULK).checked_next_power_of_two().unwrap_or(len);
        let charge = self.charge(size)?;
        // Only this side writes it: the peer can map it read-only, no more (see `shm::bulk`).
        let (shm, mapping) = SharedMemory::create_one_writer("lpc-bulk", size)?;
        let side = self.memory.side();
        let buffer = Arc::new(BulkBuffer::new(
            id,
            Region::new(mapping),
            self.memory.lent(side, id),
        ));
        self.stream
            .send(&Message::Bulk { id }.encode(), Some(&shm))?;
        let claim = buffer.try_claim().expect("a new buffer is free");
        ours.push(buffer);
        self.bulk.keep(charge);
        Ok(claim)
    }

    /// The peer's bulk buffer `id`, mapped (receiving it from the socket on first sight).
    /// `limit` is the largest payload this side accepts.
    pub(crate) fn bulk_theirs(&self, id: u32, limit: u64) -> Result<Arc<PeerBulk>, ChannelError> {
        if id as usize >= MAX_BULK_BUFFERS {
            return Err(ChannelError::Protocol(format!(
                "bulk buffer id {id} out of range"
            )));
        }
        if let Some(bulk) = self
            .bulk
            .theirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(bulk.clone());
        }
        let shm = self.receive_bulk(id)?;
        let max = limit.saturating_mul(2).max(MIN_BULK as u64);
        if shm.len() as u64 > max {
            return Err(ChannelError::Protocol(format!(
                "peer sent a {} byte bulk buffer, more than the {max} allowed",
                shm.len()
            )));
        }
        let charge = match self.charge(shm.len()) {
            Ok(charge) => charge,
            Err(e) => {
                // Kept for a later call that names it, when the budget has room again.
                self.keep_bulk(id, shm);
                return Err(e);
            }
        };
        let creator = match self.memory.side() {
            Side::Client => Side::Service,
            Side::Service => Side::Client,
        };
        // The peer writes it, we only read (by copying): mapped read-only.
        let bulk = PeerBulk::new(
            Region::new(shm.map_read_only()?),
            self.memory.lent(creator, id),
        )
        .ok_or_else(|| ChannelError::Protocol("peer sent an empty bulk buffer".into()))?;
        let bulk = Arc::new(bulk);
        self.bulk.keep(charge);
        self.bulk
            .theirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, bulk.clone());
        Ok(bulk)
    }
}
