//! What the router reads for every event but changes rarely: the enabled rules of an event type and
//! the roster of an organization's role, kept for a few seconds. A change made through this
//! replica's API takes effect at once; one made through another replica within `ttl`.

use crate::store::{self, RosterRow, RuleRow};
use sqlx::PgConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

type Rules = Arc<Vec<RuleRow>>;
/// A role's roster (or its absence) as read at an instant.
type Kept = (Instant, Option<Arc<RosterRow>>);

pub struct Directory {
    ttl: Duration,
    rules: Mutex<HashMap<String, (Instant, Rules)>>,
    rosters: Mutex<HashMap<(Uuid, i32), Kept>>,
}

impl Directory {
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            rules: Mutex::default(),
            rosters: Mutex::default(),
        })
    }

    pub async fn rules(&self, conn: &mut PgConnection, event_type: &str) -> sqlx::Result<Rules> {
        if let Some((at, rules)) = self.rules.lock().expect("not poisoned").get(event_type)
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(rules));
        }
        let rules = Arc::new(store::enabled_rules_for(conn, event_type).await?);
        self.rules
            .lock()
            .expect("not poisoned")
            .insert(event_type.to_owned(), (Instant::now(), Arc::clone(&rules)));
        Ok(rules)
    }

    pub async fn roster(
        &self,
        conn: &mut PgConnection,
        org: Uuid,
        role: i32,
    ) -> sqlx::Result<Option<Arc<RosterRow>>> {
        if let Some((at, roster)) = self.rosters.lock().expect("not poisoned").get(&(org, role))
            && at.elapsed() < self.ttl
        {
            return Ok(roster.clone());
        }
        let roster = store::roster(conn, org, role).await?.map(Arc::new);
        self.rosters
            .lock()
            .expect("not poisoned")
            .insert((org, role), (Instant::now(), roster.clone()));
        Ok(roster)
    }

    /// A rule changed here: read the rules again.
    pub fn rules_changed(&self) {
        self.rules.lock().expect("not poisoned").clear();
    }

    /// A roster changed here: read it again.
    pub fn roster_changed(&self, org: Uuid, role: i32) {
        self.rosters
            .lock()
            .expect("not poisoned")
            .remove(&(org, role));
    }
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            rules: Mutex::default(),
            rosters: Mutex::default(),
        }
    }
}
