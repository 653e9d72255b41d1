//! A role's worklist across services: every open loop it owns in plans (tasks, handoffs to it),
//! referrals (referrals, orders, results it owns or backs up) and prior-auth, merged in one order
//! (by due time, so overdue first, then by id) and filtered to patients the caller may read (plans'
//! batch decision). Each service pages by the same key, so the page token holds one position per
//! service: a page resumes every service exactly after the last loop it consumed, and pages stay
//! stable while loops are added elsewhere in the list.

use crate::api::{Budget, Gateway, caller, unavailable_reason};
use crate::downstream::as_gateway;
use crate::items::{self, Line};
use base64::Engine as _;
use careloop_proto::common::v1::CareRole;
use careloop_proto::gateway::v1::{
    ListWorklistRequest, ListWorklistResponse, Section, SectionState,
};
use careloop_proto::notifications::v1::ListInboxRequest;
use careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{
    ListOpenTasksRequest, ListUnacknowledgedHandoffsRequest, list_open_tasks_request,
};
use careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient;
use careloop_proto::priorauth::v1::{ListRequestsRequest, list_requests_request};
use careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient;
use careloop_proto::referrals::v1::{ListOpenLoopsRequest, list_open_loops_request};
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::error::ApiError;
use careloop_runtime::paging::{self, Cursor};
use careloop_runtime::time::now;
use std::collections::VecDeque;
use tonic::Status;

/// The services a worklist reads, in token order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Tasks,
    Handoffs,
    Referrals,
    PriorAuth,
}

pub const SOURCES: [Source; 4] = [
    Source::Tasks,
    Source::Handoffs,
    Source::Referrals,
    Source::PriorAuth,
];

impl Source {
    fn section(self) -> Section {
        match self {
            Self::Tasks | Self::Handoffs => Section::Tasks,
            Self::Referrals => Section::Referrals,
            Self::PriorAuth => Section::PriorAuth,
        }
    }
}

/// Where a source's next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Start,
    After(Cursor),
    Done,
}

/// Fetch rounds per page: a caller who may read few of a role's loops gets a short page with a
/// token rather than a scan of every service's whole list in one call.
const MAX_ROUNDS: usize = 8;

