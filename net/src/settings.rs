//! `spine serve`'s settings: built-in defaults, overridden by a TOML file (`--config`),
//! overridden by flags. Every setting has all three.
//!
//! ```toml
//! data_dir = "spine-data"
//! shards = 2
//! tls_addr = "127.0.0.1:7443"
//! quic_addr = "127.0.0.1:7444"      # quic = false turns QUIC off
//! metrics_addr = "127.0.0.1:9464"
//! memory_budget = "12GiB"           # default: half of the machine's memory
//! compaction_rate = "4MiB"          # a second; compaction = false turns it off
//! [limits]
//! frame_bytes_max = 1048576
//! in_flight_per_connection = 1024
//! in_flight_bytes_max = 3221225472  # default: a quarter of the memory budget
//! connections_max = 10000           # default: what the budget leaves, at most 10000
//! connections_per_system_max = 1000
//! request_deadline_ms = 5000
//! requests_per_second_per_system = 200000
//! idle_timeout_ms = 300000
//! frame_timeout_ms = 30000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use spine_core::engine::CompactionSettings;

use crate::server::{Limits, ServerConfig};

/// Settings as a file or the flags give them: each one optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Shards (default: the cores available).
    pub shards: Option<usize>,
    /// TLS address.
    pub tls_addr: Option<SocketAddr>,
    /// QUIC address.
    pub quic_addr: Option<SocketAddr>,
    /// Whether to serve QUIC.
    pub quic: Option<bool>,
    /// Metrics address.
    pub metrics_addr: Option<SocketAddr>,
    /// Bytes the limits may hold together (`12GiB`, `512MiB` or bytes); default half of the
    /// machine's memory (`crate::memory`).
    pub memory_budget: Option<String>,
    /// Whether sealed segments are compacted while the core serves (default: yes).
    pub compaction: Option<bool>,
    /// Bytes a second a compaction reads and writes at most (`4MiB`, ...; default 4 MiB).
    pub compaction_rate: Option<String>,
    /// Limits.
    #[serde(default)]
    pub limits: LimitSettings,
}

/// Limits as a file or the flags give them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest frame, in bytes.
    pub frame_bytes_max: Option<u32>,
    /// Requests in flight on one connection.
    pub in_flight_per_connection: Option<usize>,
    /// Bytes of requests in flight over all connections.
    pub in_flight_bytes_max: Option<u64>,
    /// Open connections in all.
    pub connections_max: Option<usize>,
    /// Open connections of one system.
    pub connections_per_system_max: Option<usize>,
    /// Longest a request may take, in milliseconds.
    pub request_deadline_ms: Option<u64>,
    /// Requests a second one system may send.
    pub requests_per_second_per_system: Option<u32>,
    /// Longest a connection may be idle, in milliseconds.
    pub idle_timeout_ms: Option<u64>,
    /// Longest a frame may take to arrive whole, in milliseconds.
    pub frame_timeout_ms: Option<u64>,
}

/// Why a settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not settings.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: toml::de::Error,
    },
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Largest settings file read, in bytes.
const FILE_BYTES_MAX: u64 = 1 << 20;

/// The default data directory, under the current directory.
pub const DEFAULT_DATA_DIR: &str = "spine-data";

