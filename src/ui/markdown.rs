//! How a message's text is shown: the formatted tree the server parsed
//! ([`crate::format::Node`], carried in `ChatMessage::rich`) as Leptos views, or the plain
//! text itself. The same code renders the server's page and the live view, so a reload never
//! changes how a message looks. Every text is escaped by Leptos; a link's address is checked
//! again here, so a tree from anywhere cannot make a `javascript:` link.

use crate::format::{as_inline, safe_href, Node};
use leptos::either::EitherOf3;
use leptos::prelude::*;

/// The rel of every link in a message.
pub const LINK_REL: &str = "noopener noreferrer nofollow ugc";

/// A message's text: plain text in an inline `<bdi>` (its direction isolated from the name
/// before it), formatted inline content the same, and blocks in a `<div>`, which isolates
/// them the same way.
pub fn message_text(text: String, rich: Option<Vec<Node>>) -> impl IntoView {
    let Some(rich) = rich else {
        return EitherOf3::A(view! { <bdi class="text">{text}</bdi> });
    };
    match as_inline(rich) {
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
        Node::Code(t) => element("code", None, vec![t.into_any()]),
        Node::Strong(c) => element("strong", None, render(c)),
        Node::Emphasis(c) => element("em", None, render(c)),
        Node::Strike(c) => element("s", None, render(c)),
        Node::Link(href, c) => match safe_href(&href) {
            Some(href) => view! {
                <a href=href target="_blank" rel=LINK_REL>
                    {render(c)}
                </a>
            }
            .into_any(),
            None => render(c).into_any(),
        },
        Node::Paragraph(c) => element("p", None, render(c)),
        Node::Quote(c) => element("blockquote", None, render(c)),
        Node::List(None, c) => element("ul", None, render(c)),
        Node::List(start, c) => element("ol", start, render(c)),
        Node::Item(c) => element("li", None, render(c)),
        Node::CodeBlock(t) => {
            let code = element("code", None, vec![t.into_any()]);
            element("pre", None, vec![code])
        }
    }
}

/// `<tag>` (with `start`, for a numbered list) around `children`. One view type with the tag
/// as a value serves every element of a message: each distinct element view costs the
/// browser bundle about a kilobyte.
fn element(tag: &'static str, start: Option<u64>, children: Vec<AnyView>) -> AnyView {
    leptos::html::custom(tag)
        .attr("start", start)
        .child(children)
        .into_any()
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    fn html(text: &str) -> String {
        let message = crate::protocol::ChatMessage {
            room: crate::protocol::RoomId("r".into()),
            seq: crate::protocol::Seq(1),
            author: crate::protocol::UserName("ada".into()),
            text: text.into(),
            client_id: crate::protocol::ClientId("c".into()),
            ts: 0,
            guest: false,
            rich: crate::format::rich(text),
            ..Default::default()
        };
        Owner::new().with(|| message_text(message.text, message.rich).to_html())
    }

    /// The HTML without Leptos's hydration markers.
    fn clean(text: &str) -> String {
        html(text).replace("<!>", "").replace("<!---->", "")
    }

    #[test]
    fn plain_text_carries_no_tree_and_renders_as_itself() {
        for text in ["hello there", "café, über alles?", "1 more thing", "a-b"] {
            assert_eq!(crate::format::rich(text), None, "{text}");
            assert_eq!(clean(text), format!(r#"<bdi class="text">{text}</bdi>"#));
        }
        assert!(crate::format::plain("hello there"));
        assert!(!crate::format::plain("1. a list") && !crate::format::plain("    code"));
        assert!(
            crate::format::plain("ab s1:42:1765000000:xxxx") && crate::format::plain("at 10:30")
        );
        for address in ["see http://x.io", "HTTPS://X.IO", "write to MAILTO:a@b.c"] {
            assert!(!crate::format::plain(address), "{address}");
        }
    }

    #[test]
    fn a_link_in_a_tree_from_elsewhere_is_checked_again() {
        let html = Owner::new().with(|| {
            render(vec![Node::Link(
                "javascript:alert(1)".into(),
                vec![Node::Text("x".into())],
            )])
            .to_html()
        });
        assert!(!html.contains("javascript") && html.contains('x'), "{html}");
    }

    #[test]
    fn the_subset_is_formatted() {
        assert_eq!(
            clean("**bold** *it* ~~old~~ `x<y`"),
            r#"<bdi class="text"><strong>bold</strong> <em>it</em> <s>old</s> <code>x&lt;y</code></bdi>"#
        );
        let block = clean("> quoted\n\n- one\n- two\n\n```\nfn main() {}\n```");
        assert!(block.starts_with(r#"<div dir="auto" class="text"><blockquote><p>quoted</p></blockquote><ul><li>one</li><li>two</li></ul><pre><code>fn main() {}</code></pre></div>"#), "{block}");
        assert_eq!(
            clean("3. three\n4. four"),
            r#"<div dir="auto" class="text"><ol start="3"><li>three</li><li>four</li></ol></div>"#
        );
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
    fn deep_nesting_is_kept_as_its_text_and_decodes_anywhere() {
        fn depth(nodes: &[Node]) -> usize {
            let children = |n: &Node| match n {
                Node::Strong(c)
                | Node::Emphasis(c)
                | Node::Strike(c)
                | Node::Link(_, c)
                | Node::Paragraph(c)
                | Node::Quote(c)
                | Node::List(_, c)
                | Node::Item(c) => depth(c),
                _ => 0,
            };
            nodes.iter().map(|n| 1 + children(n)).max().unwrap_or(0)
        }
        for text in [
            format!("{} deep", ">".repeat(1000)),
            format!("{}deep", "- ".repeat(600)),
            format!("{}deep", "> - ".repeat(400)),
            format!(
                "{}deep https://a.b/{}",
                "**[".repeat(300),
                "](https://c.d)**".repeat(300)
            ),
        ] {
            let tree = crate::format::rich(&text).expect("formatted");
            assert!(
                depth(&tree) <= crate::format::MAX_DEPTH + 1,
                "{text:.20}: {}",
                depth(&tree)
            );
            // serde_json's own nesting limit (128) is what every browser decodes with.
            let json = serde_json::to_string(&tree).unwrap();
            let back: Vec<Node> = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back, tree);
            assert!(clean(&text).contains("deep"), "{text:.20}");
        }
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
