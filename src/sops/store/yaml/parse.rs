//! Reads YAML text into a SOPS tree as sops 3.11 does with go-yaml v3's node API
//! (`stores/yaml/store.go`, `LoadPlainFile` / `LoadEncryptedFile`).
//!
//! The YAML itself is scanned by `saphyr-parser` (a maintained YAML 1.2 event parser that
//! gives every event its position); what go-yaml decides differently is done here:
//! - plain scalars are typed by go-yaml's `resolve.go` rules ([`resolve`]): `yes`/`on` are
//!   strings, `0x1F` and `017` are ints, unquoted dates are timestamps, ints past int64 that
//!   fit a uint64 are refused (sops cannot encrypt them), larger ones become floats;
//! - anchors and aliases are expanded, `<<` is an ordinary key;
//! - comments (which event parsers drop) are found in the text and placed as go-yaml and
//!   sops place them: a comment on a value's line goes before that key or item, a comment
//!   line goes before the next key or item at its column, else after the last item of the
//!   innermost map or list it is indented into.
//!
//! Errors name a line, never a value.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use zeroize::Zeroizing;

use crate::sops::tree::{Branch, ListItem, MapItem, Scalar, Tree, Value};
use crate::sops::SopsError;

/// Reads a YAML file (plain or encrypted: the `sops` key stays in the tree).
pub(crate) fn parse(text: &[u8]) -> Result<Tree, SopsError> {
    let text = std::str::from_utf8(text).map_err(|e| SopsError::Syntax {
        line: line_of_byte(text, e.valid_up_to()),
        reason: "the file is not UTF-8".into(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let events = events(text)?;
    let mut reader = Reader {
        lines: text.split('\n').collect(),
        events: &events,
        pos: 0,
        nodes: Vec::new(),
        anchors: HashMap::new(),
    };
    let mut docs = Vec::new();
    while reader.pos < events.len() {
        match &events[reader.pos].0 {
            Event::DocumentStart(_) => {
                let line = events[reader.pos].1.start.line();
                reader.pos += 1;
                let root = match &events[reader.pos].0 {
                    Event::DocumentEnd => None,
                    _ => Some(reader.node()?),
                };
                if matches!(
                    events.get(reader.pos).map(|e| &e.0),
                    Some(Event::DocumentEnd)
                ) {
                    reader.pos += 1;
                }
                docs.push((line, root));
            }
            _ => reader.pos += 1,
        }
    }
    let comments = comments(text, &events);
    build_tree(&reader.nodes, &docs, comments)
}

fn line_of_byte(text: &[u8], at: usize) -> usize {
    text[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

type Spanned<'a> = (Event<'a>, Span);

fn events(text: &str) -> Result<Vec<Spanned<'_>>, SopsError> {
    let mut out = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SopsError::Syntax {
            line: e.marker().line(),
            reason: format!(
                "invalid YAML at column {}: {}",
                e.marker().col() + 1,
                e.info()
            ),
        })?;
        out.push((event, span));
    }
    Ok(out)
}

/// A YAML node with where it starts (1-based line, 0-based column in characters).
#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    line: usize,
    col: usize,
}

#[derive(Debug, Clone)]
enum NodeKind {
    Scalar {
        text: Zeroizing<String>,
        style: ScalarStyle,
        tag: Option<String>,
    },
    /// Items: (dash line, dash column, node).
    Seq(Vec<(usize, usize, usize)>),
    Map(Vec<(usize, usize)>),
}

struct Reader<'e, 'a> {
    /// The text's lines, to find the `-` of block list items.
    lines: Vec<&'a str>,
    events: &'e [Spanned<'a>],
    pos: usize,
    nodes: Vec<Node>,
    anchors: HashMap<usize, usize>,
}

impl Reader<'_, '_> {
    fn error(&self, reason: &str) -> SopsError {
        let line = self
            .events
            .get(self.pos)
            .map_or(1, |(_, span)| span.start.line());
        SopsError::Syntax {
            line,
            reason: reason.to_string(),
        }
    }

    /// The column of the `-` before a block list item that starts at `col` on `line`, or
    /// `col` itself (a flow list).
    fn dash_column(&self, line: usize, col: usize) -> usize {
        let Some(text) = line.checked_sub(1).and_then(|l| self.lines.get(l)) else {
            return col;
        };
        let chars: Vec<char> = text.chars().take(col).collect();
        let mut at = chars.len();
        while at > 0 && chars[at - 1] == ' ' {
            at -= 1;
        }
        if at > 0 && chars[at - 1] == '-' {
            at - 1
        } else {
            col
        }
    }

