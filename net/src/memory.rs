//! The server's memory budget: the worst case of every limit that holds memory, summed in one
//! table (`README.md`, "Memory budget", shows it for the defaults), and the defaults sized so
//! that the sum fits the budget, by default half of the machine's memory.
//!
//! What the table counts is what clients can make the server hold: queues, buffers and
//! connections. What the data makes it hold (indexes, a shard's outcome slots, pages of the
//! log's memory maps, which the kernel may drop) comes on top and grows with the data.

use std::fmt::Write as _;

use spine_core::engine::EngineConfig;

use crate::protocol::frame::FRAME_HEADER_BYTES;
use crate::server::{HANDSHAKES_IN_FLIGHT_PER_CORE, ServerConfig};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Bytes one connection holds besides its frame buffers: its TLS (or QUIC) state and record
/// buffers, its task and its session. An estimate, measured by the flood test
/// (`net/tests/memory_flood.rs`) with room to spare.
pub const CONNECTION_FIXED_BYTES: u64 = 192 * KIB;

/// Bytes a TLS or QUIC handshake holds until it ends (the certificates, their verification,
/// the key exchange): an estimate, measured by the flood test with room to spare.
pub const HANDSHAKE_BYTES: u64 = 256 * KIB;

/// Bytes a TLS connection reserves to read into beyond the frame it is receiving.
pub const READ_RESERVE_BYTES: u64 = 16 * KIB;

/// The budget when the machine's memory cannot be read (no `/proc/meminfo`).
pub const BUDGET_WITHOUT_MEMINFO: u64 = 4 * GIB;

/// The most connections the defaults allow, whatever the budget.
pub const CONNECTIONS_CAP: usize = 10_000;

/// Inbox slots per shard the defaults allow, at most and at least.
pub const INBOX_CAPACITY_CAP: usize = 65_536;
/// The fewest inbox slots per shard the defaults give.
pub const INBOX_CAPACITY_FLOOR: usize = 1_024;

