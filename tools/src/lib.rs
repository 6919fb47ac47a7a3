//! The offline tools' library: `zk-logdump` (print, filter, verify and count
//! the txns in WAL segments, and show snapshots) and `zk-snaprepair` (check a
//! data directory and rebuild a consistent one from the newest valid
//! snapshot plus the longest intact log after it). The binaries in `src/bin`
//! only parse arguments and call `logdump::run` / `snaprepair::check` /
//! `snaprepair::repair`. `zk-migrate` (`migrate`) moves an Apache ZooKeeper
//! data directory in and ours out; it is the one tool that reads another
//! server's formats (Apache's snapshots and txn logs, with their own bounded
//! jute reader) and writes a data directory, through `Storage::install`.
//!
//! Both read either backend's data directory: the native one's WAL segments
//! and snapshots, and (cargo feature `rocksdb`) the RocksDB one's `log` and
//! checkpoint (`rocks`, `rocks_logdump`, `rocks_snaprepair`), with the same
//! output. Without the feature a RocksDB directory is refused, saying how
//! to rebuild.
//!
//! Not something the server needs at run time, and not a second reader of the
//! formats: files are read through the `wal` and `snapshot` crates (memory
//! mapped, never loaded whole), a RocksDB database through
//! `engine::rocks::Inspect` (a secondary instance), and payloads decoded with
//! `engine::persist`.
//!
//! Invariants: `zk-logdump` and `zk-snaprepair check` open every file
//! read-only; `zk-snaprepair repair` changes nothing without `--apply`, and
//! with it never deletes an original (they move to a quarantine folder).
//! Damaged input is reported, never a panic.

pub mod describe;
pub mod inspect;
pub mod logdump;
pub mod migrate;
#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(feature = "rocksdb")]
mod rocks_logdump;
#[cfg(feature = "rocksdb")]
mod rocks_snaprepair;
pub mod snaprepair;

/// Exit status: success, nothing wrong found.
pub const EXIT_OK: u8 = 0;
/// Exit status: the input has problems (verification failed, data lost).
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit status: bad usage or an I/O error stopped the tool.
pub const EXIT_ERROR: u8 = 2;

/// Parses a zxid or session id: `0x`-prefixed hex, or decimal (a negative
/// decimal is taken as the two's-complement u64, as ids are signed on the
/// wire).
/// Parses the command line; on `--help`/`--version` or a usage error prints
/// what clap says and returns the exit code to stop with (0 or `EXIT_ERROR`).
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    T::try_parse().map_err(|error| {
        let _ = error.print();
        std::process::ExitCode::from(if error.use_stderr() {
            EXIT_ERROR
        } else {
            EXIT_OK
        })
    })
}

pub fn parse_number(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let parsed = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).map_err(|e| e.to_string())
    } else if text.starts_with('-') {
        text.parse::<i64>()
            .map(|value| value as u64)
            .map_err(|e| e.to_string())
    } else {
        text.parse::<u64>().map_err(|e| e.to_string())
    };
    parsed.map_err(|error| format!("{text:?} is not a number (hex with 0x, or decimal): {error}"))
}

