//! A message's formatting: a safe subset of Markdown, parsed once on the server into a small
//! tree ([`Node`]) that messages carry (`ChatMessage::rich`), so the browser renders exactly
//! what the server renders without a Markdown parser in its bundle (`ui::markdown` turns the
//! tree into views; nothing anywhere makes an HTML string).
//!
//! The subset: **bold**, *italic*, ~~struck~~, `code`, fenced or indented code blocks,
//! quotes (`>`), lists, and links: `<https://…>`, `[text](https://…)` and bare `http(s)://`
//! addresses. Only `http`, `https` and `mailto` addresses become links; any other link or
//! image keeps its text only. Raw HTML is the text it is, and so are headings, rules and
//! entities: this is chat, not a document. Backslashes and `&` mean themselves (no escapes,
//! no entities), so what someone typed is what everyone reads.

use serde::{Deserialize, Serialize};

/// A message's text as a tree of the elements the subset allows (short tags: it travels in
/// every formatted message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    #[serde(rename = "t")]
    Text(String),
    #[serde(rename = "c")]
    Code(String),
    #[serde(rename = "b")]
    Strong(Vec<Node>),
    #[serde(rename = "i")]
    Emphasis(Vec<Node>),
    #[serde(rename = "s")]
    Strike(Vec<Node>),
    /// The address is one of the allowed schemes (checked when parsed, and again when shown).
    #[serde(rename = "a")]
    Link(String, Vec<Node>),
    #[serde(rename = "p")]
    Paragraph(Vec<Node>),
    #[serde(rename = "q")]
    Quote(Vec<Node>),
    /// A list, numbered from its start if ordered.
    #[serde(rename = "l")]
    List(Option<u64>, Vec<Node>),
    #[serde(rename = "li")]
    Item(Vec<Node>),
    #[serde(rename = "pre")]
    CodeBlock(String),
}

/// `href` if it may be a link: `http`, `https` or `mailto` only.
pub fn safe_href(href: &str) -> Option<String> {
    let lower = href.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme) && lower.len() > scheme.len())
        .then(|| href.to_string())
}

/// The formatted tree of `text`, or `None` when it is plain text (most messages), which is
/// shown as it is.
#[cfg(feature = "ssr")]
pub fn rich(text: &str) -> Option<Vec<Node>> {
    if plain(text) {
        return None;
    }
    let nodes = parse::parse(text);
    match nodes.as_slice() {
        [Node::Text(t)] if t == text => None,
        [Node::Paragraph(inline)] if matches!(inline.as_slice(), [Node::Text(t)] if t == text) => {
            None
        }
        _ => Some(nodes),
    }
}

/// Whether `text` has nothing Markdown or an address could act on, so it needs no parsing:
/// none of the characters that start any construct of the subset, no address, and no leading
/// space or digit (a code block, an ordered list). Most chat messages are like this, the load
/// generator's `tag s1:2:3:xx…` bodies included, so the room actor does not parse them.
pub fn plain(text: &str) -> bool {
    let acts = |b: u8| {
        matches!(
            b,
            b'*' | b'_'
                | b'`'
                | b'~'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'!'
                | b'#'
                | b'-'
                | b'+'
                | b'='
                | b'|'
                | b'&'
                | b'\\'
                | b'\n'
                | b'\t'
        )
    };
    !text.starts_with(|c: char| c == ' ' || c.is_ascii_digit())
        && !text.bytes().any(acts)
        && !has_address(text)
}

/// Whether `text` may hold an address that becomes a link (`http://`, `https://`, `mailto:`).
fn has_address(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(3).any(|w| w == b"://")
        || bytes.windows(7).any(|w| w.eq_ignore_ascii_case(b"mailto:"))
}

/// Whether a node is phrasing content (it can sit inside a `<bdi>`).
fn is_inline(node: &Node) -> bool {
    matches!(
        node,
        Node::Text(_)
            | Node::Code(_)
            | Node::Strong(_)
            | Node::Emphasis(_)
            | Node::Strike(_)
            | Node::Link(..)
    )
}

/// The tree as inline content, if it is one paragraph or only inline nodes (raw HTML on a
/// line of its own parses as a block of text); `None` for real blocks.
pub fn as_inline(mut nodes: Vec<Node>) -> Result<Vec<Node>, Vec<Node>> {
    if let [Node::Paragraph(_)] = nodes.as_slice() {
        let Some(Node::Paragraph(inline)) = nodes.pop() else {
            unreachable!("matched above")
        };
        return Ok(inline);
    }
    if nodes.iter().all(is_inline) {
        Ok(nodes)
    } else {
        Err(nodes)
    }
}

#[cfg(feature = "ssr")]
pub use parse::MAX_DEPTH;

#[cfg(feature = "ssr")]
mod parse {
    use super::{safe_href, Node};
    use pulldown_cmark::{Event, Options, Parser, Tag};

    /// Stand-ins for `\` and `&` while parsing (characters of Unicode's private use area, put
    /// back in every text): with them, Markdown sees no escapes and no entities.
    const BACKSLASH: char = '\u{E000}';
    const AMPERSAND: char = '\u{E001}';

    /// Deepest nesting of elements a tree keeps (quotes in lists in quotes…).
    pub const MAX_DEPTH: usize = 12;