    /// Reads the node that starts at the current event; returns its index.
    fn node(&mut self) -> Result<usize, SopsError> {
        let (event, span) = self
            .events
            .get(self.pos)
            .ok_or_else(|| self.error("the YAML ends in the middle of a value"))?;
        let (line, col) = (span.start.line(), span.start.col());
        self.pos += 1;
        let (kind, anchor) = match event {
            Event::Alias(id) => {
                let target = *self
                    .anchors
                    .get(id)
                    .ok_or_else(|| self.error("an alias names an unknown anchor"))?;
                return Ok(target);
            }
            Event::Scalar(text, style, anchor, tag) => (
                NodeKind::Scalar {
                    text: Zeroizing::new(text.to_string()),
                    style: *style,
                    tag: tag.as_ref().map(|t| format!("{}{}", t.handle, t.suffix)),
                },
                *anchor,
            ),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.events.get(self.pos).map(|e| &e.0) {
                        Some(Event::SequenceEnd) => {
                            self.pos += 1;
                            break;
                        }
                        None => return Err(self.error("a list is not closed")),
                        Some(_) => {
                            let start = &self.events[self.pos].1.start;
                            let (l, c) =
                                (start.line(), self.dash_column(start.line(), start.col()));
                            let node = self.node()?;
                            items.push((l, c, node));
                        }
                    }
                }
                (NodeKind::Seq(items), *anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut pairs = Vec::new();
                loop {
                    match self.events.get(self.pos).map(|e| &e.0) {
                        Some(Event::MappingEnd) => {
                            self.pos += 1;
                            break;
                        }
                        None => return Err(self.error("a map is not closed")),
                        Some(_) => {
                            let key = self.node()?;
                            let value = self.node()?;
                            pairs.push((key, value));
                        }
                    }
                }
                (NodeKind::Map(pairs), *anchor)
            }
            _ => return Err(self.error("unexpected YAML structure")),
        };
        self.nodes.push(Node { kind, line, col });
        let index = self.nodes.len() - 1;
        if anchor > 0 {
            self.anchors.insert(anchor, index);
        }
        Ok(index)
    }
}

/// A comment found in the text.
#[derive(Debug)]
struct Comment {
    line: usize,
    col: usize,
    /// Something precedes it on its line.
    trailing: bool,
    /// The text after `#`.
    text: String,
}

/// Every `#` comment outside scalars.
fn comments(text: &str, events: &[Spanned<'_>]) -> Vec<Comment> {
    // Characters covered by scalars (a quoted or block scalar may hold `#`).
    let mut covered: Vec<(usize, usize)> = events
        .iter()
        .filter(|(e, _)| matches!(e, Event::Scalar(..)))
        .map(|(_, span)| (span.start.index(), span.end.index()))
        .filter(|(a, b)| b > a)
        .collect();
    covered.sort_unstable();
    let mut out = Vec::new();
    let mut index = 0usize;
    let mut cover = 0usize;
    for (line_no, line) in text.split('\n').enumerate() {
        let mut previous_blank = true;
        let mut content_before = false;
        for (col, (byte, c)) in line.char_indices().enumerate() {
            while cover < covered.len() && covered[cover].1 <= index {
                cover += 1;
            }
            let inside =
                cover < covered.len() && covered[cover].0 <= index && index < covered[cover].1;
            if c == '#' && previous_blank && !inside {
                let rest = &line[byte + 1..];
                let rest = rest.strip_suffix('\r').unwrap_or(rest);
                out.push(Comment {
                    line: line_no + 1,
                    col,
                    trailing: content_before,
                    text: rest.to_string(),
                });
                // Skip the rest of the line.
                index += line[byte..].chars().count();
                break;
            }
            if !matches!(c, ' ' | '\t' | '\r') {
                content_before = true;
            }
            previous_blank = matches!(c, ' ' | '\t');
            index += 1;
        }
        index += 1; // the line feed
    }
    out
}

/// Where a comment goes: before item `position` of container `container`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    container: usize,
    position: usize,
}

/// One key or list item, with its position in the text.
#[derive(Debug, Clone, Copy)]
struct Item {
    line: usize,
    col: usize,
    container: usize,
    position: usize,
    depth: usize,
}

