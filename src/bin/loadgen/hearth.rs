//! Hearth's JSON protocol (docs/protocol.md) as the generator speaks it: the frames it sends
//! and the fields it reads from the frames it receives.

/// The `"type"` of a Hearth server frame (serde puts the tag first).
pub fn frame_type(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("{\"type\":\"")?;
    Some(&rest[..rest.find('"')?])
}

/// `(seq, text)` of a Hearth `message` frame. Inside JSON strings every `"` is escaped, so the
/// first unescaped `,"seq":` / `,"text":"` is the field itself. A text with escapes is cut
/// short, which only matters for texts that are not ours.
pub fn hearth_message(frame: &str) -> Option<(u64, &str)> {
    let at = frame.find(",\"seq\":")? + 7;
    let rest = &frame[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let seq = rest[..end].parse().ok()?;
    let at = frame.find(",\"text\":\"")? + 9;
    let rest = &frame[at..];
    Some((seq, &rest[..rest.find('"')?]))
}

#[derive(serde::Deserialize)]
pub struct ControlFrame {
    #[serde(default)]
    pub last_seq: Option<u64>,
    #[serde(default)]
    pub epoch: Option<u64>,
    #[serde(default)]
    pub recovered: Option<bool>,
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

pub fn control(frame: &str) -> Option<ControlFrame> {
    serde_json::from_str(frame).ok()
}

pub fn hearth_send(room: &str, client_id: &str, text: &str) -> String {
    // Room, id and text are ASCII without quotes or backslashes: no escaping needed.
    format!("{{\"type\":\"send\",\"room\":\"{room}\",\"client_id\":\"{client_id}\",\"text\":\"{text}\"}}")
}

pub fn hearth_join(room: &str, since: Option<(u64, u64)>) -> String {
    match since {
        Some((seq, epoch)) => {
            format!("{{\"type\":\"join\",\"room\":\"{room}\",\"since\":{seq},\"epoch\":{epoch}}}")
        }
        None => format!("{{\"type\":\"join\",\"room\":\"{room}\"}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hearth_message_fields() {
        let f = r#"{"type":"message","room":"bench-0","seq":43,"author":"a\",\"text\":\"x","text":"ab1s0:1:2:xx","client_id":"c","ts":1}"#;
        assert_eq!(frame_type(f), Some("message"));
        assert_eq!(hearth_message(f), Some((43, "ab1s0:1:2:xx")));
    }
}
