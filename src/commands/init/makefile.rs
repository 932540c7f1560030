//! A small reader for the variable part of a team's Makefile, for `envsync init
//! --from-makefile`: comments, `\` continuations, `VAR = / := / ::= / ?= / +=` with
//! `export` and `override` prefixes, and `$(VAR)` / `${VAR}` expansion of variables the
//! file defines. Nothing is run: no make, no shell. Recipes, rules, conditionals and
//! `define` blocks are skipped. A value that needs what this reader cannot know (a
//! `$(shell …)` or other function, an undefined variable, `!=`) is an error naming its
//! line, and only when that value is asked for. Errors quote names, never values.

use std::collections::HashMap;

/// Why a value could not be read: the Makefile line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MakeError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Text with the Makefile line each part of it came from (continuations join lines).
#[derive(Debug, Clone)]
struct Source {
    text: String,
    /// (byte offset in `text`, Makefile line), by offset.
    lines: Vec<(usize, usize)>,
}

impl Source {
    fn line_at(&self, offset: usize) -> usize {
        self.lines
            .iter()
            .take_while(|(start, _)| *start <= offset)
            .last()
            .map_or(0, |(_, line)| *line)
    }

    /// The text from `start` on, with its lines.
    fn tail(&self, start: usize) -> Self {
        let first = self.line_at(start);
        let mut lines = vec![(0, first)];
        lines.extend(
            self.lines
                .iter()
                .filter(|(o, _)| *o > start)
                .map(|(o, l)| (o - start, *l)),
        );
        Self {
            text: self.text[start..].to_string(),
            lines,
        }
    }
}

/// One assignment's contribution to a variable: its text, and for `:=` its value, expanded
/// when it was read (lazily for `=`).
#[derive(Debug, Clone)]
struct Part {
    raw: Source,
    value: Option<Result<String, MakeError>>,
}

#[derive(Debug, Clone)]
struct Var {
    recursive: bool,
    parts: Vec<Part>,
    line: usize,
}

/// The variables of a Makefile.
#[derive(Debug, Default)]
pub(crate) struct Makefile {
    vars: HashMap<String, Var>,
    /// Names in the order they were first defined.
    order: Vec<String>,
}

/// Deeper than this, a variable refers to itself.
const MAX_DEPTH: usize = 64;

impl Makefile {
    /// Reads `text`; `overrides` are set as `make NAME=value` sets them: assignments to
    /// them in the file are ignored.
    #[cfg(test)]
    pub(crate) fn parse(text: &str, overrides: &[(String, String)]) -> Self {
        Self::parse_with(text, overrides, &[])
    }

    /// As [`Makefile::parse`], with `builtins` defined first as make defines its own
    /// (`CURDIR`): the file may assign them.
    pub(crate) fn parse_with(
        text: &str,
        overrides: &[(String, String)],
        builtins: &[(&str, &str)],
    ) -> Self {
        let mut mk = Self::default();
        for (name, value) in builtins {
            let raw = Source {
                text: (*value).to_string(),
                lines: vec![(0, 0)],
            };
            mk.define(
                name,
                Var {
                    recursive: false,
                    parts: vec![Part {
                        raw,
                        value: Some(Ok((*value).to_string())),
                    }],
                    line: 0,
                },
            );
        }
        for (name, value) in overrides {
            let raw = Source {
                text: value.clone(),
                lines: vec![(0, 0)],
            };
            mk.define(
                name,
                Var {
                    recursive: false,
                    parts: vec![Part {
                        raw,
                        value: Some(Ok(value.clone())),
                    }],
                    line: 0,
                },
            );
        }
        let mut in_define = false;
        for logical in logical_lines(text) {
            let first = logical.text.trim_start();
            if in_define {
                in_define = first.trim_end() != "endef";
                continue;
            }
            // A recipe line (a tab first), or nothing.
            if logical.text.starts_with('\t') || first.is_empty() {
                continue;
            }
            if strip_prefixes(first).starts_with("define")
                && strip_prefixes(first)[6..].starts_with([' ', '\t'])
            {
                in_define = true;
                continue;
            }
            let line = strip_comment(&logical);
            if let Some((name, op, start)) = assignment(&line.text) {
                if overrides.iter().any(|(n, _)| *n == name) {
                    continue;
                }
                mk.assign(name, op, line.tail(start), line.line_at(0));
            }
        }
        mk
    }

    fn define(&mut self, name: &str, var: Var) {
        if self.vars.insert(name.to_string(), var).is_none() {
            self.order.push(name.to_string());
        }
    }

