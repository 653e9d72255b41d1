//! Wakes inbox watchers: one LISTEN connection per replica turns the feed's NOTIFY into a tick on a
//! watch channel every `WatchInbox` stream waits on (with a poll as the fallback when the listener
//! is down, so a lost notification delays an entry by one poll at most, never loses it: watchers
//! read the feed itself, after their cursor).

use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;

pub const NOTIFY_CHANNEL: &str = "careloop_inbox";

#[derive(Clone)]
pub struct FeedWaker {
    ticks: watch::Receiver<u64>,
    pub poll: Duration,
}

impl FeedWaker {
    /// Starts the listener task; it ends when `shutdown` turns true.
    pub fn start(
        pool: PgPool,
        poll: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut listener: Option<sqlx::postgres::PgListener> = None;
            while !*shutdown.borrow() {
                if listener.is_none() {
                    listener = listen(&pool).await;
                    // Anything committed while no one listened is picked up now.
                    tx.send_modify(|n| *n += 1);
                }
                match listener.as_mut() {
                    Some(l) => {
                        tokio::select! {
                            received = l.recv() => match received {
                                Ok(_) => tx.send_modify(|n| *n += 1),
                                Err(_) => listener = None,
                            },
                            _ = shutdown.changed() => {}
                        }
                    }
                    None => {
                        tokio::select! {
                            _ = tokio::time::sleep(poll) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
            }
        });
        (Self { ticks: rx, poll }, task)
    }

    /// Waits for the next wake-up, or the poll interval.
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.ticks.changed() => {}
            _ = tokio::time::sleep(self.poll) => {}
        }
    }
}

async fn listen(pool: &PgPool) -> Option<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.ok()?;
    listener.listen(NOTIFY_CHANNEL).await.ok()?;
    Some(listener)
}
