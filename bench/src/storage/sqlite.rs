//! SQLite (bundled) with `journal_mode=WAL` and `synchronous=FULL`: each commit fsyncs the WAL,
//! the same durability as spine's acknowledgement. (`synchronous=NORMAL`, WAL's usual pairing,
//! would not fsync at commit.) One connection per appender, as separate clients would have.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rusqlite::{Connection, params};

use super::measure::{self, READ_CHUNK};
use super::report::{Row, round};

/// How long a connection waits for the write lock before failing with `SQLITE_BUSY`. Generous:
/// with 256 writers queued behind a few hundred microseconds of fsync each, and SQLite's
/// sleep-and-retry busy handler being unfair, a writer can wait seconds. A timeout fails the run.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Page cache of the reading connection, in KiB (negative in the pragma): 1 GiB, redb's default
/// cache, so that neither engine reads through a smaller cache than the other.
const READ_CACHE_KIB: i64 = 1 << 20;

const INSERT: &str = "INSERT INTO t (id, v) VALUES (?1, ?2)";

fn database_path(dir: &Path) -> PathBuf {
    dir.join("bench.sqlite")
}

/// Opens a connection with the benchmark's durability settings.
fn connect(path: &Path) -> Result<Connection> {
    let connection =
        Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .context("setting journal_mode=WAL")?;
    ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "journal_mode is {mode}, not wal"
    );
    connection
        .pragma_update(None, "synchronous", "FULL")
        .context("setting synchronous=FULL")?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .context("setting busy_timeout")?;
    Ok(connection)
}

/// Creates the database and its table; returns the connection that created them.
fn create(dir: &Path) -> Result<Connection> {
    let connection = connect(&database_path(dir))?;
    connection
        .execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)",
            [],
        )
        .context("creating the table")?;
    Ok(connection)
}

fn sql_key(key: u64) -> Result<i64> {
    i64::try_from(key).with_context(|| format!("key {key} does not fit SQLite's INTEGER"))
}

/// `appenders` OS threads append for `duration`, each one autocommit `INSERT` per append on its
/// own connection.
pub fn append_durable(dir: &Path, appenders: usize, duration: Duration) -> Result<Row> {
    let _creator = create(dir)?;
    let path = database_path(dir);
    let payload = measure::payload();
    let measured = measure::run_appender_threads(appenders, duration, |_| {
        let connection = connect(&path)?;
        let payload = &payload;
        Ok(move |key| {
            let mut insert = connection.prepare_cached(INSERT).context("preparing")?;
            insert
                .execute(params![sql_key(key)?, payload])
                .context("insert")?;
            Ok(())
        })
    })?;
    Ok(Row {
        appenders: Some(appenders),
        records: Some(measured.latency.count()),
        note: Some(format!(
            "autocommit INSERT, one connection per appender, busy_timeout {} s",
            BUSY_TIMEOUT.as_secs()
        )),
        ..Row::measured("sqlite", "append_durable", &measured)
    })
}

/// Loads `records` records in one transaction, then reads random keys on this thread.
pub fn read_random(dir: &Path, records: u64, duration: Duration) -> Result<Row> {
    let mut connection = create(dir)?;
    let payload = measure::payload();
    let started = Instant::now();
    let txn = connection.transaction().context("begin")?;
    {
        let mut insert = txn.prepare(INSERT).context("preparing")?;
        for key in 1..=records {
            insert
                .execute(params![sql_key(key)?, payload])
                .with_context(|| format!("loading key {key}"))?;
        }
    }
    txn.commit().context("committing the load")?;
    let load_elapsed = started.elapsed();

    connection
        .pragma_update(None, "cache_size", -READ_CACHE_KIB)
        .context("setting cache_size")?;
    let keys = measure::random_keys(records);
    let mut select = connection
        .prepare("SELECT v FROM t WHERE id = ?1")
        .context("preparing")?;
    let measured = measure::read_loop(duration, &keys, |chunk, latency| {
        let mut sum = 0;
        for &key in chunk {
            let started = Instant::now();
            let first = select
                .query_row([sql_key(key)?], |row| {
                    Ok(measure::first_byte(row.get_ref(0)?.as_blob()?))
                })
                .with_context(|| format!("reading key {key}"))?;
            latency.record(started.elapsed());
            sum += first;
        }
        Ok(sum)
    })?;
    Ok(Row {
        records: Some(records),
        load_records_per_s: Some(round(records as f64 / load_elapsed.as_secs_f64(), 0)),
        note: Some(format!(
            "prepared SELECT per key, {READ_CHUNK} keys between deadline checks; \
             cache_size 1 GiB"
        )),
        ..Row::measured("sqlite", "read_random", &measured)
    })
}