    /// Applies one assignment; `line` is where it starts (its value may begin on the next).
    fn assign(&mut self, name: String, op: Op, raw: Source, line: usize) {
        let defined = self.vars.contains_key(&name);
        let part = |mk: &Self, immediate: bool| Part {
            value: immediate.then(|| mk.expand(&raw, 0)),
            raw: raw.clone(),
        };
        let var = match op {
            Op::Recursive => Var {
                recursive: true,
                parts: vec![part(self, false)],
                line,
            },
            Op::Conditional if defined => return,
            Op::Conditional => Var {
                recursive: true,
                parts: vec![part(self, false)],
                line,
            },
            Op::Simple => Var {
                recursive: false,
                parts: vec![part(self, true)],
                line,
            },
            Op::Append => match self.vars.get(&name) {
                Some(old) => {
                    let mut var = old.clone();
                    var.parts.push(part(self, !old.recursive));
                    var
                }
                None => Var {
                    recursive: true,
                    parts: vec![part(self, false)],
                    line,
                },
            },
            Op::Shell => Var {
                recursive: false,
                parts: vec![Part {
                    value: Some(Err(MakeError {
                        line,
                        message: format!(
                            "`{name} != …` runs a shell command, and envsync does not run the Makefile"
                        ),
                    })),
                    raw: raw.clone(),
                }],
                line,
            },
        };
        self.define(&name, var);
    }

    /// The names defined, in the order they were first defined.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// The line of `name`'s latest definition.
    pub(crate) fn line_of(&self, name: &str) -> Option<usize> {
        self.vars.get(name).map(|v| v.line)
    }

    /// The text of every assignment to `name`, unexpanded.
    pub(crate) fn raw(&self, name: &str) -> Vec<&str> {
        self.vars.get(name).map_or_else(Vec::new, |v| {
            v.parts.iter().map(|p| p.raw.text.as_str()).collect()
        })
    }

    /// The expanded value of `name`; None when the file does not define it.
    pub(crate) fn value(&self, name: &str) -> Option<Result<String, MakeError>> {
        self.value_at(name, 0)
    }

    fn value_at(&self, name: &str, depth: usize) -> Option<Result<String, MakeError>> {
        let var = self.vars.get(name)?;
        let mut out = String::new();
        for part in &var.parts {
            let value = match &part.value {
                Some(value) => value.clone(),
                None => self.expand(&part.raw, depth),
            };
            let value = match value {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            let value = value.trim();
            if !value.is_empty() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(value);
            }
        }
        Some(Ok(out))
    }

    /// Expands `$(VAR)`, `${VAR}`, `$X` and `$$` in `source`.
    fn expand(&self, source: &Source, depth: usize) -> Result<String, MakeError> {
        let text = source.text.as_str();
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while let Some(found) = text[i..].find('$') {
            let at = i + found;
            out.push_str(&text[i..at]);
            let error = |message: String| MakeError {
                line: source.line_at(at),
                message,
            };
            let (name, next) = match bytes.get(at + 1) {
                None => {
                    out.push('$');
                    i = at + 1;
                    continue;
                }
                Some(b'$') => {
                    out.push('$');
                    i = at + 2;
                    continue;
                }
                Some(&open @ (b'(' | b'{')) => {
                    let close = if open == b'(' { b')' } else { b'}' };
                    let end = matching(bytes, at + 1, open, close)
                        .ok_or_else(|| error(format!("`${}` is not closed", open as char)))?;
                    (&text[at + 2..end], end + 1)
                }
                Some(_) => {
                    let len = text[at + 1..].chars().next().map_or(1, char::len_utf8);
                    (&text[at + 1..at + 1 + len], at + 1 + len)
                }
            };
            if !is_name(name) {
                return Err(error(unsupported(name)));
            }
            if depth >= MAX_DEPTH {
                return Err(error(format!("`{name}` refers to itself")));
            }
            match self.value_at(name, depth + 1) {
                Some(value) => out.push_str(&value?),
                None => {
                    return Err(error(format!(
                        "`$({name})` is not defined in the Makefile (it may come from the environment, the make command line or an included file)"
                    )))
                }
            }
            i = next;
        }
        out.push_str(&text[i..]);
        Ok(out)
    }
}

