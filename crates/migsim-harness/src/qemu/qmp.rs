//! A QMP client: JSON lines on a unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// A QMP connection. Events that arrive while a command waits for its
/// answer are kept in [`Qmp::events`].
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events received so far, in order.
    pub events: Vec<Value>,
}

impl Qmp {
    /// Connect, read the greeting and negotiate capabilities. Each later
    /// read waits at most `reply_timeout` (a load may keep QEMU's monitor
    /// busy until it is done).
    pub fn connect(path: &Path, reply_timeout: Duration) -> Result<Self, String> {
        let s = UnixStream::connect(path).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(reply_timeout))
            .map_err(|e| e.to_string())?;
        let mut q = Self {
            reader: BufReader::new(s.try_clone().map_err(|e| e.to_string())?),
            writer: s,
            events: Vec::new(),
        };
        q.read()?; // greeting
        q.execute("qmp_capabilities", Value::Null)?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QMP connection closed".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad QMP line {line:?}: {e}")),
            Err(e) => Err(format!("QMP read: {e}")),
        }
    }

    /// How long a read may wait for QEMU's answer from now on.
    pub fn set_reply_timeout(&self, timeout: Duration) -> Result<(), String> {
        self.writer
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())
    }

    /// Run a command; `Err` holds QEMU's error description.
    pub fn execute(&mut self, name: &str, args: Value) -> Result<Value, String> {
        let mut msg = json!({ "execute": name });
        if !args.is_null() {
            msg["arguments"] = args.clone();
        }
        writeln!(self.writer, "{msg}").map_err(|e| format!("QMP {name}: {e}"))?;
        loop {
            let r = self.read().map_err(|e| format!("QMP {name}: {e}"))?;
            if r.get("event").is_some() {
                self.events.push(r);
                continue;
            }
            if let Some(e) = r.get("error") {
                let desc = e["desc"].as_str().unwrap_or("(no description)");
                return Err(if args.is_null() {
                    format!("QMP {name}: {desc}")
                } else {
                    format!("QMP {name} {args}: {desc}")
                });
            }
            return Ok(r.get("return").cloned().unwrap_or(Value::Null));
        }
    }
}
