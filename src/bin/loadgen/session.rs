//! Hearth guest sessions over plain HTTP/1.1, made the way a browser makes one
//! (`POST /api/set_name`): every Hearth connection needs its own session cookie.

use crate::conn::SETUP_TIMEOUT;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// `n` guest sessions, made as a browser makes one (`POST /api/set_name`), 32 at a time.
pub async fn guest_sessions(addr: SocketAddr, n: usize, tag: &str) -> Result<Vec<String>, String> {
    let mut out = vec![String::new(); n];
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut done = 0;
    while done < n {
        while next < n && tasks.len() < 32 {
            let name = format!("lg-{tag}-{next}");
            let idx = next;
            tasks.spawn(async move { (idx, guest_session(addr, &name).await) });
            next += 1;
        }
        match tasks.join_next().await {
            Some(Ok((idx, Ok(cookie)))) => {
                out[idx] = cookie;
                done += 1;
            }
            Some(Ok((idx, Err(e)))) => return Err(format!("session {idx}: {e}")),
            Some(Err(e)) => return Err(format!("session task: {e}")),
            None => break,
        }
    }
    Ok(out)
}

/// A guest session named `name`. Returns the `hearth_session=…` cookie pair.
async fn guest_session(addr: SocketAddr, name: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!("name={name}");
    let request = format!(
        "POST /api/set_name HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("session connect: {e}"))?;
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("session write: {e}"))?;
    let mut reply = Vec::new();
    tokio::time::timeout(SETUP_TIMEOUT, tcp.read_to_end(&mut reply))
        .await
        .map_err(|_| "session: no answer".to_string())?
        .map_err(|e| format!("session read: {e}"))?;
    let reply = String::from_utf8_lossy(&reply);
    reply
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().split(';').next())
        .find(|pair| pair.starts_with("hearth_session="))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "set_name gave no session: {}",
                reply.lines().next().unwrap_or("no reply")
            )
        })
}
