//! Java's text for the values the four-letter words print (`Double.toString`,
//! `InetSocketAddress.toString`, `Date.toString` in UTC), so answers read
//! exactly like the reference's: monitoring scripts parse them. Pure functions
//! that never panic, whatever the value.

use std::net::{IpAddr, SocketAddr};

/// Java's `Double.toString` for the values printed here: the shortest
/// representation that reads back the same, always with a fractional part,
/// and computerized scientific notation (`1.0E7`, `5.0E-4`) outside
/// [10^-3, 10^7).
pub fn java_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_string();
    }
    let magnitude = value.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let text = format!("{value}");
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    // Rust's `{:e}` gives `1e7` / `5e-4` / `1.5e-5`; Java wants `1.0E7`.
    let text = format!("{value:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// Java's `InetSocketAddress.toString` for an address without a host name:
/// `/127.0.0.1:2181`, `/[0:0:0:0:0:0:0:1]:2181`. IPv4-mapped IPv6 addresses
/// print as IPv4, as Java converts them.
pub fn java_socket_addr(address: &SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) => format!("/{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => {
            if let Some(v4) = v6.ip().to_ipv4_mapped() {
                return format!("/{}:{}", v4, v6.port());
            }
            let groups: Vec<String> = v6
                .ip()
                .segments()
                .iter()
                .map(|g| format!("{g:x}"))
                .collect();
            let scope = if v6.scope_id() != 0 {
                format!("%{}", v6.scope_id())
            } else {
                String::new()
            };
            format!("/[{}{}]:{}", groups.join(":"), scope, v6.port())
        }
    }
}

/// Java's `IpAddr` text as the reference prints it (`0:0:0:0:0:0:0:1`).
pub fn java_ip(address: &IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|g| format!("{g:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

/// Java's `Date.toString` in UTC: `Sat Nov 21 20:29:02 UTC 2026`.
pub fn java_date_utc(unix_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = unix_ms / 1000;
    let days = seconds / 86_400;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("???");
    let month_name = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("???");
    format!(
        "{weekday} {month_name} {day:02} {:02}:{:02}:{:02} UTC {year}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (Howard Hinnant's algorithm, unsigned since dates are >= 1970).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn java_number_and_address_formats() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.3333), "1.3333");
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(1.5), "1.5");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0005), "5.0E-4");
        assert_eq!(java_double(0.00015), "1.5E-4");
        assert_eq!(java_double(9_999_999.5), "9999999.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12_345_678.0), "1.2345678E7");
        assert_eq!(java_double(f64::NAN), "NaN");

        assert_eq!(java_socket_addr(&addr("10.1.2.3:2181")), "/10.1.2.3:2181");
        assert_eq!(
            java_socket_addr(&addr("[::ffff:127.0.0.1]:5")),
            "/127.0.0.1:5"
        );
        assert_eq!(
            java_socket_addr(&addr("[fe80::1:0:ab]:7")),
            "/[fe80:0:0:0:0:1:0:ab]:7"
        );
        let scoped = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0, 3));
        assert_eq!(java_socket_addr(&scoped), "/[0:0:0:0:0:0:0:1%3]:9");
        assert_eq!(java_ip(&"::1".parse().expect("ip")), "0:0:0:0:0:0:0:1");
        assert_eq!(java_ip(&"127.0.0.1".parse().expect("ip")), "127.0.0.1");

        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            java_date_utc(951_782_400_000),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(
            java_date_utc(1_795_292_942_999),
            "Sat Nov 21 20:29:02 UTC 2026"
        );
        assert_eq!(
            java_date_utc(4_102_444_799_000),
            "Thu Dec 31 23:59:59 UTC 2099"
        );
        // Never panics, even at the end of time.
        let _ = java_date_utc(u64::MAX);
    }
}
