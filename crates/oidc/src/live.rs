//! What a reload replaces while the server runs: the client registry and the
//! signing keys. Handlers never hold the lock; each request takes a
//! snapshot of the whole state, so it sees one registry and one key ring
//! from start to end, and a reload swaps both for the requests after it.

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::FromRef;

use crate::{ClientRegistry, KeyRing, OidcState};

/// The protocol state, replaceable in parts.
#[derive(Clone)]
pub struct LiveState {
    current: Arc<RwLock<OidcState>>,
}

impl LiveState {
    pub fn new(state: OidcState) -> Self {
        Self {
            current: Arc::new(RwLock::new(state)),
        }
    }

    /// The state in force now. A writer only swaps two `Arc`s, so a lock
    /// poisoned by a panic elsewhere still holds a whole state.
    pub fn snapshot(&self) -> OidcState {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn replace_clients(&self, clients: ClientRegistry) {
        let clients = Arc::new(clients);
        self.current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clients = clients;
    }

    pub fn replace_keys(&self, keys: KeyRing) {
        let keys = Arc::new(keys);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        current.keys = keys;
        // Both documents follow from the keys.
        current.documents = Arc::default();
    }
}

impl FromRef<LiveState> for OidcState {
    fn from_ref(live: &LiveState) -> Self {
        live.snapshot()
    }
}
