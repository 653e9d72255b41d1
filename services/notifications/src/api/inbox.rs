//! A role's inbox: list, read, acknowledge with a note, and watch (server streaming, resumable
//! from a cursor). Staff read the inboxes of the roles they hold in their own organization;
//! internal services name the organization.

use super::{EntryStream, NotificationsApi, SOURCE, convert};
use crate::domain::ladder::role_name;
use crate::store::{self, ItemRow};
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{NotificationAcknowledged, event::Payload};
use careloop_proto::notifications::v1::*;
use careloop_runtime::audit::{self, AuditEntry, Outcome};
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::paging::{self, Cursor};
use careloop_runtime::validate::{self as v, MAX_SHORT};
use uuid::Uuid;

/// Entries sent per read of the feed.
const FEED_BATCH: i64 = 100;

fn role(field: &str, value: i32) -> ApiResult<CareRole> {
    match v::enum_value::<CareRole>(field, value)? {
        CareRole::Unspecified => Err(ApiError::invalid(field, "is required")),
        role => Ok(role),
    }
}

/// The organization whose inbox the caller reads: staff their own; services must name one.
fn inbox_org(who: &Principal, requested: &str) -> ApiResult<Uuid> {
    careloop_runtime::access::staff_or_named_org(
        who,
        requested,
        "inboxes belong to the organization's staff",
    )
}

fn holds(who: &Principal, role: i32) -> bool {
    let Ok(role) = CareRole::try_from(role) else {
        return false;
    };
    let name = role_name(role);
    who.roles.contains(&name)
}

/// Staff read a role's inbox only while holding the role; services read any.
fn may_hold(who: &Principal, role: CareRole) -> ApiResult<()> {
    if who.kind == PrincipalKind::Service || holds(who, role as i32) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(
            "an inbox is read by those who hold its role",
        ))
    }
}

/// An item is there for a service, and for staff of its organization holding a role its ladder
/// has reached (`upto` its current rung) or will reach (`whole` ladder). For anyone else it does
/// not exist.
fn may_see(who: &Principal, item: &ItemRow, whole: bool) -> ApiResult<()> {
    if who.kind == PrincipalKind::Service {
        return Ok(());
    }
    let reached = usize::try_from(item.rung).unwrap_or(0);
    let roles = item
        .ladder
        .0
        .iter()
        .take(if whole { usize::MAX } else { reached + 1 });
    let mut roles = roles.map(|r| r.role).chain([item.role]);
    if who.kind == PrincipalKind::Staff && who.org_id == item.org_id && roles.any(|r| holds(who, r))
    {
        Ok(())
    } else {
        Err(ApiError::Hidden("inbox item"))
    }
}

impl NotificationsApi {
    pub(super) async fn list_inbox(
        &self,
        who: &Principal,
        req: ListInboxRequest,
    ) -> ApiResult<ListInboxResponse> {
        if !req.patient_id.is_empty() {
            return self.list_patient_items(who, req).await;
        }
        let roles: Vec<i32> = if req.mine {
            if req.role != 0 {
                return Err(ApiError::invalid(
                    "role",
                    "is left unspecified for your own inbox (mine)",
                ));
            }
            if who.kind != PrincipalKind::Staff {
                return Err(ApiError::PermissionDenied(
                    "a personal inbox belongs to staff",
                ));
            }
            let held: Vec<i32> = who
                .roles
                .iter()
                .filter_map(|r| crate::domain::ladder::role_named(r))
                .map(|r| r as i32)
                .collect();
            held
        } else {
            vec![role("role", req.role)? as i32]
        };
        let limit = paging::page_size(req.page_size)?;
        let after = paging::decode(&req.page_token)?;
        let org = inbox_org(who, &req.org_id)?;
        if !req.mine {
            may_hold(
                who,
                CareRole::try_from(roles[0]).unwrap_or(CareRole::Unspecified),
            )?;
        }
        let mut conn = self.pool.acquire().await?;
        let rows = store::inbox(&mut conn, org, &roles, req.include_closed, after, limit).await?;
        let (rows, next_page_token) = paging::cut(rows, limit, |r| Cursor {
            at: r.created_at,
            id: r.id,
        });
        let open_count = store::open_count(&mut conn, org, &roles).await?;
        let seen: Vec<Uuid> = rows.iter().map(|r| r.patient_id).collect();
        audit::record_reads(&mut conn, who, "ListInbox", &seen).await?;
        Ok(ListInboxResponse {
            items: rows.into_iter().map(convert::item).collect(),
            next_page_token,
            open_count,
        })
    }

