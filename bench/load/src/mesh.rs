//! Who hears whom in a WebRTC room, so the steps start measuring only once
//! every track is flowing.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::traffic::Plan;

/// Who hears whom in one room: filled by the receivers, read by
/// `webrtc::negotiated`.
#[derive(Debug)]
pub(crate) struct Mesh {
    plans: Vec<Plan>,
    /// Per participant: the (sender id, video) pairs it has received.
    heard: Vec<Mutex<HashSet<(u32, bool)>>>,
}

impl Mesh {
    pub(crate) fn new(plans: Vec<Plan>) -> Self {
        let heard = plans.iter().map(|_| Mutex::default()).collect();
        Self { plans, heard }
    }

    pub(crate) fn note(&self, receiver: usize, sender: u32, video: bool) {
        if let Some(heard) = self.heard.get(receiver) {
            heard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((sender, video));
        }
    }

    /// Tracks not received yet: (receiver, sender, video) triples.
    pub(crate) fn missing(&self) -> usize {
        let mut missing = 0;
        for (r, heard) in self.heard.iter().enumerate() {
            let heard = heard.lock().unwrap_or_else(PoisonError::into_inner);
            for (s, plan) in self.plans.iter().enumerate() {
                if s == r {
                    continue;
                }
                missing += usize::from(!heard.contains(&(plan.id, false)));
                missing += usize::from(plan.video && !heard.contains(&(plan.id, true)));
            }
        }
        missing
    }
}
