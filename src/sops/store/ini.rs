//! The SOPS INI store: go-ini's reading and writing of a SOPS tree, as sops 3.11 does them.
//!
//! sops reads INI with `gopkg.in/ini.v1` v1.67.0 (`LoadSources` with non-unique sections and
//! otherwise default options) and writes it with `File.WriteTo` (pretty format, pretty
//! sections, `\n` line breaks). This module reproduces both byte for byte:
//!
//! * Reading: the file is a `DEFAULT` section (keys before any header, always present,
//!   possibly empty) followed by one section per `[name]` header, duplicates kept apart.
//!   Keys are split at the first `=` or `:`; a key repeated in a section keeps its first
//!   place, takes the last value and the last key's comment. Comment lines (`;`, `#`) pile up
//!   and go to the next section header or key, together with that line's inline comment
//!   (from the first `;` or `#` of an unquoted value). Values are trimmed; `"""…"""` and
//!   `` `…` `` quote (and may span lines), surrounding `"` or `'` are dropped, a trailing `\`
//!   continues the value on the next line. Comments after the last key of a section are
//!   lost, as in sops.
//! * The tree (sops's `treeBranchesFromIni`): one document whose pairs are the sections,
//!   each a map starting with the section's comment (if any), then each key followed by its
//!   comment (if any). Comments lose their leading run of `;`/`#` and spaces.
//! * Writing (sops's `encodeTree` then go-ini's `WriteTo`): comments of the top level are
//!   dropped; a section's leading comment goes above its header, a comment after a key goes
//!   above that key (the last one wins, comments before the first key are dropped). `=` is
//!   aligned per section, values with a line feed or `` ` `` are written in `"""`, with `;`
//!   or `#` in backticks, with outer spaces in `"`. A first section named `DEFAULT` is
//!   written without header, and not at all when it has no keys. Sections are separated by
//!   an empty line.
//!
//! Errors name the line, never its content.

use crate::sops::tree::{Branch, MapItem, Scalar, Text, Tree, Value};
use crate::sops::SopsError;

/// go-ini's name for the section of keys before any header.
const DEFAULT_SECTION: &str = "DEFAULT";

/// A section as go-ini holds it.
#[derive(Default)]
struct Section {
    name: String,
    comment: Text,
    keys: Vec<Key>,
}

/// A key as go-ini holds it.
struct Key {
    name: String,
    value: Text,
    comment: Text,
}

impl Section {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Self::default()
        }
    }

    /// go-ini's `NewKey`: a repeated name keeps its place and takes the new value.
    fn new_key(&mut self, name: &str, value: Text) -> &mut Key {
        let index = match self.keys.iter().position(|k| k.name == name) {
            Some(index) => {
                self.keys[index].value = value;
                index
            }
            None => {
                self.keys.push(Key {
                    name: name.to_string(),
                    value,
                    comment: Text::default(),
                });
                self.keys.len() - 1
            }
        };
        &mut self.keys[index]
    }
}

/// Go's `unicode.IsSpace` (the Unicode White_Space property, as Rust's).
fn trim(s: &str) -> &str {
    s.trim()
}

/// The lines of the input as go-ini's `bufio` reader yields them: each with its `\n`.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    eof: bool,
}

impl<'a> Reader<'a> {
    /// `ReadBytes('\n')`: the next line with its `\n`, or the rest at the end (then `eof`).
    fn read_line(&mut self) -> &'a str {
        let rest = &self.text[self.pos..];
        self.line += 1;
        match rest.find('\n') {
            Some(i) => {
                self.pos += i + 1;
                &rest[..=i]
            }
            None => {
                self.pos = self.text.len();
                self.eof = true;
                rest
            }
        }
    }

    fn error(&self, reason: &str) -> SopsError {
        SopsError::Syntax {
            line: self.line,
            reason: reason.to_string(),
        }
    }
}

/// The part of `s` from its first `#` or `;`, if any (go-ini's `cleanComment`).
fn clean_comment(s: &str) -> Option<&str> {
    s.find(['#', ';']).map(|i| &s[i..])
}

/// Whether `s` is `q…q` with no other `q` inside (go-ini's `hasSurroundedQuote`).
fn has_surrounded_quote(s: &str, q: u8) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0] == q
        && b[b.len() - 1] == q
        && b[1..].iter().position(|&c| c == q) == Some(b.len() - 2)
}

/// go-ini's `readKeyName`: the trimmed key name and the offset just after its delimiter.
fn read_key_name(line: &str, reader: &Reader<'_>) -> Result<(String, usize), SopsError> {
    let quote = if line.starts_with('"') {
        if line.len() > 6 && line.starts_with("\"\"\"") {
            "\"\"\""
        } else {
            "\""
        }
    } else if line.starts_with('`') {
        "`"
    } else {
        ""
    };
    if !quote.is_empty() {
        let start = quote.len();
        let pos = line[start..]
            .find(quote)
            .ok_or_else(|| reader.error("a key name's closing quote is missing"))?
            + start;
        let i = line
            .get(pos + start..)
            .and_then(|rest| rest.find(['=', ':']))
            .ok_or_else(|| reader.error("the line has no `=` or `:` after the key name"))?;
        let end = pos + i;
        return Ok((trim(&line[start..pos]).to_string(), end + start + 1));
    }
    match line.find(['=', ':']) {
        None => Err(reader.error("the line has no `=` or `:` (expected key = value)")),
        Some(0) => Err(reader.error("the key name is empty")),
        Some(end) => Ok((trim(&line[..end]).to_string(), end + 1)),
    }
}