/// A map or list: its parent, its items' column, and its depth.
#[derive(Debug, Clone, Copy)]
struct Container {
    parent: Option<usize>,
    col: usize,
}

/// Builds the tree of every document, comments placed.
fn build_tree(
    nodes: &[Node],
    docs: &[(usize, Option<usize>)],
    comments: Vec<Comment>,
) -> Result<Tree, SopsError> {
    let mut tree = Tree::with_capacity(docs.len());
    let mut comments = comments.into_iter().peekable();
    for (i, (_, root)) in docs.iter().enumerate() {
        // This document's comments: up to the next document's start.
        let end = docs.get(i + 1).map_or(usize::MAX, |(line, _)| *line);
        let mut mine = Vec::new();
        while let Some(c) = comments.next_if(|c| c.line < end) {
            mine.push(c);
        }
        let Some(root) = root else {
            tree.push(
                mine.into_iter()
                    .map(|c| MapItem::Comment(Zeroizing::new(c.text)))
                    .collect(),
            );
            continue;
        };
        let root_node = &nodes[*root];
        match &root_node.kind {
            NodeKind::Map(_) => {}
            NodeKind::Scalar { text, style, tag } => {
                if matches!(resolve_node(text, *style, tag.as_deref(), root_node.line)?, Scalar::Null) {
                    tree.push(mine.into_iter().map(|c| MapItem::Comment(Zeroizing::new(c.text))).collect());
                    continue;
                }
                return Err(SopsError::Syntax {
                    line: root_node.line,
                    reason: "YAML documents that are values are not supported (the top level must be a map)".into(),
                });
            }
            NodeKind::Seq(_) => {
                return Err(SopsError::Syntax {
                    line: root_node.line,
                    reason: "YAML documents that are sequences are not supported (the top level must be a map)".into(),
                })
            }
        }
        // Lay out the containers and items, then place the comments.
        let mut layout = Layout::default();
        layout.walk(nodes, *root, None, 0);
        let mut placed: HashMap<usize, Vec<(usize, String)>> = HashMap::new();
        for comment in mine {
            let slot = layout.slot(&comment);
            placed
                .entry(slot.container)
                .or_default()
                .push((slot.position, comment.text));
        }
        let mut builder = Builder {
            nodes,
            layout: &layout,
            placed,
        };
        match builder.value(*root, 0)? {
            Value::Map(branch) => tree.push(branch),
            _ => unreachable!("the root was checked to be a map"),
        }
    }
    Ok(tree)
}

#[derive(Default)]
struct Layout {
    containers: Vec<Container>,
    /// Container index of each map/list node (by node index, first visit).
    of_node: HashMap<usize, usize>,
    items: Vec<Item>,
}

impl Layout {
    /// Records the containers and items of the node `index` (aliases are not walked: their
    /// text is elsewhere).
    fn walk(&mut self, nodes: &[Node], index: usize, parent: Option<usize>, depth: usize) {
        if self.of_node.contains_key(&index) {
            return;
        }
        let node = &nodes[index];
        let id = self.containers.len();
        match &node.kind {
            NodeKind::Scalar { .. } => {}
            NodeKind::Map(pairs) => {
                let col = pairs.first().map_or(node.col, |(k, _)| nodes[*k].col);
                self.containers.push(Container { parent, col });
                self.of_node.insert(index, id);
                for (position, (key, value)) in pairs.iter().enumerate() {
                    let k = &nodes[*key];
                    self.items.push(Item {
                        line: k.line,
                        col: k.col,
                        container: id,
                        position,
                        depth,
                    });
                    self.walk(nodes, *value, Some(id), depth + 1);
                }
            }
            NodeKind::Seq(items) => {
                let col = items.first().map_or(node.col, |(_, c, _)| *c);
                self.containers.push(Container { parent, col });
                self.of_node.insert(index, id);
                for (position, (line, col, item)) in items.iter().enumerate() {
                    self.items.push(Item {
                        line: *line,
                        col: *col,
                        container: id,
                        position,
                        depth,
                    });
                    self.walk(nodes, *item, Some(id), depth + 1);
                }
            }
        }
    }