/// Milliseconds since the Unix epoch as ISO-8601 UTC with milliseconds,
/// e.g. `2024-02-29T13:05:09.250Z`. Any i64 is accepted (a txn's time is
/// input); years outside 0..=9999 are printed as they come.
pub fn iso_time(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard
/// Hinnant's well-known algorithm, in i128 so no input overflows.
fn civil_from_days(days: i64) -> (i128, i128, i128) {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

/// A zxid as the tools print it: `0x` and lower-case hex, no padding.
pub fn hex(zxid: u64) -> String {
    format!("0x{zxid:x}")
}

/// Whether `next` is the zxid right after `previous`: the next counter in
/// the same epoch, or the first counter (0 or 1) of a later epoch.
pub fn zxid_follows(previous: u64, next: u64) -> bool {
    if previous >> 32 == next >> 32 {
        return previous.checked_add(1) == Some(next);
    }
    next >> 32 > previous >> 32 && next & 0xffff_ffff <= 1
}

/// Whether stderr is a terminal: progress lines are drawn only then.
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// What a progress line counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Records,
}

impl Unit {
    /// Inputs smaller than this finish too fast for progress to help.
    fn min_total(self) -> u64 {
        match self {
            Unit::Bytes => 64 << 20,
            Unit::Records => 500_000,
        }
    }

    fn amount(self, value: u64) -> String {
        match self {
            Unit::Bytes => format!("{} MiB", value >> 20),
            Unit::Records => format!("{value} records"),
        }
    }
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Small input: nothing is shown.
    Off,
    /// stderr is a terminal: one line redrawn in place at every 1%.
    Terminal,
    /// stderr is a file or a pipe: a plain line at every 10%, so logs of a
    /// long run say how far it got without filling up with redraws.
    Lines,
}

/// Progress of a long scan on stderr, for inputs large enough to need it:
/// redrawn in place on a terminal, plain lines otherwise, and a summary
/// line (amount, time, rate) when done. Hand-rolled: a line and a
/// percentage do not need a dependency.
pub struct Progress {
    tool: &'static str,
    action: &'static str,
    unit: Unit,
    total: u64,
    done: u64,
    last_percent: u64,
    mode: ProgressMode,
    started: std::time::Instant,
    /// Where lines go; stderr unless a test gave a writer.
    sink: Option<Box<dyn std::io::Write>>,
}

impl Progress {
    /// Bytes scanned by `zk-logdump`.
    pub fn new(total_bytes: u64) -> Progress {
        Progress::counting("zk-logdump", "scanned", Unit::Bytes, total_bytes)
    }

    /// `tool` doing `action` ("verified", "checked") over `total` of `unit`.
    pub fn counting(tool: &'static str, action: &'static str, unit: Unit, total: u64) -> Progress {
        let mode = if total < unit.min_total() {
            ProgressMode::Off
        } else if stderr_is_terminal() {
            ProgressMode::Terminal
        } else {
            ProgressMode::Lines
        };
        Progress {
            tool,
            action,
            unit,
            total,
            done: 0,
            last_percent: 0,
            mode,
            started: std::time::Instant::now(),
            sink: None,
        }
    }

    /// A progress writing to `sink` in `mode`, whatever the input's size.
    pub fn to_writer(
        tool: &'static str,
        action: &'static str,
        unit: Unit,
        total: u64,
        mode: ProgressMode,
        sink: Box<dyn std::io::Write>,
    ) -> Progress {
        Progress {
            mode,
            sink: Some(sink),
            ..Progress::counting(tool, action, unit, total)
        }
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    fn emit(&mut self, text: &str) {
        match self.sink.as_mut() {
            Some(sink) => {
                let _ = sink.write_all(text.as_bytes());
            }
            None => eprint!("{text}"),
        }
    }

    pub fn advance(&mut self, amount: u64) {
        self.done = self.done.saturating_add(amount);
        if self.mode == ProgressMode::Off || self.total == 0 {
            return;
        }
        // Estimates (RocksDB's key counts) may fall short of what is read.
        let percent = (self.done.saturating_mul(100) / self.total).min(99);
        let step = if self.mode == ProgressMode::Lines {
            10
        } else {
            1
        };
        if percent < self.last_percent + step {
            return;
        }
        self.last_percent = percent - percent % step;
        let seconds = self.started.elapsed().as_secs_f64();
        let total = self.unit.amount(self.total);
        let text = match self.mode {
            ProgressMode::Terminal => format!("\r{percent:3}% of {total} {}", self.action),
            _ => format!(
                "{}: {}% of {total} {} ({seconds:.1} s)\n",
                self.tool, self.last_percent, self.action
            ),
        };
        self.emit(&text);
    }

    /// Ends the progress: clears the line and, if progress was shown, prints
    /// the summary. Further calls do nothing.
    pub fn finish(&mut self) {
        if self.mode == ProgressMode::Off {
            return;
        }
        if self.mode == ProgressMode::Terminal {
            self.emit("\r\x1b[K");
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            // Display only: precision loss is harmless.
            self.unit.amount((self.done as f64 / seconds) as u64)
        } else {
            "-".to_string()
        };
        let text = format!(
            "{}: {} {} in {seconds:.1} s ({rate}/s)\n",
            self.tool,
            self.action,
            self.unit.amount(self.done)
        );
        self.emit(&text);
        self.mode = ProgressMode::Off;
    }
}

impl Drop for Progress {
    /// Cut short (an error): the line is cleared, no summary claims a
    /// finished scan.
    fn drop(&mut self) {
        if self.mode == ProgressMode::Terminal {
            self.emit("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_in_hex_and_decimal() {
        assert_eq!(parse_number("0x1f"), Ok(31));
        assert_eq!(parse_number("31"), Ok(31));
        assert_eq!(parse_number("-1"), Ok(u64::MAX));
        assert!(parse_number("0xzz").is_err());
        assert!(parse_number("").is_err());
    }

    #[test]
    fn zxid_sequence_allows_epoch_changes() {
        assert!(zxid_follows(5, 6));
        assert!(!zxid_follows(5, 7));
        assert!(zxid_follows(0x1_0000_0009, 0x2_0000_0001));
        assert!(!zxid_follows(0x1_0000_0009, 0x2_0000_0005));
        assert!(!zxid_follows(u64::MAX, 0));
    }

    /// Shares what a `Progress` writes with the test.
    #[derive(Clone, Default)]
    struct Captured(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.borrow()).into_owned()
        }
    }

    /// Issue 14 §6: not on a terminal, progress is plain lines (one per
    /// 10%, never past 99% on an estimate that falls short) and a summary.
    #[test]
    fn progress_off_a_terminal_is_plain_lines_and_a_summary() {
        let captured = Captured::default();
        let mut progress = Progress::to_writer(
            "zk-test",
            "verified",
            Unit::Records,
            1_000,
            ProgressMode::Lines,
            Box::new(captured.clone()),
        );
        for _ in 0..1_200 {
            progress.advance(1);
        }
        progress.finish();
        progress.finish();
        let text = captured.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10, "{text}");
        assert!(
            lines[0].starts_with("zk-test: 10% of 1000 records verified ("),
            "{text}"
        );
        assert!(lines[8].starts_with("zk-test: 90% of"), "{text}");
        assert!(
            lines[9].starts_with("zk-test: verified 1200 records in "),
            "{text}"
        );
        assert!(!text.contains('\r'), "{text}");
    }

    #[test]
    fn small_inputs_show_no_progress() {
        let progress = Progress::counting("zk-test", "verified", Unit::Bytes, 1 << 20);
        assert_eq!(progress.mode(), ProgressMode::Off);
        let large = Progress::counting("zk-test", "verified", Unit::Records, 10_000_000);
        assert_ne!(large.mode(), ProgressMode::Off);
    }

    #[test]
    fn times_are_iso_utc() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_709_211_909_250), "2024-02-29T13:05:09.250Z");
        assert_eq!(iso_time(-1), "1969-12-31T23:59:59.999Z");
        // Extremes do not panic.
        let _ = iso_time(i64::MIN);
        let _ = iso_time(i64::MAX);
    }
}