/// The parser's state: the reader and the comment lines waiting for a section or key.
struct Parser<'a> {
    reader: Reader<'a>,
    comment: Text,
}

impl Parser<'_> {
    /// go-ini's `readValue` (default options).
    fn read_value(&mut self, input: &str) -> Result<Text, SopsError> {
        let line = input.trim_start();
        if line.is_empty() {
            return Ok(Text::default());
        }
        let quote = if line.len() > 3 && line.starts_with("\"\"\"") {
            "\"\"\""
        } else if line.starts_with('`') {
            "`"
        } else {
            ""
        };
        if !quote.is_empty() {
            let start = quote.len();
            return match line[start..].rfind(quote) {
                Some(pos) => Ok(Text::new(line[start..start + pos].to_string())),
                None => self.read_multilines(&line[start..], quote),
            };
        }
        let mut line = trim(line);
        if let Some(head) = line.strip_suffix('\\') {
            return Ok(self.read_continuation_lines(head));
        }
        if let Some(i) = line.find(['#', ';']) {
            self.comment.push_str(&line[i..]);
            line = trim(&line[..i]);
        }
        if has_surrounded_quote(line, b'\'') || has_surrounded_quote(line, b'"') {
            line = &line[1..line.len() - 1];
        }
        Ok(Text::new(line.to_string()))
    }

    /// go-ini's `readMultilines`: lines up to the last `quote` of a line.
    fn read_multilines(&mut self, first: &str, quote: &str) -> Result<Text, SopsError> {
        let mut value = Text::new(first.to_string());
        let start = self.reader.line;
        loop {
            let next = self.reader.read_line();
            if let Some(pos) = next.rfind(quote) {
                value.push_str(&next[..pos]);
                if let Some(comment) = clean_comment(&next[pos..]) {
                    self.comment.push_str(trim(comment));
                }
                return Ok(value);
            }
            value.push_str(next);
            if self.reader.eof {
                return Err(SopsError::Syntax {
                    line: start,
                    reason: "a value's closing quote is missing".into(),
                });
            }
        }
    }

    /// go-ini's `readContinuationLines`: trimmed lines while each ends in `\`.
    fn read_continuation_lines(&mut self, head: &str) -> Text {
        let mut value = Text::new(head.to_string());
        loop {
            let next = trim(self.reader.read_line());
            if next.is_empty() {
                break;
            }
            value.push_str(next);
            if !value.ends_with('\\') {
                break;
            }
            value.pop();
        }
        value
    }

    /// go-ini's `File.parse` with sops's options: the sections, `DEFAULT` first.
    fn parse(&mut self) -> Result<Vec<Section>, SopsError> {
        let mut sections = vec![Section::new(DEFAULT_SECTION)];
        let mut count = 1usize;
        while !self.reader.eof {
            let line = self.reader.read_line().trim_start();
            if line.is_empty() {
                continue;
            }
            if line.starts_with(['#', ';']) {
                self.comment.push_str(line);
                continue;
            }
            if line.starts_with('[') {
                let close = line
                    .rfind(']')
                    .ok_or_else(|| self.reader.error("a section header is not closed"))?;
                let name = &line[1..close];
                if name.is_empty() {
                    return Err(self.reader.error("a section name is empty"));
                }
                let mut section = Section::new(name);
                if let Some(comment) = clean_comment(&line[close + 1..]) {
                    self.comment.push_str(comment);
                }
                section.comment = Text::new(trim(&self.comment).to_string());
                self.comment.clear();
                count = 1;
                sections.push(section);
                continue;
            }
            let (mut name, offset) = read_key_name(line, &self.reader)?;
            if name == "-" {
                name = format!("#{count}");
                count += 1;
            }
            let value = self.read_value(&line[offset..])?;
            if name.is_empty() {
                return Err(self.reader.error("the key name is empty"));
            }
            let comment = Text::new(trim(&self.comment).to_string());
            self.comment.clear();
            if let Some(section) = sections.last_mut() {
                section.new_key(&name, value).comment = comment;
            }
        }
        Ok(sections)
    }
}

/// sops's `stripCommentChar`: the comment without its leading run of markers and spaces.
fn strip_comment_char(comment: &str) -> &str {
    if comment.starts_with(';') {
        comment.trim_start_matches([';', ' '])
    } else if comment.starts_with('#') {
        comment.trim_start_matches(['#', ' '])
    } else {
        comment
    }
}

