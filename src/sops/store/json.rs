//! The SOPS JSON store's text form: JSON read into a SOPS tree and written back, as sops
//! 3.11 does.
//!
//! Reading follows sops's token walk over Go's `encoding/json` decoder: key order and
//! repeated keys are kept, every number is a float64 (`42` is `type:float` in 3.11), the top
//! level must be an object, and whatever follows it is not read. Writing is Go's
//! `json.Marshal` of each value (HTML-escaped strings, Go's float spelling) re-indented by
//! `json.Indent` with a tab (or `stores.json.indent` spaces), plus a final line feed.

use zeroize::Zeroizing;

use super::binary::go_json_string;
use crate::sops::tree::{Branch, ListItem, MapItem, Scalar, Text, Tree, Value};
use crate::sops::SopsError;

/// Reads a JSON file (plain or encrypted: the `sops` key stays in the tree).
pub(crate) fn parse(text: &[u8]) -> Result<Tree, SopsError> {
    let mut reader = Reader { text, pos: 0 };
    reader.skip_space();
    if reader.peek() != Some(b'{') {
        return Err(reader.error("the top level is not a JSON object"));
    }
    reader.pos += 1;
    Ok(vec![reader.object()?])
}

struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
}

/// Nesting beyond this is refused rather than overflowing the stack.
const MAX_DEPTH: usize = 512;

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// A syntax error naming the line and column only.
    fn error(&self, reason: &str) -> SopsError {
        let upto = &self.text[..self.pos.min(self.text.len())];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = upto.len() - upto.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
        SopsError::Syntax {
            line,
            reason: format!("invalid JSON at column {column}: {reason}"),
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), SopsError> {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// The members of an object whose `{` was read.
    fn object(&mut self) -> Result<Branch, SopsError> {
        self.object_at(0)
    }

    fn object_at(&mut self, depth: usize) -> Result<Branch, SopsError> {
        let mut branch = Branch::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(branch);
        }
        loop {
            self.skip_space();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key string"));
            }
            let key = self.string()?;
            self.expect(b':', "expected `:` after a key")?;
            let value = self.value(depth + 1)?;
            branch.push(MapItem::Pair(key.to_string(), value));
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(branch);
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Vec<ListItem>, SopsError> {
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(ListItem::Value(self.value(depth + 1)?));
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SopsError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.skip_space();
        let literal = |r: &mut Self, word: &[u8], value: Scalar| {
            if r.text[r.pos..].starts_with(word) {
                r.pos += word.len();
                Ok(Value::Scalar(value))
            } else {
                Err(r.error("invalid literal"))
            }
        };
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(Value::Map(self.object_at(depth)?))
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Value::List(self.array(depth)?))
            }
            Some(b'"') => Ok(Value::Scalar(Scalar::Str(self.string()?))),
            Some(b't') => literal(self, b"true", Scalar::Bool(true)),
            Some(b'f') => literal(self, b"false", Scalar::Bool(false)),
            Some(b'n') => literal(self, b"null", Scalar::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    /// A number, as Go's decoder gives it to sops 3.11: a float64.
    fn number(&mut self) -> Result<Value, SopsError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |r: &mut Self| {
            let from = r.pos;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.pos += 1;
            }
            r.pos - from
        };
        let int_start = self.pos;
        let int_digits = digits(self);
        if int_digits == 0 || (int_digits > 1 && self.text[int_start] == b'0') {
            return Err(self.error("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("x");
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Scalar(Scalar::Float(f))),
            _ => Err(self.error("a number out of float64 range")),
        }
    }

    /// A string whose opening quote is next; Go replaces invalid UTF-8 and lone surrogates
    /// with U+FFFD.
    fn string(&mut self) -> Result<Text, SopsError> {
        self.pos += 1;
        let mut raw = Zeroizing::new(Vec::new());
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("an unterminated string"));
            };
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut raw)?,
                0..=0x1f => return Err(self.error("a control character in a string")),
                _ => raw.push(byte),
            }
        }
        Ok(Zeroizing::new(String::from_utf8_lossy(&raw).into_owned()))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), SopsError> {
        let Some(byte) = self.peek() else {
            return Err(self.error("an unterminated string"));
        };
        self.pos += 1;
        let simple = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode_escape()?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("an invalid escape in a string")),
        };
        out.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SopsError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.error("an invalid \\u escape"))?;
        self.pos += 4;
        Ok(digits)
    }

    fn unicode_escape(&mut self) -> Result<char, SopsError> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) && self.text[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or('\u{FFFD}'))
    }
}

