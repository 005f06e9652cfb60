//! The app's config writes and deletes, and applying config events to the
//! registers (last writer wins, bounded by the key limit and the register
//! cap).

use std::sync::Arc;

use super::{Node, PublishError};
use crate::event::{Event, EventBody, EventError, EventId, Version};
use crate::registers::{Apply, register_cap};
use crate::runtime::Runtime;
use crate::time::Time;

impl Node {
    /// Sets a config value (last writer wins across the cluster).
    pub fn set_config<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        key: String,
        value: String,
        rt: &mut R,
    ) -> Result<EventId, PublishError> {
        if let Err(e) = self.check_config_room(&key) {
            self.stats.publish_too_large += 1;
            return Err(e);
        }
        let version = self.next_version(now);
        self.originate(
            now,
            EventBody::Config {
                key,
                value,
                version,
            },
            rt,
        )
    }

    /// Deletes a config key (its register becomes a tombstone), as a local
    /// publish.
    pub fn delete_config<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        key: String,
        rt: &mut R,
    ) -> Result<EventId, PublishError> {
        if !self.registers.is_live(&key) {
            // Nothing to delete: answer so, and leave no tombstone behind.
            self.stats.publish_no_such_key += 1;
            return Err(PublishError::NoSuchKey { key });
        }
        let version = self.next_version(now);
        self.originate(now, EventBody::ConfigDelete { key, version }, rt)
    }

    /// The app's own writes: at most `max_config_keys` live keys (tombstones
    /// do not count), and never one the register cap would refuse.
    pub(super) fn check_config_room(&self, key: &str) -> Result<(), PublishError> {
        if self.registers.is_live(key) {
            return Ok(());
        }
        let max = self.cfg.limits.max_config_keys;
        let live = self.registers.live_len();
        let cap = register_cap(max);
        let refused_at_cap = self.registers.get(key).is_none()
            && self.registers.len() >= cap
            && self.registers.last_key().is_none_or(|last| key > last);
        if live >= max || refused_at_cap {
            return Err(EventError::TooManyConfigKeys {
                count: live + 1,
                max,
            }
            .into());
        }
        Ok(())
    }

    /// Applies a config event to the registers, counting what happened and
    /// telling the app about a live key evicted at the cap. True when the
    /// write is now current.
    pub(super) fn apply_config<R: Runtime + ?Sized>(
        &mut self,
        event: &Arc<Event>,
        now: Time,
        rt: &mut R,
    ) -> bool {
        let cap = register_cap(self.cfg.limits.max_config_keys);
        match self.registers.apply(event, now, cap) {
            Apply::Newer => true,
            Apply::NewerEvicting(old) => {
                self.stats.config_evicted += 1;
                if old.value.is_some()
                    && let Some((key, version)) = old.event.body.config_version()
                {
                    rt.config_evicted(key, version);
                }
                true
            }
            Apply::Stale => {
                self.stats.config_stale += 1;
                false
            }
            Apply::RefusedAtCap => {
                self.stats.config_rejected_cap += 1;
                false
            }
            Apply::NotConfig => false,
        }
    }

    pub(super) fn next_version(&mut self, now: Time) -> Version {
        Version {
            hlc: self.hlc.tick(now),
            origin: self.origin,
        }
    }
}