    /// One patient's open items in the organization's inbox (read by its staff, or a service
    /// naming the organization), oldest first.
    async fn list_patient_items(
        &self,
        who: &Principal,
        req: ListInboxRequest,
    ) -> ApiResult<ListInboxResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        if req.role != 0 || req.mine || req.include_closed {
            return Err(ApiError::invalid(
                "patient_id",
                "is given alone (no role, mine or include_closed)",
            ));
        }
        let limit = paging::page_size(req.page_size)?;
        let after = paging::decode(&req.page_token)?;
        let org = inbox_org(who, &req.org_id)?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::open_items_for_patient(&mut conn, org, patient_id, after, limit).await?;
        let (rows, next_page_token) = paging::cut(rows, limit, |r| Cursor {
            at: r.created_at,
            id: r.id,
        });
        let open_count = store::open_count_for_patient(&mut conn, org, patient_id).await?;
        audit::record_reads(&mut conn, who, "ListInbox", &[patient_id]).await?;
        Ok(ListInboxResponse {
            items: rows.into_iter().map(convert::item).collect(),
            next_page_token,
            open_count,
        })
    }

    pub(super) async fn get_item(
        &self,
        who: &Principal,
        req: GetItemRequest,
    ) -> ApiResult<GetItemResponse> {
        let id = v::uuid("item_id", &req.item_id)?;
        let mut conn = self.pool.acquire().await?;
        let mut item = store::get_item(&mut conn, id).await?;
        may_see(who, &item, true)?;
        if who.kind == PrincipalKind::Staff && item.status == "open" && holds(who, item.role) {
            // Opened by someone holding its role: read (no fallback text will go).
            let mut tx = self.pool.begin().await?;
            if crate::receipts::read(&mut tx, item.id, &who.subject).await? {
                tx.commit().await?;
                item = store::get_item(&mut conn, id).await?;
            }
        }
        audit::record(
            &mut conn,
            AuditEntry {
                principal: who,
                action: "GetItem",
                patient_id: Some(item.patient_id),
                target_id: Some(item.id),
                outcome: Outcome::Ok,
            },
        )
        .await?;
        Ok(GetItemResponse {
            item: Some(convert::item(item)),
        })
    }

    pub(super) async fn acknowledge_item(
        &self,
        who: &Principal,
        req: AcknowledgeItemRequest,
    ) -> ApiResult<AcknowledgeItemResponse> {
        let id = v::uuid("item_id", &req.item_id)?;
        let version = v::expected_version(req.expected_version)?;
        let note = v::text("note", &req.note, MAX_SHORT)?;
        let (mut w, mut item) = careloop_runtime::begin_write!(
            self.pool, SOURCE, "AcknowledgeItem", who, req, w => {
                // Access is checked again on a replay; the version only on a first call.
                let item = store::lock_item(w.conn(), id, None).await?;
                may_see(who, &item, false)?;
                item
            }
        );
        ApiError::ensure_version(item.version, version)?;
        if item.status != "open" {
            return Err(ApiError::refused_move(format!(
                "the item is {} already",
                item.status
            )));
        }
        let now = careloop_runtime::time::now();
        item.status = "acknowledged".into();
        item.acknowledged_at = Some(now);
        item.acknowledged_by = Some(who.subject.clone());
        item.note = note;
        item.escalates_at = None;
        item.closed_at = Some(now);
        item.version += 1;
        store::save_item(w.conn(), &item).await?;
        w.belongs_to(Some(item.org_id));
        w.emit(
            item.patient_id,
            item.id,
            item.version,
            Payload::NotificationAcknowledged(NotificationAcknowledged {
                item_id: item.id.to_string(),
                loop_kind: item.loop_kind,
                loop_id: item.loop_id.to_string(),
                role: item.role,
                rung: item.rung,
                raised_at: Some(careloop_runtime::time::to_timestamp(item.created_at)),
            }),
        )
        .await?;
        crate::webhooks::enqueue(w.conn(), &item, "notifications.item.acknowledged", now).await?;
        let (patient_id, item_id) = (item.patient_id, item.id);
        w.finish(
            patient_id,
            item_id,
            AcknowledgeItemResponse {
                item: Some(convert::item(item)),
            },
        )
        .await
    }

    pub(super) async fn watch_inbox(
        &self,
        who: &Principal,
        req: WatchInboxRequest,
    ) -> ApiResult<EntryStream> {
        let role = role("role", req.role)? as i32;
        let org = inbox_org(who, &req.org_id)?;
        let cursor = if req.cursor.is_empty() {
            None
        } else {
            Some(
                req.cursor
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| {
                        ApiError::invalid("cursor", "is not a cursor this inbox gave")
                    })?,
            )
        };
        may_hold(
            who,
            CareRole::try_from(role).unwrap_or(CareRole::Unspecified),
        )?;
        let mut conn = self.pool.acquire().await?;
        let mut position = match cursor {
            Some(c) => c,
            None => store::last_position(&mut conn).await?,
        };
        audit::record(
            &mut conn,
            AuditEntry {
                principal: who,
                action: "WatchInbox",
                patient_id: None,
                target_id: None,
                outcome: Outcome::Ok,
            },
        )
        .await?;
        drop(conn);
        let (tx, rx) = tokio::sync::mpsc::channel(FEED_BATCH as usize);
        let pool = self.pool.clone();
        let mut waker = self.waker.clone();
        let mut shutdown = self.shutdown.clone();
        let who = who.clone();
        tokio::spawn(async move {
            loop {
                let entries = match pool.acquire().await {
                    Ok(mut conn) => {
                        let read =
                            store::feed_after(&mut conn, org, role, position, FEED_BATCH).await;
                        if let Ok(entries) = &read {
                            let seen: Vec<Uuid> =
                                entries.iter().map(|e| e.item.patient_id).collect();
                            if let Err(error) =
                                audit::record_reads(&mut conn, &who, "WatchInbox", &seen).await
                            {
                                tracing::error!(error = %careloop_runtime::error::redacted(&anyhow::Error::from(error)), "watch reads not audited; stream ends");
                                let _ = tx
                                    .send(Err(tonic::Status::unavailable(
                                        "inbox unavailable; resume with the last cursor",
                                    )))
                                    .await;
                                return;
                            }
                        }
                        read
                    }
                    Err(e) => Err(e),
                };
                let Ok(entries) = entries else {
                    let _ = tx
                        .send(Err(tonic::Status::unavailable(
                            "inbox unavailable; resume with the last cursor",
                        )))
                        .await;
                    return;
                };
                let full = entries.len() as i64 == FEED_BATCH;
                let pushed: Vec<Uuid> = entries.iter().map(|e| e.item.id).collect();
                for entry in entries {
                    position = entry.position;
                    let message = InboxEntry {
                        cursor: entry.position.to_string(),
                        kind: convert::entry_kind(&entry.kind),
                        item: Some(convert::item(entry.item)),
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                if !pushed.is_empty() {
                    // Receipts off the stream's path: the next entries do not wait for them.
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let receipt = async {
                            let mut tx = pool.begin().await?;
                            crate::receipts::delivered(&mut tx, &pushed, "watch").await?;
                            tx.commit().await
                        };
                        if let Err(error) = receipt.await {
                            tracing::warn!(error = %careloop_runtime::error::redacted(&anyhow::Error::from(error)), "delivery receipts not recorded");
                        }
                    });
                }
                if full {
                    continue;
                }
                tokio::select! {
                    _ = waker.wait() => {}
                    _ = tx.closed() => return,
                    _ = shutdown.changed() => return,
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}