/// The message for a `$(…)` that is not a plain variable: a function, a substitution
/// reference or a computed name. Only the function's name is quoted.
fn unsupported(inner: &str) -> String {
    let word: String = inner
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    if inner.contains('$') {
        "a computed variable name (`$($(…))`) needs make to run".into()
    } else if inner.contains(':') && !inner.contains(char::is_whitespace) {
        "a substitution reference (`$(VAR:a=b)`) needs make to run".into()
    } else {
        format!("`$({word} …)` is a make function, and envsync does not run make or a shell")
    }
}

/// A plain variable name: no whitespace, and none of the characters make functions and
/// substitution references use.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            c.is_whitespace() || matches!(c, ':' | '=' | '#' | ',' | '$' | '(' | ')' | '{' | '}')
        })
}

/// The index of the `close` matching the `open` at `start`, counting nesting.
fn matching(bytes: &[u8], start: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if b == open {
            depth += 1;
        } else if b == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// The kinds of assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=`
    Recursive,
    /// `:=`, `::=`, `:::=`
    Simple,
    /// `?=`
    Conditional,
    /// `+=`
    Append,
    /// `!=`
    Shell,
}

/// `export`, `override` and `private` in front of an assignment.
fn strip_prefixes(mut line: &str) -> &str {
    loop {
        let before = line;
        for word in ["export", "override", "private"] {
            if let Some(rest) = line.strip_prefix(word) {
                if rest.starts_with([' ', '\t']) {
                    line = rest.trim_start();
                }
            }
        }
        if line == before {
            return line;
        }
    }
}

/// The name, kind and value offset of an assignment line (comment already removed); None
/// for a rule, a directive or anything else.
fn assignment(line: &str) -> Option<(String, Op, usize)> {
    let trimmed = line.trim_start();
    let body = strip_prefixes(trimmed);
    let offset = line.len() - body.len();
    let name_len = body
        .find(|c: char| c.is_whitespace() || matches!(c, ':' | '=' | '?' | '+' | '!' | '#'))
        .unwrap_or(body.len());
    let name = &body[..name_len];
    if name.is_empty() || !is_name(name) {
        return None;
    }
    let rest = &body[name_len..];
    let after = rest.trim_start_matches([' ', '\t']);
    let ops = [
        (":::=", Op::Simple),
        ("::=", Op::Simple),
        (":=", Op::Simple),
        ("?=", Op::Conditional),
        ("+=", Op::Append),
        ("!=", Op::Shell),
        ("=", Op::Recursive),
    ];
    let (token, op) = ops.into_iter().find(|(t, _)| after.starts_with(t))?;
    let value = &after[token.len()..];
    let value_trimmed = value.trim_start();
    let start = offset
        + name_len
        + (rest.len() - after.len())
        + token.len()
        + (value.len() - value_trimmed.len());
    Some((name.to_string(), op, start))
}

/// The Makefile's logical lines: a line ending in an odd number of `\` goes on with the
/// next, the backslash, newline and leading whitespace of the next line becoming one space.
fn logical_lines(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut current: Option<Source> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let source = current.get_or_insert_with(|| Source {
            text: String::new(),
            lines: Vec::new(),
        });
        let piece = if source.text.is_empty() {
            line
        } else {
            line.trim_start()
        };
        source.lines.push((source.text.len(), number));
        let trailing = piece.len() - piece.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            source.text.push_str(piece[..piece.len() - 1].trim_end());
            source.text.push(' ');
        } else {
            source.text.push_str(piece);
            out.extend(current.take());
        }
    }
    out.extend(current.take());
    out
}

