//! go-yaml's emitter (`emitterc.go`, itself a port of libyaml's), for the block YAML sops
//! writes: the state machine over [`Event`]s, indentation, comments and the blank line
//! after a foot comment, the choice of scalar style, and the scalar writers.

use super::{Event, Style};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    StreamStart,
    FirstDocumentStart,
    DocumentStart,
    DocumentContent,
    DocumentEnd,
    FlowSequenceFirstItem,
    FlowMappingFirstKey,
    BlockSequenceFirstItem,
    BlockSequenceItem,
    BlockMappingFirstKey,
    BlockMappingKey,
    BlockMappingSimpleValue,
    BlockMappingValue,
}

/// What `analyze_scalar` finds out about a scalar.
#[derive(Debug, Default)]
pub(super) struct ScalarData {
    pub(super) multiline: bool,
    pub(super) block_plain_allowed: bool,
    pub(super) single_quoted_allowed: bool,
    pub(super) block_allowed: bool,
}

/// go-yaml's emitter state, for block YAML.
pub(super) struct Emitter {
    pub(super) out: Vec<u8>,
    best_indent: i64,
    state: State,
    states: Vec<State>,
    indent: i64,
    indents: Vec<i64>,
    flow_level: usize,
    simple_key_context: bool,
    column: i64,
    whitespace: bool,
    indention: bool,
    foot_indent: i64,
    head_comment: String,
    foot_comment: String,
    tail_comment: String,
}

impl Emitter {
    pub(super) fn new(indent: usize) -> Self {
        let indent = i64::try_from(indent).unwrap_or(4);
        Self {
            out: Vec::new(),
            best_indent: if (2..=9).contains(&indent) { indent } else { 2 },
            state: State::StreamStart,
            states: Vec::new(),
            indent: -1,
            indents: Vec::new(),
            flow_level: 0,
            simple_key_context: false,
            column: 0,
            whitespace: true,
            indention: true,
            foot_indent: -1,
            head_comment: String::new(),
            foot_comment: String::new(),
            tail_comment: String::new(),
        }
    }

    /// `yaml_emitter_emit` for event `i` (the whole list is known, so no buffering).
    pub(super) fn emit(&mut self, events: &[Event], i: usize) {
        if self.state == State::StreamStart {
            self.state = State::FirstDocumentStart;
        }
        // analyze_event: the event's comments become the emitter's.
        match &events[i] {
            Event::MapStart { head, tail } => {
                self.set_comments(head, "", tail);
            }
            Event::MapEnd { tail, foot } => self.set_comments("", foot, tail),
            Event::SeqStart { head } => self.set_comments(head, "", ""),
            Event::SeqEnd { foot } => self.set_comments("", foot, ""),
            Event::Scalar {
                head, foot, tail, ..
            } => self.set_comments(head, foot, tail),
            Event::DocumentStart | Event::DocumentEnd => {}
        }
        match self.state {
            State::StreamStart | State::FirstDocumentStart => self.document_start(true),
            State::DocumentStart => self.document_start(false),
            State::DocumentContent => self.document_content(events, i),
            State::DocumentEnd => self.document_end(),
            State::FlowSequenceFirstItem => self.flow_end(b"]"),
            State::FlowMappingFirstKey => self.flow_end(b"}"),
            State::BlockSequenceFirstItem => self.block_sequence_item(events, i, true),
            State::BlockSequenceItem => self.block_sequence_item(events, i, false),
            State::BlockMappingFirstKey => self.block_mapping_key(events, i, true),
            State::BlockMappingKey => self.block_mapping_key(events, i, false),
            State::BlockMappingSimpleValue => self.block_mapping_value(events, i, true),
            State::BlockMappingValue => self.block_mapping_value(events, i, false),
        }
    }

    fn set_comments(&mut self, head: &str, foot: &str, tail: &str) {
        if !head.is_empty() {
            self.head_comment = head.to_string();
        }
        if !foot.is_empty() {
            self.foot_comment = foot.to_string();
        }
        if !tail.is_empty() {
            self.tail_comment = tail.to_string();
        }
    }

