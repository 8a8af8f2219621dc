//! redb with its default `Durability::Immediate`: `commit` returns once the transaction is
//! fsynced. redb has one writer at a time, so concurrent appenders queue in `begin_write`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, TableDefinition};

use super::measure::{self, READ_CHUNK};
use super::report::{Row, round};

/// Key -> payload, the same shape as spine's primary index.
const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// Creates the database and its table, so that no measured transaction creates it.
fn create(dir: &Path) -> Result<Database> {
    let path = dir.join("bench.redb");
    let database =
        Database::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let txn = database.begin_write().context("begin_write")?;
    txn.open_table(TABLE).context("creating the table")?;
    txn.commit().context("commit")?;
    Ok(database)
}

/// One durable write transaction holding one insert.
fn insert(database: &Database, key: u64, payload: &[u8]) -> Result<()> {
    let txn = database.begin_write().context("begin_write")?;
    {
        let mut table = txn.open_table(TABLE).context("open_table")?;
        table.insert(key, payload).context("insert")?;
    }
    txn.commit().context("commit")
}

/// `appenders` OS threads append for `duration`, one write transaction per append.
pub fn append_durable(dir: &Path, appenders: usize, duration: Duration) -> Result<Row> {
    let database = Arc::new(create(dir)?);
    let payload = measure::payload();
    let measured = measure::run_appender_threads(appenders, duration, |_| {
        let database = Arc::clone(&database);
        let payload = &payload;
        Ok(move |key| insert(&database, key, payload))
    })?;
    Ok(Row {
        appenders: Some(appenders),
        records: Some(measured.latency.count()),
        note: Some("one write transaction per append, Durability::Immediate".into()),
        ..Row::measured("redb", "append_durable", &measured)
    })
}

/// Loads `records` records in one write transaction, then reads random keys on this thread.
pub fn read_random(dir: &Path, records: u64, duration: Duration) -> Result<Row> {
    let database = create(dir)?;
    let payload = measure::payload();
    let started = Instant::now();
    let txn = database.begin_write().context("begin_write")?;
    {
        let mut table = txn.open_table(TABLE).context("open_table")?;
        for key in 1..=records {
            table
                .insert(key, payload.as_slice())
                .with_context(|| format!("loading key {key}"))?;
        }
    }
    txn.commit().context("committing the load")?;
    let load_elapsed = started.elapsed();

    let keys = measure::random_keys(records);
    let txn = database.begin_read().context("begin_read")?;
    let table = txn.open_table(TABLE).context("open_table")?;
    let measured = measure::read_loop(duration, &keys, |chunk, latency| {
        let mut sum = 0;
        for &key in chunk {
            let started = Instant::now();
            let value = table
                .get(key)
                .with_context(|| format!("reading key {key}"))?;
            let first = value.map(|value| measure::first_byte(value.value()));
            latency.record(started.elapsed());
            sum += first.with_context(|| format!("key {key} not found"))?;
        }
        Ok(sum)
    })?;
    Ok(Row {
        records: Some(records),
        load_records_per_s: Some(round(records as f64 / load_elapsed.as_secs_f64(), 0)),
        note: Some(format!(
            "one read transaction for the run, table.get per key, {READ_CHUNK} keys between \
             deadline checks; default 1 GiB cache"
        )),
        ..Row::measured("redb", "read_random", &measured)
    })
}
