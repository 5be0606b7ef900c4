//! Just enough of a W3C WebDriver client for the app's end-to-end test:
//! HTTP/1.1 over a socket to `tauri-driver`, JSON in and out.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver gives an element reference under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub type Result<T = ()> = std::result::Result<T, String>;

/// One HTTP request to the driver; the JSON body of its answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("WebDriver at {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    // No `Connection: close`: tauri-driver passes it on to
    // WebKitWebDriver, and its pooled connection to it then fails the next
    // request with no answer at all. The answer is read by its length.
    let message = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(message.as_bytes())
        .map_err(|e| format!("WebDriver {method} {path}: {e}"))?;
    let failed = |e: &dyn std::fmt::Display| format!("WebDriver {method} {path}: {e}");
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).map_err(|e| failed(&e))?;
        if n == 0 {
            return Err(failed(&"the connection closed before an answer"));
        }
        answer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| failed(&format!("no Content-Length in {head:?}")))?;
    while answer.len() < head_end + length {
        let n = stream.read(&mut chunk).map_err(|e| failed(&e))?;
        if n == 0 {
            return Err(failed(&"the answer was cut short"));
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let json = String::from_utf8_lossy(&answer[head_end..head_end + length]);
    let status = head;
    let value: Value = serde_json::from_str(json.trim()).map_err(|e| {
        format!(
            "WebDriver {method} {path}: {e}: {}",
            json.chars().take(300).collect::<String>()
        )
    })?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "WebDriver {method} {path}: {}: {}",
            status.lines().next().unwrap_or_default(),
            value["value"]["message"]
        ));
    }
    Ok(value["value"].clone())
}

/// A session: one app window.
#[derive(Debug)]
pub struct Session {
    addr: SocketAddr,
    id: String,
}

impl Session {
    /// Starts `application` with `args` through tauri-driver at `addr`.
    pub fn start(addr: SocketAddr, application: &Path, args: &[String]) -> Result<Self> {
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {
            "application": application, "args": args,
        }}}});
        let value = request(addr, "POST", "/session", Some(&caps))?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {value}"))?
            .to_owned();
        Ok(Self { addr, id })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        request(
            self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and returns what it returns.
    pub fn eval(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Waits up to `timeout` for `script` to return something other than
    /// `null` or `false`, and returns that.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        args: &[Value],
    ) -> Result<Value> {
        let start = Instant::now();
        loop {
            let last = self.eval(script, args);
            match &last {
                Ok(Value::Null | Value::Bool(false)) | Err(_) => {}
                Ok(v) => return Ok(v.clone()),
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what} (last: {last:?})"
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn element(&self, css: &str) -> Result<String> {
        let v = self.call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element {css}: {v}"))
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) -> Result {
        let id = self.element(css)?;
        self.call("POST", &format!("/element/{id}/click"), Some(&json!({})))
            .map(drop)
    }

    /// Replaces the text of the input `css` selects, as typing would.
    pub fn type_into(&self, css: &str, text: &str) -> Result {
        let id = self.element(css)?;
        self.call("POST", &format!("/element/{id}/clear"), Some(&json!({})))?;
        if !text.is_empty() {
            self.call(
                "POST",
                &format!("/element/{id}/value"),
                Some(&json!({"text": text})),
            )?;
        }
        Ok(())
    }

    /// Presses and releases one key (a keyboard shortcut).
    pub fn press(&self, key: &str) -> Result {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
        ]}]});
        self.call("POST", "/actions", Some(&actions)).map(drop)
    }

    /// Saves a screenshot of the window as a PNG.
    pub fn screenshot(&self, to: &Path) -> Result {
        let v = self.call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot: {e}"))?;
        if !png.starts_with(b"\x89PNG") {
            return Err("screenshot: not a PNG".to_owned());
        }
        std::fs::write(to, png).map_err(|e| format!("{}: {e}", to.display()))
    }

    /// Closes the window.
    pub fn end(&self) -> Result {
        self.call("DELETE", "", None).map(drop)
    }
}
