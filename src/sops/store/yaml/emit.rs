//! Writes a SOPS tree as YAML text, byte for byte as sops 3.11 does.
//!
//! sops turns its tree into go-yaml v3 nodes (`stores/yaml/store.go`: comments become the
//! head comment of the next key or item, or the foot comment of the last one; comments that
//! open a map or list become its head comment), and go-yaml's encoder writes them. Both steps
//! are ported here: [`events`] is go-yaml's `encoder.node` (including its "tail" hand-over of
//! key foot comments), and [`Emitter`] is the part of go-yaml's `emitterc.go` (a port of
//! libyaml's emitter) that block YAML needs: indentation, comments and their blank lines,
//! and the choice between plain, quoted and literal scalars. Lines are never wrapped (go-yaml
//! v3 sets no width) and non-ASCII text is written as is.

use crate::sops::tree::{Branch, ListItem, MapItem, Scalar, Tree, Value};
use emitter::analyze;

/// Writes the documents as sops's YAML store does, with `indent` spaces a level (4 unless
/// `.sops.yaml`'s `stores.yaml.indent` says otherwise).
pub(crate) fn emit(tree: &Tree, indent: usize) -> Vec<u8> {
    let mut events = Vec::new();
    for branch in tree {
        events.push(Event::DocumentStart);
        let node = map_node(branch);
        events_of(&node, "", &mut events);
        events.push(Event::DocumentEnd);
    }
    let mut emitter = Emitter::new(indent);
    for i in 0..events.len() {
        emitter.emit(&events, i);
    }
    emitter.out
}

/// go-yaml's node, as much of it as sops's trees produce.
#[derive(Debug, Default)]
struct Node {
    kind: Kind,
    head: String,
    foot: String,
}

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Empty,
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Scalar(String, Style),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    Plain,
    /// Written as is (a tag and its plain text: `!!merge <<`).
    Tagged,
    Single,
    Double,
    Literal,
}

/// `#` + the comments joined by `\n#`, as sops's `addCommentsHead` builds them.
fn join_comments(comments: &[&str]) -> String {
    if comments.is_empty() {
        return String::new();
    }
    format!("#{}", comments.join("\n#"))
}

fn add_head(node: &mut Node, comments: &mut Vec<&str>) {
    if comments.is_empty() {
        return;
    }
    let comment = join_comments(comments);
    node.head = if node.head.is_empty() {
        comment
    } else {
        format!("{comment}\n{}", node.head)
    };
    comments.clear();
}

fn add_foot(node: &mut Node, comments: &[&str]) {
    if comments.is_empty() {
        return;
    }
    let comment = join_comments(comments);
    node.foot = if node.foot.is_empty() {
        comment
    } else {
        format!("{}\n{comment}", node.foot)
    };
}

/// sops's `appendTreeBranch`.
fn map_node(branch: &Branch) -> Node {
    let mut node = Node::default();
    let mut pairs: Vec<(Node, Node)> = Vec::new();
    let mut comments: Vec<&str> = Vec::new();
    let mut beginning = true;
    for item in branch {
        match item {
            MapItem::Comment(text) => comments.push(text),
            MapItem::Pair(key, value) => {
                if beginning {
                    add_head(&mut node, &mut comments);
                    beginning = false;
                }
                let mut key_node = scalar_node(&Scalar::str(key.clone()));
                add_head(&mut key_node, &mut comments);
                pairs.push((key_node, value_node(value)));
            }
        }
    }
    if !comments.is_empty() {
        match pairs.last_mut() {
            Some((key, _)) if !beginning => add_foot(key, &comments),
            _ => add_head(&mut node, &mut comments),
        }
    }
    node.kind = Kind::Map(pairs);
    node
}

/// sops's `appendSequence`.
fn seq_node(items: &[ListItem]) -> Node {
    let mut node = Node::default();
    let mut content: Vec<Node> = Vec::new();
    let mut comments: Vec<&str> = Vec::new();
    let mut beginning = true;
    for item in items {
        match item {
            ListItem::Comment(text) => comments.push(text),
            ListItem::Value(value) => {
                if beginning {
                    add_head(&mut node, &mut comments);
                    beginning = false;
                }
                let mut item_node = value_node(value);
                add_head(&mut item_node, &mut comments);
                content.push(item_node);
            }
        }
    }
    if !comments.is_empty() {
        match content.last_mut() {
            Some(last) if !beginning => add_foot(last, &comments),
            _ => add_head(&mut node, &mut comments),
        }
    }
    node.kind = Kind::Seq(content);
    node
}