    fn pop_state(&mut self) {
        self.state = self.states.pop().unwrap_or(State::DocumentEnd);
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn document_start(&mut self, first: bool) {
        // Every document after the first is written with `---`.
        if !first {
            self.write_indent();
            self.write_indicator(b"---", true, false, false);
            self.write_indent();
        }
        self.state = State::DocumentContent;
    }

    fn document_content(&mut self, events: &[Event], i: usize) {
        self.states.push(State::DocumentEnd);
        self.process_head_comment();
        self.node(events, i, false);
        self.process_foot_comment();
    }

    fn document_end(&mut self) {
        self.foot_indent = 0;
        self.process_foot_comment();
        self.foot_indent = -1;
        self.write_indent();
        self.state = State::DocumentStart;
    }

    /// An empty flow collection (`[]`, `{}`): sops writes no others.
    fn flow_end(&mut self, close: &[u8]) {
        self.flow_level = self.flow_level.saturating_sub(1);
        self.pop_indent();
        if self.column == 0 {
            self.write_indent();
        }
        self.write_indicator(close, false, false, false);
        self.pop_state();
    }

    fn block_sequence_item(&mut self, events: &[Event], i: usize, first: bool) {
        if first {
            self.increase_indent(false);
        }
        if matches!(events[i], Event::SeqEnd { .. }) {
            self.pop_indent();
            self.pop_state();
            return;
        }
        self.process_head_comment();
        self.write_indent();
        self.write_indicator(b"-", true, false, true);
        self.states.push(State::BlockSequenceItem);
        self.node(events, i, false);
        self.process_foot_comment();
    }

    fn block_mapping_key(&mut self, events: &[Event], i: usize, first: bool) {
        if first {
            self.increase_indent(false);
        }
        self.process_head_comment();
        if matches!(events[i], Event::MapEnd { .. }) {
            self.pop_indent();
            self.pop_state();
            return;
        }
        self.write_indent();
        if self.check_simple_key(events, i) {
            self.states.push(State::BlockMappingSimpleValue);
            self.node(events, i, true);
        } else {
            self.write_indicator(b"?", true, false, true);
            self.states.push(State::BlockMappingValue);
            self.node(events, i, false);
        }
    }

    fn block_mapping_value(&mut self, events: &[Event], i: usize, simple: bool) {
        if simple {
            self.write_indicator(b":", false, false, false);
        } else {
            self.write_indent();
            self.write_indicator(b":", true, false, true);
        }
        self.states.push(State::BlockMappingKey);
        self.node(events, i, false);
        self.process_foot_comment();
    }

    /// `yaml_emitter_emit_node`.
    fn node(&mut self, events: &[Event], i: usize, simple_key: bool) {
        self.simple_key_context = simple_key;
        match &events[i] {
            Event::Scalar { text, style, .. } => self.scalar(text, *style),
            Event::SeqStart { .. } => {
                if matches!(events.get(i + 1), Some(Event::SeqEnd { .. })) {
                    self.write_indicator(b"[", true, true, false);
                    self.increase_indent(true);
                    self.flow_level += 1;
                    self.state = State::FlowSequenceFirstItem;
                } else {
                    self.state = State::BlockSequenceFirstItem;
                }
            }
            Event::MapStart { .. } => {
                if matches!(events.get(i + 1), Some(Event::MapEnd { .. })) {
                    self.write_indicator(b"{", true, true, false);
                    self.increase_indent(true);
                    self.flow_level += 1;
                    self.state = State::FlowMappingFirstKey;
                } else {
                    self.state = State::BlockMappingFirstKey;
                }
            }
            _ => {}
        }
    }

    /// `yaml_emitter_check_simple_key`: a one-line scalar of at most 128 bytes, or an
    /// empty collection.
    fn check_simple_key(&self, events: &[Event], i: usize) -> bool {
        match &events[i] {
            Event::Scalar { text, .. } => !analyze(text).multiline && text.len() <= 128,
            Event::SeqStart { .. } => matches!(events.get(i + 1), Some(Event::SeqEnd { .. })),
            Event::MapStart { .. } => matches!(events.get(i + 1), Some(Event::MapEnd { .. })),
            _ => false,
        }
    }

    fn increase_indent(&mut self, flow: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { self.best_indent } else { 0 };
        } else if self.states.last() == Some(&State::BlockSequenceItem) {
            // The first indent inside a sequence skips the "- " indicator.
            self.indent += 2;
        } else {
            self.indent = self.best_indent * ((self.indent + self.best_indent) / self.best_indent);
        }
    }

