//! go-yaml v3's typing of scalars (`resolve.go`, and `time.Parse` for its timestamp
//! layouts): what a plain, quoted or tagged scalar decodes to in an `interface{}`, and
//! whether a string written plain would read back as a string.

use saphyr_parser::ScalarStyle;

use crate::sops::tree::Scalar;
use crate::sops::SopsError;

/// A scalar's value as go-yaml decodes it into an `interface{}`.
pub(super) fn resolve_node(
    text: &str,
    style: ScalarStyle,
    tag: Option<&str>,
    line: usize,
) -> Result<Scalar, SopsError> {
    let tag = tag.map(short_tag);
    let quoted = !matches!(style, ScalarStyle::Plain);
    match tag.as_deref() {
        None if quoted => Ok(Scalar::str(text)),
        Some("!!str") => Ok(Scalar::str(text)),
        Some("!!binary") => {
            use base64::Engine;
            let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(cleaned)
                .map_err(|_| tag_error(line, "!!binary"))?;
            String::from_utf8(bytes)
                .map(Scalar::str)
                .map_err(|_| tag_error(line, "!!binary"))
        }
        None => resolve(text, "").map_err(|why| SopsError::Syntax {
            line,
            reason: why.into(),
        }),
        Some(t @ ("!!int" | "!!float" | "!!bool" | "!!null" | "!!timestamp")) => {
            let value = resolve(text, t).map_err(|why| SopsError::Syntax {
                line,
                reason: why.into(),
            })?;
            let fits = matches!(
                (t, &value),
                ("!!int", Scalar::Int(_))
                    | ("!!float", Scalar::Float(_))
                    | ("!!bool", Scalar::Bool(_))
                    | ("!!null", Scalar::Null)
                    | ("!!timestamp", Scalar::Time(_))
            );
            match (t, value) {
                (_, v) if fits => Ok(v),
                ("!!float", Scalar::Int(i)) => Ok(Scalar::Float(i as f64)),
                _ => Err(tag_error(line, t)),
            }
        }
        // Any other tag (`!Ref`, `!`): go-yaml gives the text as a string.
        Some(_) => Ok(Scalar::str(text)),
    }
}

fn tag_error(line: usize, tag: &str) -> SopsError {
    SopsError::Syntax {
        line,
        reason: format!("a value tagged {tag} is not one"),
    }
}

fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(rest) => format!("!!{rest}"),
        None => tag.to_string(),
    }
}

/// Whether a string written plain would read back as a string (go-yaml's `resolve` gives
/// `!!str`): the emitter quotes it otherwise.
pub(crate) fn plain_resolves_to_str(s: &str) -> bool {
    matches!(resolve(s, ""), Ok(Scalar::Str(_)))
        // A uint64 is an int to go-yaml even though sops cannot hold it.
        && !is_uint64(s)
}

fn is_uint64(s: &str) -> bool {
    let first = s.as_bytes().first().copied().unwrap_or(0);
    (first.is_ascii_digit() || first == b'+') && parse_go_uint(&s.replace('_', "")).is_some()
}