pub fn encode(positions: &[Position; 4]) -> String {
    if positions.iter().all(|p| *p == Position::Done) {
        return String::new();
    }
    let text: Vec<String> = positions
        .iter()
        .map(|p| match p {
            Position::Start => "-".to_owned(),
            Position::Done => "x".to_owned(),
            Position::After(c) => format!("{}.{}", c.at.timestamp_micros(), c.id.simple()),
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.join("~"))
}

pub fn decode(token: &str) -> Result<[Position; 4], ApiError> {
    if token.is_empty() {
        return Ok([Position::Start; 4]);
    }
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    if token.len() > 400 {
        return Err(bad());
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split('~').collect();
    if parts.len() != 4 {
        return Err(bad());
    }
    let mut positions = [Position::Start; 4];
    for (slot, part) in positions.iter_mut().zip(parts) {
        *slot = match part {
            "-" => Position::Start,
            "x" => Position::Done,
            cursor => {
                let (micros, id) = cursor.split_once('.').ok_or_else(bad)?;
                let at =
                    chrono::DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?)
                        .ok_or_else(bad)?;
                let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
                Position::After(Cursor { at, id })
            }
        };
    }
    Ok(positions)
}

/// One fetched page of a source.
pub struct Fetched {
    pub lines: Vec<Line>,
    pub more: bool,
}

/// The merge's state for one page.
pub struct Merge {
    pub positions: [Position; 4],
    buffers: [VecDeque<Line>; 4],
    more: [bool; 4],
    /// Sources that did not answer: left where they were, missing from this page.
    pub skipped: [bool; 4],
    /// Why each skipped source is missing, for the caller.
    pub reasons: [String; 4],
}

pub enum Next {
    /// The smallest pending loop across sources (its source's position moved past it).
    Line(Box<Line>),
    /// This source's buffer is spent and it has more: fetch before merging further.
    Fetch,
    Finished,
}

impl Merge {
    pub fn new(positions: [Position; 4]) -> Self {
        Self {
            positions,
            buffers: Default::default(),
            more: [false; 4],
            skipped: [false; 4],
            reasons: Default::default(),
        }
    }

    /// Sources to fetch now: not done, not skipped, nothing buffered.
    pub fn wanted(&self) -> Vec<usize> {
        (0..4)
            .filter(|&i| {
                self.positions[i] != Position::Done
                    && !self.skipped[i]
                    && self.buffers[i].is_empty()
            })
            .collect()
    }

    pub fn fill(&mut self, i: usize, lines: Vec<Line>, more: bool) {
        if lines.is_empty() && !more {
            self.positions[i] = Position::Done;
        }
        self.buffers[i] = lines.into();
        self.more[i] = more;
    }

    pub fn skip(&mut self, i: usize, reason: String) {
        self.skipped[i] = true;
        self.reasons[i] = reason;
    }

    pub fn pop(&mut self) -> Next {
        let mut best: Option<usize> = None;
        for i in 0..4 {
            if self.skipped[i] || self.positions[i] == Position::Done {
                continue;
            }
            let Some(head) = self.buffers[i].front() else {
                // Not done and nothing buffered: its next loop could come before any other.
                return Next::Fetch;
            };
            let better = best.is_none_or(|b| {
                let other = &self.buffers[b][0].cursor;
                (head.cursor.at, head.cursor.id) < (other.at, other.id)
            });
            if better {
                best = Some(i);
            }
        }
        let Some(i) = best else {
            return Next::Finished;
        };
        let Some(line) = self.buffers[i].pop_front() else {
            return Next::Finished;
        };
        self.positions[i] = Position::After(line.cursor);
        if self.buffers[i].is_empty() && !self.more[i] {
            self.positions[i] = Position::Done;
        }
        Next::Line(Box::new(line))
    }
}

/// Fills one page: fetches the sources that need it, asks who may read the new lines' patients,
/// and merges, skipping lines the caller may not read (their source still moves past them). The
/// decisions of every round are kept for the whole page: a line fetched in one round may be merged
/// in a later one. A source that fails is skipped for this page, where it stands.
pub async fn assemble<F, FFut, D, DFut>(
    merge: &mut Merge,
    limit: usize,
    mut fetch: F,
    mut decide: D,
) -> Result<Vec<Line>, Status>
where
    F: FnMut(Vec<(usize, Option<Cursor>)>) -> FFut,
    FFut: std::future::Future<Output = Vec<Result<Fetched, Status>>>,
    D: FnMut(Vec<uuid::Uuid>) -> DFut,
    DFut: std::future::Future<Output = Result<std::collections::HashMap<uuid::Uuid, bool>, Status>>,
{
    let mut out: Vec<Line> = Vec::with_capacity(limit);
    let mut readable: std::collections::HashMap<uuid::Uuid, bool> = Default::default();
    let mut rounds = 0;
    'page: while out.len() < limit && rounds < MAX_ROUNDS {
        rounds += 1;
        let wanted: Vec<(usize, Option<Cursor>)> = merge
            .wanted()
            .into_iter()
            .map(|i| {
                let after = match merge.positions[i] {
                    Position::After(c) => Some(c),
                    _ => None,
                };
                (i, after)
            })
            .collect();
        let indexes: Vec<usize> = wanted.iter().map(|(i, _)| *i).collect();
        let fetched = fetch(wanted).await;
        let mut patients = Vec::new();
        for (i, result) in indexes.into_iter().zip(fetched) {
            match result {
                Ok(f) => {
                    patients.extend(
                        f.lines
                            .iter()
                            .map(|l| l.patient_id)
                            .filter(|p| !readable.contains_key(p)),
                    );
                    merge.fill(i, f.lines, f.more);
                }
                Err(status) => {
                    tracing::debug!(source = ?SOURCES[i], code = ?status.code(), "worklist source skipped");
                    merge.skip(i, unavailable_reason(&status));
                }
            }
        }
        patients.sort_unstable();
        patients.dedup();
        if !patients.is_empty() {
            readable.extend(decide(patients).await?);
        }
        loop {
            match merge.pop() {
                Next::Line(line) => {
                    if readable.get(&line.patient_id).copied().unwrap_or(false) {
                        out.push(*line);
                        if out.len() == limit {
                            break 'page;
                        }
                    }
                }
                Next::Fetch => continue 'page,
                Next::Finished => break 'page,
            }
        }
    }
    Ok(out)
}

