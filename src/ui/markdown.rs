//! How a message's text is shown: a safe subset of Markdown, one renderer for the server's
//! page and the live view, so a reload never changes how a message looks.
//!
//! The subset: **bold**, *italic*, ~~struck~~, `code`, fenced or indented code blocks,
//! quotes (`>`), lists, and links: `<https://…>`, `[text](https://…)` and bare `http(s)://`
//! addresses, opening in a new tab with `rel="noopener noreferrer nofollow ugc"`. Only
//! `http`, `https` and `mailto` addresses become links; any other link or image shows its text
//! only. Raw HTML is shown as the text it is, and so are headings, rules and entities: this
//! is chat, not a document. Backslashes and `&` mean themselves (no escapes, no entities), so
//! what someone typed is what everyone reads. Nothing here produces an HTML string: the
//! parser's events become Leptos views, which escape every text.

use leptos::either::EitherOf3;
use leptos::prelude::*;
use pulldown_cmark::{Event, Options, Parser, Tag};

/// Stand-ins for `\` and `&` while parsing (characters of Unicode's private use area, put
/// back in every text): with them, Markdown sees no escapes and no entities.
const BACKSLASH: char = '\u{E000}';
const AMPERSAND: char = '\u{E001}';

/// The rel of every link in a message.
pub const LINK_REL: &str = "noopener noreferrer nofollow ugc";

/// A message's text as a tree of the elements the subset allows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Text(String),
    Code(String),
    Strong(Vec<Node>),
    Emphasis(Vec<Node>),
    Strike(Vec<Node>),
    Link(String, Vec<Node>),
    Paragraph(Vec<Node>),
    Quote(Vec<Node>),
    List(Option<u64>, Vec<Node>),
    Item(Vec<Node>),
    CodeBlock(String),
}

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

/// `href` if it may be a link: `http`, `https` or `mailto` only.
fn safe_href(href: &str) -> Option<String> {
    let href = restore(href);
    let lower = href.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme) && lower.len() > scheme.len())
        .then_some(href)
}