    fn scalar(&mut self, text: &str, requested: Style) {
        let data = analyze(text);
        let style = self.select_style(text, requested, &data);
        self.increase_indent(true);
        match style {
            Style::Plain | Style::Tagged => self.write_plain(text),
            Style::Single => self.write_single_quoted(text),
            Style::Double => self.write_double_quoted(text),
            Style::Literal => self.write_literal(text),
        }
        self.pop_indent();
        self.pop_state();
    }

    fn select_style(&self, text: &str, requested: Style, data: &ScalarData) -> Style {
        let mut style = requested;
        if style == Style::Tagged {
            return style;
        }
        if self.simple_key_context && data.multiline {
            style = Style::Double;
        }
        if style == Style::Plain {
            if !data.block_plain_allowed {
                style = Style::Single;
            }
            if text.is_empty() && self.simple_key_context {
                style = Style::Single;
            }
        }
        if style == Style::Single && !data.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!data.block_allowed || self.simple_key_context) {
            style = Style::Double;
        }
        style
    }

    // Writers.

    fn put(&mut self, byte: u8) {
        self.out.push(byte);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push(b'\n');
        self.column = 0;
        self.indention = true;
    }

    /// Writes one character (all its UTF-8 bytes) from `s` at `*i`.
    fn write_char(&mut self, s: &[u8], i: &mut usize) {
        let w = width(s[*i]).min(s.len() - *i);
        self.out.extend_from_slice(&s[*i..*i + w]);
        self.column += 1;
        *i += w;
    }

    fn write_all(&mut self, s: &[u8]) {
        let mut i = 0;
        while i < s.len() {
            self.write_char(s, &mut i);
        }
    }

    fn write_break(&mut self, s: &[u8], i: &mut usize) {
        if s[*i] == b'\n' {
            self.put_break();
            *i += 1;
        } else {
            self.write_char(s, i);
            self.column = 0;
            self.indention = true;
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        if self.foot_indent == indent {
            self.put_break();
        }
        while self.column < indent {
            self.put(b' ');
        }
        self.whitespace = true;
        self.foot_indent = -1;
    }

    fn write_indicator(
        &mut self,
        indicator: &[u8],
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(b' ');
        }
        self.write_all(indicator);
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn process_head_comment(&mut self) {
        if !self.tail_comment.is_empty() {
            self.write_indent();
            let tail = std::mem::take(&mut self.tail_comment);
            self.write_comment(tail.as_bytes());
            self.foot_indent = self.indent.max(0);
        }
        if self.head_comment.is_empty() {
            return;
        }
        self.write_indent();
        let head = std::mem::take(&mut self.head_comment);
        self.write_comment(head.as_bytes());
    }

    fn process_foot_comment(&mut self) {
        if self.foot_comment.is_empty() {
            return;
        }
        self.write_indent();
        let foot = std::mem::take(&mut self.foot_comment);
        self.write_comment(foot.as_bytes());
        self.foot_indent = self.indent.max(0);
    }

    fn write_comment(&mut self, comment: &[u8]) {
        let mut breaks = false;
        let mut pound = false;
        let mut i = 0;
        while i < comment.len() {
            if is_break(comment, i) {
                self.write_break(comment, &mut i);
                breaks = true;
                pound = false;
            } else {
                if breaks {
                    self.write_indent();
                }
                if !pound {
                    if comment[i] != b'#' {
                        self.put(b'#');
                        self.put(b' ');
                    }
                    pound = true;
                }
                self.write_char(comment, &mut i);
                self.indention = false;
                breaks = false;
            }
        }
        if !breaks {
            self.put_break();
        }
        self.whitespace = true;
    }

    fn write_plain(&mut self, text: &str) {
        let value = text.as_bytes();
        if !value.is_empty() && !self.whitespace {
            self.put(b' ');
        }
        self.write_lines(value, false);
        if !value.is_empty() {
            self.whitespace = false;
        }
        self.indention = false;
    }

    fn write_single_quoted(&mut self, text: &str) {
        self.write_indicator(b"'", true, false, false);
        self.write_lines(text.as_bytes(), true);
        self.write_indicator(b"'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    /// The body of a plain or single-quoted scalar: a line break doubled (YAML folds a single
    /// one), each line indented, and a quote doubled inside single quotes.
    fn write_lines(&mut self, value: &[u8], double_quotes: bool) {
        let mut breaks = false;
        let mut i = 0;
        while i < value.len() {
            if is_break(value, i) {
                if !breaks && value[i] == b'\n' {
                    self.put_break();
                }
                self.write_break(value, &mut i);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if double_quotes && value[i] == b'\'' {
                    self.put(b'\'');
                }
                self.write_char(value, &mut i);
                self.indention = false;
                breaks = false;
            }
        }
    }

    fn write_double_quoted(&mut self, text: &str) {
        let value = text.as_bytes();
        self.write_indicator(b"\"", true, false, false);
        let starts_with_bom = value.starts_with(&[0xEF, 0xBB, 0xBF]);
        for c in text.chars() {
            let mut buf = [0u8; 4];
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            let escape = !is_printable(bytes, 0)
                || starts_with_bom
                || is_break(bytes, 0)
                || c == '"'
                || c == '\\';
            if !escape {
                self.write_all(bytes);
                continue;
            }
            self.put(b'\\');
            let v = u32::from(c);
            let short = match v {
                0x00 => Some(b'0'),
                0x07 => Some(b'a'),
                0x08 => Some(b'b'),
                0x09 => Some(b't'),
                0x0A => Some(b'n'),
                0x0B => Some(b'v'),
                0x0C => Some(b'f'),
                0x0D => Some(b'r'),
                0x1B => Some(b'e'),
                0x22 => Some(b'"'),
                0x5C => Some(b'\\'),
                0x85 => Some(b'N'),
                0xA0 => Some(b'_'),
                0x2028 => Some(b'L'),
                0x2029 => Some(b'P'),
                _ => None,
            };
            match short {
                Some(letter) => self.put(letter),
                None => {
                    let (letter, digits) = if v <= 0xFF {
                        (b'x', 2)
                    } else if v <= 0xFFFF {
                        (b'u', 4)
                    } else {
                        (b'U', 8)
                    };
                    self.put(letter);
                    for k in (0..digits).rev() {
                        let digit = ((v >> (k * 4)) & 0xF) as u8;
                        self.put(if digit < 10 {
                            b'0' + digit
                        } else {
                            b'A' + digit - 10
                        });
                    }
                }
            }
        }
        self.write_indicator(b"\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, text: &str) {
        let value = text.as_bytes();
        self.write_indicator(b"|", true, false, false);
        self.write_block_hints(value);
        // go-yaml 3.0.4's `process_line_comment_linebreak`: the header's line ends here.
        self.put_break();
        self.whitespace = true;
        let mut breaks = true;
        let mut i = 0;
        while i < value.len() {
            if is_break(value, i) {
                self.write_break(value, &mut i);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write_char(value, &mut i);
                self.indention = false;
                breaks = false;
            }
        }
    }

    fn write_block_hints(&mut self, value: &[u8]) {
        if value.first().is_some_and(|&b| b == b' ') || is_break(value, 0) {
            let hint = [b'0' + u8::try_from(self.best_indent).unwrap_or(4)];
            self.write_indicator(&hint, false, false, false);
        }
        let chomp = if value.is_empty() {
            Some(b'-')
        } else {
            let mut i = value.len() - 1;
            while i > 0 && value[i] & 0xC0 == 0x80 {
                i -= 1;
            }
            if !is_break(value, i) {
                Some(b'-')
            } else if i == 0 {
                Some(b'+')
            } else {
                i -= 1;
                while i > 0 && value[i] & 0xC0 == 0x80 {
                    i -= 1;
                }
                is_break(value, i).then_some(b'+')
            }
        };
        if let Some(c) = chomp {
            self.write_indicator(&[c], false, false, false);
        }
    }
}

/// `yaml_emitter_analyze_scalar`, for block context.
pub(super) fn analyze(text: &str) -> ScalarData {
    let value = text.as_bytes();
    if value.is_empty() {
        return ScalarData {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = value.starts_with(b"---") || value.starts_with(b"...");
    let mut line_breaks = false;
    let mut special = false;
    let mut tabs = false;
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let (mut previous_space, mut previous_break) = (false, false);
    let mut i = 0;
    while i < value.len() {
        let w = width(value[i]).max(1);
        let followed_by_whitespace = i + w >= value.len() || is_blank(value, i + w);
        let c = value[i];
        if i == 0 {
            match c {
                b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>'
                | b'\'' | b'"' | b'%' | b'@' | b'`' => block_indicators = true,
                b'?' | b':' | b'-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                b':' if followed_by_whitespace => block_indicators = true,
                b'#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if c == b'\t' {
            tabs = true;
        } else if !is_printable(value, i) {
            special = true;
        }
        if c == b' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + w == value.len() {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(value, i) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + w == value.len() {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(value, i);
        i += w;
    }
    let mut data = ScalarData {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        data.block_plain_allowed = false;
    }
    if trailing_space {
        data.block_allowed = false;
    }
    if break_space {
        data.block_plain_allowed = false;
        data.single_quoted_allowed = false;
    }
    if space_break || tabs || special {
        data.block_plain_allowed = false;
        data.single_quoted_allowed = false;
    }
    if space_break || special {
        data.block_allowed = false;
    }
    if line_breaks || block_indicators {
        data.block_plain_allowed = false;
    }
    data
}

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn width(b: u8) -> usize {
    if b & 0x80 == 0 {
        1
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        3
    } else if b & 0xF8 == 0xF0 {
        4
    } else {
        0
    }
}

fn is_printable(b: &[u8], i: usize) -> bool {
    let c = at(b, i);
    c == 0x0A
        || (0x20..=0x7E).contains(&c)
        || (c == 0xC2 && at(b, i + 1) >= 0xA0)
        || (c > 0xC2 && c < 0xED)
        || (c == 0xED && at(b, i + 1) < 0xA0)
        || c == 0xEE
        || (c == 0xEF
            && !(at(b, i + 1) == 0xBB && at(b, i + 2) == 0xBF)
            && !(at(b, i + 1) == 0xBF && (at(b, i + 2) == 0xBE || at(b, i + 2) == 0xBF)))
}

fn is_break(b: &[u8], i: usize) -> bool {
    let c = at(b, i);
    c == b'\r'
        || c == b'\n'
        || (c == 0xC2 && at(b, i + 1) == 0x85)
        || (c == 0xE2 && at(b, i + 1) == 0x80 && (at(b, i + 2) == 0xA8 || at(b, i + 2) == 0xA9))
}

fn is_blank(b: &[u8], i: usize) -> bool {
    matches!(at(b, i), b' ' | b'\t')
}

fn is_blankz(b: &[u8], i: usize) -> bool {
    is_blank(b, i) || is_break(b, i) || at(b, i) == 0
}