/// The line without its comment: from the first `#` not escaped as `\#` on.
fn strip_comment(line: &Source) -> Source {
    let mut text = String::with_capacity(line.text.len());
    let mut lines = Vec::with_capacity(line.lines.len());
    let mut escaped = false;
    for (i, c) in line.text.char_indices() {
        if let Some(&(_, l)) = line.lines.iter().find(|(o, _)| *o == i) {
            lines.push((text.len(), l));
        }
        match c {
            '\\' if !escaped => escaped = true,
            '#' if escaped => {
                text.push('#');
                escaped = false;
            }
            '#' => break,
            c => {
                if escaped {
                    text.push('\\');
                    escaped = false;
                }
                text.push(c);
            }
        }
    }
    if escaped {
        text.push('\\');
    }
    if lines.is_empty() {
        lines.push((0, line.line_at(0)));
    }
    Source { text, lines }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, name: &str) -> Option<Result<String, MakeError>> {
        Makefile::parse(text, &[]).value(name)
    }

    #[test]
    fn values_are_read_as_make_reads_them() {
        let table: [(&str, &str, &str, Option<&str>); 16] = [
            ("plain", "A = x\n", "A", Some("x")),
            ("simple", "A := x y\n", "A", Some("x y")),
            ("posix simple", "A ::= x\n", "A", Some("x")),
            ("no spaces", "A:=x\n", "A", Some("x")),
            (
                "continuations",
                "A := a \\\n\tb \\\n    c\n",
                "A",
                Some("a b c"),
            ),
            ("append", "A = x\nA += y\nA += z\n", "A", Some("x y z")),
            ("append to nothing", "A += y\n", "A", Some("y")),
            ("conditional sets", "A ?= x\n", "A", Some("x")),
            ("conditional keeps", "A = x\nA ?= y\n", "A", Some("x")),
            (
                "nested",
                "R = /r\nB = $(R)/b\nA = $(B)/a\n",
                "A",
                Some("/r/b/a"),
            ),
            ("braces", "X = x\nA = ${X}-$(X)\n", "A", Some("x-x")),
            ("late binding", "A = $(B)\nB = b\n", "A", Some("b")),
            (
                "comments",
                "# A := no\nA := x # trailing\nB := \\#1\n",
                "A",
                Some("x"),
            ),
            (
                "export and override",
                "export A := x\noverride B = $(A)y\n",
                "B",
                Some("xy"),
            ),
            ("dollar dollar", "A = $$src.enc\n", "A", Some("$src.enc")),
            (
                "recipes and rules skipped",
                "all: A\n\tA := no\nB = 1\n",
                "A",
                None,
            ),
        ];
        for (label, text, name, want) in table {
            let got = value(text, name).map(|r| r.unwrap());
            assert_eq!(got.as_deref(), want, "{label}");
        }
        assert_eq!(value("B := \\#1\n", "B").unwrap().unwrap(), "#1");
    }

    #[test]
    fn simple_variables_expand_when_defined() {
        let mk = Makefile::parse("B = 1\nA := $(B)\nB = 2\nC = $(B)\n", &[]);
        assert_eq!(mk.value("A").unwrap().unwrap(), "1");
        assert_eq!(mk.value("C").unwrap().unwrap(), "2");
    }

    #[test]
    fn what_needs_make_is_refused_with_its_line() {
        let table: [(&str, usize, &str); 6] = [
            ("A := x \\\n  $(shell pwd)/y \\\n  z\n", 2, "shell"),
            ("A = $(wildcard *.enc)\n", 1, "wildcard"),
            ("\nA = $(UNDEFINED)/x\n", 2, "UNDEFINED"),
            ("A != pwd\n", 1, "shell command"),
            ("B = $(A:.enc=)\nA = $(B)\n", 1, "substitution"),
            ("A = $(A) x\n", 1, "refers to itself"),
        ];
        for (text, line, word) in table {
            let err = value(text, "A").unwrap().unwrap_err();
            assert_eq!(err.line, line, "{text}");
            assert!(err.message.contains(word), "{text}: {}", err.message);
        }
        // Only a value that is asked for fails.
        let mk = Makefile::parse("A = $(shell pwd)\nB = ok\n", &[]);
        assert_eq!(mk.value("B").unwrap().unwrap(), "ok");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mk = Makefile::parse(
            "ROOT := $(shell pwd)\nA := $(ROOT)/x\n",
            &[("ROOT".into(), "/srv".into())],
        );
        assert_eq!(mk.value("A").unwrap().unwrap(), "/srv/x");
        let mk = Makefile::parse_with("A := $(CURDIR)/x\n", &[], &[("CURDIR", "/repo")]);
        assert_eq!(mk.value("A").unwrap().unwrap(), "/repo/x");
    }

    #[test]
    fn raw_text_and_lines_are_kept() {
        let mk = Makefile::parse("\nexport FILES := a:$(ROOT)/b \\\n  c\n", &[]);
        assert_eq!(mk.raw("FILES"), vec!["a:$(ROOT)/b c"]);
        assert_eq!(mk.line_of("FILES"), Some(2));
        assert_eq!(mk.names().collect::<Vec<_>>(), vec!["FILES"]);
        // A list that starts on the line after `:=` is defined on the line of `:=`.
        let mk = Makefile::parse("A := \\\n\ta \\\n\tb\n", &[]);
        assert_eq!(mk.line_of("A"), Some(1));
        assert_eq!(mk.value("A").unwrap().unwrap(), "a b");
    }
}