/// Splits plain text into text and bare `http(s)://` addresses. An address ends at
/// whitespace, and trailing punctuation is left out of it (a sentence's full stop).
fn autolink(text: &str, out: &mut Vec<Node>) {
    let mut rest = text;
    while let Some(at) = find_address(rest) {
        let (before, tail) = rest.split_at(at);
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let address = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
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
fn parse(text: &str) -> Vec<Node> {
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
                        Open::Link(safe_href(&dest_url))
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

/// Whether `text` has nothing Markdown or an address could act on, so it needs no parsing:
/// none of the characters that start any construct of the subset, and no leading space or
/// digit (a code block, an ordered list). Most chat messages are like this.
fn plain(text: &str) -> bool {
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
                | b':'
        )
    };
    !text.starts_with(|c: char| c == ' ' || c.is_ascii_digit()) && !text.bytes().any(acts)
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
fn as_inline(mut nodes: Vec<Node>) -> Result<Vec<Node>, Vec<Node>> {
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

/// A message's text, formatted. A message of one paragraph is an inline `<bdi>` (its
/// direction isolated from the name before it); longer ones are a `<div>` of blocks, which
/// isolates them the same way.
pub fn message_text(text: &str) -> impl IntoView {
    if plain(text) {
        return EitherOf3::A(view! { <bdi class="text">{text.to_string()}</bdi> });
    }
    match as_inline(parse(text)) {
        // Plain text, most messages: the text itself, with nothing to mark for hydration.
        Ok(mut inline) if matches!(inline.as_slice(), [Node::Text(_)]) => {
            let Some(Node::Text(text)) = inline.pop() else {
                unreachable!("matched above")
            };
            EitherOf3::A(view! { <bdi class="text">{text}</bdi> })
        }
        Ok(inline) => EitherOf3::B(view! { <bdi class="text">{render(inline)}</bdi> }),
        Err(blocks) => EitherOf3::C(view! { <div class="text" dir="auto">{render(blocks)}</div> }),
    }
}

fn render(nodes: Vec<Node>) -> Vec<AnyView> {
    nodes.into_iter().map(render_node).collect()
}

fn render_node(node: Node) -> AnyView {
    match node {
        Node::Text(t) => t.into_any(),
        Node::Code(t) => view! { <code>{t}</code> }.into_any(),
        Node::Strong(c) => view! { <strong>{render(c)}</strong> }.into_any(),
        Node::Emphasis(c) => view! { <em>{render(c)}</em> }.into_any(),
        Node::Strike(c) => view! { <s>{render(c)}</s> }.into_any(),
        Node::Link(href, c) => view! {
            <a href=href target="_blank" rel=LINK_REL>
                {render(c)}
            </a>
        }
        .into_any(),
        Node::Paragraph(c) => view! { <p>{render(c)}</p> }.into_any(),
        Node::Quote(c) => view! { <blockquote>{render(c)}</blockquote> }.into_any(),
        Node::List(None, c) => view! { <ul>{render(c)}</ul> }.into_any(),
        Node::List(Some(start), c) => view! { <ol start=start>{render(c)}</ol> }.into_any(),
        Node::Item(c) => view! { <li>{render(c)}</li> }.into_any(),
        Node::CodeBlock(t) => view! {
            <pre>
                <code>{t}</code>
            </pre>
        }
        .into_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(text: &str) -> String {
        Owner::new().with(|| message_text(text).to_html())
    }

    /// The HTML without Leptos's hydration markers.
    fn clean(text: &str) -> String {
        html(text).replace("<!>", "").replace("<!---->", "")
    }

    #[test]
    fn plain_text_skips_the_parser_and_renders_the_same() {
        for text in [
            "hello there",
            "café, über alles?",
            "1 more thing",
            "  two spaces",
        ] {
            let parsed = Owner::new().with(|| match as_inline(parse(text)) {
                Ok(inline) => view! { <bdi class="text">{render(inline)}</bdi> }.to_html(),
                Err(_) => String::from("blocks"),
            });
            if plain(text) {
                assert_eq!(clean(text), parsed.replace("<!>", ""), "{text}");
            }
        }
        assert!(plain("hello there") && plain("café, über alles?"));
        assert!(!plain("1. a list") && !plain("    code") && !plain("see http://x"));
    }

    #[test]
    fn the_subset_is_formatted() {
        assert_eq!(
            clean("**bold** *it* ~~old~~ `x<y`"),
            r#"<bdi class="text"><strong>bold</strong> <em>it</em> <s>old</s> <code>x&lt;y</code></bdi>"#
        );
        let block = clean("> quoted\n\n- one\n- two\n\n```\nfn main() {}\n```");
        assert!(block.starts_with(r#"<div dir="auto" class="text"><blockquote><p>quoted</p></blockquote><ul><li>one</li><li>two</li></ul><pre><code>fn main() {}</code></pre></div>"#), "{block}");
    }

    #[test]
    fn addresses_become_links_that_open_apart() {
        let out =
            clean("see https://example.com/a?b=1&c=2. or <https://x.org> or [docs](https://d.io)");
        let rel = format!(r#"target="_blank" rel="{LINK_REL}""#);
        for (href, text) in [
            (
                "https://example.com/a?b=1&amp;c=2",
                "https://example.com/a?b=1&amp;c=2",
            ),
            ("https://x.org", "https://x.org"),
            ("https://d.io", "docs"),
        ] {
            let link = format!(r#"<a href="{href}" {rel}>{text}</a>"#);
            assert!(out.contains(&link), "{link} not in {out}");
        }
        assert!(
            out.contains("</a>. or"),
            "the full stop stays outside: {out}"
        );
    }

    #[test]
    fn hostile_markdown_stays_inert() {
        for (text, shown) in [
            ("[x](javascript:alert(1))", "x"),
            ("![x](javascript:alert(1))", "x"),
            ("[x](JaVaScRiPt:alert(1))", "x"),
            ("[x](data:text/html,<script>alert(1)</script>)", "x"),
            // An autolink may hold quotes; they stay inside the escaped attribute.
            (
                "<https://a.b/\"onmouseover=\"alert(1)>",
                "href=\"https://a.b/&quot;onmouseover=&quot;alert(1)\"",
            ),
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            ("&lt;b&gt; \\*not bold\\*", "&amp;lt;b&amp;gt; \\"),
        ] {
            let out = clean(text);
            assert!(!out.contains("javascript:"), "{text}: {out}");
            assert!(!out.contains("<script"), "{text}: {out}");
            assert!(!out.contains(" onmouseover="), "{text}: {out}");
            assert!(out.contains(shown), "{text}: {shown} not in {out}");
        }
        // An emphasis bomb parses in linear time and renders.
        let bomb = "*a **".repeat(2000);
        assert!(clean(&bomb).len() > bomb.len() / 2);
    }

    #[test]
    fn raw_html_and_entities_read_as_typed() {
        let out = clean("<img src=x onerror=alert(1)> &amp; \\n");
        assert!(
            out.contains("&lt;img src=x onerror=alert(1)&gt; &amp;amp; \\n"),
            "{out}"
        );
        // Raw HTML on a line of its own is a block to Markdown, but reads as one line of text.
        let block = clean("<div style=x>hi</div>");
        assert_eq!(
            block,
            r#"<bdi class="text">&lt;div style=x&gt;hi&lt;/div&gt;</bdi>"#
        );
    }
}