impl Settings {
    /// Reads a settings file.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let read = |source| SettingsError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > FILE_BYTES_MAX {
            return Err(SettingsError::Invalid(format!(
                "{}: {size} bytes is larger than {FILE_BYTES_MAX}",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        toml::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// These settings, with each one `over` sets replaced by its value.
    pub fn overridden_by(self, over: Settings) -> Settings {
        let limits = LimitSettings {
            frame_bytes_max: over.limits.frame_bytes_max.or(self.limits.frame_bytes_max),
            in_flight_per_connection: over
                .limits
                .in_flight_per_connection
                .or(self.limits.in_flight_per_connection),
            in_flight_bytes_max: over
                .limits
                .in_flight_bytes_max
                .or(self.limits.in_flight_bytes_max),
            connections_max: over.limits.connections_max.or(self.limits.connections_max),
            connections_per_system_max: over
                .limits
                .connections_per_system_max
                .or(self.limits.connections_per_system_max),
            request_deadline_ms: over
                .limits
                .request_deadline_ms
                .or(self.limits.request_deadline_ms),
            requests_per_second_per_system: over
                .limits
                .requests_per_second_per_system
                .or(self.limits.requests_per_second_per_system),
            idle_timeout_ms: over.limits.idle_timeout_ms.or(self.limits.idle_timeout_ms),
            frame_timeout_ms: over
                .limits
                .frame_timeout_ms
                .or(self.limits.frame_timeout_ms),
        };
        Settings {
            data_dir: over.data_dir.or(self.data_dir),
            shards: over.shards.or(self.shards),
            tls_addr: over.tls_addr.or(self.tls_addr),
            quic_addr: over.quic_addr.or(self.quic_addr),
            quic: over.quic.or(self.quic),
            metrics_addr: over.metrics_addr.or(self.metrics_addr),
            memory_budget: over.memory_budget.or(self.memory_budget),
            compaction: over.compaction.or(self.compaction),
            compaction_rate: over.compaction_rate.or(self.compaction_rate),
            limits,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The server's configuration, defaults filled in.
    pub fn server_config(&self) -> Result<ServerConfig, SettingsError> {
        let defaults = Limits::default();
        let limits = &self.limits;
        let resolved = Limits {
            frame_bytes_max: limits.frame_bytes_max.unwrap_or(defaults.frame_bytes_max),
            in_flight_per_connection: limits
                .in_flight_per_connection
                .unwrap_or(defaults.in_flight_per_connection),
            in_flight_bytes_max: limits
                .in_flight_bytes_max
                .unwrap_or(defaults.in_flight_bytes_max),
            connections_max: limits.connections_max.unwrap_or(defaults.connections_max),
            connections_per_system_max: limits
                .connections_per_system_max
                .unwrap_or(defaults.connections_per_system_max),
            request_deadline: limits
                .request_deadline_ms
                .map_or(defaults.request_deadline, Duration::from_millis),
            requests_per_second_per_system: limits
                .requests_per_second_per_system
                .unwrap_or(defaults.requests_per_second_per_system),
            handshake_timeout: defaults.handshake_timeout,
            idle_timeout: limits
                .idle_timeout_ms
                .map_or(defaults.idle_timeout, Duration::from_millis),
            frame_timeout: limits
                .frame_timeout_ms
                .map_or(defaults.frame_timeout, Duration::from_millis),
        };
        let positive = [
            ("frame_bytes_max", u64::from(resolved.frame_bytes_max)),
            (
                "in_flight_per_connection",
                resolved.in_flight_per_connection as u64,
            ),
            ("in_flight_bytes_max", resolved.in_flight_bytes_max),
            ("connections_max", resolved.connections_max as u64),
            (
                "connections_per_system_max",
                resolved.connections_per_system_max as u64,
            ),
            (
                "request_deadline_ms",
                resolved.request_deadline.as_millis() as u64,
            ),
            (
                "requests_per_second_per_system",
                u64::from(resolved.requests_per_second_per_system),
            ),
            ("idle_timeout_ms", resolved.idle_timeout.as_millis() as u64),
            (
                "frame_timeout_ms",
                resolved.frame_timeout.as_millis() as u64,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(SettingsError::Invalid(format!("{name} must be at least 1")));
        }
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        Ok(ServerConfig {
            tls_addr: self.tls_addr.unwrap_or(loopback(7443)),
            quic_addr: (self.quic != Some(false)).then(|| self.quic_addr.unwrap_or(loopback(7444))),
            metrics_addr: Some(self.metrics_addr.unwrap_or(loopback(9464))),
            limits: resolved,
        })
    }
}

impl Settings {
    /// Compaction while serving, as set (`None`: off).
    pub fn compaction(&self) -> Result<Option<CompactionSettings>, SettingsError> {
        if self.compaction == Some(false) {
            return Ok(None);
        }
        let mut settings = CompactionSettings::default();
        if let Some(text) = &self.compaction_rate {
            let rate = crate::memory::parse_bytes(text)
                .map_err(|reason| SettingsError::Invalid(format!("compaction_rate: {reason}")))?;
            settings.rate = Some(std::num::NonZeroU64::new(rate).ok_or_else(|| {
                SettingsError::Invalid("compaction_rate must be above zero".into())
            })?);
        }
        Ok(Some(settings))
    }

    /// The memory budget in bytes: as set, or half of `machine` bytes.
    pub fn memory_budget(&self, machine: Option<u64>) -> Result<u64, SettingsError> {
        match &self.memory_budget {
            Some(text) => crate::memory::parse_bytes(text)
                .map_err(|reason| SettingsError::Invalid(format!("memory_budget: {reason}"))),
            None => Ok(crate::memory::default_budget(machine)),
        }
    }

    /// Sizes the limits not set explicitly to `budget` bytes (`crate::memory::fit`), in
    /// `engine` (its shards set) and `server`; fails if the worst case of them all does not
    /// fit. Returns the table.
    pub fn fit_to_memory(
        &self,
        engine: &mut spine_core::engine::EngineConfig,
        server: &mut ServerConfig,
        budget: u64,
        machine: Option<u64>,
    ) -> Result<crate::memory::Budget, SettingsError> {
        let fitted = crate::memory::fit(engine, server, budget);
        engine.turn_bytes_cap = fitted.turn_bytes_cap;
        engine.inbox_capacity = fitted.inbox_capacity;
        if self.limits.in_flight_bytes_max.is_none() {
            server.limits.in_flight_bytes_max = fitted.in_flight_bytes_max;
        }
        if self.limits.connections_max.is_none() {
            server.limits.connections_max = fitted.connections_max;
        }
        let table = crate::memory::Budget::of(engine, server, budget, machine);
        if server.limits.connections_max == 0 {
            return Err(SettingsError::Invalid(format!(
                "a memory budget of {} leaves no room for a connection:\n{}",
                crate::memory::show(budget),
                table.table()
            )));
        }
        if !table.fits() {
            return Err(SettingsError::Invalid(format!(
                "the limits may hold {}, more than the memory budget of {}: lower them or \
                 raise memory_budget\n{}",
                crate::memory::show(table.total()),
                crate::memory::show(budget),
                table.table()
            )));
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let file: Settings = toml::from_str(
            "shards = 3\ntls_addr = \"127.0.0.1:8000\"\nquic = false\n[limits]\nconnections_max = 7\nrequest_deadline_ms = 900\nidle_timeout_ms = 1500\n",
        )
        .unwrap();
        let flags = Settings {
            tls_addr: Some("127.0.0.1:9000".parse().unwrap()),
            ..Settings::default()
        };
        let settings = file.overridden_by(flags);
        let config = settings.server_config().unwrap();
        assert_eq!(settings.shards, Some(3));
        assert_eq!(config.tls_addr.port(), 9000, "the flag wins");
        assert_eq!(config.quic_addr, None, "the file turned QUIC off");
        assert_eq!(config.limits.connections_max, 7);
        assert_eq!(config.limits.request_deadline, Duration::from_millis(900));
        assert_eq!(config.limits.idle_timeout, Duration::from_millis(1500));
        assert_eq!(config.limits.frame_timeout, Limits::default().frame_timeout);
        assert_eq!(
            config.limits.frame_bytes_max,
            Limits::default().frame_bytes_max
        );
        assert_eq!(settings.data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn the_limits_fit_the_memory_budget_or_the_start_fails() {
        let half = Settings::default().memory_budget(Some(8 << 30)).unwrap();
        assert_eq!(half, 4 << 30, "half the machine");
        let small: Settings =
            toml::from_str("memory_budget = \"96MiB\"\n[limits]\nframe_bytes_max = 65536\n")
                .unwrap();
        assert_eq!(small.memory_budget(None).unwrap(), 96 << 20);
        let mut engine = spine_core::engine::EngineConfig::new("unused");
        engine.shards = 2;
        let mut server = small.server_config().unwrap();
        let table = small
            .fit_to_memory(&mut engine, &mut server, 96 << 20, None)
            .unwrap();
        assert!(table.fits());
        assert_eq!(server.limits.in_flight_bytes_max, 24 << 20);
        assert!(
            server.limits.connections_max > 100,
            "small frames: many connections"
        );

        // Set explicitly, a limit that does not fit stops the start, with the table.
        let too_many: Settings =
            toml::from_str("memory_budget = \"96MiB\"\n[limits]\nconnections_max = 10000\n")
                .unwrap();
        let mut server = too_many.server_config().unwrap();
        let error = too_many
            .fit_to_memory(&mut engine, &mut server, 96 << 20, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("more than the memory budget of 96.0 MiB"),
            "{error}"
        );
        assert!(error.contains("10000 connections"), "{error}");
        let bad: Settings = toml::from_str("memory_budget = \"lots\"").unwrap();
        assert!(bad.memory_budget(None).is_err());
    }

    #[test]
    fn bad_files_get_specific_errors() {
        let error = toml::from_str::<Settings>("shard = 3").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
        let zero: Settings = toml::from_str("[limits]\nconnections_max = 0").unwrap();
        let error = zero.server_config().unwrap_err();
        assert_eq!(error.to_string(), "connections_max must be at least 1");
    }
}
