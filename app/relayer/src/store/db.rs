//! The ledger's database: SQLite (a file, the embedded default) or PostgreSQL (a
//! `postgres://` URL, shared by relayer replicas), through sqlx's `Any` driver. Every
//! statement is written once, in the SQL both accept: `$N` parameters (sqlx's SQLite driver
//! binds `$N` to argument N), `ON CONFLICT DO NOTHING`, sums cast to BIGINT, and a stored
//! `day` column instead of date functions. Each backend has its own migrations directory
//! with the same schema (`migrations/`, `migrations_postgres/`; Postgres needs BIGINT where
//! SQLite's INTEGER is already 64-bit).

use std::path::Path;

use anyhow::{Context, Result};
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::Arguments;

pub type Pool = sqlx::AnyPool;
pub type Row = sqlx::any::AnyRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(target: &str) -> Backend {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), waiting up to the busy timeout for it: a deferred transaction that reads and
/// then writes fails at once with `SQLITE_BUSY` when another writer (the ledger's group
/// commit, under load every few milliseconds) committed in between, a wait cannot help it,
/// and the settler then never cut a batch under sustained load (measured at 1,000 req/s).
pub async fn begin_write(pool: &Pool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
    if pool.connect_options().database_url.scheme() == "sqlite" {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

/// Connects to `target` (a SQLite file path, created if missing, or a Postgres URL) and
/// applies that backend's migrations.
pub async fn connect(target: &str) -> Result<(Pool, Backend)> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of(target);
    let pool = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}?mode=rwc", Path::new(target).display());
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL: readers never block the writer. FULL: a committed batch
                        // survives power loss (commits are off the request path).
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 5000",
                            // 32 MiB of pages (the default is 2 MiB): the ingester's index
                            // inserts stop re-reading pages from the file under load.
                            "PRAGMA cache_size = -32768",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                })
                .connect(&url)
                .await
                .with_context(|| format!("cannot open the ledger {target}"))?
        }
        Backend::Postgres => AnyPoolOptions::new()
            .max_connections(8)
            .connect(target)
            .await
            .context("cannot connect to the Postgres ledger")?,
    };
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations").run(&pool).await,
        Backend::Postgres => sqlx::migrate!("./migrations_postgres").run(&pool).await,
    }
    .context("migrating the ledger")?;
    Ok((pool, backend))
}

/// A statement built piece by piece, with `$N` parameters numbered as they are bound.
#[derive(Default)]
pub struct Sql<'q> {
    text: String,
    args: AnyArguments<'q>,
    n: usize,
    /// `?` markers (SQLite's own: its driver binds `$N` through a lookup per marker, which
    /// made large multi-row inserts several times slower) instead of `$N`.
    positional: bool,
}

impl<'q> Sql<'q> {
    pub fn new(text: &str) -> Sql<'q> {
        Sql { text: text.to_string(), ..Default::default() }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// The same statement in `backend`'s own parameter markers.
    pub fn for_backend(backend: Backend, text: &str) -> Sql<'q> {
        Sql { positional: backend == Backend::Sqlite, ..Sql::new(text) }
    }

    fn marker(&mut self) {
        self.n += 1;
        if self.positional {
            self.text.push('?');
        } else {
            self.text.push_str(&format!("${}", self.n));
        }
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.marker();
        self.args.add(v).expect("an i64 always encodes");
        self
    }

    pub fn text(&mut self, v: &str) -> &mut Self {
        self.marker();
        self.args.add(v.to_string()).expect("a string always encodes");
        self
    }

    /// `$a, $b, ...` for each string.
    pub fn texts<'a>(&mut self, vs: impl IntoIterator<Item = &'a str>) -> &mut Self {
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.text(v);
        }
        self
    }

    /// The statement with its arguments (once: the arguments move into it).
    pub fn query(&'q mut self) -> sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>> {
        let Sql { text, args, .. } = self;
        let text: &'q String = text;
        sqlx::query_with(text.as_str(), std::mem::take(args))
    }
}

/// Whether `text` can be bound as it is on both backends: Postgres' text holds no NUL
/// character (SQLite's does, and Postgres fails the whole statement on one). Every value the
/// relayer stores is free of them, so a key that has one matches no row: lookups answer
/// "none" without asking, the same on both backends, instead of a database error.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// The UTC day of a time in milliseconds, YYYY-MM-DD.
pub fn day_of(ms: i64) -> String {
    compux_sdk::units::utc_day(ms.div_euclid(1_000))
}

/// Where a test's ledger lives: a SQLite file in `dir`, or, with `COMPUX_TEST_LEDGER=postgres`,
/// a fresh database on the server at `COMPUX_TEST_POSTGRES_URL` (`scripts/postgres.sh`
/// starts one and prints the URL), so the same tests run on both backends.
pub async fn test_target(dir: &Path) -> Result<String> {
    if std::env::var("COMPUX_TEST_LEDGER").as_deref() != Ok("postgres") {
        return Ok(dir.join("ledger.sqlite").display().to_string());
    }
    let admin = std::env::var("COMPUX_TEST_POSTGRES_URL")
        .context("COMPUX_TEST_LEDGER=postgres needs COMPUX_TEST_POSTGRES_URL (see scripts/postgres.sh)")?;
    sqlx::any::install_default_drivers();
    let pool =
        AnyPoolOptions::new().max_connections(1).connect(&admin).await.context("the test Postgres server")?;
    let name = format!("compux_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_civil_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(86_400_000 - 1), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29", "a leap day of a century leap year");
        assert_eq!(day_of(1_764_028_800_000), "2025-11-25");
        assert_eq!(day_of(1_795_564_800_000), "2026-11-25");
        assert_eq!(day_of(4_107_542_400_000), "2100-03-01", "2100 is not a leap year");
        assert_eq!(day_of(-1), "1969-12-31");
    }

    #[tokio::test]
    async fn the_day_matches_sqlites_date_function() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = connect(dir.path().join("d.sqlite").to_str().unwrap()).await.unwrap();
        for ms in [0i64, 951_782_400_000, 1_764_072_000_123, 4_107_542_399_999, 253_402_300_799_000] {
            let mut q = Sql::new("SELECT date(");
            q.int(ms).push(" / 1000, 'unixepoch')");
            let day: String = sqlx::Row::get(&q.query().fetch_one(&pool).await.unwrap(), 0);
            assert_eq!(day, day_of(ms), "{ms}");
        }
    }
}