/// Reads INI text into the tree sops makes of it: one document whose pairs are the sections.
pub(crate) fn parse(text: &[u8]) -> Result<Tree, SopsError> {
    let text = strip_bom(text);
    let text = std::str::from_utf8(text).map_err(|e| {
        let line = text[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        SopsError::Syntax {
            line,
            reason: "the text is not UTF-8".into(),
        }
    })?;
    let mut parser = Parser {
        reader: Reader {
            text,
            pos: 0,
            line: 0,
            eof: false,
        },
        comment: Text::default(),
    };
    let sections = parser.parse()?;
    let mut doc = Branch::with_capacity(sections.len());
    for section in sections {
        let mut items = Branch::with_capacity(section.keys.len() + 1);
        if !section.comment.is_empty() {
            items.push(MapItem::Comment(Text::new(
                strip_comment_char(&section.comment).to_string(),
            )));
        }
        for key in section.keys {
            items.push(MapItem::Pair(
                key.name,
                Value::Scalar(Scalar::Str(key.value)),
            ));
            if !key.comment.is_empty() {
                items.push(MapItem::Comment(Text::new(
                    strip_comment_char(&key.comment).to_string(),
                )));
            }
        }
        doc.push(MapItem::Pair(section.name, Value::Map(items)));
    }
    Ok(vec![doc])
}

/// go-ini's `BOM`: drops a UTF-16 byte order mark (two bytes) or a UTF-8 one (three).
fn strip_bom(text: &[u8]) -> &[u8] {
    match text {
        [0xFE, 0xFF, rest @ ..] | [0xFF, 0xFE, rest @ ..] => rest,
        [0xEF, 0xBB, 0xBF, rest @ ..] => rest,
        _ => text,
    }
}

/// sops's `ValToString` for the scalars a tree may hold.
fn scalar_to_string(value: &Value) -> Text {
    Text::new(match value {
        Value::Scalar(Scalar::Str(s)) => s.to_string(),
        Value::Scalar(Scalar::Int(i)) => i.to_string(),
        Value::Scalar(Scalar::Bool(b)) => b.to_string(),
        Value::Scalar(Scalar::Time(t)) => t.clone(),
        Value::Scalar(Scalar::Null) => "<nil>".to_string(),
        Value::Scalar(Scalar::Float(f)) => {
            let s = f.to_string();
            if s.contains(['.', 'e', 'E', 'i', 'N']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        Value::Map(_) | Value::List(_) => String::new(),
    })
}

/// sops's `encodeTree`: the sections of every document, comments placed as go-ini keeps them.
fn sections_of(tree: &Tree) -> Vec<Section> {
    let mut sections = Vec::new();
    for item in tree.iter().flatten() {
        let MapItem::Pair(name, Value::Map(items)) = item else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let mut section = Section::new(name);
        let mut rest = items.as_slice();
        if let Some((MapItem::Comment(comment), tail)) = rest.split_first() {
            section.comment = comment.clone();
            rest = tail;
        }
        let mut last: Option<usize> = None;
        for item in rest {
            match item {
                MapItem::Comment(comment) => {
                    if let Some(index) = last {
                        section.keys[index].comment = comment.clone();
                    }
                }
                MapItem::Pair(key, value) => {
                    if key.is_empty() {
                        continue;
                    }
                    section.new_key(key, scalar_to_string(value));
                    last = section.keys.iter().position(|k| &k.name == key);
                }
            }
        }
        sections.push(section);
    }
    sections
}

/// Writes the tree as sops does (go-ini's `WriteTo`).
pub(crate) fn emit(tree: &Tree) -> Vec<u8> {
    let sections = sections_of(tree);
    let mut out = String::new();
    let last = sections.len().saturating_sub(1);
    for (i, section) in sections.iter().enumerate() {
        if !section.comment.is_empty() {
            for line in section.comment.split('\n') {
                write_comment_line(&mut out, line, false);
            }
        }
        if i > 0 || section.name.to_uppercase() != DEFAULT_SECTION {
            out.push('[');
            out.push_str(&section.name);
            out.push_str("]\n");
        } else if section.keys.is_empty() {
            continue;
        }
        let quoted: Vec<String> = section.keys.iter().map(|k| quote_key(&k.name)).collect();
        let align = quoted.iter().map(String::len).max().unwrap_or(0);
        for (key, name) in section.keys.iter().zip(&quoted) {
            if !key.comment.is_empty() {
                for line in key.comment.split('\n') {
                    write_comment_line(&mut out, line, true);
                }
            }
            out.push_str(name);
            out.extend(std::iter::repeat_n(' ', align - name.len()));
            out.push_str(" = ");
            write_value(&mut out, &key.value);
            out.push('\n');
        }
        if i != last {
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// One line of a comment as go-ini writes it: `; text`, or its own marker and one space.
/// (go-ini panics on an empty line; it is written as `; ` here.)
fn write_comment_line(out: &mut String, line: &str, trim_plain: bool) {
    match line.as_bytes().first() {
        Some(b'#' | b';') => {
            out.push_str(&line[..1]);
            out.push(' ');
            out.push_str(trim(&line[1..]));
        }
        _ => {
            out.push_str("; ");
            out.push_str(if trim_plain { trim(line) } else { line });
        }
    }
    out.push('\n');
}

/// A key name quoted as go-ini writes it.
fn quote_key(name: &str) -> String {
    if name.contains(['"', '=', ':']) {
        format!("`{name}`")
    } else if name.contains('`') {
        format!("\"\"\"{name}\"\"\"")
    } else {
        name.to_string()
    }
}

/// A value quoted as go-ini writes it.
fn write_value(out: &mut String, value: &str) {
    let quote = if value.contains(['\n', '`']) {
        "\"\"\""
    } else if value.contains(['#', ';']) {
        "`"
    } else if trim(value).len() != value.len() {
        "\""
    } else {
        ""
    };
    out.push_str(quote);
    out.push_str(value);
    out.push_str(quote);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// (name, input, what `sops -d` of `sops -e input` prints), from sops 3.11.0.
    const PLAIN: &[(&str, &str, &str)] = &[
        (
            "01_sample",
            "; leading comment\n[database]\nuser = admin\npassword = hunter2 ; trailing?\nport = 5432\n\n[empty]\n\n[other]\nkey_unencrypted = visible\nmulti = a\\nb\n",
            "; leading comment\n[database]\nuser     = admin\n; trailing?\npassword = hunter2\nport     = 5432\n\n[empty]\n\n[other]\nkey_unencrypted = visible\nmulti           = a\\nb\n",
        ),
        (
            "02_comments",
            "top = 1\n; before a\n# second line\n[a]\nk1=v1\nlonger_key : v2 # inline hash\n; after k1?\n\n[b] ; section inline\n  indented = yes  \n",
            "top = 1\n\n; before a\n# second line\n[a]\nk1         = v1\n; inline hash\nlonger_key = v2\n\n; after k1?\n; section inline\n[b]\nindented = yes\n",
        ),
        (
            "03_values",
            "[s]\nurl = http://x/?a=b&c=d\ncolon: a:b:c\neq = a=b\nempty =\nempty2 =   \nquoted = \"  padded  \"\nsingle = 'sq'\nmixed = \"a\"b\"\n",
            "[s]\nurl    = http://x/?a=b&c=d\ncolon  = a:b:c\neq     = a=b\nempty  = \nempty2 = \nquoted = \"  padded  \"\nsingle = sq\nmixed  = \"a\"b\"\n",
        ),
        (
            "04_dup",
            "[dup]\na = 1\nb = 2\na = 3\n[dup]\nc = 4\n[other]\nx = 1\n",
            "[dup]\na = 3\nb = 2\n\n[dup]\nc = 4\n\n[other]\nx = 1\n",
        ),
        (
            "05_unicode",
            "[ünï]\nkéy = välue ✓\nemoji = 🎉\n",
            "[ünï]\nkéy  = välue ✓\nemoji = 🎉\n",
        ),
        (
            "06_crlf",
            "; c1\r\n[crlf]\r\nk = v\r\n; kc\r\nk2 = v2\r\n",
            "; c1\n[crlf]\nk  = v\n; kc\nk2 = v2\n",
        ),
        (
            "07_quotes",
            "[q]\ntriple = \"\"\"multi\nline value\"\"\"\nbt = `has ; semi # hash`\ncont = first \\\n  second\nafter = x\n",
            "[q]\ntriple = \"\"\"multi\nline value\"\"\"\nbt     = `has ; semi # hash`\ncont   = first second\nafter  = x\n",
        ),
        (
            "08_default",
            "a = 1\nb = 2\n\n[DEFAULT]\nc = 3\n[default]\nd = 4\n",
            "a = 1\nb = 2\n\n[DEFAULT]\nc = 3\n\n[default]\nd = 4\n",
        ),
        (
            "09_multicomment",
            "# only comment\n[x]\n# c a\n# c b\nk = v ; inline\n# trailing comment dropped\n",
            "; only comment\n[x]\n; c a\n# c b\n; inline\nk = v\n",
        ),
        (
            "11_noeol",
            "[s]\nk=v",
            "[s]\nk = v\n",
        ),
        (
            "12_bom",
            "\u{feff}[bom]\nk = v\n",
            "[bom]\nk = v\n",
        ),
        (
            "13_empty",
            "[empty]\n[also]\n; dangling\n",
            "[empty]\n\n[also]\n",
        ),
        (
            "14_markers",
            ";;; many\n##  hash  \n[s]\nk = \"v ; x\"\nj = '#'\n",
            "; many\n# #  hash\n[s]\n; x\"\nk = \"v\n; '\nj = '\n",
        ),
        (
            "15_align",
            "[s]\n  k  =  spaced value  \nk2=\tTAB\t\n[t]\nvery_long_key_name_here = 1\nk = 2\n",
            "[s]\nk  = spaced value\nk2 = TAB\n\n[t]\nvery_long_key_name_here = 1\nk                       = 2\n",
        ),
        (
            "16_contEOF",
            "[sec] # hc\nk = a\\\n",
            "; hc\n[sec]\nk = a\n",
        ),
        (
            "17_defaultcomment",
            "x = 1 ; c\n[s]\n",
            "; c\nx = 1\n\n[s]\n",
        ),
        (
            "18_brackets",
            "[a]b]\nk = \"\"\"x\ny\"\"\" ; after quote\nz = 1\n",
            "[a]b]\n; after quote\nk = \"\"\"x\ny\"\"\"\nz = 1\n",
        ),
        (
            "19_onlycomments",
            "# just a comment\n; another\n",
            "",
        ),
        (
            "20_cont2",
            "[s]\nv = a \\\n b \\\n\nw = 2\n",
            "[s]\nv = \"a b \"\nw = 2\n",
        ),
        (
            "21_quotejunk",
            "[s]\nk = `x` trailing junk\nl = \"\"\"a\"\"\"b\"\"\"\nn = \"\nq = \"a\" ; c\n",
            "[s]\nk = x\nl = a\"\"\"b\nn = \"\n; c\nq = a\n",
        ),
        (
            "22_multikeycomment",
            "[s]\n; c1\n; c2\n# c3\nk = v #i1 ;i2\n",
            "[s]\n; c1\n; c2\n# c3\n# i1 ;i2\nk = v\n",
        ),
        (
            "23_secname",
            "[ spaced name ]\nk = v\n  [indented]\nj = w\n",
            "[ spaced name ]\nk = v\n\n[indented]\nj = w\n",
        ),
        (
            "24_unenc",
            "sops_k = 1\n[s]\nk_unencrypted = clear\nk = secret\n",
            "sops_k = 1\n\n[s]\nk_unencrypted = clear\nk             = secret\n",
        ),
        (
            "25_emptyval_comment",
            "[s]\na=\n;c\nb=x\n",
            "[s]\na = \n; c\nb = x\n",
        ),
        (
            "26_emptycomment",
            "[s]\nk = v ;\n",
            "[s]\nk = v\n",
        ),
    ];

    /// (name, file `sops -e` wrote), from sops 3.11.0.
    const ENCRYPTED: &[(&str, &str)] = &[
        ("02_comments", "top = ENC[AES256_GCM,data:mg==,iv:/besUDq1PTVaTzj8iOCoREspLJ9nAhWidOuDLkKr18w=,tag:3IGVTAn30tsrN5tO/yeK9Q==,type:str]\n\n; ENC[AES256_GCM,data:3EYHs+rpcMIy73mfe7gFx1UHjBOFkQ==,iv:Sfn4LW67gEtlWxjZcVypfJVVFZUzIQL7YLuzyOccciw=,tag:iTFVkvpjHRRs6sEKd4rvMw==,type:comment]\n[a]\nk1         = ENC[AES256_GCM,data:vvc=,iv:vpLDkqoKhUBW7uZWt1SnthYcVrKVFkY8GsPBMO8J9Uw=,tag:VnP1oleaaJekwPz7m4j3UQ==,type:str]\n; ENC[AES256_GCM,data:M07DbkMNt9QoR8w=,iv:0WblAv/hV1mOSiNccI1KblQJh+4H4BYlFomHPPTfOWI=,tag:om9VHIeC710/JlHU9vFwMw==,type:comment]\nlonger_key = ENC[AES256_GCM,data:fLE=,iv:JXID7wQpGf/u1AmyQDK3RA8GP+dzRjX1kKTn80zpwXU=,tag:A0zjBaUkOaRHPQ0hHh3V8A==,type:str]\n\n; ENC[AES256_GCM,data:HugxccmXCqtuu+rDT81axk22JrKXd03VGPo=,iv:I4pOBuTVHZgDEecbMY0CNa3HQPQPtsA7YLAp0cpFMeM=,tag:KPi5WNByKBwyBAwB6YdmWQ==,type:comment]\n[b]\nindented = ENC[AES256_GCM,data:EmUU,iv:qmY0W4yHQt8xy9UGdmg+xDs71ykDaz5tweqX5SATxOQ=,tag:tKN8tSffNJzXPIxzFh6nyA==,type:str]\n\n[sops]\nage__list_0__map_recipient = age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\nage__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBpK3BnRHJYTXVWOEJzTlVx\\nQXlycTZJeklCalg5UEF4a0pUT1pXMWRNQ2pFClVNa2VQMTBCbTdBeHBTMlRWd2U1\\nM1lTbmhTQW1kaE9vWTVJT1NJazF6YkkKLS0tIGxhQnJXdnRNOWtHTEtlelNhWWpz\\nM0xsSmQ2ZnQ5MS83WERLNzJLclhYK2MKmuodM5zHRBCepbFWI9SSlFIXf5K6eKZ3\\nsC8ExZ3XBoPOkY3kbtAujGNjkzaSgJQZcrX51zXF0AkSNMqTwBTmzg==\\n-----END AGE ENCRYPTED FILE-----\\n\nlastmodified               = 2026-11-28T16:25:03Z\nmac                        = ENC[AES256_GCM,data:J1KqLQAclsAWPFLW9vD9uuCbHiQ4Qw3Pj7qGWhMZYxBY/tJZH/5AKHHug4Iy0LbVOfE6R5W4gMuW4lyKW+Pw/pfFf1zukhd5hIsj8bPHo5HYlOzIpNBpUEJtm47A38ciXrHp/ys5XiIvVVzBovU/OktNxFLSI8UYuW3sUPqk2Wc=,iv:yOL0pKxU/q8oDUJNWy4+VnSPh8ER1uB4X0TRoGeiFko=,tag:StKQvln+Vp0JVOJp1KiHWg==,type:str]\nunencrypted_suffix         = _unencrypted\nversion                    = 3.11.0\n"),
        ("09_multicomment", "; ENC[AES256_GCM,data:ySLe6//yuUJZ0057,iv:U8wgRQmJdwF3gn6QXq5Lljuk/iUt9dditzCdpn4AQc4=,tag:BZROwGm2Af1a6YeAEAORVQ==,type:comment]\n[x]\n; ENC[AES256_GCM,data:EqaxENmd8VMotcI4nN79oeCU,iv:S8bsa4aPKFcddk4l6U4sgNtoVqvkVk382w3pfbKQ/A4=,tag:zSDv6W+VdzlYJV5OPQvzCw==,type:comment]\nk = ENC[AES256_GCM,data:8g==,iv:AIorKt43wQ8kjaGcnfby+JIWyCjZvVC9A4rNAnkdo98=,tag:PBFmwxhS/ZnNLYoB1SUQTQ==,type:str]\n\n[sops]\nage__list_0__map_recipient = age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\nlastmodified               = 2026-11-28T16:25:04Z\nmac                        = ENC[AES256_GCM,data:gGatyEyeI3nR+D5r4EiID+s9QuVnN83Q/3KdBWtttTdvjn/b9L3MSToSHdyokd/zkApE/lfySPct0C51tBswP/jPWOC9Lc69mhs/BCbetInnGOZ2cqhZdIQnHGNbMh3Rd4txj9McSXLntKz4SXDeoHlN14LrMVWB627KqBCeOcg=,iv:BU6QMD0JBbenPNk+7UvVetGAWY9lKL3Rbdq3OvHr2ws=,tag:igA9luXIU6nYs+nu4kmnKQ==,type:str]\nunencrypted_suffix         = _unencrypted\nversion                    = 3.11.0\nage__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBpTnFIOGJWdFdiNk1POWFN\\nNmJ4T2Nmam9KTE0vZTZVTDh6dHRBbERiZ3cwCjVUUE05bmkySmpOMDBzaWZ6cjVn\\nNytYREw5WjdmY3F1Nk9tdHRWSUY2bWsKLS0tIDUvTmw1UHJBT0U0Mnp6TE9tZGNM\\naXFYSXc4Y1FXRjE4VitneWJBSFpiYmMKevla3zW9qaUegG3dqGR3b/2s3yKyaz1A\\nPTZBDy20b893D/XOvHxyRKSaCXkt8vObivLdY9rCP4XT7B4gqxkWTQ==\\n-----END AGE ENCRYPTED FILE-----\\n\n"),
        ("22_multikeycomment", "[s]\n; ENC[AES256_GCM,data:RxZDtWhsuFCTaDlBqgLJdu/GHmg=,iv:CdQSg3UNWXFdtWkHxFApAQ7ifN1llABEQhE5/x0i6Wk=,tag:2TawOoJ0LE4bZ3T2N2il0w==,type:comment]\nk = ENC[AES256_GCM,data:Ng==,iv:z6EzIkSTuJiCa1U5PYOLPVDDPyjG6Gi+c2Cyf8PVq8c=,tag:HcXPR41VY250uKPwE6pMxA==,type:str]\n\n[sops]\nmac                        = ENC[AES256_GCM,data:4z8P1B6ZeU8YHKzSp1qPmAjELU1hTofV9Y4clMT9u1WziZp0si9/yiDrr3n5o2A12pikmFpSibA09h1jmQbT0RstE2JArGgdOPKIP+qfZPf/A4mHK+4I5pLZRfVniAr7l+Jif+g36nbHv6N3BjN/YK8KXH3OWj+wfOfoWWnE6x0=,iv:q6V9inSgBsrfFMyUhnWZuipMnpGxJ5Wu1gF9HfG3FIk=,tag:wYsqwoJyyvHVpilN1TRRmw==,type:str]\nunencrypted_suffix         = _unencrypted\nversion                    = 3.11.0\nage__list_0__map_recipient = age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\nage__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBhUkxxVytVeU9yaXRjcnIw\\ndmI3QTlmWUlkSXZrdVl2YjFWK3dXLzRvMVJZCjhKN0J4emlSbGkzQW13WEJJNG5I\\nME9NT2pocER6THdtd09yQjYrczNZSm8KLS0tIERCOXF3L3Nla2lxcnBIZGxiMnVl\\nZjRoU2l3cmM5aGtETi9kdUhWbjBCb1EKCUIOEeQzmN3gtxn39cbD5TCKJVaYkPug\\nidlB/DiwKJw76hCdePsLLwelVs7EHhXx66/mu1iSVVmD26csCEh+EA==\\n-----END AGE ENCRYPTED FILE-----\\n\nlastmodified               = 2026-11-28T16:26:01Z\n"),
        ("06_crlf", "; ENC[AES256_GCM,data:7xs=,iv:lm4NNSiGOwpZyVm5ZTiOyKJPB1ufhWpC9dwzB8/6LAQ=,tag:YpDxv1eBXOMEMkWWgMfXJw==,type:comment]\n[crlf]\nk  = ENC[AES256_GCM,data:bg==,iv:FLxtj7I8CeOjD94TOn37bQX1V2EgFVNVZlrrBYX7pC8=,tag:SkVpKW5l1ht+eYYWfLjsMw==,type:str]\n; ENC[AES256_GCM,data:wBo=,iv:lEaCG+kXMwLmrV2/LZLvjroIrUDAEy+OZgUvylCEqwA=,tag:OKnTFZudjB0evJ9GzUapdA==,type:comment]\nk2 = ENC[AES256_GCM,data:WJg=,iv:DXch2gTbvi18ODz1NjPL378hxUI9334cYJshVNW2vEg=,tag:QN3ifeJIsIJlSUKv31lhpQ==,type:str]\n\n[sops]\nunencrypted_suffix         = _unencrypted\nversion                    = 3.11.0\nage__list_0__map_recipient = age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\nage__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSB5SlpaSTNaSHNFdzQ5V3Iv\\nUmFqWkNGNUc0UGZtNmRLRFFWam5qaE9pSUVnCm1ZQlVuUVljSmo5RjBmbjZIZjlq\\nUlhneUNkMW9EZ2Fvc3ZtejBFL1pTd2MKLS0tIGhWU1BzT256c05QSVRxYUdyWGdZ\\nK3VWTkVrSklhRkcvdkxvZ005TnNQRmMKPIC1nDGXPVMaYoUVnQ3CB9qEskuKo7jP\\nelcyXmQpSEM/NF9fH7fQ5EkGgPfyD05VGTYd8G1kDllwJnanff3RCQ==\\n-----END AGE ENCRYPTED FILE-----\\n\nlastmodified               = 2026-11-28T16:25:04Z\nmac                        = ENC[AES256_GCM,data:OJ0h4dFr2+PZtMz2ioyyWx4TFoIPGONjSFFUU4fp22wU3I0saAlNaXPiFYW+gQmN9R6VvYQ5rY2pdSVylG1lK1xOqVODmS/am5y9FieU8MaPLazZCguFjsxua64I5aH4VoU3x1N7DkdLWSu4mrgN2qoSL33vPbJgd0u7qBmCXxc=,iv:CzffYrEYwNNoeHWAWOLx85l2OKQFklKZI5YhZUZ4e3c=,tag:ojHfMEuKJb+rW9LI24wxrQ==,type:str]\n"),
        ("08_default", "a = ENC[AES256_GCM,data:5g==,iv:LeMP8FLyxgdk/5FHxHFovROm5B65eawSMA3AA0SPn/8=,tag:01ccjrJaM/UZcGwSHqYvyQ==,type:str]\nb = ENC[AES256_GCM,data:eg==,iv:xsy86xtPVZU3rPySebC5q8FJJEspIWdTmwhQ/JF5Yo8=,tag:sqJVqPWcDyiamDlhD2LO5A==,type:str]\n\n[DEFAULT]\nc = ENC[AES256_GCM,data:aA==,iv:9s7WjIvW+xohFkJbFGCxJBtPNDFhJFpeEoIpKPC91FM=,tag:T+cnYiWYgcRw0IU82XHIhA==,type:str]\n\n[default]\nd = ENC[AES256_GCM,data:Dw==,iv:1GqGksy/wSyu9a9vfqoGZprLWv2XkcfWanPjDCeQHJk=,tag:FBVuIHpFXQW9LlNW6DJDfQ==,type:str]\n\n[sops]\nage__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBCZHJBbGowWWJwd2krdDNz\\nS2pObWJFMHd4OGJCSzlxMU9mSldIVVlyUnhZClhLNlNJQ2w4UkRPMllPQ0xxamRO\\nNVNET3BIMGxhdmFxbGNVVWNMTXYrRWcKLS0tIHk4MTM5VldIVTZaNzkwUVlSR0sx\\nQ3c2ZVJsM3Fid3EwMWdpM09jaVo0RmMKWu7cF4wZ+xoEF1Lg9pNP0DRJM7u0wPK+\\npwtHZl9zTLgaWx4UvE5I5u1yvgo8WgCx4GIhqtawW6Gw1SFYgLechQ==\\n-----END AGE ENCRYPTED FILE-----\\n\nage__list_0__map_recipient = age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\nlastmodified               = 2026-11-28T16:25:04Z\nmac                        = ENC[AES256_GCM,data:nusHcXvYeugA/QL8+CfcVVOug0gs14nWwl0DfcXWj648bUNHpQq3RPF5mAt34IK7T3NxKlkb1AGmLN6zaQTfdW9W3GwNWjU3KTf5yNjSi0g5knQoreAg4RDWQ7eKAQIyWFbwZsIwsh9wY1dP+nZVZPIXIQyBOTdedmMNXc09u0s=,iv:/4kgVfaFF2WI4yL2HhqorlRRC9b2S5J6pGpocf4qZOI=,tag:CZAhlhLFyLGSN1bddm45ug==,type:str]\nunencrypted_suffix         = _unencrypted\nversion                    = 3.11.0\n"),
    ];
    /// The shared two-recipient vector (plain input: `01_sample`).
    const VECTOR: &str = "; ENC[AES256_GCM,data:SQOYnBl0NP1afHXQB5jA,iv:jLUjg+TNA6QUkEanp3t1MRRTljf9v4OKdmipP4rGrRI=,tag:rqyV8WNwpP+fK1r+qlkoYg==,type:comment]\n[database]\nuser     = ENC[AES256_GCM,data:0PUwPBE=,iv:FlAJMCNLufKvUwWdLUekm3rbtKzFGTB/8+EZw42giqI=,tag:VuWV451HaXOUHfyJCwGx3w==,type:str]\n; ENC[AES256_GCM,data:Y9ZbdHSjagPe,iv:AJKMc4W0IvWPOSAs/xlMWR5msyInZtASSD70u4pg3RI=,tag:MrS+AQd4SxbH1FIkgDmKmg==,type:comment]\npassword = ENC[AES256_GCM,data:k5nTV7RN8w==,iv:Vt7NU9iD15jU6B2CtaR3esNQW8p33CG2nf4B1m+EKRQ=,tag:QvibXSkfFFLPPzRbqkbAcg==,type:str]\nport     = ENC[AES256_GCM,data:MoiQqQ==,iv:VkPLAVZi/reFteO+ZvtlPMsit1PRET0JlZxbo6/zyjg=,tag:jljL/xHg4DTJZRgwhMnq2w==,type:str]\n\n[empty]\n\n[other]\nkey_unencrypted = visible\nmulti           = ENC[AES256_GCM,data:c2bnYw==,iv:mpBk4IhBB3VF+S3dCXqEyqqI6x3Q7G6khQpCGqr6TXc=,tag:cXWGaxr1DPzyyECpBu/TKQ==,type:str]\n\n[sops]\nage__list_0__map_recipient = age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\nage__list_1__map_recipient = age14g6zjwkf8d8kuc9zya0snfknck9exwa494a9sg2rr4gtl4w48dvs76tkln\nage__list_1__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBYR2dXM3EwUUZ5N1RuTncw\\neE92Z2FTak9GaXhKZmEyaEw2dnVLRWZzQW5ZCjVCNEErL1phQWZxeFJ6UHp0MnBC\\nNGNlejJWUm9RUzBxem9GQktoUnhld0UKLS0tIEszKzNDcFdrc2dLN0FhUU9wdHNT\\nTzAyYlg3Z0FzYkJtYjNERzBhY2gvbEEKZOShKuAibTuutBYXOO9awGR3wuij9pO2\\nH14xX5Sjou6bdwCbpmnFX3/K4ylPI5X3zDceE6IBq9/eILJFI+Vtow==\\n-----END AGE ENCRYPTED FILE-----\\n\nmac                        = ENC[AES256_GCM,data:LPG5OONkTq/6nOpirMB+QYQfgXcifd06v2RBN0VVenQAz4dwylPZwxre1E0AGnzYHRvbV5CesFz5qOJW40gIYoDXRG8lq1IsF894zUNvny5cyubNROpBUEnlApLQCWrkeoh0btKpo+pJU6JJiK0f823w/WZzSGsm8AvWfffHL3o=,iv:1LhW6p1lErFGIELaORMk/Lfh3XMeYmYfvjgf0OyTXRY=,tag:AReNx/s89xLsJTtNynNtJw==,type:str]\nunencrypted_suffix         = _unencrypted\nversion                    = 3.11.0\nage__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBsNmZJSmh1YWJaWlpLSGFz\\nTUYzNmR1bitySGJrZXV2c3hvY2ZqOS9YNHlrCnlvekdYZXVLUnc2RlVCQzNmVTE4\\nSzZtaUQrMnhKYmFVUWJMbk4xczg0QkkKLS0tIC93VHhpV2N1Y2IrbnMrMGxKY0R3\\nS3R4c09zaTFPNi9hN2gvSUdBQWJzNVEKWpIfzgkUut6BgzN8BTdkooWALCZMrrWQ\\nJncpGTuMosQipUDysY6I2abwPpgRFqf3cZfBpSDE7XvHs2sKMBTBeQ==\\n-----END AGE ENCRYPTED FILE-----\\n\nlastmodified               = 2026-11-23T07:14:59Z\n";

    fn plain_input(name: &str) -> &'static str {
        PLAIN.iter().find(|(n, _, _)| *n == name).unwrap().1
    }

    /// Sections, keys and comment places of a document, without `sops` and empty comments
    /// (sops encrypts an empty comment to nothing).
    fn shape(tree: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for item in &tree[0] {
            if let MapItem::Pair(name, Value::Map(items)) = item {
                if name == "sops" {
                    continue;
                }
                out.push(format!("[{name}]"));
                for it in items {
                    match it {
                        MapItem::Comment(c) if c.is_empty() => {}
                        MapItem::Comment(_) => out.push("#".into()),
                        MapItem::Pair(k, _) => out.push(k.clone()),
                    }
                }
            }
        }
        out
    }

    /// The text with the lines of its `[sops]` section sorted (sops 3.11 writes them in
    /// random order).
    fn sort_sops(text: &str) -> String {
        let (head, sops) = text.split_at(text.find("[sops]\n").unwrap() + 7);
        let mut lines: Vec<&str> = sops.split_inclusive('\n').collect();
        lines.sort_unstable();
        format!("{head}{}", lines.concat())
    }

    #[test]
    fn plain_files_are_written_back_as_sops_writes_them() {
        for (name, input, want) in PLAIN {
            let got = emit(&parse(input.as_bytes()).unwrap());
            assert_eq!(String::from_utf8(got).unwrap(), *want, "{name}");
            let again = emit(&parse(want.as_bytes()).unwrap());
            assert_eq!(String::from_utf8(again).unwrap(), *want, "{name} (again)");
        }
    }

    #[test]
    fn encrypted_files_round_trip_with_the_shape_of_their_plaintext() {
        let cases = ENCRYPTED.iter().copied().chain([("01_sample", VECTOR)]);
        for (name, enc) in cases {
            let tree = parse(enc.as_bytes()).unwrap();
            let got = String::from_utf8(emit(&tree)).unwrap();
            assert_eq!(sort_sops(&got), sort_sops(enc), "{name}");
            let plain = parse(plain_input(name).as_bytes()).unwrap();
            assert_eq!(shape(&tree), shape(&plain), "{name}");
        }
    }

    #[test]
    fn the_tree_is_sops_tree() {
        let tree = parse(plain_input("02_comments").as_bytes()).unwrap();
        let c = |s: &str| MapItem::Comment(Text::new(s.to_string()));
        let p = |k: &str, v: &str| MapItem::Pair(k.to_string(), Value::str(v));
        let section =
            |n: &str, items: Vec<MapItem>| MapItem::Pair(n.to_string(), Value::Map(items));
        assert_eq!(
            tree,
            vec![vec![
                section("DEFAULT", vec![p("top", "1")]),
                section(
                    "a",
                    vec![
                        c("before a\n# second line"),
                        p("k1", "v1"),
                        p("longer_key", "v2"),
                        c("inline hash"),
                    ]
                ),
                section(
                    "b",
                    vec![c("after k1?\n; section inline"), p("indented", "yes")]
                ),
            ]]
        );
        let tree = parse(plain_input("26_emptycomment").as_bytes()).unwrap();
        assert_eq!(tree[0][1], section("s", vec![p("k", "v"), c("")]));
    }

    #[test]
    fn what_go_ini_refuses_is_refused_with_its_line() {
        for (input, line) in [
            ("[]\nk=v\n", 1),
            ("[s]\n[open\n", 2),
            ("[s]\njustakey\n", 2),
            ("[s]\n=v\n", 2),
            ("[s]\n\"\"=v\n", 2),
            ("[s]\nm = \"\"\"\nk = v\n", 2),
            ("[s]\n\"key = v\n", 2),
        ] {
            match parse(input.as_bytes()) {
                Err(SopsError::Syntax { line: got, .. }) => assert_eq!(got, line, "{input:?}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
        assert!(parse(b"[s]\nk = \xff\n").is_err());
    }

    #[test]
    fn other_scalars_and_an_empty_tree() {
        assert_eq!(emit(&Vec::new()), b"");
        assert_eq!(emit(&vec![Vec::new()]), b"");
        let tree = vec![vec![MapItem::Pair(
            "s".into(),
            Value::Map(vec![
                MapItem::Pair("i".into(), Value::Scalar(Scalar::Int(3))),
                MapItem::Pair("f".into(), Value::Scalar(Scalar::Float(2.0))),
                MapItem::Pair("b".into(), Value::Scalar(Scalar::Bool(true))),
            ]),
        )]];
        assert_eq!(emit(&tree), b"[s]\ni = 3\nf = 2.0\nb = true\n");
    }
}
