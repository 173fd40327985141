//! The security log.

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use zapini_core::audit::{Event, EventKind};

use crate::StoreError;
use crate::entity::audit_event::{ActiveModel, Column, Entity, Model};

/// Repository of security events.
#[derive(Debug)]
pub struct Audit<'a> {
    db: &'a DatabaseConnection,
}

fn to_event(m: Model) -> Option<(i64, Event)> {
    Some((
        m.id,
        Event {
            user_id: m.user_id,
            kind: EventKind::parse(&m.kind)?,
            detail: serde_json::from_str(&m.detail).unwrap_or(serde_json::Value::Null),
            ip: m.ip,
            user_agent: m.user_agent,
            at: m.at,
        },
    ))
}

impl<'a> Audit<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn record(&self, event: &Event) -> Result<(), StoreError> {
        let row = ActiveModel {
            user_id: Set(event.user_id.clone()),
            kind: Set(event.kind.as_str().to_owned()),
            detail: Set(event.detail.to_string()),
            ip: Set(event.ip.clone()),
            user_agent: Set(event.user_agent.clone()),
            at: Set(event.at),
            ..Default::default()
        };
        Entity::insert(row).exec(self.db).await?;
        Ok(())
    }

    /// A user's most recent events, newest first.
    pub async fn for_user(&self, user_id: &str, limit: u64) -> Result<Vec<Event>, StoreError> {
        let rows = Entity::find()
            .filter(Column::UserId.eq(user_id))
            .order_by_desc(Column::At)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(to_event)
            .map(|(_, e)| e)
            .collect())
    }

    /// Events with an id above `after`, oldest first, at most `limit`: pages
    /// through the whole log for export.
    pub async fn page(&self, after: i64, limit: u64) -> Result<Vec<(i64, Event)>, StoreError> {
        let rows = Entity::find()
            .filter(Column::Id.gt(after))
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(self.db)
            .await?;
        Ok(rows.into_iter().filter_map(to_event).collect())
    }
}
