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