/// Writes the one document as sops does. `indent` is `None` for a tab.
pub(crate) fn emit(tree: &Tree, indent: Option<usize>) -> Vec<u8> {
    let unit = indent.map_or_else(|| "\t".to_string(), |n| " ".repeat(n));
    let mut out = String::new();
    let empty = Branch::new();
    branch(tree.first().unwrap_or(&empty), &unit, 0, &mut out);
    out.push('\n');
    out.into_bytes()
}

fn newline(unit: &str, depth: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(unit);
    }
}

fn branch(items: &Branch, unit: &str, depth: usize, out: &mut String) {
    let pairs: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            MapItem::Pair(k, v) => Some((k, v)),
            MapItem::Comment(_) => None,
        })
        .collect();
    if pairs.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (key, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(unit, depth + 1, out);
        go_json_string(key, out);
        out.push_str(": ");
        self::value(value, unit, depth + 1, out);
    }
    newline(unit, depth, out);
    out.push('}');
}

fn value(value: &Value, unit: &str, depth: usize, out: &mut String) {
    match value {
        Value::Map(items) => branch(items, unit, depth, out),
        Value::List(items) => {
            let values: Vec<_> = items
                .iter()
                .filter_map(|i| match i {
                    ListItem::Value(v) => Some(v),
                    ListItem::Comment(_) => None,
                })
                .collect();
            if values.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(unit, depth + 1, out);
                self::value(v, unit, depth + 1, out);
            }
            newline(unit, depth, out);
            out.push(']');
        }
        Value::Scalar(scalar) => match scalar {
            Scalar::Null => out.push_str("null"),
            Scalar::Str(s) => go_json_string(s, out),
            Scalar::Int(i) => out.push_str(&i.to_string()),
            Scalar::Float(f) => out.push_str(&go_json_float(*f)),
            Scalar::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Scalar::Time(t) => go_json_string(t, out),
        },
    }
}

/// Go's `encoding/json` float: `'f'` form, but `'e'` below 1e-6 and from 1e21 on, with a
/// two-digit exponent shortened (`1e-07` → `1e-7`). NaN and infinities cannot come from a
/// JSON file; they are written as Go's `'f'` text would be, for want of anything better.
pub(crate) fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && abs.is_finite() && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is also the shortest round-trip digits: `1e21`, `1.5e-7`.
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{}", exp.unsigned_abs());
    }
    crate::sops::mac::go_format_float(f)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round(text: &str) -> String {
        String::from_utf8(emit(&parse(text.as_bytes()).unwrap(), None)).unwrap()
    }

    /// The vector's input and what `sops -d` printed for it.
    #[test]
    fn nested_vector_round_trips_as_sops_prints_it() {
        let input = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sops-vectors/plain/nested.json"
        ))
        .unwrap();
        let expected = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sops-vectors/expected/json_nested_2recipients.enc.json.decrypted"
        ))
        .unwrap();
        assert_eq!(round(&input), expected);
    }

    #[test]
    fn go_spellings() {
        assert_eq!(
            round(r#"{"a":1e21,"b":1e-7,"c":0.000001,"d":123456789012,"e":-0,"f":1.5e300}"#),
            "{\n\t\"a\": 1e+21,\n\t\"b\": 1e-7,\n\t\"c\": 0.000001,\n\t\"d\": 123456789012,\n\t\"e\": -0,\n\t\"f\": 1.5e+300\n}\n"
        );
        assert_eq!(
            round(r#"{"s":"\u00e9\ud83d\ude00<>&\b\f\u0001","k":{},"l":[],"d":1,"d":2}"#),
            "{\n\t\"s\": \"é😀\\u003c\\u003e\\u0026\\b\\f\\u0001\",\n\t\"k\": {},\n\t\"l\": [],\n\t\"d\": 1,\n\t\"d\": 2\n}\n"
        );
        assert_eq!(
            String::from_utf8(emit(&parse(b"{\"a\":[1,{\"b\":null}]}").unwrap(), Some(2))).unwrap(),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ]\n}\n"
        );
    }

    #[test]
    fn errors_name_the_place_not_the_value() {
        for bad in [
            "[1]",
            "{\"a\": secretword}",
            "{\"a\": \"x\"",
            "{\"a\" 1}",
            "{\"a\": 01}",
        ] {
            let err = parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("line 1"), "{err}");
            assert!(!err.contains("secretword"), "{err}");
        }
    }
}
