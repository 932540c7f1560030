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

mod resolve;

pub(crate) use resolve::plain_resolves_to_str;
use resolve::resolve_node;
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
        depth: 0,
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
    /// How deep the node being read is: refused past [`MAX_DEPTH`] rather than overflowing
    /// the stack.
    depth: usize,
}

/// Nesting deeper than any real configuration.
const MAX_DEPTH: usize = 512;

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
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        let node = self.node_inner();
        self.depth -= 1;
        node
    }

    fn node_inner(&mut self) -> Result<usize, SopsError> {
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
        if depth > MAX_DEPTH {
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