    /// Where a comment goes, as go-yaml and sops place it.
    fn slot(&self, comment: &Comment) -> Slot {
        if comment.trailing {
            // On a value's line: before the deepest key or item that starts there.
            if let Some(item) = self
                .items
                .iter()
                .filter(|i| i.line == comment.line)
                // The first of the deepest: a flow list's comment goes before its items.
                .max_by_key(|i| (i.depth, std::cmp::Reverse(i.col)))
            {
                return Slot {
                    container: item.container,
                    position: item.position,
                };
            }
        }
        // Before the next key or item when it is at the comment's column.
        let next = self
            .items
            .iter()
            .filter(|i| i.line > comment.line)
            .min_by_key(|i| (i.line, i.col));
        if let Some(next) = next.filter(|n| n.col == comment.col) {
            return Slot {
                container: next.container,
                position: next.position,
            };
        }
        // Else after the last item of the innermost open container it is indented into.
        let previous = self
            .items
            .iter()
            .filter(|i| i.line <= comment.line)
            .max_by_key(|i| (i.line, i.depth));
        let Some(previous) = previous else {
            return Slot {
                container: 0,
                position: 0,
            };
        };
        let mut container = previous.container;
        loop {
            let c = self.containers[container];
            if c.col <= comment.col || c.parent.is_none() {
                break;
            }
            container = c.parent.unwrap_or(0);
        }
        let position = self
            .items
            .iter()
            .filter(|i| i.container == container && i.line <= comment.line)
            .count();
        Slot {
            container,
            position,
        }
    }
}

struct Builder<'a> {
    nodes: &'a [Node],
    layout: &'a Layout,
    placed: HashMap<usize, Vec<(usize, String)>>,
}

impl Builder<'_> {
    /// The comments of container `id` that go before item `position`.
    fn comments_before(&self, id: Option<usize>, position: usize) -> Vec<String> {
        let Some(list) = id.and_then(|id| self.placed.get(&id)) else {
            return Vec::new();
        };
        list.iter()
            .filter(|(p, _)| *p == position)
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn value(&mut self, index: usize, depth: usize) -> Result<Value, SopsError> {
        if depth > 512 {
            return Err(SopsError::Syntax {
                line: self.nodes[index].line,
                reason: "nested too deeply".into(),
            });
        }
        let node = &self.nodes[index];
        let id = self.layout.of_node.get(&index).copied();
        Ok(match &node.kind {
            NodeKind::Scalar { text, style, tag } => {
                Value::Scalar(resolve_node(text, *style, tag.as_deref(), node.line)?)
            }
            NodeKind::Map(pairs) => {
                let mut branch = Branch::with_capacity(pairs.len());
                let mut seen: HashMap<String, usize> = HashMap::new();
                for (position, (key, value)) in pairs.iter().enumerate() {
                    for c in self.comments_before(id, position) {
                        branch.push(MapItem::Comment(Zeroizing::new(c)));
                    }
                    let key_node = &self.nodes[*key];
                    let key_text = match &key_node.kind {
                        NodeKind::Scalar { text, style, tag } => {
                            match resolve_node(text, *style, tag.as_deref(), key_node.line)? {
                                Scalar::Str(s) => s.to_string(),
                                _ => return Err(non_string_key(key_node.line)),
                            }
                        }
                        _ => return Err(non_string_key(key_node.line)),
                    };
                    if let Some(first) = seen.get(&key_text) {
                        return Err(SopsError::Syntax {
                            line: key_node.line,
                            reason: format!("a key is repeated (first on line {first})"),
                        });
                    }
                    seen.insert(key_text.clone(), key_node.line);
                    let value = self.value(*value, depth + 1)?;
                    branch.push(MapItem::Pair(key_text, value));
                }
                for c in self.comments_before(id, pairs.len()) {
                    branch.push(MapItem::Comment(Zeroizing::new(c)));
                }
                Value::Map(branch)
            }
            NodeKind::Seq(items) => {
                let mut list = Vec::with_capacity(items.len());
                for (position, (_, _, item)) in items.iter().enumerate() {
                    for c in self.comments_before(id, position) {
                        list.push(ListItem::Comment(Zeroizing::new(c)));
                    }
                    list.push(ListItem::Value(self.value(*item, depth + 1)?));
                }
                for c in self.comments_before(id, items.len()) {
                    list.push(ListItem::Comment(Zeroizing::new(c)));
                }
                Value::List(list)
            }
        })
    }
}

fn non_string_key(line: usize) -> SopsError {
    SopsError::Syntax {
        line,
        reason: "a key is not a string (sops supports only string keys)".into(),
    }
}

/// A scalar's value as go-yaml decodes it into an `interface{}`.
fn resolve_node(
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