    /// What an open tag becomes when it closes.
    enum Open {
        Strong,
        Emphasis,
        Strike,
        Link(Option<String>),
        Paragraph,
        Quote,
        List(Option<u64>),
        Item,
        CodeBlock,
        /// Shown as its contents only (headings, images, tables, …).
        Plain,
    }

    fn restore(text: &str) -> String {
        text.chars()
            .map(|c| match c {
                BACKSLASH => '\\',
                AMPERSAND => '&',
                c => c,
            })
            .collect()
    }

    /// Splits plain text into text and bare `http(s)://` addresses. An address ends at
    /// whitespace, and trailing punctuation is left out of it (a sentence's full stop).
    fn autolink(text: &str, out: &mut Vec<Node>) {
        let mut rest = text;
        while let Some(at) = find_address(rest) {
            let (before, tail) = rest.split_at(at);
            let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
            let address =
                tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
            if address.len() <= "https://".len() {
                push_text(out, &rest[..at + end]);
                rest = &tail[end..];
                continue;
            }
            push_text(out, before);
            out.push(Node::Link(
                address.to_string(),
                vec![Node::Text(address.to_string())],
            ));
            rest = &tail[address.len()..];
        }
        push_text(out, rest);
    }

    fn find_address(text: &str) -> Option<usize> {
        let lower = text.to_ascii_lowercase();
        [lower.find("https://"), lower.find("http://")]
            .into_iter()
            .flatten()
            .min()
    }

    fn push_text(out: &mut Vec<Node>, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(last)) = out.last_mut() {
            last.push_str(text);
        } else {
            out.push(Node::Text(text.to_string()));
        }
    }

    /// Parses `text` into the subset's tree.
    pub fn parse(text: &str) -> Vec<Node> {
        let masked: String = text
            .chars()
            .map(|c| match c {
                '\\' => BACKSLASH,
                '&' => AMPERSAND,
                c => c,
            })
            .collect();
        let mut stack: Vec<(Open, Vec<Node>)> = Vec::new();
        let mut top: Vec<Node> = Vec::new();
        let mut in_link = 0usize;
        for event in Parser::new_ext(&masked, Options::ENABLE_STRIKETHROUGH) {
            let in_code = matches!(stack.last(), Some((Open::CodeBlock, _)));
            let out = stack.last_mut().map_or(&mut top, |(_, children)| children);
            match event {
                Event::Start(tag) => {
                    let open = match tag {
                        Tag::Strong => Open::Strong,
                        Tag::Emphasis => Open::Emphasis,
                        Tag::Strikethrough => Open::Strike,
                        Tag::Link { dest_url, .. } => {
                            in_link += 1;
                            Open::Link(safe_href(&restore(&dest_url)))
                        }
                        Tag::Paragraph => Open::Paragraph,
                        Tag::BlockQuote(_) => Open::Quote,
                        Tag::List(start) => Open::List(start),
                        Tag::Item => Open::Item,
                        Tag::CodeBlock(_) => Open::CodeBlock,
                        // Headings read as paragraphs; images as their text.
                        Tag::Heading { .. } => Open::Paragraph,
                        _ => Open::Plain,
                    };
                    // Deeper structure is kept as its contents: every reader decodes and
                    // renders the tree recursively, and JSON decoders limit nesting.
                    let open = if stack.len() >= MAX_DEPTH && !matches!(open, Open::CodeBlock) {
                        if matches!(open, Open::Link(_)) {
                            in_link -= 1;
                        }
                        Open::Plain
                    } else {
                        open
                    };
                    stack.push((open, Vec::new()));
                }
                Event::End(_) => {
                    let Some((open, children)) = stack.pop() else {
                        continue;
                    };
                    let out = stack.last_mut().map_or(&mut top, |(_, c)| c);
                    let node = match open {
                        Open::Strong => Node::Strong(children),
                        Open::Emphasis => Node::Emphasis(children),
                        Open::Strike => Node::Strike(children),
                        Open::Link(href) => {
                            in_link -= 1;
                            match href {
                                Some(href) => Node::Link(href, children),
                                None => {
                                    out.extend(children);
                                    continue;
                                }
                            }
                        }
                        Open::Paragraph => Node::Paragraph(children),
                        Open::Quote => Node::Quote(children),
                        Open::List(start) => Node::List(start, children),
                        Open::Item => Node::Item(children),
                        Open::CodeBlock => {
                            let code: String = children
                                .into_iter()
                                .map(|n| match n {
                                    Node::Text(t) => t,
                                    _ => String::new(),
                                })
                                .collect();
                            Node::CodeBlock(code.trim_end_matches('\n').to_string())
                        }
                        Open::Plain => {
                            for child in children {
                                match child {
                                    Node::Text(t) => push_text(out, &t),
                                    other => out.push(other),
                                }
                            }
                            continue;
                        }
                    };
                    out.push(node);
                }
                Event::Text(t) => {
                    let t = restore(&t);
                    if in_link > 0 || in_code {
                        push_text(out, &t);
                    } else {
                        autolink(&t, out);
                    }
                }
                Event::Code(t) => out.push(Node::Code(restore(&t))),
                Event::Html(t) | Event::InlineHtml(t) => push_text(out, &restore(&t)),
                Event::SoftBreak | Event::HardBreak => push_text(out, "\n"),
                Event::Rule => push_text(out, "---"),
                _ => {}
            }
        }
        // Unclosed tags cannot happen with a well-formed event stream; keep any text regardless.
        while let Some((_, children)) = stack.pop() {
            top.extend(children);
        }
        top
    }
}