fn value_node(value: &Value) -> Node {
    match value {
        Value::Map(branch) => map_node(branch),
        Value::List(items) => seq_node(items),
        Value::Scalar(scalar) => scalar_node(scalar),
    }
}

/// A scalar as go-yaml's encoder writes a Go value (`Node.Encode`): its text and the style
/// that keeps it the same type when read back.
fn scalar_node(scalar: &Scalar) -> Node {
    let (text, style) = match scalar {
        Scalar::Null => ("null".to_string(), Style::Plain),
        Scalar::Bool(b) => (b.to_string(), Style::Plain),
        Scalar::Int(i) => (i.to_string(), Style::Plain),
        Scalar::Float(f) => (go_yaml_float(*f), Style::Plain),
        Scalar::Time(t) => (t.clone(), Style::Plain),
        // go-yaml writes the merge key with its tag, even as a plain string.
        Scalar::Str(s) if s.as_str() == "<<" => ("!!merge <<".to_string(), Style::Tagged),
        Scalar::Str(s) => {
            let s: &str = s;
            let style = if s.contains('\n') && s.starts_with('\t') && analyze(s).block_allowed {
                // go-yaml cannot read back the literal block it writes for this string (a
                // tab where the block's indentation is detected), so sops's `Node.Encode`
                // fails; sops ignores the error and writes the empty node: `null`.
                return Node {
                    kind: Kind::Scalar("null".into(), Style::Plain),
                    ..Node::default()
                };
            } else if s.contains('\n') {
                Style::Literal
            } else if super::parse::plain_resolves_to_str(s)
                && !is_base60_float(s)
                && !is_old_bool(s)
            {
                Style::Plain
            } else {
                Style::Double
            };
            (s.to_string(), style)
        }
    };
    Node {
        kind: Kind::Scalar(text, style),
        ..Node::default()
    }
}

/// go-yaml's float: `strconv.FormatFloat(f, 'g', -1, 64)` with YAML's names for the
/// specials.
pub(crate) fn go_yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest round-trip digits and the decimal exponent.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // strconv's 'g' with the shortest precision decides as if the precision were 6: an
    // exponent below 1e-4 and from 1e6 on.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.unsigned_abs());
    }
    format!("{f}")
}

fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        i += 1;
        let start = i;
        if b.get(i).is_some_and(|c| (b'0'..=b'5').contains(c))
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            i += 2;
        } else if b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// An emitter event, with the comments go-yaml's encoder attaches to it.
#[derive(Debug)]
pub(super) enum Event {
    DocumentStart,
    DocumentEnd,
    MapStart {
        head: String,
        tail: String,
    },
    MapEnd {
        tail: String,
        foot: String,
    },
    SeqStart {
        head: String,
    },
    SeqEnd {
        foot: String,
    },
    Scalar {
        text: String,
        style: Style,
        head: String,
        foot: String,
        tail: String,
    },
}

/// go-yaml's `encoder.node`: a key's foot comment is handed to the next key (or the map's
/// end) as its "tail", so that it is written after the whole value.
fn events_of(node: &Node, tail: &str, out: &mut Vec<Event>) {
    match &node.kind {
        Kind::Map(pairs) => {
            out.push(Event::MapStart {
                head: node.head.clone(),
                tail: tail.to_string(),
            });
            let mut tail = String::new();
            for (key, value) in pairs {
                let foot = key.foot.clone();
                let key = Node {
                    kind: match &key.kind {
                        Kind::Scalar(t, s) => Kind::Scalar(t.clone(), *s),
                        _ => Kind::Empty,
                    },
                    head: key.head.clone(),
                    foot: String::new(),
                };
                events_of(&key, &tail, out);
                tail = foot;
                events_of(value, "", out);
            }
            out.push(Event::MapEnd {
                tail,
                foot: node.foot.clone(),
            });
        }
        Kind::Seq(items) => {
            out.push(Event::SeqStart {
                head: node.head.clone(),
            });
            for item in items {
                events_of(item, "", out);
            }
            out.push(Event::SeqEnd {
                foot: node.foot.clone(),
            });
        }
        Kind::Scalar(text, style) => out.push(Event::Scalar {
            text: text.clone(),
            style: *style,
            head: node.head.clone(),
            foot: node.foot.clone(),
            tail: tail.to_string(),
        }),
        Kind::Empty => {}
    }
}

mod emitter;
#[cfg(test)]
mod tests;

use emitter::Emitter;