impl Gateway {
    pub async fn list_worklist(
        &self,
        request: tonic::Request<ListWorklistRequest>,
    ) -> Result<tonic::Response<ListWorklistResponse>, Status> {
        let who = caller(&request)?;
        let budget = Budget::of(request.metadata(), &self.settings);
        let req = request.into_inner();
        let role = careloop_runtime::validate::enum_value::<CareRole>("role", req.role)?;
        let limit = paging::page_size(req.page_size)? as usize;
        let mut merge = Merge::new(decode(&req.page_token)?);
        let inbox = self.inbox_count(&who, role, &budget);
        let page = async {
            let fetch = |wanted: Vec<(usize, Option<Cursor>)>| {
                futures::future::join_all(
                    wanted
                        .into_iter()
                        .map(|(i, after)| self.fetch(SOURCES[i], role, after, limit, &budget)),
                )
            };
            let who = &who;
            let budget = &budget;
            let decide = |patients: Vec<uuid::Uuid>| async move {
                let decisions = self
                    .access
                    .decide(who, &patients, budget.call())
                    .await
                    .map_err(crate::api::reasoned)?;
                Ok(decisions
                    .into_iter()
                    .map(|(p, d)| (p, d.can_read))
                    .collect())
            };
            assemble(&mut merge, limit, fetch, decide).await
        };
        let (page, inbox_open_count) = tokio::join!(page, inbox);
        let lines = page?;
        let shown = items::patients_of(&lines);
        crate::audit::reads(&self.pool, &who, "ListWorklist", &shown).await?;
        let mut sections: Vec<SectionState> = Vec::new();
        for (i, source) in SOURCES.iter().enumerate() {
            if merge.skipped[i]
                && !sections
                    .iter()
                    .any(|s| s.section == source.section() as i32)
            {
                sections.push(SectionState {
                    section: source.section() as i32,
                    available: false,
                    reason: merge.reasons[i].clone(),
                    truncated: false,
                });
            }
        }
        let inbox_open_count = match inbox_open_count {
            Some(Ok(count)) => count,
            Some(Err(status)) => {
                sections.push(SectionState {
                    section: Section::Inbox as i32,
                    available: false,
                    reason: unavailable_reason(&status),
                    truncated: false,
                });
                -1
            }
            None => -1,
        };
        Ok(tonic::Response::new(ListWorklistResponse {
            items: lines.into_iter().map(|l| l.item).collect(),
            next_page_token: encode(&merge.positions),
            inbox_open_count,
            sections,
        }))
    }

    /// The role's open inbox items in the caller's organization (none for internal services,
    /// which belong to no organization).
    async fn inbox_count(
        &self,
        who: &careloop_runtime::auth::Principal,
        role: CareRole,
        budget: &Budget,
    ) -> Option<Result<i64, Status>> {
        if who.kind == PrincipalKind::Service {
            return None;
        }
        // Staff ask as themselves (notifications shows a role's inbox to those who hold it); a
        // partner organization's count is asked by the gateway naming that organization.
        let org = who.org_id.to_string();
        let staff = who.kind == PrincipalKind::Staff;
        Some(
            self.notifications
                .call(budget.call(), true, |t, left| {
                    let body = ListInboxRequest {
                        role: role as i32,
                        org_id: if staff { String::new() } else { org.clone() },
                        page_size: 1,
                        ..Default::default()
                    };
                    let r = if staff {
                        crate::downstream::on_behalf_of(who, body, left)
                    } else {
                        as_gateway(body, left)
                    };
                    async move { NotificationsServiceClient::new(t).list_inbox(r).await }
                })
                .await
                .map(|a| a.into_inner().open_count),
        )
    }