/// Turn bytes the defaults allow, at least (a turn's cap never passes its segment's room).
pub const TURN_BYTES_FLOOR: usize = MIB as usize;

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`), if it can be read.
pub fn machine_memory_bytes() -> Option<u64> {
    parse_mem_total(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * KIB)
}

/// The default budget: half of `machine` bytes, or [`BUDGET_WITHOUT_MEMINFO`] unknown.
pub fn default_budget(machine: Option<u64>) -> u64 {
    machine.map_or(BUDGET_WITHOUT_MEMINFO, |bytes| bytes / 2)
}

/// One line of the table: what holds memory, how its worst case is computed, and the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// What holds the memory.
    pub name: &'static str,
    /// The formula, with the settings' values.
    pub formula: String,
    /// The worst case, in bytes.
    pub bytes: u64,
}

/// The worst cases of the limits, against the budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The bytes the limits may hold together, at most.
    pub budget: u64,
    /// The machine's memory, if known.
    pub machine: Option<u64>,
    /// Each limit's worst case.
    pub rows: Vec<Row>,
}

impl Budget {
    /// The worst case of `engine` and `server` together, against `budget` bytes.
    pub fn of(
        engine: &EngineConfig,
        server: &ServerConfig,
        budget: u64,
        machine: Option<u64>,
    ) -> Self {
        let shards = engine.shards as u64;
        let limits = &server.limits;
        let turn = engine.turn_bytes_max().max(EngineConfig::input_bytes_max());
        let slot = EngineConfig::inbox_slot_bytes() as u64;
        let per_connection = connection_bytes_max(server);
        let quic = server.quic_addr.is_some();
        let transports = 1 + u64::from(quic);
        let rows = vec![
            Row {
                name: "log append queues",
                formula: format!(
                    "{shards} shards × {} turns in flight × {} per turn",
                    engine.turns_in_flight_max,
                    show(turn as u64)
                ),
                bytes: shards * engine.log_queue_bytes_max(),
            },
            Row {
                name: "engine inboxes",
                formula: format!(
                    "{shards} shards × {} slots × {slot} B",
                    engine.inbox_capacity
                ),
                bytes: shards * engine.inbox_capacity as u64 * slot,
            },
            Row {
                name: "requests in flight",
                formula: "in_flight_bytes_max".to_owned(),
                bytes: limits.in_flight_bytes_max,
            },
            Row {
                name: "handshakes",
                formula: format!(
                    "{shards} cores × {transports} transports × {HANDSHAKES_IN_FLIGHT_PER_CORE} \
                     handshakes × {}{}",
                    show(HANDSHAKE_BYTES),
                    if quic {
                        format!(
                            " + {shards} QUIC endpoints × {} of attempts waiting",
                            show(crate::server::quic::incoming_bytes_max())
                        )
                    } else {
                        String::new()
                    }
                ),
                bytes: handshake_bytes_max(shards, server),
            },
            Row {
                name: "connections",
                formula: format!(
                    "{} connections × {} each",
                    limits.connections_max,
                    show(per_connection)
                ),
                bytes: limits.connections_max as u64 * per_connection,
            },
        ];
        Self {
            budget,
            machine,
            rows,
        }
    }

    /// The rows' sum.
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|row| row.bytes).sum()
    }

    /// Whether the rows fit the budget.
    pub fn fits(&self) -> bool {
        self.total() <= self.budget
    }

    /// One line, as `spine serve` prints it at start.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "memory budget: {} of {}",
            show(self.total()),
            show(self.budget)
        );
        match self.machine {
            Some(machine) => {
                let _ = write!(line, " (the machine has {})", show(machine));
            }
            None => line.push_str(" (the machine's memory is unknown)"),
        }
        line.push(':');
        for (index, row) in self.rows.iter().enumerate() {
            let separator = if index == 0 { " " } else { ", " };
            let _ = write!(line, "{separator}{} {}", row.name, show(row.bytes));
        }
        line
    }

    /// Every row with its formula, one a line.
    pub fn table(&self) -> String {
        let mut text = String::new();
        for row in &self.rows {
            let _ = writeln!(
                text,
                "  {:<20} {:>10}  ({})",
                row.name,
                show(row.bytes),
                row.formula
            );
        }
        text
    }
}

/// Bytes one connection may hold at most, on either transport (the limit on connections
/// counts both together): TLS, the frame being received, the read reserve and the fixed part;
/// QUIC, its receive and send windows and the fixed part. Decoded requests and their answers
/// are counted in the requests in flight instead.
pub fn connection_bytes_max(server: &ServerConfig) -> u64 {
    let limits = &server.limits;
    let frame = u64::from(limits.frame_bytes_max) + FRAME_HEADER_BYTES as u64;
    let tls = frame + READ_RESERVE_BYTES + CONNECTION_FIXED_BYTES;
    let quic =
        2 * crate::quic_transport::window_bytes(limits.frame_bytes_max) + CONNECTION_FIXED_BYTES;
    if server.quic_addr.is_some() {
        tls.max(quic)
    } else {
        tls
    }
}

/// Bytes the handshakes in flight and QUIC's attempts not yet accepted hold, at most, on
/// `shards` cores.
fn handshake_bytes_max(shards: u64, server: &ServerConfig) -> u64 {
    let quic = server.quic_addr.is_some();
    let transports = 1 + u64::from(quic);
    let incoming = if quic {
        crate::server::quic::incoming_bytes_max()
    } else {
        0
    };
    shards * (transports * HANDSHAKES_IN_FLIGHT_PER_CORE as u64 * HANDSHAKE_BYTES + incoming)
}

/// The limits that size themselves from the budget, as the defaults give them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fitted {
    /// The engine's turn bytes cap.
    pub turn_bytes_cap: usize,
    /// Each shard's inbox slots.
    pub inbox_capacity: usize,
    /// The server's byte budget for requests in flight.
    pub in_flight_bytes_max: u64,
    /// Connections in all.
    pub connections_max: usize,
}

/// What the defaults are under `budget` bytes: an eighth for the log append queues (a turn
/// of at least 1 MiB, at most a segment's room), a thirty-second for the inboxes (1,024 to
/// 65,536 slots a shard), a quarter for the requests in flight, the rest for connections (at
/// most 10,000). `engine` and `server` give the other settings; settings set explicitly
/// replace these (and must still fit).
pub fn fit(engine: &EngineConfig, server: &ServerConfig, budget: u64) -> Fitted {
    let shards = engine.shards.max(1) as u64;
    let turns = engine.turns_in_flight_max.max(1) as u64;
    let turn_bytes_cap = usize::try_from(budget / 8 / (shards * turns))
        .unwrap_or(usize::MAX)
        .max(TURN_BYTES_FLOOR);
    let slot = EngineConfig::inbox_slot_bytes() as u64;
    let inbox_capacity = usize::try_from(budget / 32 / (shards * slot))
        .unwrap_or(usize::MAX)
        .clamp(INBOX_CAPACITY_FLOOR, INBOX_CAPACITY_CAP);
    let in_flight_bytes_max = budget / 4;
    let mut sized = engine.clone();
    sized.turn_bytes_cap = turn_bytes_cap;
    sized.inbox_capacity = inbox_capacity;
    let others = shards * sized.log_queue_bytes_max()
        + shards * inbox_capacity as u64 * slot
        + in_flight_bytes_max
        + handshake_bytes_max(shards, server);
    let connections_max =
        usize::try_from(budget.saturating_sub(others) / connection_bytes_max(server).max(1))
            .unwrap_or(usize::MAX)
            .min(CONNECTIONS_CAP);
    Fitted {
        turn_bytes_cap,
        inbox_capacity,
        in_flight_bytes_max,
        connections_max,
    }
}

/// Bytes for people: `12.0 GiB`, `640 MiB`, `64 KiB`, `512 B`.
pub fn show(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.1} KiB", bytes as f64 / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

/// A budget as a setting gives it: bytes, or with a unit (`512MiB`, `12GiB`, `64KiB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or a number with KiB, MiB or GiB)"))?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => KIB,
        "MiB" => MIB,
        "GiB" => GIB,
        other => return Err(format!("{other:?} is not a unit: KiB, MiB or GiB")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Limits;

    fn server(limits: Limits) -> ServerConfig {
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        ServerConfig {
            tls_addr: any,
            quic_addr: Some(any),
            metrics_addr: None,
            limits,
        }
    }

    fn engine(shards: usize) -> EngineConfig {
        let mut engine = EngineConfig::new("unused");
        engine.shards = shards;
        engine
    }

    #[test]
    fn the_machine_memory_is_mem_total() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_576_000 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(default_budget(Some(24 * GIB)), 12 * GIB);
        assert_eq!(default_budget(None), BUDGET_WITHOUT_MEMINFO);
    }

    #[test]
    fn the_old_defaults_do_not_fit_a_24_gib_machine_and_the_fitted_ones_do() {
        let budget = default_budget(Some(24 * GIB));
        let old = Budget::of(&engine(2), &server(Limits::default()), budget, None);
        assert!(
            !old.fits(),
            "10,000 connections of 2 MiB: {}",
            old.summary()
        );

        let (mut engine, mut server) = (engine(2), server(Limits::default()));
        let fitted = fit(&engine, &server, budget);
        engine.turn_bytes_cap = fitted.turn_bytes_cap;
        engine.inbox_capacity = fitted.inbox_capacity;
        server.limits.in_flight_bytes_max = fitted.in_flight_bytes_max;
        server.limits.connections_max = fitted.connections_max;
        let table = Budget::of(&engine, &server, budget, Some(24 * GIB));
        assert!(table.fits(), "{}", table.table());
        // The figures README.md's "Memory budget" shows.
        let bytes: Vec<u64> = table.rows.iter().map(|row| row.bytes).collect();
        let turn = engine.turn_bytes_max() as u64;
        assert_eq!(turn, 64 * MIB - 64, "a segment's room: {}", table.table());
        assert_eq!(bytes[0], 2 * 4 * turn);
        assert_eq!(fitted.inbox_capacity, INBOX_CAPACITY_CAP);
        assert_eq!(
            bytes[1],
            2 * 65_536 * EngineConfig::inbox_slot_bytes() as u64
        );
        assert_eq!(bytes[2], 3 * GIB);
        assert_eq!(
            bytes[3],
            2 * (2 * 16 * HANDSHAKE_BYTES + 256 * 1_500 + MIB),
            "2 cores, TLS and QUIC: {}",
            table.table()
        );
        let per_connection = 2 * (MIB + 64) + CONNECTION_FIXED_BYTES;
        assert_eq!(connection_bytes_max(&server), per_connection);
        let left = budget - bytes[0] - bytes[1] - bytes[2] - bytes[3];
        assert_eq!(fitted.connections_max as u64, left / per_connection);
        assert_eq!(bytes[4], fitted.connections_max as u64 * per_connection);
        let summary = table.summary();
        // README.md's "Memory budget" shows these very figures, and the line printed.
        let readme = include_str!("../../README.md");
        let (_, section) = readme.split_once("### Memory budget").unwrap();
        for figure in bytes.iter().chain([&table.total()]) {
            let figure = with_separators(*figure);
            assert!(section.contains(&figure), "README.md lacks {figure}");
        }
        assert!(section.contains(&summary), "README.md lacks {summary}");
        let connections = format!("{} ×", with_separators(fitted.connections_max as u64));
        assert!(
            section.contains(&connections),
            "README.md lacks {connections}"
        );
        let per_connection = with_separators(per_connection);
        assert!(section.contains(&per_connection), "{per_connection}");
        let slot = format!("× {} =", EngineConfig::inbox_slot_bytes());
        assert!(section.contains(&slot), "README.md's slot bytes: {slot}");
        assert!(table.total() <= 12 * GIB);
        assert!(summary.starts_with("memory budget: "), "{summary}");
        assert!(
            summary.contains("of 12.0 GiB (the machine has 24.0 GiB)"),
            "{summary}"
        );
        for row in &table.rows {
            assert!(summary.contains(row.name), "{summary}");
        }
    }

    /// `12,884,901,888`.
    fn with_separators(bytes: u64) -> String {
        let digits = bytes.to_string();
        let mut text = String::new();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index).is_multiple_of(3) {
                text.push(',');
            }
            text.push(digit);
        }
        text
    }

    #[test]
    fn a_small_budget_gives_few_connections_and_small_turns() {
        let (engine, server) = (engine(2), server(Limits::default()));
        let fitted = fit(&engine, &server, 64 * MIB);
        assert_eq!(fitted.turn_bytes_cap, TURN_BYTES_FLOOR);
        assert_eq!(fitted.in_flight_bytes_max, 16 * MIB);
        assert!((1..=20).contains(&fitted.connections_max), "{fitted:?}");
    }

    #[test]
    fn sizes_read_with_their_units() {
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("64KiB"), Ok(64 * KIB));
        assert_eq!(parse_bytes("96 MiB"), Ok(96 * MIB));
        assert_eq!(parse_bytes("12GiB"), Ok(12 * GIB));
        assert!(parse_bytes("12GB").is_err());
        assert!(parse_bytes("lots").is_err());
        assert_eq!(show(12 * GIB), "12.0 GiB");
        assert_eq!(show(300), "300 B");
    }
}
