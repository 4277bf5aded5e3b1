//! The client side of containerd's CRI streaming server (the URL an Exec or Attach answers with),
//! over WebSocket as `kubectl exec`/`kubectl attach` can speak it: the channel protocol of
//! Kubernetes' remotecommand, `v4.channel.k8s.io` (with `channel.k8s.io` as a fallback). Every
//! binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error (v4: a JSON
//! `Status` carrying the exit code), 4 resize (a JSON `{"Width":..,"Height":..}`).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// The subprotocols offered, best first.
const PROTOCOLS: &str = "v4.channel.k8s.io, channel.k8s.io";

/// One thing the client does on the stream, in order.
#[derive(Clone, Debug)]
pub enum Step {
    /// Bytes to the process's stdin.
    Stdin(String),
    /// A terminal resize (columns, rows).
    Resize { width: u16, height: u16 },
    /// Read until stdout holds this text (or the time is up).
    AwaitStdout(String),
    /// Close the stream (an attach: the process goes on).
    Close,
}

/// What came back.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    pub protocol: Option<String>,
    pub stdout: String,
    pub stderr: String,
    /// The error channel's text (v4: the JSON Status).
    pub status: Option<String>,
    /// The exit code the status carries: 0 for `Success`, the `ExitCode` cause otherwise.
    pub exit_code: Option<i32>,
}

/// The exit code a v4 `Status` says: 0 on `Success`, else the `ExitCode` cause's number.
pub fn exit_code_of(status: &str) -> Option<i32> {
    let v: serde_json::Value = serde_json::from_str(status).ok()?;
    if v.get("status")?.as_str()? == "Success" {
        return Some(0);
    }
    v.get("details")?
        .get("causes")?
        .as_array()?
        .iter()
        .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))?
        .get("message")?
        .as_str()?
        .parse()
        .ok()
}

/// The WebSocket form of the streaming URL containerd answers with (`http://host:port/exec/..`).
pub fn ws_url(url: &str) -> Result<String> {
    if let Some(rest) = url.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if url.starts_with("ws://") {
        Ok(url.to_string())
    } else {
        bail!("streaming URL {url:?}: only plain http is expected from the guest's containerd")
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// Connects to `url`, plays `steps`, then reads until the server closes the stream (the process
/// ended) or `limit` is up.
pub async fn exchange(url: &str, steps: &[Step], limit: Duration) -> Result<Outcome> {
    let deadline = Instant::now() + limit;
    let mut req = ws_url(url)?
        .into_client_request()
        .with_context(|| format!("streaming URL {url:?}"))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(PROTOCOLS),
    );
    let (mut ws, resp) = tokio::time::timeout(limit, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| anyhow!("connecting to {url}: no answer within {limit:?}"))?
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    let mut out = Outcome {
        protocol: resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ..Default::default()
    };
    let mut closed = false;
    for step in steps {
        match step {
            Step::Stdin(s) => ws.send(frame(STDIN, s.as_bytes())).await?,
            Step::Resize { width, height } => {
                let body = format!("{{\"Width\":{width},\"Height\":{height}}}");
                ws.send(frame(RESIZE, body.as_bytes())).await?;
            }
            Step::AwaitStdout(text) => {
                while !out.stdout.contains(text.as_str()) {
                    if !read_one(&mut ws, &mut out, deadline).await? {
                        closed = true;
                        break;
                    }
                }
            }
            Step::Close => {
                let _ = ws.close(None).await;
                return Ok(out);
            }
        }
    }
    while !closed && read_one(&mut ws, &mut out, deadline).await? {}
    Ok(out)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads one message into `out`. False once the stream has ended.
async fn read_one(ws: &mut Ws, out: &mut Outcome, deadline: Instant) -> Result<bool> {
    let left = deadline.saturating_duration_since(Instant::now());
    let msg = match tokio::time::timeout(left, ws.next()).await {
        Err(_) => bail!(
            "the stream had not ended when the time was up (stdout so far {:?}, stderr {:?})",
            out.stdout,
            out.stderr
        ),
        Ok(None) => return Ok(false),
        Ok(Some(Err(e))) => {
            // The server drops the TCP connection right after the status on some versions.
            if out.status.is_some() {
                return Ok(false);
            }
            return Err(e).context("reading the stream");
        }
        Ok(Some(Ok(m))) => m,
    };
    let data: Vec<u8> = match msg {
        Message::Binary(b) => b.to_vec(),
        Message::Text(t) => t.as_bytes().to_vec(),
        Message::Close(_) => return Ok(false),
        _ => return Ok(true),
    };
    let Some((&channel, body)) = data.split_first() else {
        return Ok(true);
    };
    let text = String::from_utf8_lossy(body);
    match channel {
        STDOUT => out.stdout.push_str(&text),
        STDERR => out.stderr.push_str(&text),
        ERROR => {
            let s = out.status.get_or_insert_with(String::new);
            s.push_str(&text);
            out.exit_code = exit_code_of(s);
        }
        _ => {}
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_v4_status() {
        assert_eq!(
            exit_code_of(r#"{"metadata":{},"status":"Success"}"#),
            Some(0)
        );
        let failed = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code_of(failed), Some(3));
        assert_eq!(exit_code_of("not json"), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:4321/exec/abc").unwrap(),
            "ws://127.0.0.1:4321/exec/abc"
        );
        assert!(ws_url("https://x/exec/abc").is_err());
    }
}
