//! One replica at a time does each leader's job (settlement, low-balance alerts): the leader
//! holds a Postgres session-level advisory lock on a connection it keeps. If its process
//! dies, the connection drops, the server releases the lock, and another replica's next
//! attempt takes over. (A SQLite ledger belongs to one process: it always leads.)

use anyhow::Result;
use sqlx::pool::PoolConnection;
use sqlx::Any;

use crate::store::db::{Backend, Pool};

/// A leader's job, and its advisory lock key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// "cpxs"
    Settler = 0x6370_7873,
    /// "cpxa"
    Alerts = 0x6370_7861,
}

/// Proof of leadership: dropping it gives leadership up.
pub enum Leader {
    Sqlite,
    Postgres(Option<PoolConnection<Any>>),
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Close the session rather than return it to the pool still holding the lock.
        if let Leader::Postgres(conn) = self {
            drop(conn.take().map(PoolConnection::detach));
        }
    }
}

impl Leader {
    /// Still leading? (The lock lives as long as its connection.)
    pub async fn alive(&mut self) -> bool {
        match self {
            Leader::Sqlite => true,
            Leader::Postgres(Some(conn)) => sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok(),
            Leader::Postgres(None) => false,
        }
    }
}

/// Becomes `job`'s leader if no one else is.
pub async fn try_lead(pool: &Pool, backend: Backend, job: Job) -> Result<Option<Leader>> {
    if backend == Backend::Sqlite {
        return Ok(Some(Leader::Sqlite));
    }
    let mut conn = pool.acquire().await?;
    let won: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(job as i64).fetch_one(&mut *conn).await?;
    // A connection that lost goes back to the pool; one that won stays with the leader.
    Ok(won.then_some(Leader::Postgres(Some(conn))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_at_a_time_and_another_takes_over_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let target = crate::store::db::test_target(dir.path()).await.unwrap();
        let (a, backend) = crate::store::db::connect(&target).await.unwrap();
        let (b, _) = crate::store::db::connect(&target).await.unwrap();
        let mut first = try_lead(&a, backend, Job::Settler).await.unwrap().expect("the first replica leads");
        assert!(first.alive().await);
        if backend == Backend::Sqlite {
            return; // one process per SQLite ledger: nothing to elect
        }
        assert!(try_lead(&b, backend, Job::Settler).await.unwrap().is_none(), "a second replica does not");
        let alerts = try_lead(&b, backend, Job::Alerts).await.unwrap();
        assert!(alerts.is_some(), "each job has its own leader");
        drop(first);
        // The session closed with the leader (as a dead process's would); the server releases
        // the lock when it has seen the connection go (up to 30 s on a loaded machine).
        let mut second = None;
        for _ in 0..1_500 {
            second = try_lead(&b, backend, Job::Settler).await.unwrap();
            if second.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(second.is_some(), "another replica takes over");
    }
}