    /// One page of a source after `after`, asked as the gateway (cross-patient lists are the
    /// gateway's to filter per caller).
    async fn fetch(
        &self,
        source: Source,
        role: CareRole,
        after: Option<Cursor>,
        limit: usize,
        budget: &Budget,
    ) -> Result<Fetched, Status> {
        let page_token = after.map(paging::encode).unwrap_or_default();
        let page_size = limit as i32;
        let at = now();
        match source {
            Source::Tasks => {
                let a = self
                    .plans
                    .call(budget.call(), true, |t, left| {
                        let r = as_gateway(
                            ListOpenTasksRequest {
                                filter: Some(list_open_tasks_request::Filter::OwnerRole(
                                    role as i32,
                                )),
                                page_size,
                                page_token: page_token.clone(),
                            },
                            left,
                        );
                        async move { PlansServiceClient::new(t).list_open_tasks(r).await }
                    })
                    .await?
                    .into_inner();
                Ok(Fetched {
                    lines: a.tasks.iter().filter_map(items::task).collect(),
                    more: !a.next_page_token.is_empty(),
                })
            }
            Source::Handoffs => {
                let a = self
                    .plans
                    .call(budget.call(), true, |t, left| {
                        let r = as_gateway(
                            ListUnacknowledgedHandoffsRequest {
                                to_role: role as i32,
                                page_size,
                                page_token: page_token.clone(),
                                patient_id: String::new(),
                            },
                            left,
                        );
                        async move {
                            PlansServiceClient::new(t)
                                .list_unacknowledged_handoffs(r)
                                .await
                        }
                    })
                    .await?
                    .into_inner();
                Ok(Fetched {
                    lines: a
                        .handoffs
                        .iter()
                        .filter_map(|h| items::handoff(h, at))
                        .collect(),
                    more: !a.next_page_token.is_empty(),
                })
            }
            Source::Referrals => {
                let a = self
                    .referrals
                    .call(budget.call(), true, |t, left| {
                        let r = as_gateway(
                            ListOpenLoopsRequest {
                                filter: Some(list_open_loops_request::Filter::OwnerRole(
                                    role as i32,
                                )),
                                page_size,
                                page_token: page_token.clone(),
                            },
                            left,
                        );
                        async move { ReferralsServiceClient::new(t).list_open_loops(r).await }
                    })
                    .await?
                    .into_inner();
                Ok(Fetched {
                    lines: a.loops.iter().filter_map(items::open_loop).collect(),
                    more: !a.next_page_token.is_empty(),
                })
            }
            Source::PriorAuth => {
                let a = self
                    .prior_auth
                    .call(budget.call(), true, |t, left| {
                        let r = as_gateway(
                            ListRequestsRequest {
                                filter: Some(list_requests_request::Filter::OwnerRole(role as i32)),
                                page_size,
                                page_token: page_token.clone(),
                            },
                            left,
                        );
                        async move { PriorAuthServiceClient::new(t).list_requests(r).await }
                    })
                    .await?
                    .into_inner();
                Ok(Fetched {
                    lines: a.requests.iter().filter_map(items::prior_auth).collect(),
                    more: !a.next_page_token.is_empty(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careloop_proto::gateway::v1::WorkItem;
    use proptest::prelude::*;

    fn line(at_secs: i64, n: u128) -> Line {
        Line {
            cursor: Cursor {
                at: chrono::DateTime::from_timestamp(at_secs, 0).unwrap(),
                id: uuid::Uuid::from_u128(n),
            },
            patient_id: uuid::Uuid::from_u128(n % 3),
            item: WorkItem::default(),
        }
    }

    /// Serves pages of `size` from sorted source lists, as a service would after a cursor.
    fn page_of(all: &[Line], after: Position, size: usize) -> (Vec<Line>, bool) {
        let rest: Vec<Line> = all
            .iter()
            .filter(|l| match after {
                Position::Start => true,
                Position::After(c) => (l.cursor.at, l.cursor.id) > (c.at, c.id),
                Position::Done => false,
            })
            .cloned()
            .collect();
        let more = rest.len() > size;
        (rest.into_iter().take(size).collect(), more)
    }

    /// Pages through sources with the token, as the gateway does: `assemble` fetching `fetch` lines
    /// at a time and asking `visible` about each round's new patients.
    fn walk(
        sources: &[Vec<Line>; 4],
        limit: usize,
        fetch: usize,
        visible: impl Fn(uuid::Uuid) -> bool,
    ) -> Vec<Vec<Line>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut token = String::new();
        let mut pages = Vec::new();
        loop {
            let mut merge = Merge::new(decode(&token).unwrap());
            let out = rt
                .block_on(assemble(
                    &mut merge,
                    limit,
                    |wanted| {
                        let pages: Vec<Result<Fetched, Status>> = wanted
                            .into_iter()
                            .map(|(i, after)| {
                                let from = after.map_or(Position::Start, Position::After);
                                let (lines, more) = page_of(&sources[i], from, fetch);
                                Ok(Fetched { lines, more })
                            })
                            .collect();
                        async move { pages }
                    },
                    |patients| {
                        let answer = patients.into_iter().map(|p| (p, visible(p))).collect();
                        async move { Ok(answer) }
                    },
                ))
                .unwrap();
            pages.push(out);
            token = encode(&merge.positions);
            if token.is_empty() {
                return pages;
            }
            assert!(pages.len() < 1000, "paging does not end");
        }
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            at: chrono::DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            id: uuid::Uuid::now_v7(),
        };
        let positions = [
            Position::Start,
            Position::After(c),
            Position::Done,
            Position::After(c),
        ];
        assert_eq!(decode(&encode(&positions)).unwrap(), positions);
        assert_eq!(
            encode(&[Position::Done; 4]),
            "",
            "the last page has no token"
        );
        assert!(decode("not a token").is_err());
        assert!(decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("-~-")).is_err());
    }

    proptest! {
        #[test]
        fn paging_a_merged_worklist_shows_every_readable_loop_once_in_order(
            lists in proptest::collection::vec(proptest::collection::vec(0i64..50, 0..30), 4),
            limit in 1usize..12,
            fetch in 1usize..12,
            hidden in 0u128..4,
        ) {
            let mut n = 0u128;
            let sources: [Vec<Line>; 4] = std::array::from_fn(|i| {
                let mut lines: Vec<Line> = lists[i].iter().map(|&at| { n += 1; line(at, n) }).collect();
                lines.sort_by_key(|l| (l.cursor.at, l.cursor.id));
                lines
            });
            // Patients are n % 3: one of them (or none, for 3) the caller may not read.
            let visible = |p: uuid::Uuid| p.as_u128() != hidden;
            let pages = walk(&sources, limit, fetch, visible);
            let shown: Vec<Line> = pages.iter().flatten().cloned().collect();
            let mut expected: Vec<Line> = sources
                .iter()
                .flatten()
                .filter(|l| visible(l.patient_id))
                .cloned()
                .collect();
            expected.sort_by_key(|l| (l.cursor.at, l.cursor.id));
            let keys = |v: &[Line]| v.iter().map(|l| (l.cursor.at, l.cursor.id)).collect::<Vec<_>>();
            prop_assert_eq!(keys(&shown), keys(&expected));
            for page in &pages {
                prop_assert!(page.len() <= limit);
            }
        }
    }

    #[test]
    fn a_loop_added_before_the_position_does_not_shift_later_pages() {
        let mut sources: [Vec<Line>; 4] = Default::default();
        sources[0] = (1..=4).map(|i| line(i * 10, i as u128)).collect();
        sources[2] = (1..=4).map(|i| line(i * 10 + 5, 100 + i as u128)).collect();
        let mut merge = Merge::new([Position::Start; 4]);
        for i in merge.wanted() {
            let (lines, more) = page_of(&sources[i], Position::Start, 10);
            merge.fill(i, lines, more);
        }
        let mut first = Vec::new();
        for _ in 0..3 {
            if let Next::Line(l) = merge.pop() {
                first.push(l.cursor.id);
            }
        }
        let token = encode(&merge.positions);
        // A new loop due before the third one shown arrives in the first source.
        sources[0].insert(0, line(1, 999));
        let mut merge = Merge::new(decode(&token).unwrap());
        for i in merge.wanted() {
            let (lines, more) = page_of(&sources[i], merge.positions[i], 10);
            merge.fill(i, lines, more);
        }
        let Next::Line(next) = merge.pop() else {
            panic!("a next loop")
        };
        assert_eq!(
            next.cursor.id,
            uuid::Uuid::from_u128(102),
            "the page resumes after the third loop"
        );
        assert!(!first.contains(&uuid::Uuid::from_u128(999)));
    }
}