/// go-yaml's `resolve` for a plain scalar (`tag` empty) or one tagged `tag`.
fn resolve(text: &str, tag: &str) -> Result<Scalar, &'static str> {
    let first = text.as_bytes().first().copied();
    match text {
        "true" | "True" | "TRUE" => return Ok(Scalar::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Scalar::Bool(false)),
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Scalar::Null),
        ".nan" | ".NaN" | ".NAN" => return Ok(Scalar::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Ok(Scalar::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return Ok(Scalar::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    match first {
        Some(b'.') => {
            if let Some(f) = parse_go_float(text) {
                return Ok(Scalar::Float(f));
            }
        }
        Some(b'0'..=b'9' | b'+' | b'-') => {
            if tag.is_empty() || tag == "!!timestamp" {
                if let Some(t) = parse_timestamp(text) {
                    return Ok(Scalar::Time(t));
                }
            }
            let plain = text.replace('_', "");
            if let Some(i) = parse_go_int(&plain) {
                return Ok(Scalar::Int(i));
            }
            if parse_go_uint(&plain).is_some() {
                return Err("an integer above 2^63 - 1, which sops cannot encrypt");
            }
            if is_yaml_float(&plain) {
                if let Some(f) = parse_go_float(&plain) {
                    return Ok(Scalar::Float(f));
                }
            }
            for (prefix, radix, negative) in [
                ("0b", 2, false),
                ("-0b", 2, true),
                ("0o", 8, false),
                ("-0o", 8, true),
            ] {
                if let Some(digits) = plain.strip_prefix(prefix) {
                    if let Ok(v) = i64::from_str_radix(digits, radix) {
                        return Ok(Scalar::Int(if negative { -v } else { v }));
                    }
                    if !negative && u64::from_str_radix(digits, radix).is_ok() {
                        return Err("an integer above 2^63 - 1, which sops cannot encrypt");
                    }
                }
            }
        }
        _ => {}
    }
    Ok(Scalar::str(text))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, then `0x`, `0o`, `0b`, a leading `0` (octal)
/// or decimal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = parse_go_magnitude(body)?;
    if negative {
        if magnitude == 1u64 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(magnitude).ok().map(|v| -v)
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
fn parse_go_uint(s: &str) -> Option<u64> {
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return None;
    }
    parse_go_magnitude(body)
}

fn parse_go_magnitude(body: &str) -> Option<u64> {
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d.to_string(), 16)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d.to_string(), 8)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d.to_string(), 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (lower[1..].to_string(), 8)
    } else {
        (lower, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` for the spellings YAML scalars reach it with.
fn parse_go_float(s: &str) -> Option<f64> {
    // Go literal syntax allows `_` between digits (`.0_7`).
    if s.contains('_') {
        return if underscores_between_digits(s) {
            parse_go_float(&s.replace('_', ""))
        } else {
            None
        };
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if body.starts_with("0x") || body.contains('_') {
        return None;
    }
    match body {
        "inf" | "infinity" | "nan" => {}
        _ if !body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-')) =>
        {
            return None
        }
        _ => {}
    }
    let f: f64 = s.parse().ok()?;
    // Go refuses values out of range (it returns ±Inf with an error).
    (f.is_finite() || body == "inf" || body == "infinity" || body == "nan").then_some(f)
}

/// Go's `underscoreOK` for a decimal number: every `_` between two digits.
fn underscores_between_digits(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

/// go-yaml's `parseTimestamp`: four digits and `-`, then one of its layouts; the result as
/// Go's `time.RFC3339Nano` prints it.
fn parse_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(at) => (&s[..at], Some((&s[at..at + 1], &s[at + 1..]))),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month = short_field(parts.next()?)?;
    let day = short_field(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let Some((sep, clock)) = rest else {
        return Some(format_rfc3339_nano(date, 0, 0, 0, 0, None));
    };
    // Space-separated times have no zone; `T` ones need one (`Z` or ±hh:mm).
    let (clock, zone) = if sep == " " {
        (clock, None)
    } else if let Some(c) = clock.strip_suffix('Z') {
        (c, Some(0))
    } else {
        let at = clock.rfind(['+', '-'])?;
        let zone = &clock[at..];
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let minutes: i32 = h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?;
        (&clock[..at], Some(sign * minutes))
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f))
            if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) =>
        {
            (hms, f)
        }
        Some(_) => return None,
        None => (clock, ""),
    };
    let mut fields = hms.split(':');
    let hour = short_field(fields.next()?)?;
    let minute = short_field(fields.next()?)?;
    let second = short_field(fields.next()?)?;
    if fields.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(format_rfc3339_nano(date, hour, minute, second, nanos, zone))
}

/// A one- or two-digit field (Go's `1`/`2`/`15`/`4`/`5` layout elements).
fn short_field(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn format_rfc3339_nano(
    date: time::Date,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    zone_minutes: Option<i32>,
) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02}T{hour:02}:{minute:02}:{second:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    if nanos > 0 {
        let digits = format!("{nanos:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    match zone_minutes {
        None | Some(0) => out.push('Z'),
        Some(m) => {
            let sign = if m < 0 { '-' } else { '+' };
            let m = m.unsigned_abs();
            out.push_str(&format!("{sign}{:02}:{:02}", m / 60, m % 60));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_as_go_yaml_does() {
        let cases: [(&str, Scalar); 16] = [
            ("yes", Scalar::str("yes")),
            ("True", Scalar::Bool(true)),
            ("~", Scalar::Null),
            ("0x1F", Scalar::Int(31)),
            ("017", Scalar::Int(15)),
            ("0o17", Scalar::Int(15)),
            ("1_000", Scalar::Int(1000)),
            ("-0.0", Scalar::Float(-0.0)),
            ("3.0", Scalar::Float(3.0)),
            ("6.02e23", Scalar::Float(6.02e23)),
            (".5", Scalar::Float(0.5)),
            ("99999999999999999999", Scalar::Float(1e20)),
            ("08", Scalar::Float(8.0)),
            ("2024-01-02", Scalar::Time("2024-01-02T00:00:00Z".into())),
            (
                "2024-01-02 10:11:12",
                Scalar::Time("2024-01-02T10:11:12Z".into()),
            ),
            (
                "2024-01-02T03:04:05.120+02:00",
                Scalar::Time("2024-01-02T03:04:05.12+02:00".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(resolve(text, "").unwrap(), want, "{text}");
        }
        assert!(resolve("12345678901234567890", "").is_err());
        assert!(plain_resolves_to_str("hello"));
        assert!(!plain_resolves_to_str("12345678901234567890"));
    }
}
