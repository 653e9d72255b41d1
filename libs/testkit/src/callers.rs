//! Calling a service as someone, for authorization tables: a bearer token and, for a service
//! acting for a user, the on-behalf-of header; and counting the refusals audited for a subject.

use sqlx::PgPool;

/// A bearer token and, for a service, the user it carries (an encoded on-behalf-of header).
#[derive(Clone)]
pub struct Credentials {
    pub token: String,
    pub on_behalf_of: Option<String>,
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let bearer = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| tonic::Status::unauthenticated("token is not ascii"))?;
        req.metadata_mut().insert("authorization", bearer);
        if let Some(user) = &self.on_behalf_of {
            let value = user
                .parse()
                .map_err(|_| tonic::Status::unauthenticated("on-behalf-of is not ascii"))?;
            req.metadata_mut()
                .insert(careloop_runtime::auth::ON_BEHALF_OF, value);
        }
        Ok(req)
    }
}

/// Refusals audited for `subject` in the service's audit log.
pub async fn denials(db: &PgPool, subject: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE outcome = 'denied' AND subject = $1")
        .bind(subject)
        .fetch_one(db)
        .await
        .expect("count denials")
}

/// What a cell of an authorization table looked like before its call.
pub struct Before {
    footprint: i64,
    denials: i64,
}

impl Before {
    /// `footprint`: the service's count of rows a write could leave behind.
    pub async fn take(db: &PgPool, subject: &str, footprint: i64) -> Self {
        Self {
            footprint,
            denials: denials(db, subject).await,
        }
    }

    /// Records (see `cases`) what is wrong with the cell: another code than the rules give, or a
    /// refusal that wrote something or was not audited exactly once. `footprint` is the count
    /// after the call.
    pub async fn judge(
        self,
        db: &PgPool,
        subject: &str,
        cell: &str,
        want: tonic::Code,
        got: tonic::Code,
        footprint: i64,
    ) {
        if got != want {
            crate::cases::record_failure(format!("{cell}: expected {want:?}, got {got:?}"));
            return;
        }
        if !matches!(got, tonic::Code::PermissionDenied | tonic::Code::NotFound) {
            return;
        }
        if footprint != self.footprint {
            crate::cases::record_failure(format!("{cell}: a refusal wrote something"));
        }
        if denials(db, subject).await != self.denials + 1 {
            crate::cases::record_failure(format!("{cell}: the refusal was not audited once"));
        }
    }
}
