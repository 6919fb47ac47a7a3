//! The offline tools' library: `zk-logdump` (print, filter, verify and count
//! the txns in WAL segments, and show snapshots) and `zk-snaprepair` (check a
//! data directory and rebuild a consistent one from the newest valid
//! snapshot plus the longest intact log after it). The binaries in `src/bin`
//! only parse arguments and call `logdump::run` / `snaprepair::check` /
//! `snaprepair::repair`.
//!
//! Not something the server needs at run time, and not a second reader of the
//! formats: files are read through the `wal` and `snapshot` crates (memory
//! mapped, never loaded whole) and payloads decoded with `engine::persist`.
//!
//! Invariants: `zk-logdump` and `zk-snaprepair check` open every file
//! read-only; `zk-snaprepair repair` changes nothing without `--apply`, and
//! with it never deletes an original (they move to a quarantine folder).
//! Damaged input is reported, never a panic.

pub mod describe;
pub mod inspect;
pub mod logdump;
pub mod migrate;
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

/// A hand-rolled progress line on stderr for long scans: redrawn at most
/// every 1% and only when stderr is a terminal and the input is large.
pub struct Progress {
    total_bytes: u64,
    done_bytes: u64,
    last_percent: u64,
    enabled: bool,
}

/// Inputs smaller than this finish too fast for a progress line to help.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

impl Progress {
    pub fn new(total_bytes: u64) -> Progress {
        Progress {
            total_bytes,
            done_bytes: 0,
            last_percent: 0,
            enabled: total_bytes >= PROGRESS_MIN_BYTES && stderr_is_terminal(),
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done_bytes = self.done_bytes.saturating_add(bytes);
        if !self.enabled || self.total_bytes == 0 {
            return;
        }
        let percent = self.done_bytes.saturating_mul(100) / self.total_bytes;
        if percent > self.last_percent {
            self.last_percent = percent;
            eprint!("\r{percent:3}% of {} MiB scanned", self.total_bytes >> 20);
        }
    }

    pub fn finish(&mut self) {
        if self.enabled {
            eprint!("\r\x1b[K");
            self.enabled = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
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
